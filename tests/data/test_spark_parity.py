"""pandas vs Spark (local[2]): identical vocabularies, sequences, splits and reports.

Every real log in ../shared/data, the synthetic log and odd-format logs go
through `sasrec data prepare` with both engines; the PREPARED folders are
read back and compared field by field. One SparkSession serves the module.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

pytest.importorskip("pyspark")

from sasrec.cli import main  # noqa: E402
from sasrec.data.prepared import read_prepared  # noqa: E402
from sasrec.data.spark_session import SparkSettings, spark_session  # noqa: E402

pytestmark = pytest.mark.slow

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
if not SHARED.exists():
    SHARED = Path("/work/shared/data")


@pytest.fixture(scope="module", autouse=True)
def spark():
    if shutil.which("java") is None:
        pytest.skip("no Java runtime (make java installs one)")
    session = spark_session(SparkSettings(master="local[2]", shuffle_partitions=2))
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


def _prepare_both(tmp_path: Path, flags: list[str]) -> tuple:
    out = {}
    for engine in ("pandas", "spark"):
        target = tmp_path / engine
        argv = ["data", "prepare", "--engine", engine, "--out", str(target), "--shards", "3"]
        assert main([*argv, *flags]) == 0, engine
        out[engine] = read_prepared(target)
    return out["pandas"], out["spark"]


def _assert_identical(a, b) -> None:
    assert a.vocabulary == b.vocabulary
    assert a.sequences == b.sequences  # users, their order, items and timestamps
    assert a.split.train == b.split.train
    for x, y in ((a.split.valid, b.split.valid), (a.split.test, b.split.test)):
        assert x.histories == y.histories
        np.testing.assert_array_equal(x.targets, y.targets)
        np.testing.assert_array_equal(x.target_timestamps, y.target_timestamps)
    assert a.split.summary() == b.split.summary()
    assert a.report.to_dict() == b.report.to_dict()


def _real(relative: str) -> Path:
    path = SHARED / relative
    if not path.exists():
        pytest.skip(f"{path} absent")
    return path


REAL = [
    ("ml-100k/u.data", ["--preset", "ml-100k"]),
    ("ml-100k/u.data", ["--preset", "ml-100k", "--split", "temporal", "--min-rating", "3"]),
    ("amazon-games/Video.txt", ["--preset", "sasrec"]),
    ("amazon-musical-instruments/Musical_Instruments.json", ["--preset", "amazon"]),
]


@pytest.mark.realdata
@pytest.mark.parametrize(("relative", "flags"), REAL, ids=["ml-100k", "ml-temporal", "games", "mi"])
def test_real_logs_are_identical(tmp_path: Path, relative: str, flags: list[str]) -> None:
    a, b = _prepare_both(tmp_path, ["--data", str(_real(relative)), *flags])
    _assert_identical(a, b)
    assert a.report.stats["events"] > 10_000


def test_synthetic_log_with_collapsed_repeats(tmp_path: Path) -> None:
    log = tmp_path / "shop.csv"
    assert main(["data", "synth", "--out", str(log), "--users", "600", "--items", "200"]) == 0
    a, b = _prepare_both(tmp_path, ["--data", str(log), "--collapse-repeats"])
    _assert_identical(a, b)
    assert [s["name"] for s in a.report.steps][-2:] == ["consecutive_repeats", "k_core"]


def test_odd_text_log(tmp_path: Path) -> None:
    """'::' separated, no header, ties, duplicates, missing ids, bad timestamps, events."""
    rows = []
    for u in range(40):
        for t in range(6):
            rows.append(f"u{u % 13}::i{(u * 7 + t) % 11}::{1_700_000_000 + t * (u % 3)}::view")
    rows[5] = "u1::::1700000000::view"  # missing item
    rows[9] = "u2::i3::soon::view"  # unparseable
    rows[12] = "u3::i4::-7::view"  # out of range
    rows[20] = rows[19]  # exact duplicate
    rows[30] = rows[30].replace("view", "buy")
    log = tmp_path / "odd.dat"
    log.write_text("\n".join(rows) + "\n")
    flags = ["--data", str(log), "--sep", "::", "--user-col", "0", "--item-col", "1",
             "--time-col", "2", "--timestamp-unit", "s", "--event-col", "3",
             "--min-user", "2", "--min-item", "2",
             "--event-types", "view"]  # fmt: skip
    a, b = _prepare_both(tmp_path, flags)
    _assert_identical(a, b)
    read = a.report.read
    assert read["missing_ids"] == 1 and read["bad_timestamps"] == 2
    assert [e["line"] for e in read["bad_timestamp_examples"]] == [10, 13]


def test_iso_timestamps_as_text_and_as_a_parquet_timestamp_column(tmp_path: Path) -> None:
    """ISO-8601 text in its usual forms (UTC, an offset, a fraction, a date, a space),
    one bad value, and the same instants as a typed Parquet column."""
    day = "2024-01-0{d}"
    forms = [day + "T10:00:0{s}Z", day + " 12:00:0{s}", day + "T13:00:0{s}.5+02:00", day]
    rows = [
        (f"u{u}", f"i{(u + k) % 7}", forms[k % 4].format(d=1 + k % 5, s=u % 10))
        for u in range(30)
        for k in range(5)
    ]
    rows[7] = (rows[7][0], rows[7][1], "next tuesday")
    log = tmp_path / "iso.csv"
    log.write_text("user_id,item_id,timestamp\n" + "".join(",".join(r) + "\n" for r in rows))
    (tmp_path / "text").mkdir()
    (tmp_path / "typed").mkdir()
    a, b = _prepare_both(tmp_path / "text", ["--data", str(log), "--min-user", "2"])
    _assert_identical(a, b)
    assert a.report.read["timestamp_unit"] == "iso" and a.report.read["bad_timestamps"] == 1
    assert a.report.read["bad_timestamp_examples"][0]["value"] == "next tuesday"

    good = [r for i, r in enumerate(rows) if i != 7]
    instants = pd.to_datetime([r[2] for r in good], format="ISO8601", utc=True)
    table = pa.table(
        {"user_id": [r[0] for r in good], "item_id": [r[1] for r in good], "timestamp": instants}
    )
    pq.write_table(table, tmp_path / "typed.parquet")
    c, d = _prepare_both(
        tmp_path / "typed", ["--data", str(tmp_path / "typed.parquet"), "--min-user", "2"]
    )
    _assert_identical(c, d)
    assert c.sequences == a.sequences


def test_glob_of_parquet_files_reads_in_file_then_row_order(tmp_path: Path) -> None:
    """Spark reads part-0 and part-1 as one log in (file, row) order: pandas reads their
    concatenation. Every timestamp ties, so only that order decides the sequences."""
    users = [f"u{i % 9}" for i in range(300)]
    items = [f"i{(i * 5) % 17}" for i in range(300)]
    table = pa.table({"user_id": users, "item_id": items, "timestamp": [7] * 300})
    parts = tmp_path / "parts"
    parts.mkdir()
    pq.write_table(table.slice(0, 120), parts / "part-0.parquet")
    pq.write_table(table.slice(120), parts / "part-1.parquet")
    pq.write_table(table, tmp_path / "whole.parquet")
    for engine, data in (("pandas", tmp_path / "whole.parquet"), ("spark", parts / "*.parquet")):
        argv = ["data", "prepare", "--engine", engine, "--out", str(tmp_path / engine)]
        assert main([*argv, "--data", str(data), "--min-user", "2", "--min-item", "2"]) == 0
    a, b = read_prepared(tmp_path / "pandas"), read_prepared(tmp_path / "spark")
    assert a.sequences == b.sequences and a.split.train == b.split.train
    assert a.sequences.user_ids.tolist()[:3] == ["u0", "u1", "u2"]


def test_bad_input_same_exit_code_and_message_and_no_folder(tmp_path: Path, capsys) -> None:
    log = tmp_path / "log.csv"
    log.write_text("user_id,item_id,timestamp\nu1,i1,10\nu1,i2,20\nu1,i3,soon\nu2,i1,5\n")
    errors = {}
    for engine in ("pandas", "spark"):
        argv = ["data", "prepare", "--engine", engine, "--out", str(tmp_path / engine)]
        assert main([*argv, "--data", str(log), "--strict"]) == 2
        errors[engine] = capsys.readouterr().err.strip().splitlines()[-1]
    assert errors["pandas"] == errors["spark"]
    assert f"{log}, line 4, column 'timestamp'" in errors["spark"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log.csv"]


def test_vocabulary_file_is_byte_identical_with_non_ascii_ids(tmp_path: Path, monkeypatch) -> None:
    """Spark ranks the ids by UTF-8 bytes and streams them: the same bytes as pandas' sorted().

    The ids mix lengths and scripts, including a pair UTF-16 orders the other
    way round (U+FF21 against U+1F600, a surrogate pair); three ids per range
    partition makes many partitions, so the offsets between them are used.
    """
    from sasrec.data.spark_pipeline import ItemRanks

    monkeypatch.setattr(ItemRanks, "IDS_PER_PARTITION", 3)
    items = ["a", "ab", "B", "é", "e\u0301", "ß", "z" * 30, "\U0001f600", "\uff21", "日本",
             "item-10", "item-9", "Ω", "\u00ff", "\u0100", "a b", "0"]  # fmt: skip
    rows = [
        (f"u{u}", items[(u * 5 + k) % len(items)], 100 * u + k) for u in range(17) for k in range(3)
    ]
    log = tmp_path / "ids.csv"
    log.write_text(
        "user_id,item_id,timestamp\n" + "".join(f"{u},{i},{t}\n" for u, i, t in rows),
        encoding="utf-8",
    )
    flags = ["--data", str(log), "--min-user", "2", "--min-item", "1"]
    a, b = _prepare_both(tmp_path, flags)
    _assert_identical(a, b)
    assert a.vocabulary.item_ids == sorted(items)
    written = {e: (tmp_path / e / "vocabulary.json").read_bytes() for e in ("pandas", "spark")}
    assert written["spark"] == written["pandas"]
    assert b.manifest["num_items"] == len(items)


def test_large_log_widens_the_shuffle_and_leaves_no_cached_log(tmp_path: Path, spark) -> None:
    """Past ``events_per_partition`` rows every shuffle by user gets wider, the output does not
    change, the parsed log is cached on disk only and released, and the session's setting is
    restored.

    Every checkpoint of the run (first appearances, duplicates, k-core passes, item ranks,
    sequences) is one part file per shuffle partition: 5 here, not the session's 2.
    """
    from pyspark import StorageLevel

    from sasrec.data.spark_pipeline import prepare_with_spark
    from sasrec.data.spark_reading import read_events
    from sasrec.training.options import DataOptions

    log = tmp_path / "shop.csv"
    assert main(["data", "synth", "--out", str(log), "--users", "300", "--items", "120"]) == 0
    _, info, _, parsed = read_events(spark, str(log), None, {})
    assert parsed.storageLevel == StorageLevel.DISK_ONLY
    parsed.unpersist()
    per_partition = -(-info["rows"] // 5)  # 5 partitions
    assert per_partition > 1_000
    cached = spark.sparkContext._jsc.getPersistentRDDs().size()

    pandas_out = tmp_path / "pandas"
    assert main(["data", "prepare", "--data", str(log), "--out", str(pandas_out)]) == 0
    checkpoints = tmp_path / "checkpoints"
    settings = SparkSettings(
        master="local[2]",
        checkpoint_dir=str(checkpoints),
        shuffle_partitions=2,
        events_per_partition=per_partition,
    )
    prepare_with_spark(DataOptions(path=str(log)), tmp_path / "spark", settings)

    _assert_identical(read_prepared(pandas_out), read_prepared(tmp_path / "spark"))
    parts = {len(list(rdd.glob("part-*"))) for rdd in checkpoints.rglob("rdd-*") if rdd.is_dir()}
    assert parts == {5}
    assert spark.sparkContext._jsc.getPersistentRDDs().size() == cached
    assert spark.conf.get("spark.sql.shuffle.partitions") == "2"
