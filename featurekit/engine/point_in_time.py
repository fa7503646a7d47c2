"""The point-in-time join of a spine with feature views, in Spark, without Feast.

For each spine row and each view: the view's latest row of the same join key at or before the
spine row's time, and no older than the view's ttl (0: no limit); else nulls. One output row per
spine row, duplicates included; the spine's columns first (as they were), then the features.

How (``benchmarks/training_set.py`` measures it against the join written by hand, a window
pass per view, and Feast's retrieval):

- The views are grouped by their join keys. For each group, the spine's rows and the group's
  feature rows become one union ordered by (key, time, kind): at one instant, feature rows come
  before spine rows, so an event at the spine's time counts. A running ``last(…, ignorenulls)``
  per view over that order is each spine row's latest row: one shuffle and one sort per group.
  The spine row travels through the union as one struct, so nothing is joined back afterwards
  (a join back on a row id would shuffle the spine a second time), and the next group starts
  from the first's output.
- A view's row travels as a struct of its time and its features, so the row chosen is the
  latest *row* (with its null features, as Feast returns them), not the latest non-null value
  of each feature.
- Several rows of one key at one instant: the one whose features sort last is taken (ties in
  the sort order broken by the values), so the same inputs always give the same set.
- Times compare as microseconds since the epoch. TIMESTAMP_NTZ values and dates are read in
  the session time zone, which the caller makes UTC (``check_time_zone``).
- Feature rows are pruned to the spine's time range before the shuffle (``bounds``), which
  Delta's data skipping turns into fewer files read.

Nothing is collected to the driver: the result is a lazy DataFrame; memory is Spark's
partitions (the window spills past its buffer).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

RESERVED_PREFIX = "__fk_"  # the join's own columns; a spine column may not start so
_SPINE = "__fk_spine"      # the spine row, as one struct
_TIME = "__fk_time"        # the row's time in microseconds since the epoch
_KIND = "__fk_kind"        # 0: a feature row, 1: a spine row (after feature rows at one instant)
_AT = "__fk_at"            # a view row's time, inside its struct
MICROS = 1_000_000


@dataclass(frozen=True)
class JoinView:
    """One feature view as the join reads it."""

    name: str
    frame: "DataFrame"            # the view's rows (its table at the version to read)
    keys: tuple[str, ...]         # join key columns, as the spine names them
    timestamp: str                # the view's event time column
    ttl_seconds: int              # 0: no limit
    features: tuple[str, ...]     # output columns, in order


def micros(column: "Column", kind: str) -> "Column":
    """A timestamp, TIMESTAMP_NTZ or date column as microseconds since the epoch (UTC)."""
    from pyspark.sql import functions as F

    return F.unix_micros(column if kind == "timestamp" else column.cast("timestamp"))


@dataclass(frozen=True)
class SpineCounts:
    rows: int
    timed: int                          # rows with a time (the others get null features)
    bounds: tuple[int, int] | None      # earliest and latest time, microseconds; None if no row is timed


def spine_counts(spine: "DataFrame", timestamp: str) -> SpineCounts:
    """The spine's rows, timed rows and time range: one aggregate, a few numbers to the driver."""
    from pyspark.sql import functions as F

    at = micros(F.col(f"`{timestamp}`"), dict(spine.dtypes)[timestamp])
    row = spine.agg(F.count(F.lit(1)), F.count(at), F.min(at), F.max(at)).collect()[0]
    return SpineCounts(int(row[0]), int(row[1]), None if row[2] is None else (int(row[2]), int(row[3])))


def point_in_time(spine: "DataFrame", timestamp: str, views: list[JoinView],
                  bounds: tuple[int, int] | None = None) -> "DataFrame":
    """``spine`` with the features of ``views`` as of each row's ``timestamp`` (see the module doc).

    ``bounds`` are the spine's earliest and latest times in microseconds (:func:`spine_counts`),
    if known: feature rows later than the latest, or older than the earliest minus the view's
    ttl, cannot be chosen and are not read.
    """
    from pyspark.sql import functions as F

    columns = list(spine.columns)
    frame = spine
    for group in _groups(views):
        frame = _join_group(frame, timestamp, group, bounds)
    return frame.select(*(F.col(f"`{c}`") for c in columns),
                        *(F.col(f"`{f}`") for view in views for f in view.features))


def _groups(views: list[JoinView]) -> list[list[JoinView]]:
    """The views with the same join keys together, in the order first seen."""
    groups: dict[tuple[str, ...], list[JoinView]] = {}
    for view in views:
        groups.setdefault(view.keys, []).append(view)
    return list(groups.values())


def _join_group(spine: "DataFrame", timestamp: str, views: list[JoinView],
                bounds: tuple[int, int] | None) -> "DataFrame":
    """``spine`` with the features of ``views``, which share their join keys."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    keys = views[0].keys
    types = dict(spine.dtypes)
    spine_side = spine.select(*(F.col(f"`{k}`") for k in keys),
                              micros(F.col(f"`{timestamp}`"), types[timestamp]).alias(_TIME),
                              F.lit(1).alias(_KIND),
                              F.struct(*(F.col(f"`{c}`") for c in spine.columns)).alias(_SPINE))
    union = spine_side
    tags = [f"__fk_view{i}" for i in range(len(views))]
    for tag, view in zip(tags, views):
        union = union.unionByName(_feature_side(view, tag, types, bounds), allowMissingColumns=True)
    ordered = Window.partitionBy(*(F.col(f"`{k}`") for k in keys)).orderBy(
        F.col(_TIME).asc_nulls_first(), F.col(_KIND), *(F.col(t) for t in tags))
    running = ordered.rowsBetween(Window.unboundedPreceding, Window.currentRow)
    latest = union.select(F.col(_SPINE), F.col(_TIME), F.col(_KIND),
                          *(F.last(F.col(t), ignorenulls=True).over(running).alias(t) for t in tags))
    out = [F.col(_SPINE).getField(c).alias(c) for c in spine.columns]
    for tag, view in zip(tags, views):
        found = F.col(_TIME).isNotNull() & F.col(tag).isNotNull()
        if view.ttl_seconds > 0:
            found = found & (F.col(tag).getField(_AT) >= F.col(_TIME) - F.lit(view.ttl_seconds * MICROS))
        out += [F.when(found, F.col(tag).getField(f)).alias(f) for f in view.features]
    return latest.where(F.col(_KIND) == 1).select(*out)


def _feature_side(view: JoinView, tag: str, spine_types: dict[str, str],
                  bounds: tuple[int, int] | None) -> "DataFrame":
    """The rows of ``view`` that a spine row can choose: keys typed as the spine's, the time in
    microseconds, the row as one struct tagged ``tag``."""
    from pyspark.sql import functions as F

    types = dict(view.frame.dtypes)
    at = micros(F.col(f"`{view.timestamp}`"), types[view.timestamp])
    rows = view.frame.where(F.col(f"`{view.timestamp}`").isNotNull())
    for key in view.keys:
        rows = rows.where(F.col(f"`{key}`").isNotNull())
    if bounds is not None:
        earliest, latest = (F.lit(b) for b in bounds)
        rows = rows.where(at <= latest)
        if view.ttl_seconds > 0:
            rows = rows.where(at >= earliest - F.lit(view.ttl_seconds * MICROS))
    return rows.select(*(F.col(f"`{k}`").cast(spine_types[k]).alias(k) for k in view.keys),
                       at.alias(_TIME), F.lit(0).alias(_KIND),
                       F.struct(at.alias(_AT), *(F.col(f"`{f}`") for f in view.features)).alias(tag))
