"""Ranking metrics from 0-based ranks, the rank rule, top-k selection and coverage.

Rank convention: the rank of a target is the number of *competing candidates*
that the scorer places above it, so rank 0 is the top of the list.

Ties: with ``ties="pessimistic"`` (the default everywhere in this package) a
candidate whose score *equals* the target's also counts as ranked above it.
This is deterministic and conservative: a scorer that cannot separate items
(for example a constant score) gets the worst rank, never the best. With
``ties="optimistic"`` only candidates scoring strictly higher count (the rule
``(scores > target_score).sum()``), which gives ties to the target. On scores
without ties the two rules agree.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

TIE_POLICIES = ("pessimistic", "optimistic")


def check_ties(ties: str) -> str:
    if ties not in TIE_POLICIES:
        raise ValueError(f"ties must be one of {TIE_POLICIES}, received ties={ties!r}")
    return ties


def check_k(k: int) -> int:
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise ValueError(f"k must be an integer >= 1, received k={k!r}")
    return int(k)


def _as_ranks(ranks: ArrayLike) -> np.ndarray:
    ranks = np.asarray(ranks)
    if ranks.ndim != 1:
        raise ValueError(f"ranks must be 1-D, received shape {ranks.shape}")
    if ranks.size and (not np.issubdtype(ranks.dtype, np.integer) or ranks.min() < 0):
        raise ValueError(f"ranks must be non-negative integers, received {ranks[:5].tolist()}...")
    return ranks


def ranks_from_scores(
    target_scores: ArrayLike,
    candidate_scores: ArrayLike,
    candidate_mask: ArrayLike | None = None,
    ties: str = "pessimistic",
) -> np.ndarray:
    """0-based rank of each target among its competing candidates.

    Args:
        target_scores: ``(B,)`` score of each row's target.
        candidate_scores: ``(B, C)`` scores of the competitors. The target itself
            must not be among them (or must be masked out), otherwise a
            pessimistic tie with itself would count.
        candidate_mask: Optional ``(B, C)`` bool, True = this column competes.
        ties: ``"pessimistic"`` (ties rank above the target) or ``"optimistic"``.

    Returns:
        ``int64 (B,)`` ranks.

    Raises:
        ValueError: On shape mismatch or a NaN target score.
    """
    check_ties(ties)
    target = np.asarray(target_scores)
    scores = np.asarray(candidate_scores)
    if scores.ndim != 2 or target.shape != (scores.shape[0],):
        raise ValueError(
            f"expected target_scores (B,) and candidate_scores (B, C), received "
            f"{target.shape} and {scores.shape}"
        )
    if np.isnan(target).any():
        raise ValueError(f"target score is NaN for rows {np.flatnonzero(np.isnan(target))[:10]}")
    above = scores >= target[:, None] if ties == "pessimistic" else scores > target[:, None]
    if candidate_mask is not None:
        mask = np.asarray(candidate_mask, dtype=bool)
        if mask.shape != scores.shape:
            raise ValueError(f"candidate_mask shape {mask.shape} != scores shape {scores.shape}")
        above &= mask
    return above.sum(axis=1, dtype=np.int64)


def ndcg_at_k(ranks: ArrayLike, k: int = 10) -> np.ndarray:
    """Per-user NDCG@k with one relevant item: ``1 / log2(rank + 2)`` if rank < k, else 0."""
    ranks = _as_ranks(ranks)
    check_k(k)
    gains = 1.0 / np.log2(ranks.astype(np.float64) + 2.0)
    return np.where(ranks < k, gains, 0.0)


def hit_rate_at_k(ranks: ArrayLike, k: int = 10) -> np.ndarray:
    """Per-user hit indicator: 1.0 if rank < k, else 0.0."""
    ranks = _as_ranks(ranks)
    check_k(k)
    return (ranks < k).astype(np.float64)


def reciprocal_rank(ranks: ArrayLike) -> np.ndarray:
    """Per-user reciprocal rank ``1 / (rank + 1)`` (not truncated at any k)."""
    return 1.0 / (_as_ranks(ranks).astype(np.float64) + 1.0)


def mrr(ranks: ArrayLike) -> float:
    """Mean reciprocal rank over users (untruncated)."""
    values = reciprocal_rank(ranks)
    if not values.size:
        raise ValueError("mrr needs at least one rank")
    return float(values.mean())


def mean_ndcg_at_k(ranks: ArrayLike, k: int = 10) -> float:
    """Mean of :func:`ndcg_at_k` over users."""
    values = ndcg_at_k(ranks, k)
    if not values.size:
        raise ValueError("mean_ndcg_at_k needs at least one rank")
    return float(values.mean())


def mean_hit_rate_at_k(ranks: ArrayLike, k: int = 10) -> float:
    """Mean of :func:`hit_rate_at_k` over users (HR@k)."""
    values = hit_rate_at_k(ranks, k)
    if not values.size:
        raise ValueError("mean_hit_rate_at_k needs at least one rank")
    return float(values.mean())


def top_k_mask(scores: ArrayLike, k: int, valid: ArrayLike | None = None) -> np.ndarray:
    """Boolean ``(B, C)`` mask of each row's k best valid columns.

    Ties at the k-th score are broken towards the lower column index (as
    ``tf.math.top_k`` does), so the selection is deterministic. A row with
    fewer than k valid columns selects all of them.

    Args:
        scores: ``(B, C)`` float scores.
        k: List length.
        valid: Optional ``(B, C)`` bool, False = never recommend this column.
    """
    check_k(k)
    scores = np.asarray(scores)
    if scores.ndim != 2:
        raise ValueError(f"scores must be 2-D, received shape {scores.shape}")
    valid_mask = (
        np.ones(scores.shape, dtype=bool) if valid is None else np.asarray(valid, dtype=bool)
    )
    if k >= scores.shape[1]:
        return valid_mask.copy()
    masked = np.where(valid_mask, scores, -np.inf)
    width = scores.shape[1]
    kth = np.partition(masked, width - k, axis=1)[:, width - k]
    above = masked > kth[:, None]
    equal = masked == kth[:, None]
    room = k - above.sum(axis=1)
    selected = above | equal
    # Only rows with more ties at the k-th score than free slots need the
    # (costly) running count that keeps the lowest ids.
    crowded = np.flatnonzero(equal.sum(axis=1) > room)
    if crowded.size:
        ranks = np.cumsum(equal[crowded], axis=1, dtype=np.int32)
        selected[crowded] = above[crowded] | (equal[crowded] & (ranks <= room[crowded, None]))
    return selected & valid_mask


def catalogue_coverage(recommendations: ArrayLike, num_items: int) -> float:
    """Fraction of the N real items that appear in at least one recommendation list.

    Args:
        recommendations: ``(U, k)`` item ids (1..N); 0 entries (unfilled slots)
            are ignored.
        num_items: N.
    """
    recs = np.asarray(recommendations)
    if num_items < 1:
        raise ValueError(f"num_items must be >= 1, received {num_items}")
    if recs.size and (recs.min() < 0 or recs.max() > num_items):
        raise ValueError(f"recommendations must hold ids in 0..{num_items}")
    covered = np.zeros(num_items + 1, dtype=bool)
    covered[recs.ravel().astype(np.int64)] = True
    return float(covered[1:].sum() / num_items)
