"""Full-ranking and sampled protocols with hand-made scorers and hand-computed ranks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sasrec.evaluation import evaluate_full_ranking, evaluate_sampled, sample_negatives
from sasrec.padding import pad_left

# Items 1..5; column 0 (padding) gets a huge score that must never count.
ITEM_SCORES = np.array([100.0, 0.9, 0.5, 0.7, 0.1, 0.3], dtype=np.float32)
NUM_ITEMS = 5


class FixedScorer:
    """Same scores for every user; records the batches it receives."""

    def __init__(self, row: np.ndarray = ITEM_SCORES) -> None:
        self.row = row
        self.calls: list[np.ndarray] = []

    def __call__(self, histories: np.ndarray) -> np.ndarray:
        self.calls.append(histories.copy())
        return np.tile(self.row, (histories.shape[0], 1))


# u0 repeats item 2; u2 has no history (skipped); u3's target 1 is in its history.
HISTORIES = [np.array([1, 2]), np.array([3]), np.array([], dtype=np.int64), np.array([5, 1, 3])]
TARGETS = np.array([2, 4, 3, 1])


def test_full_ranking_exclusion_on_by_hand():
    # u0: competitors {3,4,5} (1 is history; 2 is the target) -> only 3 (0.7) > 0.5: rank 1.
    # u1: competitors {1,2,5} all beat 0.1: rank 3.   u3: competitors {2,4}: rank 0.
    report = evaluate_full_ranking(
        FixedScorer(), HISTORIES, TARGETS, NUM_ITEMS, exclude_history=True, k=2, return_ranks=True
    )
    assert report["ranks"].tolist() == [1, 3, 0]
    assert report["users"].tolist() == [0, 1, 3]
    assert (report["num_users"], report["num_skipped"]) == (3, 1)
    assert report["ndcg@2"]["value"] == pytest.approx((1 / math.log2(3) + 0 + 1) / 3)
    assert report["hr@2"]["value"] == pytest.approx(2 / 3)
    assert report["mrr"]["value"] == pytest.approx((1 / 2 + 1 / 4 + 1) / 3)
    # Top-2 lists: u0 {3, 2}, u1 {1, 2}, u3 {1, 2} -> items {1, 2, 3} of 5.
    assert report["coverage@2"] == {"value": pytest.approx(3 / 5), "ci95": None}
    assert report["exclude_history"] is True


def test_full_ranking_exclusion_off_by_hand():
    # u0: {1,3,4,5}: 0.9 and 0.7 beat 0.5 -> 2.  u1: {1,2,3,5} all beat 0.1 -> 4.  u3: 0.
    report = evaluate_full_ranking(
        FixedScorer(), HISTORIES, TARGETS, NUM_ITEMS, exclude_history=False, k=2, return_ranks=True
    )
    assert report["ranks"].tolist() == [2, 4, 0]
    assert report["coverage@2"]["value"] == pytest.approx(2 / 5)  # everyone gets {1, 3}


def test_padding_column_never_counts_whatever_its_score():
    for pad_score in (np.inf, np.nan, -np.inf, 0.5):
        row = ITEM_SCORES.copy()
        row[0] = pad_score
        report = evaluate_full_ranking(
            FixedScorer(row), HISTORIES, TARGETS, NUM_ITEMS, exclude_history=True, k=2,
            return_ranks=True, num_bootstrap=0,
        )  # fmt: skip
        assert report["ranks"].tolist() == [1, 3, 0]
        assert report["coverage@2"]["value"] == pytest.approx(3 / 5)


def test_scorer_sees_left_padded_truncated_history_but_whole_history_is_excluded():
    scorer = FixedScorer()
    # History [1, 3, 4], target 2 (0.5), max_len=1: the scorer sees only [4], yet 1 and 3
    # are still excluded, leaving competitor 5 (0.3) -> rank 0.
    report = evaluate_full_ranking(
        scorer, [np.array([1, 3, 4]), np.array([5])], np.array([2, 2]), NUM_ITEMS,
        exclude_history=True, max_len=1, return_ranks=True, num_bootstrap=0,
    )  # fmt: skip
    assert report["ranks"].tolist() == [0, 2]  # u1: 1 (0.9), 3 (0.7) beat 0.5
    assert scorer.calls[0].dtype == np.int32
    assert scorer.calls[0].tolist() == [[4], [5]]

    scorer = FixedScorer()
    evaluate_full_ranking(
        scorer, HISTORIES, TARGETS, NUM_ITEMS, exclude_history=True, num_bootstrap=0
    )
    assert scorer.calls[0].tolist() == [[0, 1, 2], [0, 0, 3], [5, 1, 3]]


def test_padded_array_input_and_batch_size_give_the_same_report():
    reference = evaluate_full_ranking(
        FixedScorer(), HISTORIES, TARGETS, NUM_ITEMS, exclude_history=True, seed=3
    )
    padded = pad_left(HISTORIES, 4)
    for batch_size in (1, 2, 512):
        report = evaluate_full_ranking(
            FixedScorer(), padded, TARGETS, NUM_ITEMS, exclude_history=True, seed=3,
            batch_size=batch_size,
        )  # fmt: skip
        assert report == reference


def test_full_ranking_report_has_cis_around_the_means():
    rng = np.random.default_rng(0)
    table = rng.normal(size=(1, NUM_ITEMS + 1)).astype(np.float32)
    histories = [rng.integers(1, NUM_ITEMS + 1, size=3) for _ in range(200)]
    targets = rng.integers(1, NUM_ITEMS + 1, size=200)
    report = evaluate_full_ranking(
        FixedScorer(table[0]), histories, targets, NUM_ITEMS, exclude_history=False
    )
    for key in ("ndcg@10", "hr@10", "mrr"):
        low, high = report[key]["ci95"]
        assert low <= report[key]["value"] <= high
    assert report["hr@10"]["value"] == 1.0  # k=10 > 5 items: every target is a hit


def test_full_ranking_errors_are_clear():
    def wrong_shape(h):
        return np.zeros((h.shape[0], NUM_ITEMS), dtype=np.float32)

    with pytest.raises(ValueError, match=r"num_items \+ 1\) = \(3, 6\)"):
        evaluate_full_ranking(wrong_shape, HISTORIES, TARGETS, NUM_ITEMS, exclude_history=True)
    with pytest.raises(ValueError, match=r"targets\[1\] = 0"):
        evaluate_full_ranking(FixedScorer(), HISTORIES, [2, 0, 3, 1], NUM_ITEMS,
                              exclude_history=True)  # fmt: skip
    with pytest.raises(ValueError, match=r"histories\[1\]\[0\] = 9"):
        evaluate_full_ranking(FixedScorer(), [[1], [9]], [2, 2], NUM_ITEMS, exclude_history=True)
    nan_row = ITEM_SCORES.copy()
    nan_row[4] = np.nan
    with pytest.raises(ValueError, match="NaN for item 4"):
        evaluate_full_ranking(FixedScorer(nan_row), HISTORIES, TARGETS, NUM_ITEMS,
                              exclude_history=False)  # fmt: skip
    with pytest.raises(ValueError, match="all 1 histories are empty"):
        evaluate_full_ranking(FixedScorer(), [[]], [1], NUM_ITEMS, exclude_history=True)


# ---------------------------------------------------------------- sampled protocol


def test_sample_negatives_avoid_known_items_and_are_deterministic():
    rng_items = np.random.default_rng(0)
    user_items = [rng_items.choice(np.arange(1, 51), size=n, replace=False) for n in (1, 10, 40)]
    negatives = sample_negatives(user_items, 50, 100, np.random.default_rng(7))
    assert negatives.shape == (3, 100) and negatives.dtype == np.int32
    for row, known in zip(negatives, user_items):
        assert row.min() >= 1 and row.max() <= 50
        assert not np.isin(row, known).any()
    again = sample_negatives(user_items, 50, 100, np.random.default_rng(7))
    np.testing.assert_array_equal(negatives, again)
    other = sample_negatives(user_items, 50, 100, np.random.default_rng(8))
    assert not np.array_equal(negatives, other)


def test_sample_negatives_draw_with_replacement():
    negatives = sample_negatives([np.array([1, 2, 3])], 5, 100, np.random.default_rng(0))
    assert sorted(set(negatives[0].tolist())) == [4, 5]  # 100 draws from 2 allowed items
    with pytest.raises(ValueError, match="all 3 items"):
        sample_negatives([np.array([1, 2, 3])], 3, 5, np.random.default_rng(0))


def _next_item_data(num_users: int, num_items: int, seed: int):
    """Histories whose target is (last item % N) + 1, so a scorer can know it."""
    rng = np.random.default_rng(seed)
    histories = [rng.integers(1, num_items + 1, size=rng.integers(1, 8)) for _ in range(num_users)]
    targets = np.array([h[-1] % num_items + 1 for h in histories])
    user_items = [np.append(h, t) for h, t in zip(histories, targets)]
    return histories, targets, user_items


def _target_scorer(num_items: int, target_score: float, history_score: float = 0.0):
    def score_fn(histories: np.ndarray) -> np.ndarray:
        scores = np.zeros((histories.shape[0], num_items + 1), dtype=np.float32)
        rows = np.repeat(np.arange(histories.shape[0]), histories.shape[1])
        scores[rows, histories.ravel()] = history_score
        scores[:, 0] = 0.0
        scores[np.arange(histories.shape[0]), histories[:, -1] % num_items + 1] = target_score
        return scores

    return score_fn


def test_sampled_perfect_and_worst_scorers():
    histories, targets, user_items = _next_item_data(60, 200, seed=1)
    best = evaluate_sampled(_target_scorer(200, 1.0), histories, targets, user_items, 200)
    assert best["hr@10"]["value"] == 1.0 and best["ndcg@10"]["value"] == 1.0
    worst = evaluate_sampled(
        _target_scorer(200, -1.0), histories, targets, user_items, 200, return_ranks=True
    )
    assert worst["hr@10"]["value"] == 0.0 and worst["ndcg@10"]["value"] == 0.0
    # The target is below every negative: its rank is the number of negatives, 100.
    assert set(worst["ranks"].tolist()) == {100}
    assert worst["num_users"] == 60 and worst["num_negatives"] == 100


def test_sampled_negatives_never_hit_the_users_items():
    # N=20 and up to 8 known items per user, so rejection sampling is exercised. Known items
    # score 10, the target 1, everything else 0: a single known item drawn as a negative
    # would push the target down from rank 0.
    histories, targets, user_items = _next_item_data(80, 20, seed=2)
    report = evaluate_sampled(
        _target_scorer(20, 1.0, history_score=10.0), histories, targets, user_items, 20,
        batch_size=16, return_ranks=True,
    )  # fmt: skip
    assert report["ranks"].max() == 0


def test_sampled_is_deterministic_and_subsamples_users():
    histories, targets, user_items = _next_item_data(300, 50, seed=3)
    table = np.random.default_rng(9).normal(size=51).astype(np.float32)

    def random_scores(h):
        return np.tile(table, (h.shape[0], 1))

    kwargs = {"max_users": 100, "batch_size": 32, "return_ranks": True}
    first = evaluate_sampled(random_scores, histories, targets, user_items, 50, seed=4, **kwargs)
    second = evaluate_sampled(random_scores, histories, targets, user_items, 50, seed=4, **kwargs)
    other = evaluate_sampled(random_scores, histories, targets, user_items, 50, seed=5, **kwargs)
    np.testing.assert_array_equal(first["ranks"], second["ranks"])
    np.testing.assert_array_equal(first["users"], second["users"])
    assert first["num_users"] == 100 and np.all(np.diff(first["users"]) > 0)
    assert not np.array_equal(first["users"], other["users"])
    assert 0 < first["hr@10"]["value"] < 1


def test_sampled_skips_empty_histories_and_checks_lengths():
    histories = [np.array([1]), np.array([], dtype=np.int64)]
    report = evaluate_sampled(
        _target_scorer(300, 1.0), histories, [2, 5], [[1, 2], [5]], 300, num_bootstrap=0
    )
    assert (report["num_users"], report["num_skipped"]) == (1, 1)
    assert report["hr@10"] == {"value": 1.0, "ci95": None}
    with pytest.raises(ValueError, match="one entry per history"):
        evaluate_sampled(_target_scorer(300, 1.0), histories, [2, 5], [[1, 2]], 300)


def test_sampled_negatives_never_equal_the_target_even_if_user_items_omit_it():
    # N=3, history [1], target 2, user_items without the target: the only allowed negative
    # is 3. Were 2 drawable, a negative would tie with the target and (pessimistic) beat it.
    report = evaluate_sampled(
        _target_scorer(3, 1.0), [np.array([1])], [2], [np.array([1])], 3, return_ranks=True
    )
    assert report["ranks"].tolist() == [0]
