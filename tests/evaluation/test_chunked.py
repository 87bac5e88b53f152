"""Full ranking in chunks of bounded memory: the same metrics as one chunk, a bounded peak."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from sasrec.evaluation import MarkovRecommender, PopularityRecommender, evaluate_full_ranking
from sasrec.evaluation._protocol import BYTES_PER_SCORE, users_per_chunk


def _case(num_users: int, num_items: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    histories = [
        rng.integers(1, num_items + 1, size=int(n)) for n in rng.integers(0, 12, size=num_users)
    ]
    targets = rng.integers(1, num_items + 1, size=num_users)
    return histories, targets


class RandomScorer:
    """Scores from a fixed random table of the last item: rows depend only on the history."""

    def __init__(self, num_items: int, seed: int = 1) -> None:
        rng = np.random.default_rng(seed)
        # Rounded, so ties occur and both tie policies are exercised.
        self.table = np.round(rng.normal(size=(num_items + 1, num_items + 1)), 1).astype(np.float32)
        self.widths: list[int] = []

    def __call__(self, histories: np.ndarray) -> np.ndarray:
        self.widths.append(histories.shape[0])
        return self.table[histories[:, -1]]


@pytest.mark.parametrize("exclude_history", [True, False])
@pytest.mark.parametrize("ties", ["pessimistic", "optimistic"])
def test_chunked_equals_one_chunk(exclude_history: bool, ties: str) -> None:
    num_items, num_users = 40, 97
    histories, targets = _case(num_users, num_items)
    train = [h for h in histories if h.size]
    scorers = {
        "random": lambda: RandomScorer(num_items),
        "popularity": lambda: PopularityRecommender(num_items).fit(train),
        "markov": lambda: MarkovRecommender(num_items).fit(train),
    }
    for name, make in scorers.items():
        common = dict(
            exclude_history=exclude_history, ties=ties, num_bootstrap=50, return_ranks=True
        )
        whole = evaluate_full_ranking(make(), histories, targets, num_items, **common)
        # Room for 3 users per chunk: 97 users -> 33 chunks, the last one short.
        chunked_scorer = make()
        chunked = evaluate_full_ranking(
            chunked_scorer,
            histories,
            targets,
            num_items,
            memory_bytes=3 * (num_items + 1) * BYTES_PER_SCORE,
            **common,
        )
        np.testing.assert_array_equal(chunked.pop("ranks"), whole.pop("ranks"), err_msg=name)
        np.testing.assert_array_equal(chunked.pop("users"), whole.pop("users"), err_msg=name)
        assert chunked == whole, name
        if isinstance(chunked_scorer, RandomScorer):
            assert max(chunked_scorer.widths) == 3 and len(chunked_scorer.widths) > 1


def test_chunk_rows_come_from_the_budget() -> None:
    assert users_per_chunk(512, 99, 100 * 10 * BYTES_PER_SCORE) == 10
    assert users_per_chunk(512, 99, 100 * 10 * BYTES_PER_SCORE - 1) == 9
    assert users_per_chunk(4, 99, 10**9) == 4  # batch_size still caps it
    assert users_per_chunk(512, 10**7, 1) == 1  # never zero users


def test_peak_memory_is_bounded_by_the_budget() -> None:
    """200,000 items, 60 users: one chunk would take ~230 MB; the budget is 8 MB."""
    num_items, num_users = 200_000, 60
    histories, targets = _case(num_users, num_items, seed=3)
    pop = PopularityRecommender(num_items).fit([h for h in histories if h.size])
    budget = 8 * 2**20
    tracemalloc.start()
    try:
        report = evaluate_full_ranking(
            pop, histories, targets, num_items, exclude_history=True, num_bootstrap=0,
            memory_bytes=budget,
        )  # fmt: skip
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert report["num_users"] > 0
    one_chunk = num_users * (num_items + 1) * BYTES_PER_SCORE
    assert one_chunk > 20 * budget
    # The chunk's arrays, plus the model's (N + 1) rows and small bookkeeping.
    assert peak < 1.5 * budget + 4 * (num_items + 1) * 8, peak
