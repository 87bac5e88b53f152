"""Spark engine: the pandas pipeline's rules on PySpark DataFrames, written as PREPARED.

``prepare_with_spark(data, out, settings)`` runs, with the same rules, steps
and report as :func:`sasrec.data.cleaning.prepare` plus the vocabulary and the
split of :mod:`sasrec.training.preparation`:

read (``spark_reading``) -> missing ids -> min rating -> event types ->
stable (user, time, file order) sort -> duplicates -> consecutive repeats ->
iterative k-core -> vocabulary (raw ids sorted as strings) -> per-user
sequences -> leave-one-out or temporal split -> Parquet shards.

The log and the catalogue stay on the executors: the driver receives
counts, the per-split row counts of the reader, one row count per partition
of the sorted item ids, the histograms of events per user and per item, and
streams the sorted item ids into the vocabulary file a partition at a time;
never events, nothing per user, and no item list held. Each k-core pass is checkpointed
(truncating the lineage), so the plan does not grow with the passes.

Example:
    >>> settings = SparkSettings(master="local[2]")
    >>> report, summary = prepare_with_spark(DataOptions(path="log.parquet"), "prep/", settings)
    ... # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from sasrec.data import prepared_layout as layout
from sasrec.data.columns import EVENT, ITEM, RATING, TIMESTAMP, USER
from sasrec.data.data_report import DataReport
from sasrec.data.errors import DataError
from sasrec.data.prepared import publish_prepared
from sasrec.data.spark_kcore import k_core
from sasrec.data.spark_reading import POS, read_events
from sasrec.data.spark_session import (
    SHUFFLE_PARTITIONS,
    SparkSettings,
    checkpoint,
    partitions_for,
    shuffle_partitions,
    spark_session,
)
from sasrec.data.splitting import resolve_cutoffs
from sasrec.vocabulary import ItemVocabulary

_QUANTILES = (0.0, 0.25, 0.5, 0.75, 0.9, 0.99, 1.0)
_QUANTILE_NAMES = ("min", "p25", "p50", "p75", "p90", "p99", "max")
FIRST_SEEN = "_first_seen"
_ADAPTIVE = "spark.sql.adaptive.enabled"


class _Steps:
    """Counts each cleaning step into the report, as ``prepare``'s ``step`` does.

    ``materialize=True`` checkpoints the step's output first, so the count and
    every later step read it instead of recomputing the step.

    Example:
        >>> step = _Steps(DataReport())
        >>> events, n = step("duplicates", events.where(first_rows), n)  # doctest: +SKIP
    """

    def __init__(self, report: DataReport) -> None:
        self.report = report

    def __call__(
        self, name: str, frame: Any, before: int, *, materialize: bool = False, **details: Any
    ) -> tuple[Any, int]:
        if materialize:
            frame = checkpoint(frame)
        return frame, self.record(name, before, frame.count(), **details)

    def record(self, name: str, before: int, after: int, **details: Any) -> int:
        """Adds a step counted elsewhere; no events left is an error."""
        self.report.add_step(name, before, after, **details)
        if after == 0:
            path = self.report.source.get("path")
            where = f" (source {path})" if path else ""
            raise DataError(
                f"no events left after the {name!r} step{where}: it removed all {before:,} "
                f"remaining events"
            )
        return after


def clean(
    events: Any, data: Any, report: DataReport, columns: list[str]
) -> tuple[Any, Any, DataReport]:
    """The cleaning steps of :func:`sasrec.data.cleaning.prepare` on a Spark DataFrame.

    Returns ``(events, pairs, report)``: the events before the k-core, and the
    k-core's result as distinct (user, item) pairs with their event counts
    ``_n``; the cleaned log is the events whose user and item are in ``pairs``.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    if data.min_user < 1 or data.min_item < 1:
        raise ValueError(
            f"min_user and min_item must be >= 1, received min_user={data.min_user}, "
            f"min_item={data.min_item}"
        )
    report = report.copy()
    step = _Steps(report)
    n = report.read["events"]
    if n == 0:
        read = report.read
        raise DataError(
            "the interaction log has no events"
            f": {read.get('rows', 0):,} rows read, {read.get('missing_ids', 0):,} without ids, "
            f"{read.get('bad_timestamps', 0):,} with unparseable or out-of-range timestamps",
            path=report.source.get("path"),
        )
    report.add_step("missing_ids", n, n)  # the reader dropped them already
    if data.min_rating is not None:
        if RATING not in columns:
            raise DataError(
                f"min_rating={data.min_rating} needs a rating column; the frame has columns "
                f"{columns}",
                column=RATING,
            )
        events, n = step(
            "min_rating",
            events.where(F.col(RATING) >= data.min_rating),
            n,
            min_rating=data.min_rating,
        )
    if data.event_types is not None:
        if EVENT not in columns:
            raise DataError(
                f"event_types needs an event column; the frame has columns {columns}",
                column=EVENT,
            )
        types = sorted({str(e) for e in data.event_types})
        events, n = step(
            "event_types", events.where(F.col(EVENT).isin(types)), n, event_types=types
        )
    # From here on every step works per user: the log is shuffled by user once
    # (a checkpoint keeps that partitioning), and the duplicates, repeats,
    # the k-core's user counts and the sequences need no other shuffle of it.
    events = events.repartition(shuffle_partitions(events), USER)
    # The first row of each duplicate group is the one with the smallest
    # position, and the rows differ in nothing else: a hash aggregation keeps
    # it (a window would sort the whole log).
    keys = [USER, TIMESTAMP, ITEM] + [c for c in (EVENT, RATING) if c in columns]
    first = events.groupBy(*keys).agg(F.min(POS).alias(POS))
    events, n = step("duplicates", first, n, materialize=True)
    if data.collapse_repeats:
        by_user = Window.partitionBy(USER).orderBy(TIMESTAMP, POS)
        previous = F.lag(ITEM).over(by_user)
        events = events.withColumn("_repeat", previous.isNotNull() & (previous == F.col(ITEM)))
        events, n = step(
            "consecutive_repeats",
            events.where(~F.col("_repeat")).drop("_repeat"),
            n,
            materialize=True,
        )
    before = n
    pairs, passes, n = k_core(events, data.min_user, data.min_item, n)
    step.record("k_core", before, n, min_user=data.min_user, min_item=data.min_item, passes=passes)
    return events, pairs, report


def _distribution(values: np.ndarray, counts: np.ndarray) -> dict[str, float]:
    """``np.quantile`` (linear) and mean of the multiset ``values`` x ``counts``, exactly.

    The driver gets the histogram (distinct lengths and how many users have
    each), not one number per user; numpy interpolates between the two
    neighbours of each virtual index, which is what this hands it.
    """
    if counts.sum() == 0:
        return {name: 0.0 for name in (*_QUANTILE_NAMES, "mean")}
    order = np.argsort(values)
    values, counts = values[order], counts[order]
    ends = np.cumsum(counts)  # element k of the sorted multiset is values[searchsorted(ends, k+1)]
    total = int(ends[-1])
    out = {}
    for name, q in zip(_QUANTILE_NAMES, _QUANTILES):
        virtual = (total - 1) * q
        low = int(np.floor(virtual))
        pair = values[np.searchsorted(ends, [low + 1, min(low + 2, total)])].astype(np.float64)
        out[name] = float(np.quantile(pair, virtual - low))
    out["mean"] = float(np.dot(values.astype(np.float64), counts) / total)
    return out


def _histogram(frame: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(distinct _len values, rows with each)`` of ``frame``: one driver row per length."""
    from pyspark.sql import functions as F

    rows = frame.groupBy("_len").agg(F.count(F.lit(1)).alias("_n")).collect()
    return (
        np.array([r["_len"] for r in rows], dtype=np.int64),
        np.array([r["_n"] for r in rows], dtype=np.int64),
    )


def compute_stats(pairs: Any) -> tuple[dict[str, Any], Any, Any]:
    """:func:`sasrec.data.data_report.compute_stats` from the k-core's pairs.

    Returns ``(stats without the timestamp range, per-item event counts,
    per-user event counts)``, the counts as DataFrames with ``_len``. The
    driver receives the two histograms (events per user, events per item:
    one row per distinct count), never a row per user or item.
    """
    from pyspark.sql import functions as F

    per_user = pairs.groupBy(USER).agg(F.sum("_n").alias("_len"))
    # One row per item, read twice (the histogram, then the ranks): kept.
    per_item = checkpoint(pairs.groupBy(ITEM).agg(F.sum("_n").alias("_len")))
    user_len, user_n = _histogram(per_user)
    item_len, item_n = _histogram(per_item)
    n_users, n_items = int(user_n.sum()), int(item_n.sum())
    n_events = int(np.dot(user_len, user_n))
    stats: dict[str, Any] = {
        "users": n_users,
        "items": n_items,
        "events": n_events,
        "density": n_events / (n_users * n_items) if n_users and n_items else 0.0,
        "sequence_length": _distribution(user_len, user_n),
        "item_frequency": _distribution(item_len, item_n),
    }
    return stats, per_item, per_user


class ItemRanks:
    """The item vocabulary as a Spark job: raw ids sorted as strings -> 1..N.

    ``ItemVocabulary``'s rule (index = 1 + rank of the id in sorted order)
    computed on the executors: the ids are range-partitioned and sorted
    (Spark orders strings by their UTF-8 bytes, which is code point order,
    Python's ``sorted``), numbered within each partition by
    ``monotonically_increasing_id`` (partition number in the high bits,
    consecutive below), and checkpointed; the driver gets one row count per
    partition and turns them into offsets. The vocabulary file is streamed
    from the sorted partitions, one partition (at most about
    ``IDS_PER_PARTITION`` ids) at a time.

    Example:
        >>> ranks = ItemRanks.of(per_item, stats["items"])  # doctest: +SKIP
        >>> ranks.frame().columns, ranks.num_items  # doctest: +SKIP
        (['item_id', '_index'], 318798)
        >>> ranks.write_vocabulary(Path("prep/vocabulary.json"))  # doctest: +SKIP
        318798
    """

    IDS_PER_PARTITION = 262_144
    _MONO_PARTITION_SHIFT = 33  # monotonically_increasing_id's layout

    def __init__(self, ranked: Any, offsets: list[int], num_items: int) -> None:
        self._ranked = ranked
        self._offsets = offsets
        self.num_items = num_items

    @classmethod
    def of(cls, items: Any, count: int) -> ItemRanks:
        """Ranks the ``count`` distinct ``item_id`` values of ``items`` (one row each)."""
        from pyspark.sql import functions as F

        parts = max(shuffle_partitions(items), -(-count // cls.IDS_PER_PARTITION))
        ordered = items.select(ITEM).repartitionByRange(parts, ITEM).sortWithinPartitions(ITEM)
        ranked = checkpoint(ordered.select(ITEM, F.monotonically_increasing_id().alias("_mono")))
        part = F.shiftright("_mono", cls._MONO_PARTITION_SHIFT)
        rows = ranked.groupBy(part.alias("_part")).agg(F.count(F.lit(1)).alias("_n")).collect()
        sizes = {int(r["_part"]): int(r["_n"]) for r in rows}
        offsets, total = [], 0
        for k in range(max(sizes, default=-1) + 1):
            offsets.append(total)
            total += sizes.get(k, 0)
        return cls(ranked, offsets, total)

    def frame(self) -> Any:
        """``(item_id, _index)``, ``_index`` in 1..N."""
        from pyspark.sql import functions as F

        part = F.shiftright("_mono", self._MONO_PARTITION_SHIFT).cast("int")
        within = F.col("_mono").bitwiseAND((1 << self._MONO_PARTITION_SHIFT) - 1)
        offset = F.element_at(F.array(*[F.lit(o) for o in self._offsets]), part + 1)
        return self._ranked.select(ITEM, (offset + within + 1).cast("int").alias("_index"))

    def write_vocabulary(self, path: Path) -> int:
        """Streams the sorted ids into ``path`` (``ItemVocabulary.save``'s bytes); returns N."""
        rows = self._ranked.select(ITEM).toLocalIterator()
        written = ItemVocabulary.write_ids(path, (row[0] for row in rows))
        if written != self.num_items:
            raise RuntimeError(f"wrote {written} vocabulary ids, ranked {self.num_items}")
        return written


def _lower_quantile(events: Any, q: float, n: int) -> float:
    """``np.quantile(timestamps, q, method="lower")``: the k-th smallest, k = floor((n-1) q)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    k = int(np.floor((n - 1) * q))
    # Distinct timestamps with their counts (far fewer than events), running totals.
    per = events.groupBy(TIMESTAMP).agg(F.count(F.lit(1)).alias("_n"))
    running = per.withColumn("_end", F.sum("_n").over(Window.orderBy(TIMESTAMP)))
    return float(running.where(F.col("_end") > k).agg(F.min(TIMESTAMP)).first()[0])


def sequences_with_split(
    events: Any,
    per_user: Any,
    first_seen: Any,
    items: ItemRanks,
    data: Any,
    n: int,
) -> tuple[Any, dict[str, Any], tuple[float, float]]:
    """One row per user (the PREPARED columns), the split's summary and the time range.

    ``events`` are the events before the k-core; the join with the vocabulary
    keeps the remaining items and the join with ``per_user`` (the remaining
    users) the remaining users, in the shuffle by user that groups the
    sequences.
    """
    from pyspark.sql import functions as F

    vocab = items.frame()
    users_kept = per_user.select(USER).join(first_seen, USER)
    encoded = events.join(F.broadcast(vocab) if items.num_items < 2_000_000 else vocab, ITEM).join(
        users_kept, USER
    )
    ordered = F.sort_array(F.collect_list(F.struct(TIMESTAMP, POS, F.col("_index").alias("_item"))))
    users = encoded.groupBy(USER).agg(
        F.first(FIRST_SEEN).alias(layout.USER_INDEX), ordered.alias("_events")
    )
    users = users.select(
        USER,
        F.col("_events._item").alias(layout.ITEMS),
        F.col("_events." + TIMESTAMP).alias(layout.TIMESTAMPS),
        layout.USER_INDEX,
    )
    length = F.size(layout.ITEMS)
    if data.split == "leave_one_out":
        users = users.select(
            "*",
            F.when(length >= 3, length - 2).otherwise(length).alias(layout.TRAIN_LENGTH),
            F.when(length >= 3, length - 2).otherwise(-1).alias(layout.VALID_LENGTH),
            F.when(length >= 3, length - 1).otherwise(-1).alias(layout.TEST_LENGTH),
        )
        info: dict[str, Any] = {"kind": "leave_one_out"}
    else:
        auto_valid = auto_test = 0.0
        if data.test_cutoff is None or data.valid_cutoff is None:
            auto_test = _lower_quantile(encoded, 1.0 - 0.1, n)
            auto_valid = _lower_quantile(encoded, 1.0 - 0.1 - 0.1, n)
        valid_cutoff, test_cutoff = resolve_cutoffs(
            data.valid_cutoff, data.test_cutoff, auto_valid, auto_test
        )

        def upto(cutoff: float) -> Any:
            return F.size(F.filter(layout.TIMESTAMPS, lambda t: t <= F.lit(float(cutoff))))

        users = users.select("*", upto(valid_cutoff).alias("_v"), upto(test_cutoff).alias("_t"))
        v, t = F.col("_v"), F.col("_t")
        users = users.select(
            *users.columns[:4],
            v.alias(layout.TRAIN_LENGTH),
            F.when((v > 0) & (t > v), v).otherwise(-1).alias(layout.VALID_LENGTH),
            F.when((t > 0) & (length > t), t).otherwise(-1).alias(layout.TEST_LENGTH),
            F.when((v == 0) & (t > 0), 1).otherwise(0).alias("_cold_valid"),
            F.when((t == 0) & (length > 0), 1).otherwise(0).alias("_cold_test"),
        )
        info = {
            "kind": "temporal",
            "valid_cutoff": float(valid_cutoff),
            "test_cutoff": float(test_cutoff),
        }
    users = checkpoint(users)
    row = users.agg(
        F.count(F.lit(1)).alias("users"),
        F.sum(F.when(F.col(layout.TRAIN_LENGTH) > 0, 1).otherwise(0)).alias("train_users"),
        F.sum(F.col(layout.TRAIN_LENGTH)).alias("train_events"),
        F.sum(F.when(F.col(layout.VALID_LENGTH) >= 0, 1).otherwise(0)).alias("valid_users"),
        F.sum(F.when(F.col(layout.TEST_LENGTH) >= 0, 1).otherwise(0)).alias("test_users"),
        # Each sequence is in time order: its first and last timestamps bound it.
        F.min(F.element_at(layout.TIMESTAMPS, 1)).alias("t_min"),
        F.max(F.element_at(layout.TIMESTAMPS, -1)).alias("t_max"),
        *(
            [F.sum("_cold_valid").alias("cold_valid"), F.sum("_cold_test").alias("cold_test")]
            if info["kind"] == "temporal"
            else []
        ),
    ).first()
    if info["kind"] == "leave_one_out":
        info["train_only_users"] = int(row["users"] - row["test_users"])
    else:
        info["cold_valid_users"] = int(row["cold_valid"])
        info["cold_test_users"] = int(row["cold_test"])
        users = users.drop("_cold_valid", "_cold_test")
    summary = {
        **info,
        "train_users": int(row["train_users"]),
        "train_events": int(row["train_events"] or 0),
        "valid_users": int(row["valid_users"]),
        "test_users": int(row["test_users"]),
    }
    return users, summary, (float(row["t_min"]), float(row["t_max"]))


def write_shards(users: Any, folder: Path, shards: int, rows_per_file: int) -> None:
    """Hash-partitions users into ``shard=K`` folders of at most ``rows_per_file`` rows."""
    from pyspark.sql import functions as F

    shard = (F.crc32(F.encode(F.col(layout.USER_ID), "UTF-8")) % shards).cast("int")
    (
        users.select(
            F.col(layout.USER_INDEX).cast("long"),
            F.col(USER).alias(layout.USER_ID),
            F.col(layout.ITEMS).cast("array<int>"),
            F.col(layout.TIMESTAMPS).cast("array<double>"),
            F.col(layout.TRAIN_LENGTH).cast("int"),
            F.col(layout.VALID_LENGTH).cast("int"),
            F.col(layout.TEST_LENGTH).cast("int"),
            shard.alias(layout.SHARD),
        )
        .repartition(shards, layout.SHARD)
        .sortWithinPartitions(layout.USER_INDEX)
        .write.partitionBy(layout.SHARD)
        .option("maxRecordsPerFile", rows_per_file)
        .parquet(folder.as_uri())
    )
    for marker in folder.rglob("*"):
        # Spark's _SUCCESS and .crc side files are not part of the format.
        if marker.is_file() and (marker.name.startswith("_") or marker.name.endswith(".crc")):
            marker.unlink()


def prepare_with_spark(
    data: Any,
    out: str | Path,
    settings: SparkSettings,
    *,
    shards: int = layout.DEFAULT_SHARDS,
    rows_per_file: int = layout.DEFAULT_ROWS_PER_FILE,
) -> tuple[DataReport, dict[str, Any]]:
    """Reads, cleans, encodes and splits ``data.path`` on Spark into the PREPARED folder ``out``.

    Returns:
        ``(report, split summary)``, equal to the pandas engine's.

    Raises:
        DataError: Bad input (file and line named); nothing is left under ``out``.
    """
    if data.path is None:
        raise ValueError("--engine spark needs --data (a file, folder or glob Spark can read)")
    out = Path(out)
    spark = spark_session(settings)
    own_checkpoints = settings.checkpoint_dir is None and not settings.remote
    if not settings.remote:
        checkpoints = settings.checkpoint_dir or tempfile.mkdtemp(
            prefix=layout.STAGING_PREFIX + "checkpoints-",
            dir=out.parent if out.parent.exists() else None,
        )
        spark.sparkContext.setCheckpointDir(checkpoints)
    # The steps after the read are laid out to reuse one partitioning by user
    # (no shuffle of the log per k-core pass); adaptive execution would drop
    # the partitioning a checkpoint records, so it is off while this runs.
    adaptive = spark.conf.get(_ADAPTIVE, "true")
    spark.conf.set(_ADAPTIVE, "false")
    width = spark.conf.get(SHUFFLE_PARTITIONS)
    parsed = None
    try:
        events, info, first_seen, parsed = read_events(spark, data.path, data.preset, data.reader)
        # Every shuffle by user from here on has this width (set before the
        # first one, so the checkpoints share one partitioning).
        width_here = partitions_for(spark, info["rows"], settings.events_per_partition)
        spark.conf.set(SHUFFLE_PARTITIONS, str(width_here))
        first_seen = checkpoint(first_seen)
        source = {"path": info["file"], "preset": data.preset, "format": info["format"]}
        report = DataReport(source=source)
        report.read = info
        columns = [USER, ITEM, TIMESTAMP] + [c for c in (EVENT, RATING) if c in info["columns"]]
        events, pairs, report = clean(events, data, report, columns)
        # The duplicates step checkpointed the events and first_seen is
        # checkpointed: nothing reads the parsed log again.
        parsed.unpersist()
        n = report.steps[-1]["after"]
        stats, per_item, per_user = compute_stats(pairs)
        items = ItemRanks.of(per_item, stats["items"])
        users, summary, (t_min, t_max) = sequences_with_split(
            events, per_user, first_seen, items, data, n
        )
        report.stats = {**stats, "timestamp_min": t_min, "timestamp_max": t_max}
        publish_prepared(
            out,
            lambda folder: write_shards(users, folder, shards, rows_per_file),
            write_vocabulary=items.write_vocabulary,
            report=report,
            split_summary=summary,
            options=dataclasses.asdict(data),
            engine="spark",
            shards=shards,
            rows_per_file=rows_per_file,
        )
    finally:
        spark.conf.set(_ADAPTIVE, adaptive)
        spark.conf.set(SHUFFLE_PARTITIONS, width)
        if parsed is not None:  # a failed run leaves no cached log either
            parsed.unpersist()
        if own_checkpoints:
            shutil.rmtree(checkpoints, ignore_errors=True)
    return report, summary
