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
# From a PREPARED folder the automatic limit also stops here: the chosen
# users' histories are read into memory, and the log may be any size.
STREAM_EVAL_USERS = 100_000
# Working memory of one chunk of users ranked in a training process (each
# epoch's validation, the final evaluation): that process holds the model,
# its optimizer and TensorFlow's pooled step buffers already, so a quarter of
# the protocol's default (``EVAL_MEMORY_BYTES``, 256 MiB): 3 users at a time
# instead of 15 on a 703,061-item catalogue.
TRAINING_EVAL_MEMORY_BYTES = 64 * 2**20


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
    data: Any,
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
        data: A ``Split``, or a :class:`~sasrec.training.preparation.Prepared`
            (from a PREPARED folder only the evaluated users' sequences are
            read, and the automatic limit stops at :data:`STREAM_EVAL_USERS`).
        max_users: At most this many cases, a seeded sample in user order
            (0: :func:`eval_user_limit`'s automatic limit). The result's
            ``"users_sampled"`` says how many of how many; the CIs are a
            bootstrap over the evaluated users, so they include the sampling.
        progress: Called with the sampling notice and, past
            :data:`PROGRESS_SCORES` scores per protocol, one line before and
            after each scorer's pass with its seconds (e.g. ``print``).
    """
    from sasrec.engines.scorer import Scorer
    from sasrec.evaluation import evaluate_full_ranking, evaluate_sampled
    from sasrec.runtime import release_freed_memory
    from sasrec.training.preparation import Prepared, sample_ranks

    prepared = data if isinstance(data, Prepared) else Prepared(None, data, None)
    say = progress or (lambda _line: None)
    total = prepared.num_cases(which)
    limit = eval_user_limit(total, num_items, max_users)
    if prepared.stream is not None and max_users == 0:
        limit = min(limit, STREAM_EVAL_USERS)
    if limit < total:
        say(
            f"final evaluation on {limit:,} of {total:,} users (a seeded sample: "
            f"{total:,} × {num_items + 1:,} scores pass {MAX_EVAL_SCORES:.0e} per protocol, "
            f"--max-eval-users or, from a PREPARED folder, {STREAM_EVAL_USERS:,} users; "
            "the 95% CIs include the sampling)"
        )
    chosen = sample_ranks(total, limit, seed)
    cases = prepared.cases(which, chosen)
    histories = [cases.history(i) for i in range(len(cases))]
    targets = cases.targets
    scorers = {"sasrec": Scorer(model), **prepared.baselines(num_items, histories)}
    # Reading the cases and fitting the baselines (from a PREPARED folder:
    # every shard file) freed their memory: hand it back before scoring
    # allocates its own (60-120 MiB of the streamed 30M run's peak).
    release_freed_memory()
    result: dict[str, Any] = {"cases": which, "num_users": len(chosen)}
    if len(chosen) < total:
        result["users_sampled"] = {"evaluated": len(chosen), "of": total, "seed": seed}
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
                    memory_bytes=TRAINING_EVAL_MEMORY_BYTES,
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
