"""A Delta table's rows within a time window, in Spark: what ``featurekit materialize`` reads with
the ``spark`` engine, the twin of ``window.py`` (delta-rs, the ``arrow`` engine).

The window is a pinned table version's rows with ``start <= timestamp <= end`` and every key
set (:class:`~featurekit.materialization.window.Window`); the latest row per key is found with one
``max_by`` per key, counted on the way; the rows go to a writer running in Spark's Python
workers (``mapInArrow``), one Arrow batch at a time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from featurekit.materialization.window import ADDED, VERSION, Window

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


def window_frame(spark: "SparkSession", window: Window, version: int | None = None) -> "DataFrame":
    """The rows of the window's table version (or ``version``) within the window, every key set."""
    frame = spark.read.format("delta").option("versionAsOf", window.version if version is None else version) \
        .load(window.path)
    return in_window(frame, window)


def in_window(frame: "DataFrame", window: Window) -> "DataFrame":
    from pyspark.sql import functions as F

    return (frame.where(F.col(window.timestamp).between(F.lit(window.start), F.lit(window.end)))
            .where(" AND ".join(f"`{k}` IS NOT NULL" for k in window.keys)))


def change_rows(spark: "SparkSession", window: Window, since: int, change_data: bool,
                current: "DataFrame") -> "DataFrame":
    """The window's rows changed after version ``since``, with ``ADDED`` and ``VERSION`` (see
    :func:`featurekit.materialization.window.window_changes`, the same for delta-rs); ``current`` is the
    window's frame, with the columns wanted."""
    from pyspark.sql import functions as F

    columns = current.columns
    if change_data and window.version > since:
        feed = (spark.read.format("delta").option("readChangeFeed", "true").option("startingVersion", since + 1)
                .option("endingVersion", window.version).load(window.path))
        return (in_window(feed, window)
                .select(*columns, F.col("_change_type").isin("insert", "update_postimage").alias(ADDED),
                        F.col("_commit_version").cast("long").alias(VERSION)))
    old = window_frame(spark, window, since).select(*columns)
    version = F.lit(window.version).cast("long").alias(VERSION)
    return (current.exceptAll(old).select(*columns, F.lit(True).alias(ADDED), version)
            .unionByName(old.exceptAll(current).select(*columns, F.lit(False).alias(ADDED), version)))


def latest_rows(spark: "SparkSession", window: Window, name: str) -> tuple["DataFrame", Any]:
    """The latest row per key of the window, and an ``Observation`` (``name``) counting the
    window's ``rows`` and ``keys`` once the frame has run."""
    from pyspark.sql import Observation
    from pyspark.sql import functions as F

    keys = list(window.keys)
    columns = [c for c in window.columns if c not in keys]
    latest = (window_frame(spark, window).groupBy(*keys)
              .agg(F.count(F.lit(1)).alias("__fk_rows"),
                   F.max_by(F.struct(*columns), F.col(window.timestamp)).alias("__fk_latest"))
              .select(*keys, "__fk_rows", *(F.col(f"__fk_latest.`{c}`").alias(c) for c in columns)))
    counts = Observation(name)
    latest = latest.observe(counts, F.count(F.lit(1)).alias("keys"), F.sum("__fk_rows").alias("rows"))
    return latest.drop("__fk_rows"), counts


def write_in_workers(spark: "SparkSession", frame: "DataFrame", writer: Any, *, single_writer: bool,
                     batch_rows: int) -> int:
    """Run ``writer`` (a ``mapInArrow`` function yielding ``written``/``batches`` per task) over
    ``frame`` in Spark's Python workers, ``batch_rows`` rows per Arrow batch (one task when
    ``single_writer``); the number of rows they wrote."""
    from pyspark.sql import functions as F

    key = "spark.sql.execution.arrow.maxRecordsPerBatch"
    before = spark.conf.get(key, None)
    spark.conf.set(key, str(batch_rows))
    try:
        frame = frame.coalesce(1) if single_writer else frame
        totals = frame.mapInArrow(writer, "written long, batches long").agg(F.sum("written")).collect()
    finally:
        if before is None:
            spark.conf.unset(key)
        else:
            spark.conf.set(key, before)
    return int(totals[0][0] or 0)
