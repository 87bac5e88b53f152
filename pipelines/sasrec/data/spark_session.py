"""Spark engine, the session: where it runs, its checkpoints and its shuffle width.

``spark_session(settings)`` gets or creates the session a
:class:`SparkSettings` describes (a master, Spark Connect, or the one
``spark-submit`` configured); ``checkpoint(frame)`` materializes a step and
cuts its lineage, on a classic session or through Spark Connect.

Example:
    >>> spark = spark_session(SparkSettings(master="local[2]"))  # doctest: +SKIP
    >>> pairs = checkpoint(events.groupBy("user_id", "item_id").count())  # doctest: +SKIP
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

SHUFFLE_PARTITIONS = "spark.sql.shuffle.partitions"


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
        events_per_partition: The most rows of the log one shuffle partition
            gets: a run raises the session's shuffle partitions to the log's
            rows over this (never lowers them), so a per-user task (the
            sequences' sort) holds a bounded slice of the log however large
            it is.
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
    events_per_partition: int = 2_000_000
    conf: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if self.events_per_partition < 1:
            raise ValueError(f"events_per_partition must be >= 1, got {self.events_per_partition}")
        if self.master and self.remote:
            raise ValueError("--spark-master and --spark-remote are alternatives: give one")
        if self.remote and self.checkpoint_dir:
            raise ValueError(
                "--checkpoint-dir is the client's setting; with --spark-remote the Spark "
                "Connect server's spark.checkpoint.dir is used (local checkpoints without it)"
            )


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
    builder = builder.config(SHUFFLE_PARTITIONS, str(settings.shuffle_partitions))
    builder = builder.config("spark.ui.showConsoleProgress", "false")
    for key, value in settings.conf:  # last, so they win
        builder = builder.config(key, value)
    return builder.getOrCreate()


def checkpoint(frame: Any) -> Any:
    """Materializes ``frame`` and cuts its lineage (the plan does not grow with the steps).

    Classic sessions write to the checkpoint folder set here. A Spark Connect
    client cannot set the server's: its checkpoints are reliable when the
    server was started with ``spark.checkpoint.dir``, and local ones (kept by
    the executors, as a cached frame is) when not.
    """
    if type(frame).__module__.startswith("pyspark.sql.connect"):
        try:
            return frame.checkpoint(eager=True)
        except Exception as err:
            if "Checkpoint directory has not been set" not in str(err):
                raise
            return frame.localCheckpoint(eager=True)
    return frame.checkpoint(eager=True)


def partitions_for(spark: Any, rows: int, events_per_partition: int) -> int:
    """The session's shuffle partitions, raised to ``ceil(rows / events_per_partition)``."""
    configured = int(spark.conf.get(SHUFFLE_PARTITIONS))
    return max(configured, -(-rows // events_per_partition))


def shuffle_partitions(frame: Any) -> int:
    """The session's ``spark.sql.shuffle.partitions`` (the width of every shuffle by user)."""
    return int(frame.sparkSession.conf.get(SHUFFLE_PARTITIONS))
