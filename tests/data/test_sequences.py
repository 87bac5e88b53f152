"""Vocabulary, CSR encoding, splits and training windows: hand-computed cases."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from sasrec import vocabulary as vocabulary_module
from sasrec.data.cleaning import canonicalize
from sasrec.data.encoding import build_vocabulary, encode_sequences
from sasrec.data.errors import DataError
from sasrec.data.eval_set import left_pad_csr
from sasrec.data.splitting import leave_one_out, quantile_cutoffs, temporal_split
from sasrec.data.user_sequences import UserSequences
from sasrec.data.windows import training_windows, window_counts
from sasrec.padding import pad_left
from sasrec.vocabulary import ItemVocabulary, VocabularyText


def frame(rows: list[tuple]) -> pd.DataFrame:
    users, items, times = zip(*rows)
    return canonicalize(pd.DataFrame({"user_id": users, "item_id": items, "timestamp": times}))


LOG = frame(
    [
        ("bob", "sku-9", 30), ("ann", "sku-10", 5), ("bob", "sku-2", 10),
        ("ann", "sku-9", 7), ("bob", "sku-10", 20), ("cy", "sku-2", 1),
    ]
)  # fmt: skip


def test_vocabulary_is_sorted_raw_ids_and_round_trips(tmp_path):
    vocab = build_vocabulary(LOG)
    assert vocab.item_ids == ["sku-10", "sku-2", "sku-9"]  # str order, not numeric
    shuffled = LOG.sample(frac=1.0, random_state=1)
    assert build_vocabulary(shuffled) == vocab  # independent of row order
    idx, unknown = vocab.encode(["sku-9", "sku-2", "nope"])
    assert idx.tolist() == [3, 2, 0] and unknown == ["nope"]
    assert vocab.decode([1, 2, 3]) == ["sku-10", "sku-2", "sku-9"]
    vocab.save(tmp_path / "vocabulary.json")
    assert ItemVocabulary.load(tmp_path / "vocabulary.json") == vocab


def test_vocabulary_text_keeps_the_file_and_parses_ids_only_when_needed(tmp_path):
    vocab = build_vocabulary(LOG)
    vocab.save(tmp_path / "vocabulary.json")
    text = (tmp_path / "vocabulary.json").read_text()
    stored = VocabularyText.load(tmp_path / "vocabulary.json")
    # The count and the file's text, no parsed ids held.
    assert stored.num_items == len(stored) == 3 and stored._parsed is None
    stored.save(tmp_path / "copy.json")
    assert (tmp_path / "copy.json").read_text() == text and stored._parsed is None
    # Every lookup answers as the parsed vocabulary does.
    assert stored.decode([1, 3]) == ["sku-10", "sku-9"]
    assert stored.encode(["sku-2", "nope"])[0].tolist() == [2, 0]
    assert stored.item_ids == vocab.item_ids and "sku-9" in stored
    assert stored == vocab and vocab == stored
    assert ItemVocabulary.load(tmp_path / "copy.json") == vocab


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ('{"format": "other", "item_ids": ["a"]}', "expected format"),
        ('{"format": "sasrec.vocabulary.v1", "item_ids": ["a", "a"]}', "duplicate id 'a'"),
        ("[1, 2", "not a vocabulary JSON file"),
    ],
)
def test_vocabulary_text_is_checked_when_read(tmp_path, text, error):
    (tmp_path / "vocabulary.json").write_text(text)
    with pytest.raises(ValueError, match=error):
        VocabularyText.load(tmp_path / "vocabulary.json")


def test_streamed_vocabulary_file_is_json_dumps_of_the_ids(tmp_path, monkeypatch):
    # Chunks of 2 ids: the pieces must join across chunk boundaries exactly.
    monkeypatch.setattr(vocabulary_module, "_CHUNK", 2)
    ids = ["b", "\u00e9", 'q"u\\', "\U0001f600", "x" * 40]
    path = tmp_path / "vocabulary.json"
    assert ItemVocabulary.write_ids(path, iter(ids)) == 5
    written = path.read_bytes()
    assert written == json.dumps({"format": "sasrec.vocabulary.v1", "item_ids": ids}).encode()
    assert written.startswith(
        b'{"format": "sasrec.vocabulary.v1", "item_ids": ["b", "\\u00e9", "q\\"u\\\\", '
        b'"\\ud83d\\ude00", "xxx'
    )  # hand-written: ASCII escapes, ", " between ids
    ItemVocabulary(ids).save(tmp_path / "saved.json")
    assert (tmp_path / "saved.json").read_bytes() == written  # one writer
    assert ItemVocabulary.load(path) == ItemVocabulary(ids)
    assert ItemVocabulary.write_ids(tmp_path / "none.json", []) == 0
    empty = '{"format": "sasrec.vocabulary.v1", "item_ids": []}'
    assert (tmp_path / "none.json").read_text() == empty
    with pytest.raises(ValueError, match="empty string"):
        ItemVocabulary.write_ids(tmp_path / "bad.json", ["a", "b", ""])
    assert not (tmp_path / "bad.json").exists()  # atomic: nothing half-written


def test_encode_sequences_csr_in_time_order():
    seqs = encode_sequences(LOG, build_vocabulary(LOG))
    assert seqs.user_ids.tolist() == ["bob", "ann", "cy"]  # first appearance
    assert seqs.offsets.tolist() == [0, 3, 5, 6]
    # bob: sku-2 (10), sku-10 (20), sku-9 (30); ann: sku-10 (5), sku-9 (7); cy: sku-2.
    assert seqs.items.tolist() == [2, 1, 3, 1, 3, 2]
    assert seqs.timestamps.tolist() == [10, 20, 30, 5, 7, 1]
    assert seqs.items.dtype == np.int32 and seqs.offsets.dtype == np.int64
    assert seqs.to_lists() == [[2, 1, 3], [1, 3], [2]]


def test_encode_sequences_unknown_items():
    vocab = ItemVocabulary(["sku-2", "sku-9"])
    with pytest.raises(DataError, match="outside the vocabulary, e.g. \\['sku-10'\\]"):
        encode_sequences(LOG, vocab)
    seqs = encode_sequences(LOG, vocab, unknown="drop")
    assert seqs.to_lists() == [[1, 2], [2], [1]]


def test_leave_one_out_by_hand():
    seqs = UserSequences(["a", "b", "c", "d"], [0, 5, 8, 10, 11], [1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 4])
    split = leave_one_out(seqs)
    assert split.train.user_ids.tolist() == ["a", "b", "c", "d"]
    assert split.train.to_lists() == [[1, 2, 3], [6], [9, 9], [4]]  # c, d: < 3 events
    assert split.valid.user_ids.tolist() == ["a", "b"]
    assert [split.valid.history(i).tolist() for i in range(2)] == [[1, 2, 3], [6]]
    assert split.valid.targets.tolist() == [4, 7]
    assert [split.test.history(i).tolist() for i in range(2)] == [[1, 2, 3, 4], [6, 7]]
    assert split.test.targets.tolist() == [5, 8]
    assert split.summary()["train_only_users"] == 2
    assert split.test.padded(3).tolist() == [[2, 3, 4], [0, 6, 7]]


def test_temporal_split_by_hand():
    #            a: t=1 2 5 8          b: t=3 6 9        c: t=7 (cold)   d: t=2 4
    seqs = UserSequences(
        ["a", "b", "c", "d"],
        [0, 4, 7, 8, 10],
        [1, 2, 3, 4, 5, 6, 7, 8, 9, 1],
        [1, 2, 5, 8, 3, 6, 9, 7, 2, 4],
    )
    split = temporal_split(seqs, valid_cutoff=4, test_cutoff=6)
    # Train: events at or before t=4.
    assert split.train.user_ids.tolist() == ["a", "b", "d"]
    assert split.train.to_lists() == [[1, 2], [5], [9, 1]]
    assert split.train.timestamps.max() <= 4
    # Valid: first event in (4, 6], history up to 4.
    assert split.valid.user_ids.tolist() == ["a", "b"]
    assert split.valid.targets.tolist() == [3, 6]
    assert [split.valid.history(i).tolist() for i in range(2)] == [[1, 2], [5]]
    # Test: first event after 6, history up to 6 (c's only event is after 6 with no history).
    assert split.test.user_ids.tolist() == ["a", "b"]
    assert split.test.targets.tolist() == [4, 7]
    assert [split.test.history(i).tolist() for i in range(2)] == [[1, 2, 3], [5, 6]]
    assert split.info["cold_test_users"] == 1 and split.info["cold_valid_users"] == 0
    assert split.test.target_timestamps.tolist() == [8, 9]


def test_temporal_split_event_at_the_cutoff_is_before_it():
    seqs = UserSequences(["a"], [0, 3], [1, 2, 3], [10, 20, 30])
    split = temporal_split(seqs, valid_cutoff=20, test_cutoff=20)
    assert split.train.to_lists() == [[1, 2]] and len(split.valid) == 0
    assert split.test.targets.tolist() == [3]


def test_quantile_cutoffs_and_default_temporal_split():
    seqs = UserSequences(["a"], [0, 10], np.arange(1, 11), np.arange(10, dtype=float))
    assert quantile_cutoffs(seqs, 0.2, 0.2) == (5.0, 7.0)
    split = temporal_split(seqs, valid_fraction=0.2, test_fraction=0.2)
    assert split.train.to_lists() == [[1, 2, 3, 4, 5, 6]]
    assert split.valid.targets.tolist() == [7] and split.test.targets.tolist() == [9]
    with pytest.raises(ValueError, match="valid_cutoff must be <= test_cutoff"):
        temporal_split(seqs, valid_cutoff=5, test_cutoff=4)


def test_training_windows_by_hand():
    seqs = UserSequences(
        ["long", "exact", "one", "short"],
        [0, 8, 12, 13, 15],
        [1, 2, 3, 4, 5, 6, 7, 8, 11, 12, 13, 14, 21, 31, 32],
    )
    inputs, positives = training_windows(seqs, 3)
    # long: 7 targets -> 3 windows ending at s8, s5, s2; exact: n = L + 1 -> one full window;
    # one: no target; short: one padded window.
    assert inputs.tolist() == [
        [0, 0, 1],
        [2, 3, 4],
        [5, 6, 7],
        [11, 12, 13],
        [0, 0, 31],
    ]
    assert positives.tolist() == [
        [0, 0, 2],
        [3, 4, 5],
        [6, 7, 8],
        [12, 13, 14],
        [0, 0, 32],
    ]
    assert window_counts(seqs.lengths, 3).tolist() == [3, 1, 0, 1]


def _naive_windows(seqs: UserSequences, max_len: int) -> tuple[np.ndarray, np.ndarray]:
    ins, outs = [], []
    for seq in seqs:
        seq = seq.tolist()
        chunks = []
        end = len(seq) - 1  # index of the last target
        while end >= 1:
            lo = max(1, end - max_len + 1)
            chunks.append((seq[lo - 1 : end], seq[lo : end + 1]))
            end -= max_len
        for x, y in reversed(chunks):
            ins.append(x)
            outs.append(y)
    return pad_left(ins, max_len), pad_left(outs, max_len)


@pytest.mark.parametrize("max_len", [1, 2, 5, 50])
def test_training_windows_equal_naive_and_use_every_target_once(max_len):
    rng = np.random.default_rng(max_len)
    lengths = rng.integers(0, 130, 200)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    items = rng.integers(1, 1000, offsets[-1])
    seqs = UserSequences([f"u{i}" for i in range(200)], offsets, items)
    inputs, positives = training_windows(seqs, max_len)
    naive_inputs, naive_positives = _naive_windows(seqs, max_len)
    assert np.array_equal(inputs, naive_inputs)
    assert np.array_equal(positives, naive_positives)
    assert int((positives != 0).sum()) == int(np.maximum(lengths - 1, 0).sum())
    assert np.array_equal(inputs != 0, positives != 0)


def test_left_pad_csr_equals_pad_left():
    rng = np.random.default_rng(5)
    lengths = rng.integers(0, 20, 100)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    items = rng.integers(1, 50, offsets[-1])
    seqs = [items[offsets[i] : offsets[i + 1]] for i in range(100)]
    for max_len in (1, 7, 25):
        assert np.array_equal(left_pad_csr(offsets, items, max_len), pad_left(seqs, max_len))


def test_user_sequences_validation():
    with pytest.raises(ValueError, match="offsets must start at 0"):
        UserSequences(["a"], [1, 2], [5, 6])
    with pytest.raises(ValueError, match="len\\(user_ids\\) \\+ 1"):
        UserSequences(["a", "b"], [0, 2], [5, 6])
