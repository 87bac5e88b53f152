"""Popularity and Markov baselines, and the side-by-side report, on hand-made data."""

from __future__ import annotations

import numpy as np
import pytest

from sasrec.evaluation import (
    MarkovRecommender,
    PopularityRecommender,
    evaluate_full_ranking,
    format_report,
)
from sasrec.padding import pad_left

# Transitions inside sequences: 1->2 (x2), 2->3 (x2), 3->1 (x1). Pairs across sequence
# boundaries (3->2 between the first two, 3->3 between the last two) must not be counted.
TRAIN = [np.array([1, 2, 3]), np.array([2, 3]), np.array([3, 1, 2])]
# Popularity: item 1 x2, item 2 x3, item 3 x3, item 4 x0.
NUM_ITEMS = 4


def test_popularity_counts_and_scores():
    pop = PopularityRecommender(NUM_ITEMS).fit(TRAIN)
    assert pop.counts.tolist() == [0, 2, 3, 3, 0]
    scores = pop(np.array([[0, 1], [2, 3]], dtype=np.int32))
    assert scores.dtype == np.float32 and scores.shape == (2, NUM_ITEMS + 1)
    assert scores[:, 0].tolist() == [-np.inf, -np.inf]
    assert scores[1, 1:].tolist() == [2.0, 3.0, 3.0, 0.0]


def test_popularity_ranks_by_hand():
    # History [2], target 3: item 2 (3) ties with 3 -> pessimistic rank 1 when kept,
    # rank 0 when history is excluded. Target 1 after [4]: 2 and 3 beat it -> rank 2.
    pop = PopularityRecommender(NUM_ITEMS).fit(TRAIN)
    kept = evaluate_full_ranking(
        pop, [[2], [4]], [3, 1], NUM_ITEMS, exclude_history=False, k=1, return_ranks=True
    )
    excluded = evaluate_full_ranking(
        pop, [[2], [4]], [3, 1], NUM_ITEMS, exclude_history=True, k=1, return_ranks=True
    )
    assert kept["ranks"].tolist() == [1, 2]
    assert excluded["ranks"].tolist() == [0, 2]
    # Top-1: kept -> item 2 for both (tie 2/3 goes to the lower id); excluded -> user 0
    # gets 3, user 1 gets 2.
    assert kept["coverage@1"]["value"] == pytest.approx(1 / 4)
    assert excluded["coverage@1"]["value"] == pytest.approx(2 / 4)


def test_fit_inputs_are_equivalent():
    offsets = np.array([0, 3, 5, 8])
    items = np.concatenate(TRAIN)
    padded = pad_left(TRAIN, 5)
    for cls in (PopularityRecommender, MarkovRecommender):
        a = cls(NUM_ITEMS).fit(TRAIN)
        b = cls(NUM_ITEMS).fit(offsets=offsets, items=items)
        c = cls(NUM_ITEMS).fit(padded)
        histories = np.array([[0, 1], [2, 3], [0, 0]], dtype=np.int32)
        np.testing.assert_array_equal(a(histories), b(histories))
        np.testing.assert_array_equal(a(histories), c(histories))


def test_fit_rejects_bad_input():
    with pytest.raises(ValueError, match=r"sequences\[1\]\[0\] = 7"):
        MarkovRecommender(NUM_ITEMS).fit([[1], [7]])
    with pytest.raises(ValueError, match="either sequences or offsets"):
        PopularityRecommender(NUM_ITEMS).fit(TRAIN, offsets=[0], items=[])
    with pytest.raises(ValueError, match="offsets must start at 0"):
        PopularityRecommender(NUM_ITEMS).fit(offsets=[0, 5], items=[1, 2])
    with pytest.raises(RuntimeError, match="not fitted"):
        MarkovRecommender(NUM_ITEMS)(np.zeros((1, 2), dtype=np.int32))
    with pytest.raises(ValueError, match="tie_break_weight"):
        MarkovRecommender(NUM_ITEMS, tie_break_weight=1.0)


def test_markov_transition_counts_by_hand():
    markov = MarkovRecommender(NUM_ITEMS).fit(TRAIN)
    got = {a: tuple(x.tolist() for x in markov.transitions_from(a)) for a in range(5)}
    assert got == {
        0: ([], []),
        1: ([2], [2]),
        2: ([3], [2]),
        3: ([1], [1]),  # no 3->2 nor 3->3: those pairs cross sequence boundaries
        4: ([], []),
    }
    assert markov.indptr.shape == (NUM_ITEMS + 2,)
    assert markov.popularity.tolist() == [0, 2, 3, 3, 0]


def test_markov_scores_and_ranks_by_hand():
    markov = MarkovRecommender(NUM_ITEMS).fit(TRAIN)
    scores = markov(np.array([[1, 2], [0, 3], [0, 4], [0, 0]], dtype=np.int32))
    pop_term = 0.5 * np.array([2, 3, 3, 0]) / 3  # tie_break_weight * popularity / max
    expected = np.tile(pop_term, (4, 1))
    expected[0, 2] += 2  # last item 2: 2->3 twice
    expected[1, 0] += 1  # last item 3: 3->1 once
    np.testing.assert_allclose(scores[:, 1:], expected, rtol=1e-6)
    assert np.isneginf(scores[:, 0]).all()

    # [1] -> target 2 has the only transition: rank 0. [3] -> target 2: item 1
    # (1 + 1/3) beats 2 (0 + 1/2): rank 1. [4] -> target 1: popularity only, 2 and 3 beat it.
    report = evaluate_full_ranking(
        markov, [[1], [3], [4]], [2, 2, 1], NUM_ITEMS, exclude_history=True, return_ranks=True
    )
    assert report["ranks"].tolist() == [0, 1, 2]


def test_markov_scoring_matches_a_naive_loop_on_a_large_sparse_catalogue():
    num_items = 30_000  # a dense N x N count matrix would be 3.6 GB of int32
    rng = np.random.default_rng(0)
    train = [rng.integers(1, 60, size=rng.integers(2, 20)) for _ in range(300)]
    markov = MarkovRecommender(num_items).fit(train)
    counts: dict[tuple[int, int], int] = {}
    for seq in train:
        for a, b in zip(seq[:-1], seq[1:]):
            counts[(int(a), int(b))] = counts.get((int(a), int(b)), 0) + 1
    assert markov.transition_counts.sum() == sum(counts.values())
    histories = pad_left([[5], [17, 3], [59], [], [1, 2, 40]], 3)
    scores = markov(histories)
    for row, hist in enumerate(histories):
        naive = markov._base.astype(np.float64)
        for (a, b), n in counts.items():
            if a == hist[-1]:
                naive[b] += n
        np.testing.assert_allclose(scores[row], naive, rtol=1e-6)


def test_markov_beats_popularity_on_markov_data_and_report_table():
    # Deterministic cycle 1->2->...->20->1 with 10% random jumps: Markov should win.
    rng = np.random.default_rng(1)
    num_items = 20

    def walk(length: int) -> np.ndarray:
        seq = [int(rng.integers(1, num_items + 1))]
        for _ in range(length - 1):
            jump = rng.random() < 0.1
            seq.append(int(rng.integers(1, num_items + 1)) if jump else seq[-1] % num_items + 1)
        return np.array(seq)

    sequences = [walk(12) for _ in range(150)]
    train = [s[:-1] for s in sequences]
    targets = np.array([s[-1] for s in sequences])
    results = {}
    for name, model in (
        ("popularity", PopularityRecommender(num_items).fit(train)),
        ("markov", MarkovRecommender(num_items).fit(train)),
    ):
        results[name] = evaluate_full_ranking(
            model, train, targets, num_items, exclude_history=False, k=5, num_bootstrap=200
        )
    assert results["markov"]["hr@5"]["value"] > 0.8
    assert results["markov"]["hr@5"]["ci95"][0] > results["popularity"]["hr@5"]["ci95"][1]

    table = format_report(results).splitlines()
    assert table[0].split() == ["model", "protocol", "users", "ndcg@5", "hr@5", "mrr", "coverage@5"]
    markov_line = table[3]
    hr = results["markov"]["hr@5"]
    assert markov_line.split()[:5] == ["markov", "full", "(incl.", "history)", "150"]
    assert f"{hr['value']:.4f} [{hr['ci95'][0]:.4f}, {hr['ci95'][1]:.4f}]" in markov_line
    assert markov_line.endswith(f"{results['markov']['coverage@5']['value']:.4f}")


def test_format_report_marks_missing_metrics():
    results = {
        "a": {"protocol": "sampled", "num_negatives": 100, "num_users": 2,
              "hr@10": {"value": 0.5, "ci95": None}},
        "b": {"protocol": "full_ranking", "exclude_history": True, "num_users": 2,
              "mrr": {"value": 0.25, "ci95": [0.125, 0.375]}},
    }  # fmt: skip
    lines = format_report(results, digits=2).splitlines()
    assert lines[0].split() == ["model", "protocol", "users", "hr@10", "mrr"]
    assert lines[2].split() == ["a", "sampled", "(100", "neg)", "2", "0.50", "-"]
    assert lines[3].split() == [
        "b",
        "full",
        "(excl.",
        "history)",
        "2",
        "-",
        "0.25",
        "[0.12,",
        "0.38]",
    ]
    with pytest.raises(ValueError):
        format_report({})
