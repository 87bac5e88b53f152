"""Spark engine: the pandas pipeline's rules on PySpark DataFrames, written as PREPARED.

``prepare_with_spark(data, out, settings)`` runs, with the same rules, steps
and report as :func:`sasrec.data.cleaning.prepare` plus the vocabulary and the
split of :mod:`sasrec.training.preparation`:

read (``spark_reading``) -> missing ids -> min rating -> event types ->
stable (user, time, file order) sort -> duplicates -> consecutive repeats ->
iterative k-core -> vocabulary (raw ids sorted as strings) -> per-user
sequences -> leave-one-out or temporal split -> Parquet shards.

The log stays on the executors: the driver receives counts, the per-split
row counts of the reader, the item vocabulary and the per-user length
histogram of the report, never events. Each k-core pass is checkpointed
(truncating the lineage), so the plan does not grow with the passes.

Example:
    >>> settings = SparkSettings(master="local[2]")
    >>> report, summary = prepare_with_spark(DataOptions(path="log.parquet"), "prep/", settings)
    ... # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sasrec.data import prepared_layout as layout
from sasrec.data.columns import EVENT, ITEM, RATING, TIMESTAMP, USER
from sasrec.data.data_report import DataReport
from sasrec.data.errors import DataError
from sasrec.data.prepared import publish_prepared
from sasrec.data.spark_reading import POS, read_events
from sasrec.data.splitting import resolve_cutoffs
from sasrec.vocabulary import ItemVocabulary

_QUANTILES = (0.0, 0.25, 0.5, 0.75, 0.9, 0.99, 1.0)
_QUANTILE_NAMES = ("min", "p25", "p50", "p75", "p90", "p99", "max")
FIRST_SEEN = "_first_seen"


@dataclass(frozen=True)
class SparkSettings:
    """Where the Spark engine runs.

    Args:
        master: Spark master URL; ``None``: the session's configured one, or
            ``local[*]``.
        remote: Spark Connect URL (``sc://host:15002``); excludes ``master``.
        checkpoint_dir: Folder for the k-core's checkpoints (a cluster needs
            a shared one, e.g. ``hdfs:///tmp/sasrec``); ``None``: a temporary
            local folder.
        shuffle_partitions: ``spark.sql.shuffle.partitions`` when the session
            is created here.
        conf: More Spark settings for a session created here (e.g.
            ``{"spark.driver.memory": "4g"}``: in ``local`` mode the driver
            JVM runs the executors too).

    Example:
        >>> SparkSettings(master="local[2]").master
        'local[2]'
    """

    master: str | None = None
    remote: str | None = None
    checkpoint_dir: str | None = None
    shuffle_partitions: int = 8
    conf: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if self.master and self.remote:
            raise ValueError("--spark-master and --spark-remote are alternatives: give one")


def spark_session(settings: SparkSettings) -> Any:
    """Gets or creates the session the settings describe."""
    try:
        from pyspark.sql import SparkSession
    except ModuleNotFoundError:
        raise ValueError(
            "--engine spark needs PySpark: pip install 'sasrec[spark]' (and a Java 17+ runtime)"
        ) from None
    builder = SparkSession.builder.appName("sasrec data prepare")
    if settings.remote:
        return builder.remote(settings.remote).getOrCreate()
    master = settings.master or ("local[*]" if not SparkSession.getActiveSession() else None)
    if master and master.startswith("local"):
        # Local workers run this interpreter (a cluster's workers bring their own).
        builder = builder.config("spark.pyspark.python", sys.executable)
    if master:
        builder = builder.master(master)
    builder = builder.config(
        "spark.sql.shuffle.partitions", str(settings.shuffle_partitions)
    ).config("spark.ui.showConsoleProgress", "false")
    for key, value in settings.conf:  # last, so they win
        builder = builder.config(key, value)
    return builder.getOrCreate()


class _Steps:
    """Counts each cleaning step into the report, as ``prepare``'s ``step`` does.

    Example:
        >>> step = _Steps(DataReport())
        >>> events, n = step("duplicates", events.where(first_rows), n)  # doctest: +SKIP
    """

    def __init__(self, report: DataReport) -> None:
        self.report = report

    def __call__(self, name: str, frame: Any, before: int, **details: Any) -> tuple[Any, int]:
        after = frame.count()
        self.report.add_step(name, before, after, **details)
        if after == 0:
            path = self.report.source.get("path")
            where = f" (source {path})" if path else ""
            raise DataError(
                f"no events left after the {name!r} step{where}: it removed all {before:,} "
                f"remaining events"
            )
        return frame, after


def _checkpoint(frame: Any) -> Any:
    # Classic sessions write to the checkpoint folder; Spark Connect has no
    # SparkContext, and its checkpoint() is the server's own.
    return frame.checkpoint(eager=True)


def clean(events: Any, data: Any, report: DataReport, columns: list[str]) -> tuple[Any, DataReport]:
    """The cleaning steps of :func:`sasrec.data.cleaning.prepare` on a Spark DataFrame."""
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
    keys = [USER, TIMESTAMP, ITEM] + [c for c in (EVENT, RATING) if c in columns]
    first = Window.partitionBy(*keys).orderBy(POS)
    events = events.withColumn("_k", F.row_number().over(first))
    events, n = step("duplicates", events.where(F.col("_k") == 1).drop("_k"), n)
    if data.collapse_repeats:
        by_user = Window.partitionBy(USER).orderBy(TIMESTAMP, POS)
        previous = F.lag(ITEM).over(by_user)
        events = events.withColumn("_repeat", previous.isNotNull() & (previous == F.col(ITEM)))
        events, n = step("consecutive_repeats", events.where(~F.col("_repeat")).drop("_repeat"), n)
    before = n
    events, passes, n = k_core(events, data.min_user, data.min_item, n)
    events, n = step(
        "k_core", events, before, min_user=data.min_user, min_item=data.min_item, passes=passes
    )
    return events, report


def k_core(events: Any, min_user: int, min_item: int, n: int) -> tuple[Any, int, int]:
    """Iterative k-core: ``(events, passes, remaining)``, one checkpoint per pass.

    A pass drops every user and item below its threshold (counted on the
    same input), as :func:`sasrec.data.cleaning.k_core_mask` does.
    """
    from pyspark.sql import functions as F

    if min_user <= 1 and min_item <= 1:
        return events, 0, n
    passes = 0
    events = _checkpoint(events)
    while True:
        passes += 1
        users = events.groupBy(USER).agg(F.count(F.lit(1)).alias("_nu"))
        items = events.groupBy(ITEM).agg(F.count(F.lit(1)).alias("_ni"))
        kept = events.join(
            users.where(F.col("_nu") >= min_user).select(USER), USER, "left_semi"
        ).join(items.where(F.col("_ni") >= min_item).select(ITEM), ITEM, "left_semi")
        kept = _checkpoint(kept)
        after = kept.count()
        events = kept
        if after == n or after == 0:
            return events, passes, after
        n = after


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


def compute_stats(events: Any) -> dict[str, Any]:
    """:func:`sasrec.data.data_report.compute_stats` of a Spark DataFrame (histograms only)."""
    from pyspark.sql import functions as F

    def histogram(column: str) -> tuple[np.ndarray, np.ndarray]:
        per = events.groupBy(column).agg(F.count(F.lit(1)).alias("_len"))
        rows = per.groupBy("_len").agg(F.count(F.lit(1)).alias("_n")).collect()
        return (
            np.array([r["_len"] for r in rows], dtype=np.int64),
            np.array([r["_n"] for r in rows], dtype=np.int64),
        )

    user_len, user_n = histogram(USER)
    item_len, item_n = histogram(ITEM)
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
    if n_events:
        low, high = events.agg(F.min(TIMESTAMP), F.max(TIMESTAMP)).first()
        stats["timestamp_min"], stats["timestamp_max"] = float(low), float(high)
    return stats


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
    events: Any, first_seen: Any, vocabulary: ItemVocabulary, data: Any, n: int
) -> tuple[Any, dict[str, Any]]:
    """One row per user (the PREPARED columns) and the split's summary."""
    from pyspark.sql import functions as F

    spark = events.sparkSession
    vocab = spark.createDataFrame(
        [(item, i + 1) for i, item in enumerate(vocabulary.item_ids)], f"{ITEM} string, _index int"
    )
    encoded = events.join(F.broadcast(vocab) if vocabulary.num_items < 2_000_000 else vocab, ITEM)
    ordered = F.sort_array(F.collect_list(F.struct(TIMESTAMP, POS, F.col("_index").alias("_item"))))
    users = encoded.groupBy(USER).agg(ordered.alias("_events"))
    users = users.select(
        USER,
        F.col("_events._item").alias(layout.ITEMS),
        F.col("_events." + TIMESTAMP).alias(layout.TIMESTAMPS),
    )
    users = users.join(first_seen, USER).withColumnRenamed(FIRST_SEEN, layout.USER_INDEX)
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
            auto_test = _lower_quantile(events, 1.0 - 0.1, n)
            auto_valid = _lower_quantile(events, 1.0 - 0.1 - 0.1, n)
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
    users = _checkpoint(users)
    row = users.agg(
        F.count(F.lit(1)).alias("users"),
        F.sum(F.when(F.col(layout.TRAIN_LENGTH) > 0, 1).otherwise(0)).alias("train_users"),
        F.sum(F.col(layout.TRAIN_LENGTH)).alias("train_events"),
        F.sum(F.when(F.col(layout.VALID_LENGTH) >= 0, 1).otherwise(0)).alias("valid_users"),
        F.sum(F.when(F.col(layout.TEST_LENGTH) >= 0, 1).otherwise(0)).alias("test_users"),
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
    return users, summary


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
    checkpoints = settings.checkpoint_dir or tempfile.mkdtemp(
        prefix=layout.STAGING_PREFIX + "checkpoints-",
        dir=out.parent if out.parent.exists() else None,
    )
    if not settings.remote:
        spark.sparkContext.setCheckpointDir(checkpoints)
    try:
        events, info, first_seen = read_events(spark, data.path, data.preset, data.reader)
        source = {"path": info["file"], "preset": data.preset, "format": info["format"]}
        report = DataReport(source=source)
        report.read = info
        columns = [USER, ITEM, TIMESTAMP] + [c for c in (EVENT, RATING) if c in info["columns"]]
        events, report = clean(events, data, report, columns)
        n = report.steps[-1]["after"]
        report.stats = compute_stats(events)
        items = [r[ITEM] for r in events.select(ITEM).distinct().collect()]
        vocabulary = ItemVocabulary(sorted(items))
        users, summary = sequences_with_split(events, first_seen, vocabulary, data, n)
        publish_prepared(
            out,
            lambda folder: write_shards(users, folder, shards, rows_per_file),
            vocabulary=vocabulary,
            report=report,
            split_summary=summary,
            options=dataclasses.asdict(data),
            engine="spark",
            shards=shards,
            rows_per_file=rows_per_file,
        )
    finally:
        if own_checkpoints:
            shutil.rmtree(checkpoints, ignore_errors=True)
    return report, summary
