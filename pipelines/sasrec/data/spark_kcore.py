"""Spark engine, the iterative k-core on (user, item) pairs, one checkpoint per pass.

``k_core(events, min_user, min_item, n)`` returns the pairs that remain with
their event counts; the cleaned log is the events whose user and item remain
(:func:`sasrec.data.cleaning.k_core_mask`'s rule).

Example:
    >>> pairs, passes, remaining = k_core(events, 5, 5, events.count())  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

from sasrec.data.columns import ITEM, USER
from sasrec.data.spark_session import checkpoint


def k_core(events: Any, min_user: int, min_item: int, n: int) -> tuple[Any, int, int]:
    """Iterative k-core: ``(pairs, passes, remaining events)``, one checkpoint per pass.

    The passes run on the distinct (user, item) pairs with their event counts
    (``_n``), not on the events: a user's or item's count is the sum of its
    pairs' counts, and a pass drops every user and item below its threshold
    (counted on the same input), as :func:`sasrec.data.cleaning.k_core_mask`
    does. A dropped user or item never comes back, so the remaining events are
    those whose user and item remain.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    pairs = checkpoint(events.groupBy(USER, ITEM).agg(F.count(F.lit(1)).alias("_n")))
    if min_user <= 1 and min_item <= 1:
        return pairs, 0, n
    passes = 0
    while True:
        passes += 1
        # The pairs are partitioned by user: a user's count is a window over its
        # own partition; the items that pass (far fewer than the pairs) are
        # broadcast, so a pass shuffles only the partial item counts.
        users = F.sum("_n").over(Window.partitionBy(USER))
        items = pairs.groupBy(ITEM).agg(F.sum("_n").alias("_ni"))
        # Materialized before it is broadcast: a broadcast that has to run
        # the aggregation itself fails after spark.sql.broadcastTimeout
        # (300 s), which a 100M-event pass on a busy machine exceeded.
        items = checkpoint(items.where(F.col("_ni") >= min_item).select(ITEM))
        kept = (
            pairs.withColumn("_nu", users)
            .where(F.col("_nu") >= min_user)
            .drop("_nu")
            .join(F.broadcast(items), ITEM, "left_semi")
        )
        pairs = checkpoint(kept)
        after = int(pairs.agg(F.sum("_n")).first()[0] or 0)
        if after == n or after == 0:
            return pairs, passes, after
        n = after
