"""``--incremental``: where a view continues from (the store's marker, if it still describes the
store's content) and the changes since, written with either engine."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Callable

from featurekit.errors import arg
from featurekit.materialization.arrow import arrow_changes
from featurekit.materialization.spark import spark_changes
from featurekit.materialization.view import CHANGE_FEED, END_MOVED, UNCHANGED, VERSION_DIFF, Target, ViewResult
from featurekit.materialization.window import TableInfo, VersionGone, table_info
from featurekit.online_store import KeyCount, Marker, OnlineStore

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


@dataclass(frozen=True)
class Base:
    """Where ``--incremental`` continues from: the store's marker, and whether the table has
    recorded its changes since (Change Data Feed on at the marker's version and now)."""

    marker: Marker
    change_data: bool


def base(target: Target, state: OnlineStore, layout: Any, table: TableInfo, end: datetime,
         warnings: list[str]) -> Base | None:
    """Where ``--incremental`` continues from for ``target``, or None: the whole window (where
    the store had a marker, a warning says why it cannot continue from it)."""
    marker = state.marker(target.name)
    if marker is None:
        return None
    why = ("the online store has no featurekit key layout to read keys back with" if layout is None
           else "the job's spec changed since" if marker.fingerprint != target.fingerprint
           else f"the table at {target.path} was made again since" if marker.table_id != table.id
           else f"the table is at version {target.version}, before the one the store holds ({marker.delta_version})"
           if target.version < marker.delta_version
           else f"{arg('end')} is before the end the store holds ({marker.window_end.isoformat()})"
           if end < marker.window_end else "")
    since = table
    if not why and marker.delta_version != target.version:
        try:
            since = table_info(target.path, marker.delta_version, target.storage_options)
        except VersionGone as exc:
            why = str(exc)
    if why:
        warnings.append(f"feature view {target.name}: the whole window is materialized, not the changes: {why}")
        return None
    return Base(marker, table.change_data and since.change_data)


def changed_view(outcome: ViewResult, target: Target, start: Base, state: OnlineStore, layout: Any, *,
                 engine: str, spark: "SparkSession | None", writer: Callable[..., Any], single_writer: bool,
                 batch_rows: int, warnings: list[str]) -> int:
    """``--incremental`` from ``start``: fills ``outcome`` (the keys written verified by key)
    and returns the rows the writers must have been given (one per key). ``writer(replace_until=ns)``:
    the Spark engine's writer, replacing stored values with event times up to ``ns``."""
    marker, change_data = start.marker, start.change_data
    outcome.delta_version_from = marker.delta_version + 1
    if target.version == marker.delta_version and outcome.end == marker.window_end:
        outcome.method, outcome.online = UNCHANGED, KeyCount(0, 0, 0)
        return 0
    outcome.method = END_MOVED if target.version == marker.delta_version else CHANGE_FEED if change_data else VERSION_DIFF
    if outcome.method == VERSION_DIFF:
        warnings.append(
            f"feature view {target.name}: {target.path} does not record its changes (delta.enableChangeDataFeed) for "
            f"versions {marker.delta_version + 1}..{target.version}: the changed keys come from comparing both versions' "
            "windows, which reads them whole (set the property on the table to make this follow the changes)")
    until = (outcome.end - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1) * 1000
    if engine == "arrow":
        return arrow_changes(outcome, target, marker, change_data, state, layout, replace_until=until,
                             batch_rows=batch_rows)
    assert spark is not None
    return spark_changes(outcome, target, marker, change_data, state, layout, spark, writer(replace_until=until),
                         single_writer=single_writer, batch_rows=batch_rows)
