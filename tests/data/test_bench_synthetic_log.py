"""bench/synthetic_log.py: chunked writing gives the rows the whole-log generator gives.

One chunk is the in-memory log, row for row; many chunks (spread over time
buckets, each sorted) are the stable time sort of the same chunks
concatenated, so the order does not depend on the chunk size.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

BENCH = Path(__file__).resolve().parents[2] / "bench" / "synthetic_log.py"


def _bench():
    spec = importlib.util.spec_from_file_location("synthetic_log", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_one_chunk_is_the_in_memory_log(tmp_path: Path) -> None:
    bench = _bench()
    out = tmp_path / "log.parquet"
    rows, distinct = bench.write_synthetic_log(out, 20_000, 3_000, seed=3)
    expected = bench.synthetic_log(20_000, 3_000, seed=3)
    table = pq.read_table(out)
    assert rows == table.num_rows == 20_000
    assert table.equals(expected)
    assert distinct == len(set(expected.column("item_id").to_pylist()))
    assert [p.name for p in tmp_path.iterdir()] == ["log.parquet"]  # no temporary files left


def test_many_chunks_are_the_stable_time_sort_of_the_chunks(tmp_path: Path) -> None:
    bench = _bench()
    out = tmp_path / "log.parquet"
    rows, _ = bench.write_synthetic_log(out, 30_000, 2_000, seed=1, chunk_events=4_000)
    table = pq.read_table(out)
    parts = list(bench._Chunks(30_000, 2_000, seed=1).split(4_000))
    assert len(parts) > 5
    user, item, ts = (np.concatenate(column) for column in zip(*parts))
    index = np.argsort(ts, kind="stable")
    expected = bench._table(user[index], item[index], ts[index])
    assert rows == 30_000
    assert table.equals(expected)
    times = table.column("timestamp").to_numpy()
    assert np.all(np.diff(times) >= 0)


def test_user_order_writes_chunks_as_generated(tmp_path: Path) -> None:
    bench = _bench()
    out = tmp_path / "log.parquet"
    bench.write_synthetic_log(out, 10_000, 1_000, seed=2, order="user", chunk_events=3_000)
    users = pq.read_table(out).column("user_id").to_pylist()
    assert users == sorted(users)  # zero-padded ids: string order is user order
