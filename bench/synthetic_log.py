"""A large synthetic interaction log: a Zipf head plus session structure, string ids, Parquet.

The large-scale benchmarks (training at ~1M items, the Spark pipeline at 10M-100M
events, retrieval on a 1M-item table) run on logs made by this script; none is
committed. Each user's events come in sessions; a session stays within one
category (categories drawn Zipf, items within a category drawn Zipf), so the log
has both a popularity head and sequential signal a model can learn.

Usage::

    .venv/bin/python bench/synthetic_log.py --events 10000000 --items 1000000 \\
        --out /tmp/log-10m.parquet

Vectorised NumPy + pyarrow, written a chunk of users at a time
(``--chunk-events``, default 10M: about 2 GB of memory whatever the size
of the log; logs of up to 10M events are the rows the whole-log generator
always wrote, larger ones the same distribution). Columns:
``user_id`` (``u00001234``), ``item_id`` (``sku-0004321``), ``timestamp``
(int64 Unix seconds, increasing within a user), rows in time order unless
``--order user``.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np


def _zipf_draw(rng: np.random.Generator, n: int, exponent: float, size: int) -> np.ndarray:
    """``size`` ranks in ``0..n-1`` with P(r) proportional to (r + 1) ** -exponent."""
    cdf = np.cumsum(1.0 / np.arange(1, n + 1, dtype=np.float64) ** exponent)
    cdf /= cdf[-1]
    return np.minimum(np.searchsorted(cdf, rng.random(size), side="right"), n - 1)


def _names(prefix: str, codes: np.ndarray, width: int):
    """String ids without a Python loop over events: one string per distinct code."""
    import pyarrow as pa
    import pyarrow.compute as pc

    distinct, inverse = np.unique(codes, return_inverse=True)
    table = pa.array([f"{prefix}{c:0{width}d}" for c in distinct.tolist()])
    return pc.take(table, pa.array(inverse.astype(np.int64)))


def _user_lengths(rng: np.random.Generator, events: int, users: int) -> np.ndarray:
    """Events per user: geometric around the mean, at least 2, trimmed to ``events`` in all."""
    lengths = np.maximum(rng.geometric(users / events, users), 2)
    ends = np.cumsum(lengths)
    keep = int(np.searchsorted(ends, events, side="left")) + 1
    lengths = lengths[:keep]
    lengths[-1] -= int(lengths.sum()) - events
    if lengths[-1] < 1:
        lengths = lengths[:-1]
    return lengths


class _Chunks:
    """The log's events, a group of consecutive users at a time, from one generator.

    Every chunk draws its random numbers in the order the whole log used to
    be drawn in (sessions, categories, ranks, the item permutation (first
    chunk only), gaps, start times), so a log of one chunk is the one
    :func:`synthetic_log` always made, and a log of many chunks has the same
    distribution. Each chunk yields ``(user, item, timestamp)`` int64 arrays,
    users numbered globally, rows in user order.

    Example::

        chunks = _Chunks(events=1_000, items=100, seed=0)
        user, item, ts = next(iter(chunks.split(500)))
    """

    def __init__(
        self,
        events: int,
        items: int,
        users: int | None = None,
        session_length: float = 5.0,
        items_per_category: int = 500,
        seed: int = 0,
    ) -> None:
        self.rng = np.random.default_rng(seed)
        self.lengths = _user_lengths(self.rng, events, users or max(events // 20, 1))
        self.items = items
        self.session_length = session_length
        self.categories = max(items // items_per_category, 1)
        self.per_category = -(-items // self.categories)
        self.permutation: np.ndarray | None = None

    def split(self, chunk_events: int):
        """Yields the chunks: consecutive users, about ``chunk_events`` events each."""
        ends = np.cumsum(self.lengths)
        first_user = 0
        while first_user < self.lengths.size:
            done = int(ends[first_user - 1]) if first_user else 0
            last = int(np.searchsorted(ends, done + chunk_events, side="right"))
            last = max(last, first_user + 1)
            yield self._chunk(first_user, self.lengths[first_user:last])
            first_user = last

    def _chunk(self, first_user: int, lengths: np.ndarray):
        rng = self.rng
        user = np.repeat(np.arange(lengths.size, dtype=np.int64), lengths)
        n = user.size
        first = np.zeros(n, dtype=bool)
        first[np.concatenate(([0], np.cumsum(lengths)[:-1]))] = True
        new_session = first | (rng.random(n) < 1.0 / self.session_length)
        session = np.cumsum(new_session) - 1
        session_category = _zipf_draw(rng, self.categories, 0.7, int(session[-1]) + 1)
        rank = _zipf_draw(rng, self.per_category, 0.9, n)
        item = np.minimum(session_category[session] * self.per_category + rank, self.items - 1)
        if self.permutation is None:
            self.permutation = rng.permutation(self.items)  # popularity is not the id order
        item = self.permutation[item]
        # Seconds: 30-300 s between events of a session, 1-5 days between sessions.
        gap = np.where(
            new_session, rng.integers(86_400, 5 * 86_400, n), rng.integers(30, 300, n)
        ).astype(np.int64)
        gap[first] = 0
        start = START + rng.integers(0, 365 * 86_400, lengths.size)
        clock = np.cumsum(gap)
        ts = start[user] + clock - np.repeat(clock[first], lengths)
        return user + first_user, item, ts


START = 1_672_531_200  # 2023-01-01: user start times fall in the year after it


def _table(user: np.ndarray, item: np.ndarray, ts: np.ndarray):
    import pyarrow as pa

    return pa.table(
        {
            "user_id": _names("u", user, 8),
            "item_id": _names("sku-", item, 7),
            "timestamp": pa.array(ts),
        }
    )


def synthetic_log(
    events: int,
    items: int,
    users: int | None = None,
    session_length: float = 5.0,
    items_per_category: int = 500,
    seed: int = 0,
    order: str = "time",
):
    """Returns a ``pyarrow.Table`` (user_id, item_id, timestamp) of about ``events`` rows.

    The whole log in memory (one chunk): :func:`write_synthetic_log` writes
    the same rows for logs of up to ``chunk_events`` events, and larger ones
    in bounded memory.

    Example::

        table = synthetic_log(events=100_000, items=20_000)
        assert table.num_rows == 100_000
    """
    chunks = _Chunks(events, items, users, session_length, items_per_category, seed)
    user, item, ts = next(iter(chunks.split(events)))
    if order == "time":
        index = np.argsort(ts, kind="stable")
        user, item, ts = user[index], item[index], ts[index]
    return _table(user, item, ts)


def write_synthetic_log(
    out: Path,
    events: int,
    items: int,
    users: int | None = None,
    session_length: float = 5.0,
    seed: int = 0,
    order: str = "time",
    row_group: int = 1_000_000,
    chunk_events: int = 10_000_000,
) -> tuple[int, int]:
    """Writes the log to the Parquet file ``out`` a chunk at a time: ``(rows, distinct items)``.

    Memory is bounded by ``chunk_events`` (about 100 bytes per event), not the
    log. In time order, each chunk's rows are first spread over time buckets
    (temporary Parquet files beside ``out``, one row group per chunk), then
    each bucket is sorted and appended: a stable sort by time of each bucket,
    whose rows come in chunk then user order, is the stable sort of the whole
    log, so one chunk or many give the same order for the same rows. The file
    appears under its name only when complete.

    Example::

        rows, distinct = write_synthetic_log(Path("/tmp/log.parquet"), 100_000, 20_000)
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    chunks = _Chunks(events, items, users, session_length, seed=seed)
    tmp = out.with_name(f".{out.name}.tmp")
    seen = np.zeros(items, dtype=bool)
    rows = 0
    schema = pa.schema(
        [("user_id", pa.string()), ("item_id", pa.string()), ("timestamp", pa.int64())]
    )
    spill = pa.schema([("user", pa.int64()), ("item", pa.int64()), ("ts", pa.int64())])
    # Bucket k holds times in [START + k * width, START + (k + 1) * width); the
    # last one everything later (the sessions run on past the starts' year).
    buckets = 1 if events <= chunk_events or order != "time" else -(-events // chunk_events) * 2
    width = -(-365 * 86_400 // buckets)
    spill_dir = out.with_name(f".{out.name}.buckets")
    with pq.ParquetWriter(tmp, schema) as writer:
        if buckets == 1:
            for user, item, ts in chunks.split(chunk_events):
                if order == "time":
                    index = np.argsort(ts, kind="stable")
                    user, item, ts = user[index], item[index], ts[index]
                writer.write_table(_table(user, item, ts), row_group_size=row_group)
                seen[item] = True
                rows += ts.size
        else:
            spill_dir.mkdir(exist_ok=True)
            paths = [spill_dir / f"{k:05d}.parquet" for k in range(buckets)]
            spills = [pq.ParquetWriter(p, spill) for p in paths]
            try:
                for user, item, ts in chunks.split(chunk_events):
                    bucket = np.minimum((ts - START) // width, buckets - 1)
                    order_in = np.argsort(bucket, kind="stable")  # keeps user order per bucket
                    bounds = np.searchsorted(bucket[order_in], np.arange(buckets + 1))
                    for k in range(buckets):
                        part = order_in[bounds[k] : bounds[k + 1]]
                        if part.size:
                            spills[k].write_table(
                                pa.table([user[part], item[part], ts[part]], schema=spill)
                            )
                    seen[item] = True
                    rows += ts.size
            finally:
                for spill_writer in spills:
                    spill_writer.close()
            for path in paths:
                part = pq.read_table(path)
                path.unlink()
                if part.num_rows == 0:
                    continue
                ts = part.column("ts").to_numpy()
                index = np.argsort(ts, kind="stable")
                user = part.column("user").to_numpy()[index]
                item = part.column("item").to_numpy()[index]
                del part
                writer.write_table(_table(user, item, ts[index]), row_group_size=row_group)
            spill_dir.rmdir()
    os.replace(tmp, out)
    return rows, int(seen.sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, required=True)
    parser.add_argument("--items", type=int, required=True)
    parser.add_argument("--users", type=int, default=None, help="default: events / 20")
    parser.add_argument("--session-length", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--order", choices=("time", "user"), default="time")
    parser.add_argument("--row-group", type=int, default=1_000_000)
    parser.add_argument(
        "--chunk-events",
        type=int,
        default=10_000_000,
        help="events generated at a time (memory: about 100 bytes each)",
    )
    parser.add_argument("--out", type=Path, required=True, help="a .parquet file")
    args = parser.parse_args()
    start = time.perf_counter()
    rows, distinct = write_synthetic_log(
        args.out, args.events, args.items, args.users, args.session_length, seed=args.seed,
        order=args.order, row_group=args.row_group, chunk_events=args.chunk_events,
    )  # fmt: skip
    print(
        f"{args.out}: {rows:,} events, {distinct:,} distinct items, "
        f"{time.perf_counter() - start:.1f} s"
    )


if __name__ == "__main__":
    main()
