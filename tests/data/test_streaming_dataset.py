"""Streaming training input from a PREPARED folder against the in-memory path."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sasrec.data.data_report import DataReport
from sasrec.data.dataset import bucket_widths
from sasrec.data.errors import DataError
from sasrec.data.prepared import (
    TRAIN_LENGTHS,
    read_prepared,
    sequence_table,
    train_length_counts,
    write_prepared,
)
from sasrec.data.prepared_stream import PreparedStream, read_rows
from sasrec.data.splitting import leave_one_out
from sasrec.data.streaming_dataset import (
    ShuffledWindows,
    make_streaming_dataset,
    shard_read_errors,
)
from sasrec.data.user_sequences import UserSequences
from sasrec.data.windows import training_windows
from sasrec.evaluation import MarkovRecommender, PopularityRecommender
from sasrec.training.run import mean_positions_per_batch
from sasrec.vocabulary import ItemVocabulary

NUM_ITEMS = 40
MAX_LEN = 8
BATCH = 16


def _sequences(users: int = 90, seed: int = 3) -> UserSequences:
    # Lengths 1..30: short users (one padded window), long ones (several windows).
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 31, size=users)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    items = rng.integers(1, NUM_ITEMS + 1, size=int(offsets[-1]))
    return UserSequences([f"u{k}" for k in range(users)], offsets, items)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    seqs = _sequences()
    split = leave_one_out(seqs)
    report = DataReport(source={"path": "log.csv"})
    report.stats = {"users": len(seqs), "items": NUM_ITEMS, "events": seqs.num_events}
    vocabulary = ItemVocabulary([f"i{k}" for k in range(1, NUM_ITEMS + 1)])
    return write_prepared(
        tmp_path_factory.mktemp("stream") / "prep",
        sequence_table(seqs, split),
        vocabulary,
        report,
        split.summary(),
        options={},
        shards=3,
        rows_per_file=11,
    )


def _dataset(stream: PreparedStream, **overrides):
    windows, _ = stream.epoch_size(MAX_LEN)
    settings = dict(
        max_len=MAX_LEN,
        num_items=NUM_ITEMS,
        batch_size=BATCH,
        num_negatives=2,
        seed=5,
        shuffle_buffer=20,
        chunk_batches=2,
        exclude_seen=True,
    )
    settings.update(overrides)
    files = [str(f) for f in stream.files]
    return make_streaming_dataset(
        files, lambda f: stream.file_windows(f, MAX_LEN, users=4), windows, **settings
    )


def _rows(batch: dict) -> list[tuple]:
    """Each real row as (inputs, positives) left-padded back to MAX_LEN."""
    ids, pos = batch["item_ids"].numpy(), batch["positives"].numpy()
    pad = MAX_LEN - ids.shape[1]
    out = []
    for x, y in zip(ids, pos):
        if y.any():
            out.append((tuple([0] * pad + x.tolist()), tuple([0] * pad + y.tolist())))
    return out


def test_one_epoch_streams_exactly_the_in_memory_windows(prepared: Path) -> None:
    stream = PreparedStream.open(prepared)
    assert len(stream.files) > 3  # several shards, several files each
    inputs, positives = training_windows(read_prepared(prepared).split.train, MAX_LEN)
    expected = Counter(zip(map(tuple, inputs.tolist()), map(tuple, positives.tolist())))
    widths = set(bucket_widths(MAX_LEN).tolist())
    dataset = _dataset(stream)
    streamed: Counter = Counter()
    batches = 0
    padding_rows = 0
    for batch in dataset:
        batches += 1
        ids, pos, neg = (batch[k].numpy() for k in ("item_ids", "positives", "negatives"))
        assert ids.shape[0] == BATCH and ids.shape[1] in widths
        assert neg.shape == (BATCH, ids.shape[1], 2)
        # A padding row carries no loss: no positive (and no input, no negative).
        empty = ~pos.any(axis=1)
        padding_rows += int(empty.sum())
        assert not ids[empty].any() and not neg[empty].any()
        # The negatives rule: never the positive, never an item of the window.
        for x, y, n in zip(ids[~empty], pos[~empty], neg[~empty]):
            seen = set(x.tolist()) | set(y.tolist())
            assert not seen & set(n[y > 0].ravel().tolist())
        streamed.update(_rows(batch))
    assert streamed == expected
    assert batches == len(dataset) == -(-len(inputs) // BATCH)
    assert padding_rows == batches * BATCH - len(inputs)


def test_batches_are_bucketed_by_length(prepared: Path) -> None:
    # Within a batch the windows' real lengths are close: the bucket fits the longest.
    stream = PreparedStream.open(prepared)
    widths = bucket_widths(MAX_LEN, multiple=4).tolist()
    for batch in _dataset(stream, bucket_multiple=4, num_negatives=0):
        pos = batch["positives"].numpy()
        assert "negatives" not in batch
        longest = int((pos != 0).sum(axis=1).max())
        assert pos.shape[1] == min(w for w in widths if w >= longest)


def test_the_same_seed_gives_the_same_epochs(prepared: Path) -> None:
    stream = PreparedStream.open(prepared)

    def two_epochs(seed: int) -> list:
        dataset = _dataset(stream, seed=seed)
        return [[b["item_ids"].numpy().tolist() for b in dataset] for _ in range(2)]

    a, b = two_epochs(5), two_epochs(5)
    assert a == b
    assert a[0] != a[1]  # each epoch reshuffles
    assert two_epochs(6) != a


def _numbered_files(files: int, windows: int, per_slice: int):
    """Window k of the whole set carries k in every id (file f holds a range of k)."""

    def read(name: str):
        f = int(name)
        ids = np.arange(f * windows, (f + 1) * windows, dtype=np.int32) + 1
        for lo in range(0, windows, per_slice):
            part = np.repeat(ids[lo : lo + per_slice, None], MAX_LEN, axis=1)
            yield part, part + 1

    return [str(f) for f in range(files)], read


@pytest.mark.parametrize("buffer", [1, 7, 50, 1000])
def test_the_shuffle_buffer_mixes_every_window_once_within_its_bound(buffer: int) -> None:
    files, read = _numbered_files(files=5, windows=37, per_slice=6)
    shuffled = ShuffledWindows(files, read, MAX_LEN, buffer, cycle_length=2, seed=[4])
    arrival = np.concatenate([part[:, 0, 0] for part in shuffled.slices()])
    order = ShuffledWindows(files, read, MAX_LEN, buffer, cycle_length=2, seed=[4])
    chunks = list(order.chunks(16))
    assert [len(x) for x, _ in chunks] == [16] * 11 + [9]  # 185 windows
    out = np.concatenate([x for x, _ in chunks])
    assert out.dtype == np.int32 and out.shape == (185, MAX_LEN)
    np.testing.assert_array_equal(np.concatenate([y for _, y in chunks]), out + 1)
    assert sorted(out[:, 0].tolist()) == list(range(1, 186))  # every window once
    # The k-th window out was at most the (k + buffer - 1)-th in: the buffer
    # sends one out for each arrival once it holds `buffer` windows.
    position = {int(v): k for k, v in enumerate(arrival)}
    arrived = np.array([position[int(v)] for v in out[:, 0]])
    assert np.all(arrived <= np.arange(185) + buffer - 1)
    if buffer == 1:
        np.testing.assert_array_equal(out[:, 0], arrival)  # no room to mix
    else:
        assert not np.array_equal(out[:, 0], arrival)
    # Two files at a time, a slice from each in turn.
    first_files = {int(v - 1) // 37 for v in arrival[:12]}
    assert len(first_files) == 2


def test_epoch_normalisation_equals_the_in_memory_one(prepared: Path) -> None:
    stream = PreparedStream.open(prepared)
    inputs, positives = training_windows(read_prepared(prepared).split.train, MAX_LEN)
    windows, positions = stream.epoch_size(MAX_LEN)
    assert (windows, positions) == (len(inputs), int(np.count_nonzero(positives)))
    batches = -(-windows // BATCH)
    assert positions / batches == mean_positions_per_batch(positives, BATCH)


def test_manifest_histogram_and_its_fallback_agree(prepared: Path, tmp_path: Path) -> None:
    import shutil

    lengths = read_prepared(prepared).split.train.lengths
    counts = train_length_counts(prepared)
    np.testing.assert_array_equal(counts[1:], np.bincount(lengths, minlength=counts.size)[1:])
    # A folder written before the manifest held the histogram: read from the shards.
    old = tmp_path / "old"
    shutil.copytree(prepared, old)
    manifest = json.loads((old / "manifest.json").read_text())
    del manifest[TRAIN_LENGTHS]
    (old / "manifest.json").write_text(json.dumps(manifest))
    np.testing.assert_array_equal(train_length_counts(old), counts)


def test_rows_are_read_in_the_order_asked_a_batch_at_a_time(prepared: Path) -> None:
    file = PreparedStream.open(prepared).files[0]
    whole = pq.read_table(file, columns=["user_id", "items"], partitioning=None)
    rows = np.array([whole.num_rows - 1, 0, 3, 2, whole.num_rows - 1])
    got = read_rows(file, ["user_id", "items"], rows, batch_rows=2)
    assert got.column_names == ["user_id", "items"]
    assert got.to_pylist() == whole.take(pa.array(rows)).to_pylist()
    with pytest.raises(DataError, match=f"{file}: PREPARED shard has {whole.num_rows} rows"):
        read_rows(file, ["user_id"], np.array([whole.num_rows]))


def test_cases_and_baselines_equal_the_in_memory_split(prepared: Path) -> None:
    stream = PreparedStream.open(prepared)
    split = read_prepared(prepared).split
    for which, cases in (("valid", split.valid), ("test", split.test)):
        assert stream.num_cases(which) == len(cases)
        ranks = np.array([0, 3, len(cases) - 1])
        got = stream.cases(which, ranks)
        assert got.user_ids.tolist() == cases.user_ids[ranks].tolist()
        assert [h.tolist() for h in got.histories] == [cases.history(r).tolist() for r in ranks]
        np.testing.assert_array_equal(got.targets, cases.targets[ranks])
        np.testing.assert_array_equal(got.target_timestamps, cases.target_timestamps[ranks])
    train = split.train
    np.testing.assert_array_equal(
        stream.train_item_counts(), np.bincount(train.items, minlength=NUM_ITEMS + 1)
    )
    whole = MarkovRecommender(NUM_ITEMS).fit(offsets=train.offsets, items=train.items)
    parts = MarkovRecommender(NUM_ITEMS).fit_parts(stream.train_parts())
    for name in ("indptr", "next_items", "transition_counts", "popularity"):
        np.testing.assert_array_equal(getattr(parts, name), getattr(whole, name))
    pop = PopularityRecommender(NUM_ITEMS).fit_parts(stream.train_parts())
    np.testing.assert_array_equal(pop.counts, whole.popularity)
    # Only the rows an evaluation scores: the same scores for histories ending there.
    histories = np.array([[0, 3, 7], [5, 1, 2], [0, 0, 7]], np.int32)
    rows = MarkovRecommender(NUM_ITEMS).fit_parts(stream.train_parts(), sources=[2, 7])
    np.testing.assert_array_equal(rows(histories), whole(histories))
    assert rows.transition_counts.size < whole.transition_counts.size


def test_a_bad_or_missing_shard_is_named(prepared: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(prepared, copy)
    victim = PreparedStream.open(copy).files[2]
    victim.write_bytes(b"not parquet at all")
    with pytest.raises(DataError, match=str(victim)):
        PreparedStream.open(copy)
    victim.unlink()
    with pytest.raises(DataError, match=f"{victim}: PREPARED shard listed in manifest.json"):
        PreparedStream.open(copy)


def test_a_shard_that_fails_mid_epoch_is_a_data_error_naming_it(
    prepared: Path, tmp_path: Path
) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(prepared, copy)
    stream = PreparedStream.open(copy)
    dataset = _dataset(stream)
    stream.files[1].write_bytes(b"gone bad after the folder was opened")
    message = f"{stream.files[1]}: unreadable PREPARED shard"
    with pytest.raises(DataError, match=message), shard_read_errors():
        for _ in dataset:
            pass


def test_packing_casts_while_concatenating_one_copy_of_the_values() -> None:
    """pack_batches holds the epoch's values once, not once more for a cast copy."""
    import tracemalloc

    from sasrec.data.batch_packing import pack_batches

    rng = np.random.default_rng(0)
    planned = [
        {
            "item_ids": rng.integers(0, 9, (64, 50)).astype(np.int32),
            "positives": rng.integers(0, 9, (64, 50)).astype(np.int32),
        }
        for _ in range(20)
    ]
    tracemalloc.start()
    packed = pack_batches(planned, ["item_ids", "positives"])
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    values = packed[2].nbytes + packed[4].nbytes
    assert packed[2].dtype == np.int32 and values == 2 * 20 * 64 * 50 * 4
    np.testing.assert_array_equal(packed[2][: 64 * 50], planned[0]["item_ids"].ravel())
    # Both keys' values plus one key's transient: a cast copy would add another.
    assert peak < values * 1.3


def test_streamed_batches_reach_tf_data_one_by_one_with_the_packed_shapes(prepared: Path) -> None:
    """The element spec the trainer and CompileAhead see: int32, width unknown, n known."""
    import tensorflow as tf

    stream = PreparedStream.open(prepared)
    spec = _dataset(stream).element_spec
    assert spec == {
        "item_ids": tf.TensorSpec((None, None), tf.int32),
        "positives": tf.TensorSpec((None, None), tf.int32),
        "negatives": tf.TensorSpec((None, None, 2), tf.int32),
    }
    shared = _dataset(stream, negatives_per_sequence=True).element_spec["negatives"]
    assert shared == tf.TensorSpec((None, 1, 2), tf.int32)


def test_batch_shared_negatives_stream_as_one_set_per_batch(prepared: Path) -> None:
    """The large-catalogue default (one set of n items per batch) through the streamed path."""
    import tensorflow as tf

    stream = PreparedStream.open(prepared)
    dataset = _dataset(stream, num_negatives=3, negatives_per_batch=True, exclude_seen=False)
    assert dataset.element_spec["negatives"] == tf.TensorSpec((1, 1, 3), tf.int32)
    batches = list(dataset)
    assert batches
    for batch in batches:
        negatives = batch["negatives"].numpy().ravel()
        assert len(set(negatives.tolist())) == 3
        assert negatives.min() >= 1 and negatives.max() <= NUM_ITEMS
