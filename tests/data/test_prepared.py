"""The PREPARED format: round trips, sharding, atomic writes, bad folders."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from sasrec.data import prepared_layout as layout
from sasrec.data.data_report import DataReport
from sasrec.data.errors import DataError
from sasrec.data.prepared import (
    publish_prepared,
    read_prepared,
    sequence_table,
    split_from_table,
    write_prepared,
)
from sasrec.data.splitting import leave_one_out, temporal_split
from sasrec.data.user_sequences import UserSequences
from sasrec.vocabulary import ItemVocabulary

# u0: 4 events, u1: 2 (train only under leave-one-out), u2: 3.
SEQS = UserSequences(
    ["u0", "u1", "u2"],
    [0, 4, 6, 9],
    [1, 2, 3, 4, 2, 5, 3, 1, 5],
    [10.0, 20.0, 30.0, 40.0, 15.0, 25.0, 12.0, 35.0, 45.0],
)
VOCAB = ItemVocabulary(["a", "b", "c", "d", "e"])


def _report() -> DataReport:
    report = DataReport(source={"path": "log.csv"})
    report.add_step("k_core", 12, 9, passes=2)
    report.stats = {"users": 3, "items": 5, "events": 9}
    return report


def _assert_same_split(a, b) -> None:
    assert a.train == b.train
    for x, y in ((a.valid, b.valid), (a.test, b.test)):
        assert x.histories == y.histories
        np.testing.assert_array_equal(x.targets, y.targets)
        np.testing.assert_array_equal(x.target_timestamps, y.target_timestamps)
    assert a.summary() == b.summary()


def test_table_holds_prefix_lengths_computed_by_hand() -> None:
    table = sequence_table(SEQS, leave_one_out(SEQS))
    assert table.column("user_id").to_pylist() == ["u0", "u1", "u2"]
    assert table.column("train_length").to_pylist() == [2, 2, 1]
    assert table.column("valid_length").to_pylist() == [2, -1, 1]
    assert table.column("test_length").to_pylist() == [3, -1, 2]


@pytest.mark.parametrize(
    "make_split",
    [leave_one_out, lambda s: temporal_split(s, valid_cutoff=20.0, test_cutoff=30.0)],
    ids=["leave_one_out", "temporal"],
)
def test_split_round_trips_through_the_table(make_split) -> None:
    split = make_split(SEQS)
    table = sequence_table(SEQS, split)
    # Shards come back in any order: reverse the rows.
    sequences, back = split_from_table(table.take(np.array([2, 1, 0])), split.summary())
    assert sequences == SEQS
    _assert_same_split(back, split)


def test_folder_round_trip_with_several_shards_and_small_files(tmp_path: Path) -> None:
    split = leave_one_out(SEQS)
    out = write_prepared(
        tmp_path / "prep",
        sequence_table(SEQS, split),
        VOCAB,
        _report(),
        split.summary(),
        options={"min_user": 1},
        shards=2,
        rows_per_file=1,
    )
    data = read_prepared(out)
    _assert_same_split(data.split, split)
    assert data.sequences == SEQS
    assert data.vocabulary == VOCAB
    assert data.report.to_dict() == _report().to_dict()
    manifest = json.loads((out / layout.MANIFEST).read_text())
    assert manifest["engine"] == "pandas" and manifest["options"] == {"min_user": 1}
    assert manifest["num_users"] == 3 and manifest["num_items"] == 5
    # One user per file (rows_per_file=1), each in the shard its id hashes to.
    assert len(manifest["files"]) == 3
    expected = dict(zip(["u0", "u1", "u2"], layout.shard_of(["u0", "u1", "u2"], 2)))
    for name in manifest["files"]:
        rows = pq.read_table(out / name, partitioning=None)
        assert rows.num_rows == 1
        assert f"shard={expected[rows.column('user_id')[0].as_py()]}/" in name
    assert not list(tmp_path.glob(".tmp-*"))


def test_existing_folder_is_refused_and_left_alone(tmp_path: Path) -> None:
    out = tmp_path / "prep"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    split = leave_one_out(SEQS)
    with pytest.raises(ValueError, match="exists already"):
        write_prepared(out, sequence_table(SEQS, split), VOCAB, _report(), {}, options={})
    assert [p.name for p in out.iterdir()] == ["mine.txt"]


def test_failure_mid_write_leaves_no_folder_and_no_staging(tmp_path: Path) -> None:
    def half_written(folder: Path) -> None:
        # A shard job that wrote a file and then died (an engine failing mid-job).
        (folder / "shard=0").mkdir(parents=True)
        (folder / "shard=0" / "part-00000.parquet").write_bytes(b"PAR1")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        publish_prepared(
            tmp_path / "prep",
            half_written,
            write_vocabulary=lambda path: ItemVocabulary.write_ids(path, VOCAB.item_ids),
            report=_report(),
            split_summary={},
            options={},
            engine="pandas",
            shards=1,
            rows_per_file=10,
        )
    assert list(tmp_path.iterdir()) == []


def test_a_folder_without_manifest_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "half").mkdir()
    with pytest.raises(DataError, match="not a PREPARED folder"):
        read_prepared(tmp_path / "half")
    (tmp_path / "half" / layout.MANIFEST).write_text('{"format": "other"}')
    with pytest.raises(DataError, match="not a sasrec.prepared.v1 manifest"):
        read_prepared(tmp_path / "half")
