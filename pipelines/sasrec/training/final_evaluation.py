"""The final evaluation of a trained model on the test (or validation) cases.

Full ranking with the history excluded and included, and the paper's sampled
protocol, each beside two baselines fitted on the same training sequences.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

# Scores one protocol may rank (users × (items + 1)) before the final
# evaluation samples users: about 10^10 cells is minutes per scorer on 2 cores.
MAX_EVAL_SCORES = 10**10
# Past this many scores per protocol each scorer's pass gets a progress line.
PROGRESS_SCORES = 10**8


def eval_user_limit(num_users: int, num_items: int, max_users: int = 0) -> int:
    """Users the final evaluation ranks: ``max_users`` if set, else as many as fit the scores.

    Example:
        >>> eval_user_limit(500_000, 444_596), eval_user_limit(6_040, 3_416)
        (22492, 6040)
        >>> eval_user_limit(6_040, 3_416, max_users=1_000)
        1000
    """
    limit = max_users if max_users > 0 else max(1, MAX_EVAL_SCORES // (num_items + 1))
    return min(num_users, limit)


def evaluate_split(
    model: Any,
    split: Any,
    num_items: int,
    max_len: int,
    *,
    which: str = "test",
    sampled: bool = True,
    bootstrap: int = 1000,
    seed: int = 0,
    max_users: int = 0,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Full-ranking (history excluded and included) and sampled metrics, with baselines.

    Baselines (most popular, first-order Markov) are fitted on the same
    training sequences as the model and evaluated on the same cases.

    Args:
        max_users: At most this many cases, a seeded sample in user order
            (0: :func:`eval_user_limit`'s automatic limit). The result's
            ``"users_sampled"`` says how many of how many; the CIs are a
            bootstrap over the evaluated users, so they include the sampling.
        progress: Called with the sampling notice and, past
            :data:`PROGRESS_SCORES` scores per protocol, one line before and
            after each scorer's pass with its seconds (e.g. ``print``).
    """
    from sasrec.engines.scorer import Scorer
    from sasrec.evaluation import (
        MarkovRecommender,
        PopularityRecommender,
        evaluate_full_ranking,
        evaluate_sampled,
    )

    say = progress or (lambda _line: None)
    cases = split.test if which == "test" else split.valid
    chosen = np.arange(len(cases))
    limit = eval_user_limit(len(cases), num_items, max_users)
    if limit < len(cases):
        chosen = np.sort(np.random.default_rng(seed).choice(chosen, size=limit, replace=False))
        say(
            f"final evaluation on {limit:,} of {len(cases):,} users (a seeded sample: "
            f"{len(cases):,} × {num_items + 1:,} scores pass {MAX_EVAL_SCORES:.0e} per protocol "
            "or --max-eval-users; the 95% CIs include the sampling)"
        )
    histories = [cases.history(int(i)) for i in chosen]
    targets = cases.targets[chosen]
    train = split.train
    scorers = {
        "sasrec": Scorer(model),
        "popularity": PopularityRecommender(num_items).fit(
            offsets=train.offsets, items=train.items
        ),
        "markov": MarkovRecommender(num_items).fit(offsets=train.offsets, items=train.items),
    }
    result: dict[str, Any] = {"cases": which, "num_users": len(chosen)}
    if len(chosen) < len(cases):
        result["users_sampled"] = {"evaluated": len(chosen), "of": len(cases), "seed": seed}
    cost = f"{len(chosen):,} users × {num_items + 1:,} items"

    slow = len(chosen) * (num_items + 1) >= PROGRESS_SCORES

    def timed(label: str, name: str, run: Callable[[], dict]) -> dict:
        start = time.perf_counter()
        if slow:
            say(f"evaluating {label}: {name}, {cost} ...")
        report = run()
        if slow:
            say(f"evaluated {label}: {name} in {time.perf_counter() - start:.1f} s")
        return report

    for exclude in (True, False):
        key = "full_ranking_exclude_history" if exclude else "full_ranking_include_history"
        label = "full ranking, history " + ("excluded" if exclude else "included")
        result[key] = {
            name: timed(
                label,
                name,
                lambda fn=fn, exclude=exclude: evaluate_full_ranking(
                    fn,
                    histories,
                    targets,
                    num_items,
                    exclude_history=exclude,
                    max_len=max_len,
                    batch_size=256,
                    num_bootstrap=bootstrap,
                    seed=seed,
                ),
            )
            for name, fn in scorers.items()
        }
    if sampled:
        # Negatives avoid every item the user ever touched, as in the paper.
        user_items = [np.append(h, t) for h, t in zip(histories, targets)]
        result["sampled"] = {
            name: timed(
                "sampled",
                name,
                lambda fn=fn: evaluate_sampled(
                    fn,
                    histories,
                    targets,
                    user_items,
                    num_items,
                    max_len=max_len,
                    batch_size=256,
                    num_bootstrap=bootstrap,
                    seed=seed,
                ),
            )
            for name, fn in scorers.items()
        }
    return result


def summarize(evaluation: dict[str, Any]) -> dict[str, float]:
    """A flat ``name -> value`` view of an evaluation (for GetModelInfo and logs)."""
    flat: dict[str, float] = {}
    for protocol, short in (
        ("full_ranking_exclude_history", "full"),
        ("full_ranking_include_history", "full_incl"),
        ("sampled", "sampled"),
    ):
        for model_name, report in evaluation.get(protocol, {}).items():
            for metric, entry in report.items():
                if isinstance(entry, dict) and "value" in entry:
                    flat[f"{short}/{model_name}/{metric}"] = float(entry["value"])
    return flat
