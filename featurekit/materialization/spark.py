"""The ``spark`` engine: the window (or the changes) reduced in Spark to the latest row per key,
written by :class:`~featurekit.materialization.writer.OnlineWriter` in Spark's Python workers."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from featurekit.materialization.readback import check_keys, needs_lookup, no_lookup
from featurekit.materialization.spark_window import change_rows, latest_rows, window_frame, write_in_workers
from featurekit.materialization.view import END_MOVED, Target, ViewResult
from featurekit.materialization.window import ADDED, VERSION
from featurekit.online_store import Marker, OnlineStore

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


def spark_view(outcome: ViewResult, target: Target, spark: "SparkSession", writer: Any, *,
               single_writer: bool, batch_rows: int) -> int:
    """Count (and with a ``writer``, write) the window in Spark; fills ``outcome``, returns the
    rows the writers must have been given (one per key)."""
    latest, counts = latest_rows(spark, target.window(outcome.start, outcome.end), f"materialize_{target.name}")
    if writer is None:
        counted = latest.agg({"*": "count"}).collect()
        outcome.keys = int(counted[0][0])
        outcome.rows = int(counts.get.get("rows") or 0) if outcome.keys else 0
    else:
        outcome.written = write_in_workers(spark, latest, writer, single_writer=single_writer, batch_rows=batch_rows)
        observed = counts.get
        outcome.rows, outcome.keys = int(observed.get("rows") or 0), int(observed.get("keys") or 0)
    return outcome.keys


def spark_changes(outcome: ViewResult, target: Target, base: Marker, change_data: bool, state: OnlineStore,
                  layout: Any, spark: "SparkSession", writer: Any, *, single_writer: bool, batch_rows: int) -> int:
    """``--incremental`` in Spark: the change rows (Change Data Feed or version diff) reduced to
    each changed key's newest held row, lookups of the keys that need one (broadcast semi-join),
    rows newer than the marker's end; the latest per key written, then read back by key."""
    from pyspark import StorageLevel
    from pyspark.sql import Window as Over
    from pyspark.sql import functions as F

    keys, ts, columns = list(target.join_keys), target.timestamp, target.columns
    low = outcome.end - target.ttl
    current = window_frame(spark, target.window(low, outcome.end)).select(*columns)
    changes = change_rows(spark, target.window(low, outcome.end), base.delta_version, change_data, current)
    if outcome.method == END_MOVED:
        changes = changes.limit(0)
    is_held = F.col(ADDED) & (F.col(VERSION) == F.max(VERSION).over(Over.partitionBy(*keys, ts)))
    per_key = (changes.withColumn("__fk_held", is_held).groupBy(*keys)
               .agg(F.max_by(F.struct(*target.features, ts), F.when(F.col("__fk_held"), F.col(ts))).alias("__fk_latest"))
               .select(*keys, *(F.col(f"__fk_latest.`{c}`").alias(c) for c in [*target.features, ts]))
               .persist(StorageLevel.MEMORY_AND_DISK))
    try:
        probe = per_key.select(*keys, ts).toArrow()
        outcome.changed = probe.num_rows
        lookup, outcome.replaced_newest = needs_lookup(state, layout, probe, keys, ts) if probe.num_rows \
            else no_lookup(probe, keys)
        held = per_key.where(F.col(ts).isNotNull()).select(*columns)
        if not lookup.num_rows and outcome.end == base.window_end:   # the changes' rows are the latest ones
            expected = probe.filter(probe.column(ts).is_valid())
            outcome.rows = outcome.keys = expected.num_rows
            if outcome.keys:
                outcome.written = write_in_workers(spark, held, writer, single_writer=single_writer,
                                                   batch_rows=batch_rows)
        else:
            expected = _write_latest(outcome, target, spark, writer, current, held, lookup, base, low,
                                     single_writer=single_writer, batch_rows=batch_rows)
    finally:
        per_key.unpersist()
    outcome.online = check_keys(state, layout, expected, keys, ts)
    return outcome.keys


def _write_latest(outcome: ViewResult, target: Target, spark: "SparkSession", writer: Any, current: "DataFrame",
                  held: "DataFrame", lookup: Any, base: Marker, low: datetime, *, single_writer: bool,
                  batch_rows: int) -> Any:
    """Write the latest row per key among the changes' ``held`` rows (but for the keys in
    ``lookup``: theirs in ``current``, found by a broadcast semi-join) and the rows after the
    marker's end; fills ``outcome``; the keys and times written (pyarrow)."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    keys, ts, columns = list(target.join_keys), target.timestamp, target.columns
    union = held
    if lookup.num_rows:
        found = F.broadcast(spark.createDataFrame(lookup))
        union = held.join(found, keys, "left_anti").select(*columns).unionByName(
            current.join(found, keys, "left_semi").select(*columns))
    if outcome.end > base.window_end:
        newer = max(low, base.window_end + timedelta(microseconds=1))
        union = union.unionByName(window_frame(spark, target.window(newer, outcome.end)).select(*columns))
    latest = (union.groupBy(*keys)
              .agg(F.count(F.lit(1)).alias("__fk_rows"), F.max_by(F.struct(*target.features, ts), F.col(ts)).alias("__fk_latest"))
              .select(*keys, "__fk_rows", *(F.col(f"__fk_latest.`{c}`").alias(c) for c in [*target.features, ts]))
              .persist(StorageLevel.MEMORY_AND_DISK))
    try:
        expected = latest.select(*keys, ts, "__fk_rows").toArrow()
        outcome.rows, outcome.keys = int(sum(expected.column("__fk_rows").to_pylist())), expected.num_rows
        if outcome.keys:
            outcome.written = write_in_workers(spark, latest.drop("__fk_rows"), writer, single_writer=single_writer,
                                               batch_rows=batch_rows)
    finally:
        latest.unpersist()
    return expected
