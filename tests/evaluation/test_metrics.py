"""Metrics, rank rule, top-k selection, coverage and bootstrap: hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sasrec.evaluation import (
    bootstrap_ci,
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


def test_metrics_on_fixed_ranks():
    ranks = np.array([0, 2, 15])
    np.testing.assert_allclose(ndcg_at_k(ranks, 10), [1.0, 1.0 / math.log2(4), 0.0])
    np.testing.assert_allclose(hit_rate_at_k(ranks, 10), [1.0, 1.0, 0.0])
    np.testing.assert_allclose(reciprocal_rank(ranks), [1.0, 1.0 / 3.0, 1.0 / 16.0])
    assert mean_ndcg_at_k(ranks, 10) == pytest.approx((1 + 1 / math.log2(4) + 0) / 3)
    assert mean_hit_rate_at_k(ranks, 10) == pytest.approx(2 / 3)
    assert mrr(ranks) == pytest.approx((1 + 1 / 3 + 1 / 16) / 3)


def test_cutoff_is_exclusive():
    # rank 9 is the 10th position (inside @10); rank 10 is the 11th (outside).
    np.testing.assert_allclose(hit_rate_at_k([9, 10], 10), [1.0, 0.0])
    np.testing.assert_allclose(ndcg_at_k([9, 10], 10), [1.0 / math.log2(11), 0.0])


@pytest.mark.parametrize("bad", [[-1], [0.5], [[0, 1]]])
def test_invalid_ranks_raise(bad):
    with pytest.raises(ValueError, match="ranks"):
        ndcg_at_k(bad, 10)


def test_invalid_k_raises():
    with pytest.raises(ValueError, match="k must be"):
        hit_rate_at_k([0], 0)


def test_rank_tie_rules():
    target = np.array([0.5])
    candidates = np.array([[0.9, 0.5, 0.1]])
    assert ranks_from_scores(target, candidates, ties="pessimistic").tolist() == [2]
    assert ranks_from_scores(target, candidates, ties="optimistic").tolist() == [1]
    mask = np.array([[False, True, True]])
    assert ranks_from_scores(target, candidates, mask).tolist() == [1]


def test_constant_scorer_gets_worst_rank_under_pessimistic_ties():
    candidates = np.zeros((2, 7), dtype=np.float32)
    assert ranks_from_scores(np.zeros(2), candidates).tolist() == [7, 7]
    assert ranks_from_scores(np.zeros(2), candidates, ties="optimistic").tolist() == [0, 0]


def test_rank_rejects_nan_target_and_bad_policy():
    with pytest.raises(ValueError, match="NaN"):
        ranks_from_scores(np.array([np.nan]), np.zeros((1, 3)))
    with pytest.raises(ValueError, match="ties"):
        ranks_from_scores(np.zeros(1), np.zeros((1, 3)), ties="average")


def test_top_k_mask_breaks_ties_towards_lower_id():
    scores = np.array([[0.1, 0.5, 0.5, 0.5, 0.2]])
    assert np.flatnonzero(top_k_mask(scores, 2)[0]).tolist() == [1, 2]
    valid = np.array([[True, False, True, True, True]])
    assert np.flatnonzero(top_k_mask(scores, 2, valid)[0]).tolist() == [2, 3]
    # A crowded row next to one without ties at the k-th score.
    two = np.array([[0.1, 0.5, 0.5, 0.5, 0.2], [0.9, 0.8, 0.5, 0.5, 0.1]])
    assert [np.flatnonzero(r).tolist() for r in top_k_mask(two, 2)] == [[1, 2], [0, 1]]
    # Fewer valid columns than k: all valid ones, nothing else.
    few = np.array([[False, False, True, False, True]])
    assert np.flatnonzero(top_k_mask(scores, 3, few)[0]).tolist() == [2, 4]


def test_top_k_mask_matches_argsort_without_ties():
    rng = np.random.default_rng(3)
    scores = rng.normal(size=(6, 40))
    expected = np.argsort(-scores, axis=1)[:, :5]
    got = top_k_mask(scores, 5)
    for row in range(6):
        assert sorted(np.flatnonzero(got[row])) == sorted(expected[row])


def test_catalogue_coverage_by_hand():
    recs = np.array([[1, 2], [2, 3], [0, 1]])
    assert catalogue_coverage(recs, num_items=5) == pytest.approx(3 / 5)
    with pytest.raises(ValueError, match="0..5"):
        catalogue_coverage(np.array([[6]]), num_items=5)


def test_bootstrap_contains_mean_and_is_deterministic():
    values = np.random.default_rng(0).binomial(1, 0.3, size=500).astype(float)
    low, high = bootstrap_ci(values, num_samples=1000, seed=5)
    assert low < values.mean() < high
    assert bootstrap_ci(values, num_samples=1000, seed=5) == (low, high)
    assert bootstrap_ci(values, num_samples=1000, seed=6) != (low, high)


def test_bootstrap_width_matches_normal_theory_and_shrinks_with_data():
    rng = np.random.default_rng(1)
    small = rng.binomial(1, 0.5, size=400).astype(float)
    large = rng.binomial(1, 0.5, size=40_000).astype(float)
    low_s, high_s = bootstrap_ci(small, num_samples=2000, seed=0)
    low_l, high_l = bootstrap_ci(large, num_samples=2000, seed=0)
    # 95% normal interval width: 2 * 1.96 * sqrt(0.25 / n) = 0.098 (n=400), 0.0098 (n=40k).
    assert 0.085 < high_s - low_s < 0.11
    assert 0.0085 < high_l - low_l < 0.011


def test_bootstrap_degenerate_and_invalid_inputs():
    assert bootstrap_ci(np.full(10, 0.25), num_samples=50) == (0.25, 0.25)
    with pytest.raises(ValueError, match="non-empty"):
        bootstrap_ci([])
    with pytest.raises(ValueError, match="finite"):
        bootstrap_ci([0.0, np.nan])
    with pytest.raises(ValueError, match="alpha"):
        bootstrap_ci([0.0, 1.0], alpha=1.5)
