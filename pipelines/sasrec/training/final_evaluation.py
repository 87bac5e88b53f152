"""The final evaluation of a trained model on the test (or validation) cases.

Full ranking with the history excluded and included, and the paper's sampled
protocol, each beside two baselines fitted on the same training sequences.
"""

from __future__ import annotations

from typing import Any

import numpy as np


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
) -> dict[str, Any]:
    """Full-ranking (history excluded and included) and sampled metrics, with baselines.

    Baselines (most popular, first-order Markov) are fitted on the same
    training sequences as the model and evaluated on the same cases.
    """
    from sasrec.engines.scorer import Scorer
    from sasrec.evaluation import (
        MarkovRecommender,
        PopularityRecommender,
        evaluate_full_ranking,
        evaluate_sampled,
    )

    cases = split.test if which == "test" else split.valid
    histories = [cases.history(i) for i in range(len(cases))]
    targets = cases.targets
    train = split.train
    scorers = {
        "sasrec": Scorer(model),
        "popularity": PopularityRecommender(num_items).fit(
            offsets=train.offsets, items=train.items
        ),
        "markov": MarkovRecommender(num_items).fit(offsets=train.offsets, items=train.items),
    }
    result: dict[str, Any] = {"cases": which, "num_users": len(cases)}
    for exclude in (True, False):
        key = "full_ranking_exclude_history" if exclude else "full_ranking_include_history"
        result[key] = {
            name: evaluate_full_ranking(
                fn,
                histories,
                targets,
                num_items,
                exclude_history=exclude,
                max_len=max_len,
                batch_size=256,
                num_bootstrap=bootstrap,
                seed=seed,
            )
            for name, fn in scorers.items()
        }
    if sampled:
        # Negatives avoid every item the user ever touched, as in the paper.
        user_items = [np.append(h, t) for h, t in zip(histories, targets)]
        result["sampled"] = {
            name: evaluate_sampled(
                fn,
                histories,
                targets,
                user_items,
                num_items,
                max_len=max_len,
                batch_size=256,
                num_bootstrap=bootstrap,
                seed=seed,
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
