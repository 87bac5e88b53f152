"""Offline evaluation: metrics, full-ranking and sampled protocols, bootstrap, baselines.

numpy only (no TensorFlow, no pandas). Every model is evaluated through a
*scorer*: ``score_fn(histories int32 (B, L) left-padded) -> float (B, N + 1)``,
column 0 being padding and ignored. ``SASRec`` is wrapped into one elsewhere;
:class:`PopularityRecommender` and :class:`MarkovRecommender` are scorers.

Example:
    >>> import numpy as np
    >>> from sasrec.evaluation import PopularityRecommender, evaluate_full_ranking
    >>> pop = PopularityRecommender(num_items=4).fit([np.array([1, 2, 2, 3])])
    >>> report = evaluate_full_ranking(
    ...     pop, [np.array([1]), np.array([3])], [2, 4], num_items=4,
    ...     exclude_history=True, num_bootstrap=0)
    >>> # user 0: target 2 is the most popular -> rank 0; user 1: items 1 and 2
    >>> # beat target 4 (item 3 is history, excluded) -> rank 2; MRR = (1 + 1/3) / 2
    >>> report["hr@10"]["value"], round(report["mrr"]["value"], 4)
    (1.0, 0.6667)
"""

from sasrec.evaluation._protocol import ScoreFn
from sasrec.evaluation.bootstrap import bootstrap_ci
from sasrec.evaluation.full_ranking import evaluate_full_ranking
from sasrec.evaluation.markov_recommender import MarkovRecommender
from sasrec.evaluation.metrics import (
    TIE_POLICIES,
    catalogue_coverage,
    hit_rate_at_k,
    mean_hit_rate_at_k,
    mean_ndcg_at_k,
    mrr,
    ndcg_at_k,
    ranks_from_scores,
    reciprocal_rank,
    top_k_mask,
)
from sasrec.evaluation.popularity_recommender import PopularityRecommender
from sasrec.evaluation.report import format_report
from sasrec.evaluation.sampled import evaluate_sampled, sample_negatives

__all__ = [
    "TIE_POLICIES",
    "MarkovRecommender",
    "PopularityRecommender",
    "ScoreFn",
    "bootstrap_ci",
    "catalogue_coverage",
    "evaluate_full_ranking",
    "evaluate_sampled",
    "format_report",
    "hit_rate_at_k",
    "mean_hit_rate_at_k",
    "mean_ndcg_at_k",
    "mrr",
    "ndcg_at_k",
    "ranks_from_scores",
    "reciprocal_rank",
    "sample_negatives",
    "top_k_mask",
]
