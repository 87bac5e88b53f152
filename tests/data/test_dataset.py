"""Training batches: negatives, bucketing widths, determinism, the tf.data contract."""

from __future__ import annotations

import numpy as np
import pytest

from sasrec.data.dataset import (
    batch_width,
    epoch_batches,
    make_training_dataset,
    plan_epoch,
)
from sasrec.data.negatives import sample_negatives
from sasrec.data.user_sequences import UserSequences
from sasrec.data.windows import training_windows


def _windows(num_users: int = 300, max_len: int = 20, num_items: int = 40, seed: int = 0):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(2, 45, num_users)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    items = rng.integers(1, num_items + 1, offsets[-1])
    seqs = UserSequences([str(i) for i in range(num_users)], offsets, items)
    return training_windows(seqs, max_len)


def test_negatives_never_equal_the_positive_and_cover_the_range():
    rng = np.random.default_rng(0)
    positives = rng.integers(1, 6, size=(500, 20))
    negatives = sample_negatives(positives, num_items=5, num_negatives=4, rng=rng)
    assert negatives.shape == (500, 20, 4) and negatives.dtype == np.int32
    assert not (negatives == positives[..., None]).any()
    assert negatives.min() == 1 and negatives.max() == 5
    # Uniform over the 4 other items: each about 1/4 of the draws where positive == 3.
    counts = np.bincount(negatives[positives == 3].ravel(), minlength=6)
    share = counts[[1, 2, 4, 5]] / counts.sum()
    assert counts[3] == 0 and np.abs(share - 0.25).max() < 0.02


def test_negatives_with_two_items_are_forced():
    negatives = sample_negatives(np.array([[1, 2, 1]]), 2, 3, np.random.default_rng(1))
    assert negatives.tolist() == [[[2, 2, 2], [1, 1, 1], [2, 2, 2]]]
    with pytest.raises(ValueError, match="num_items >= 2"):
        sample_negatives(np.array([[1]]), 1, 1, np.random.default_rng(0))


def test_batch_width_rounding():
    assert [batch_width(n, 8, 50) for n in (1, 8, 9, 16, 17, 47, 48, 49, 50)] == [
        8, 8, 16, 16, 24, 48, 48, 50, 50,
    ]  # fmt: skip
    assert batch_width(3, 1, 50) == 3 and batch_width(3, 4, 2) == 2


def test_plan_epoch_without_shuffle_keeps_order():
    plan = plan_epoch(np.array([5, 1, 3, 2, 4]), 2, None)
    assert [b.tolist() for b in plan] == [[0, 1], [2, 3], [4]]
    plan = plan_epoch(np.array([5, 1, 3, 2, 4]), 2, None, drop_remainder=True)
    assert [b.tolist() for b in plan] == [[0, 1], [2, 3]]


def test_plan_epoch_buckets_by_length_and_covers_every_row_once():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 51, 4096)
    plan = plan_epoch(lengths, 32, np.random.default_rng(7), chunk_batches=16)
    rows = np.concatenate(plan)
    assert np.array_equal(np.sort(rows), np.arange(4096))
    # Within a chunk of 16 batches the lengths are sorted, so a batch spans a narrow range.
    spread = np.median([np.ptp(lengths[b]) for b in plan])
    assert spread <= 6, spread


def test_plan_epoch_chunk_spanning_the_epoch_gives_disjoint_length_ranges():
    lengths = np.random.default_rng(1).integers(1, 51, 1000)
    plan = plan_epoch(lengths, 25, np.random.default_rng(3), chunk_batches=40)
    # One chunk holds the whole epoch: batches are consecutive runs of one
    # length-sorted order, so their [min, max] ranges overlap at most at ends.
    ranges = sorted((int(lengths[b].min()), int(lengths[b].max())) for b in plan)
    assert all(hi <= lo for (_, hi), (lo, _) in zip(ranges, ranges[1:])), ranges
    small = plan_epoch(lengths, 25, np.random.default_rng(3), chunk_batches=1)
    # A chunk of one batch is plain shuffling: batches span most lengths.
    assert np.median([np.ptp(lengths[b]) for b in small]) > 30


def test_epoch_batches_trim_to_rounded_longest_row():
    inputs = np.array(
        [[0, 0, 0, 0, 0, 1, 2, 3], [0, 0, 0, 0, 0, 0, 4, 5], [9, 8, 7, 6, 5, 4, 3, 2]]
    )
    positives = np.array(
        [[0, 0, 0, 0, 0, 2, 3, 4], [0, 0, 0, 0, 0, 0, 5, 6], [8, 7, 6, 5, 4, 3, 2, 1]]
    )
    batches = list(
        epoch_batches(inputs, positives, 10, 2, 1, np.random.default_rng(0), shuffle=False,
                      bucket_multiple=4)
    )  # fmt: skip
    assert batches[0]["item_ids"].tolist() == [[0, 1, 2, 3], [0, 0, 4, 5]]
    assert batches[0]["positives"].tolist() == [[0, 2, 3, 4], [0, 0, 5, 6]]
    assert batches[1]["item_ids"].shape == (1, 8)
    assert batches[0]["negatives"].shape == (2, 4, 1)


def test_dataset_contract_shapes_dtypes_and_widths():
    inputs, positives = _windows()
    ds = make_training_dataset(inputs, positives, num_items=40, batch_size=32, num_negatives=3,
                               seed=11)  # fmt: skip
    batches = list(ds.as_numpy_iterator())
    assert len(batches) == int(ds.cardinality()) == -(-len(inputs) // 32)
    seen = 0
    for b in batches:
        x, y, n = b["item_ids"], b["positives"], b["negatives"]
        assert x.dtype == y.dtype == n.dtype == np.int32
        t = x.shape[1]
        assert y.shape == x.shape and n.shape == (*x.shape, 3)
        longest = int((y != 0).sum(axis=1).max())
        # The smallest of the default widths 1, 2, 3, 4, 6, 8, 12, 16, 20 that fits.
        assert t == min(w for w in (1, 2, 3, 4, 6, 8, 12, 16, 20) if w >= longest)
        assert not ((n == y[..., None]) & (y[..., None] != 0)).any()
        assert np.array_equal(x != 0, y != 0)
        seen += int((y != 0).sum())
    assert seen == int((positives != 0).sum())  # nothing trimmed away
    widths = {b["item_ids"].shape[1] for b in batches}
    assert widths <= {1, 2, 3, 4, 6, 8, 12, 16, 20} and len(widths) >= 3
    # With a multiple: only its multiples (and L).
    ds8 = make_training_dataset(inputs, positives, num_items=40, batch_size=32, num_negatives=3,
                                seed=11, bucket_multiple=8)  # fmt: skip
    assert {b["item_ids"].shape[1] for b in ds8.as_numpy_iterator()} <= {8, 16, 20}
    # No tf.data autotune thread: its exit stalled the next epoch's start.
    assert ds.options().autotune.enabled is False


def test_dataset_is_deterministic_per_seed_and_varies_per_epoch():
    inputs, positives = _windows(num_users=120)

    def epochs(seed: int, count: int) -> list[list[dict]]:
        ds = make_training_dataset(inputs, positives, 40, 16, 2, seed=seed)
        return [list(ds.as_numpy_iterator()) for _ in range(count)]

    first, again, other = epochs(3, 2), epochs(3, 2), epochs(4, 1)

    def same(a: list[dict], b: list[dict]) -> bool:
        return len(a) == len(b) and all(
            all(np.array_equal(x[k], y[k]) for k in x) for x, y in zip(a, b)
        )

    assert same(first[0], again[0]) and same(first[1], again[1])
    assert not same(first[0], first[1])
    assert not same(first[0], other[0])


def test_look_ahead_planning_gives_the_same_epochs():
    # Epoch k + 1 is planned on a thread while epoch k is consumed; the
    # batches must equal those planned in line, epoch for epoch.
    inputs, positives = _windows(num_users=120)

    def epochs(look_ahead: bool) -> list[list[dict]]:
        ds = make_training_dataset(
            inputs, positives, 40, 16, 2, seed=5, exclude_seen=True, look_ahead=look_ahead
        )
        return [list(ds.as_numpy_iterator()) for _ in range(3)]

    threaded, inline = epochs(True), epochs(False)
    for a, b in zip(threaded, inline):
        assert len(a) == len(b)
        assert all(all(np.array_equal(x[k], y[k]) for k in x) for x, y in zip(a, b))
    assert not np.array_equal(threaded[0][0]["item_ids"], threaded[1][0]["item_ids"])


def test_pad_remainder_fills_the_short_batch_with_padding_rows():
    inputs, positives = _windows(num_users=50)
    inputs, positives = inputs[:-3], positives[:-3]  # not a multiple of the batch size

    def batches(pad: bool) -> list[dict]:
        rng = np.random.default_rng(9)
        return list(
            epoch_batches(inputs, positives, 40, 16, 2, rng, exclude_seen=True, pad_remainder=pad)
        )

    padded, plain = batches(True), batches(False)
    assert len(inputs) % 16 and len(padded) == len(plain)
    assert all(b["item_ids"].shape[0] == 16 for b in padded)
    short = [i for i, b in enumerate(plain) if b["item_ids"].shape[0] < 16]
    assert len(short) == 1
    for a, b in zip(padded, plain):
        n = b["item_ids"].shape[0]
        for key in b:
            np.testing.assert_array_equal(a[key][:n], b[key])
            assert (a[key][n:] == 0).all()


def test_dataset_without_negatives_and_bad_arguments():
    inputs, positives = _windows(num_users=20)
    ds = make_training_dataset(inputs, positives, 40, 8, 0, seed=0, shuffle=False)
    first = next(iter(ds))
    assert set(first) == {"item_ids", "positives"}
    with pytest.raises(ValueError, match="exceed num_items"):
        make_training_dataset(inputs, positives, 10, 8, 1, seed=0)
    with pytest.raises(ValueError, match="same shape"):
        make_training_dataset(inputs, positives[:, 1:], 40, 8, 1, seed=0)


def test_negatives_per_sequence_shape_and_range():
    x = np.array([[0, 1, 2, 3], [0, 0, 4, 5]], np.int32)
    y = np.array([[0, 2, 3, 6], [0, 0, 5, 6]], np.int32)
    ds = make_training_dataset(
        x, y, num_items=6, batch_size=2, num_negatives=5, seed=3, negatives_per_sequence=True
    )
    batch = next(iter(ds))
    neg = batch["negatives"].numpy()
    assert neg.shape == (2, 1, 5)
    assert neg.min() >= 1 and neg.max() <= 6


def test_negatives_exclude_the_rows_own_items():
    rng = np.random.default_rng(0)
    positives = np.array([[2, 3, 0], [5, 6, 7]])
    seen = np.array([[1, 2, 3, 0], [4, 5, 6, 7]])
    neg = sample_negatives(positives, 8, 40, rng, exclude=seen)
    assert neg.shape == (2, 3, 40)
    assert set(neg[0].ravel()) == {4, 5, 6, 7, 8}  # all but the row's 1, 2, 3
    assert set(neg[1].ravel()) == {1, 2, 3, 8}
    # Only one item left outside the row: forced.
    forced = sample_negatives(np.array([[1, 2]]), 3, 4, rng, exclude=np.array([[1, 2]]))
    assert forced.ravel().tolist() == [3] * 8


@pytest.mark.parametrize("per_sequence", [False, True])
def test_dataset_exclude_seen_never_draws_a_window_item(per_sequence):
    x = np.array([[0, 1, 2, 3], [0, 0, 4, 5]], np.int32)
    y = np.array([[0, 2, 3, 6], [0, 0, 5, 7]], np.int32)
    ds = make_training_dataset(
        x,
        y,
        num_items=9,
        batch_size=2,
        num_negatives=6,
        seed=3,
        shuffle=False,
        bucket_multiple=4,
        negatives_per_sequence=per_sequence,
        exclude_seen=True,
    )
    for _ in range(3):
        neg = next(iter(ds))["negatives"].numpy()
        assert not set(neg[0].ravel()) & {1, 2, 3, 6}
        assert not set(neg[1].ravel()) & {4, 5, 7}
        assert neg.min() >= 1 and neg.max() <= 9
