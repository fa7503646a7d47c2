"""Materialization that can be trusted: Delta table version -> online store, then verified.

For each online feature view:

1. the window: ``--start/--end``, or incremental (from the end of the view's last
   materialization in Feast's registry, or ``end - ttl`` the first time);
2. the view's Delta table is read at one pinned version (recorded) and reduced in Spark to the
   latest row per entity key within the window, counting rows and keys on the way;
3. Spark's Python workers write those rows in Arrow batches through Feast's own online store
   classes (Feast's key layout and encoding; memory bounded by one batch per task);

   or, with the ``arrow`` engine (``feast.materialize_engine`` / ``--engine``), no JVM: delta-rs
   counts the window's rows and keys, then streams its rows, unsorted, to featurekit's Redis
   writer in this process; the writer keeps the newer value per key (against what Redis holds,
   and within a batch), so the store ends with the latest row per key as with Spark's
   reduction. Memory holds a few batches and the key count's set of keys; a plain Redis only
   (SQLite's upsert would let an older row win);
4. the online store is read back directly (SQLite query / Redis SCAN): the keys holding a value
   from the window must equal the distinct keys of the window, else the run fails (exit 3)
   with the numbers and the registry is not advanced;
5. the window is recorded in Feast's registry (so plain ``feast materialize-incremental``
   continues from it) and the feature set goes to the lineage store; the online store keeps a
   :class:`~featurekit.online_store.Marker` of the Delta version and window end it now holds
   (written only after the verification; removed by a window that does not cover the view's
   whole ttl, which leaves older keys as they were).

A run killed part-way (SIGKILL) leaves nothing that claims a window it did not write whole:
the registry's window and the marker are recorded only after the verification, and a whole
window, or changes found by a version diff, first removes the view's marker, so the next
``--incremental`` writes the whole window again. Changes read from the Change Data Feed keep
the marker: what they write is each changed key's latest row, never older than the marker's
content, and the next run, from the same marker, finds the same keys changed and writes them again.

``--incremental`` continues from that marker, so its cost follows the changed keys, not the table:

- the keys changed between the marker's version and the current one, among rows within
  ``[end - ttl, end]``: from the table's Change Data Feed (featurekit's tables record it), or
  where the table does not record it, from a diff of the two versions' windows (correct, not
  proportional: a warning says so);
- per changed key, its newest row still held among the changes' rows; a key whose newest row
  may be an untouched one (none of its changed rows is left, or the store holds a newer value
  than that row: its newest row was removed or an older one changed) is looked up in the
  table, those keys only (a broadcast semi-join, or a delta-rs filter);
- with the rows newer than the marker's end (the window moved: rows of keys that did not
  change), the latest row per key is written, replacing what the store holds from within the
  window (an update at the same event time, or an older row after the newest was deleted,
  must replace the stored value: :class:`~featurekit.online_store.redis.ReplacingRedisWriter`);
- those keys only are read back (Feast's key layout, as the writers) and each must hold a
  value at least as new as its row; then the marker, Feast's registry and lineage (with the
  version range) advance. Nothing new since the marker (same version, same end): nothing is
  written or recorded.

No marker, or one that no longer describes the store's content (another job spec, another
table at the path, an earlier version or end, a version the table's log no longer has, a store
without featurekit's key layout): the whole window ``[end - ttl, end]``, as the first time. A
key whose rows all left the window keeps its stored value, as with a whole window. The changes
are read from files Delta keeps for its retention period: a table vacuumed past the marker's
version fails the run (nothing written); a whole window (``--start``/``--end``) sets a new marker.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from featurekit.config import Project, Settings
from featurekit.errors import ConfigError, DataError, UsageError, arg
from featurekit.feast import store as feast_store
from featurekit.feast.catalog import refresh_catalog, view_layout
from featurekit.feast.definitions import ViewSpec, view_specs
from featurekit.feast.online import OnlineWriter
from featurekit.lineage import FeatureSetRecord, LineageStore
from featurekit.online_store import KeyCount, Marker, OnlineStore, open_online_store
from featurekit.pipeline.core import new_run_id, session
from featurekit.pipeline.features import feast_session_conf
from featurekit.pipeline.lineage import lineage_store, lineage_warning
from featurekit.pipeline.phases import reached
from featurekit.sinks.spark_window import change_rows, latest_rows, window_frame, write_in_workers
from featurekit.sinks.window import ADDED, VERSION, TableInfo, VersionGone, Window, latest_per_key, newest_present, \
    stack_rows, table_info, window_batches, window_changes, window_counts, window_rows

# how a view's keys were found: its whole window, or from the store's marker on: the changes (from
# the Change Data Feed, or a diff of two versions), rows after its end alone (no new version), nothing
WINDOW, CHANGE_FEED, VERSION_DIFF, END_MOVED, UNCHANGED = "window", "change feed", "version diff", "end moved", "unchanged"
from featurekit.yamlconf.names import did_you_mean

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


@dataclass
class ViewResult:
    view: str
    delta_path: str
    delta_version: int
    start: datetime
    end: datetime
    rows: int = 0             # rows of the table version in the window
    keys: int = 0             # distinct entity keys among them
    written: int = 0          # rows given to the writers (spark: one per key; arrow: all of the window's)
    online: KeyCount | None = None
    seconds: float = 0.0
    lineage: str = ""
    method: str = WINDOW      # or, with --incremental and a marker: CHANGE_FEED, VERSION_DIFF, END_MOVED, UNCHANGED
    delta_version_from: int | None = None   # incremental: the changes of versions from..delta_version
    changed: int = 0          # incremental: keys with changed rows within [end - ttl, end]

    @property
    def verified(self) -> bool:
        """Every key of the window holds a value at least as new as the window's in the store
        (incremental: every key written, read back by key)."""
        if self.online is None:
            return False
        return self.online.in_window <= self.keys <= self.online.in_window + self.online.newer


@dataclass
class MaterializeResult:
    run_id: str
    env: str
    online_store: str
    verify_only: bool
    engine: str = "spark"
    views: list[ViewResult] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)   # e.g. lineage waiting in the outbox


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _aware(ts: datetime) -> datetime:
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def select_views(project: Project, settings: Settings, names: list[str] | None) -> list[ViewSpec]:
    """The online views to materialize (all of them by default)."""
    views = view_specs(project, settings)
    online = {v.name: v for v in views if v.online}
    if not names:
        return list(online.values())
    problems = []
    for name in names:
        if name not in online:
            offline = any(v.name == name for v in views)
            reason = ("is declared with `online: false`" if offline
                      else "is not a feature view" + did_you_mean(name, online))
            problems.append(f"{name!r} {reason} (online views: {', '.join(online) or 'none'})")
    if problems:
        raise ConfigError.single("; ".join(problems), file=arg("views"), field="views")
    return [online[n] for n in names]


def materialize(project: Project, settings: Settings, *, views: list[str] | None = None,
                start: datetime | None = None, end: datetime | None = None, incremental: bool = False,
                verify_only: bool = False, spark: "SparkSession | None" = None,
                lineage: LineageStore | None = None, engine: str | None = None) -> MaterializeResult:
    """Materialize (or with ``verify_only`` only check) the online views; see the module doc.
    ``engine``: ``spark`` or ``arrow`` (default: the env's ``feast.materialize_engine``)."""
    if not incremental and start is None:
        raise UsageError("start", f"give {arg('start')} and {arg('end')}, or {arg('incremental')}", where="materialize")
    end = _aware(end) if end else _now()
    if start is not None and _aware(start) >= end:
        raise UsageError("start", f"{arg('start')} {start.isoformat()} is not before {arg('end')} {end.isoformat()}",
                         where="materialize")
    chosen = select_views(project, settings, views)
    conf = feast_session_conf(settings)
    store = feast_store.open_store(project, settings, conf)
    store_config = feast_store.store_config(project, settings, conf)
    repo_path = str(feast_store.repo_dir(settings))
    registered = {v.name: v for v in store.list_feature_views()}
    _check_applied(chosen, registered, settings)
    state = open_online_store(store_config, repo_path)
    engine = engine or settings.feast.materialize_engine
    layouts = {v.name: state.writer_layout(view_layout(registered[v.name])) for v in chosen}
    if engine == "arrow":
        _arrow_supported(state, layouts)
    elif engine == "spark":
        spark = spark or session(settings, "featurekit:materialize")
    else:
        raise ConfigError.single(f"unknown materialize engine {engine!r} (spark, arrow)", file="materialize", field="engine")
    lineage = lineage or lineage_store(project, settings)
    result = MaterializeResult(new_run_id(), settings.env, state.kind, verify_only, engine)
    for view in chosen:
        fv = registered[view.name]
        began = time.perf_counter()
        table = None if verify_only else table_info(view.path, view.version, settings.storage_options or None)
        base = _base(view, state, layouts[view.name], table, end, settings, result.warnings) \
            if incremental and start is None and table is not None else None
        if start is not None:
            window_start = _aware(start)
        elif verify_only:
            window_start = _incremental_start(fv, view, end)
        else:   # a marker's end, or the whole window (never the registry's end: the store may have lost it)
            window_start = base.marker.window_end if base else end - _ttl(view)
        outcome = ViewResult(view.name, view.path, view.version, window_start, end)
        result.views.append(outcome)
        if not verify_only and (base is None or not base.change_data and view.version != base.marker.delta_version):
            # a whole window, or a version diff: the store's values change from here on in ways
            # the marker does not describe, so none may describe them until they are verified
            state.set_marker(view.name, None)
        reached("materialize write")
        if base is not None:
            expected = _changed_view(outcome, view, base, state, layouts[view.name], settings, result,
                                     spark=spark, store_config=store_config, repo_path=repo_path,
                                     view_proto=fv.to_proto().SerializeToString())
        elif engine == "arrow":
            expected = _arrow_view(outcome, view, settings, state, layouts[view.name], verify_only)
        else:
            assert spark is not None
            writer = None if verify_only else OnlineWriter(store_config, repo_path, fv.to_proto().SerializeToString(),
                                                           layouts[view.name])
            expected = _spark_view(outcome, view, spark, writer, single_writer=state.single_writer,
                                   batch_rows=settings.feast.write_batch_rows)
        reached("materialize verify")
        if base is None:
            outcome.online = state.count_keys(view.name, window_start, end)
        outcome.seconds = round(time.perf_counter() - began, 3)
        if not verify_only and outcome.written != expected:
            unit = "rows in the window" if engine == "arrow" and base is None else "keys"
            raise _failed(result, outcome, f"the writers were given {outcome.written:,} rows for {expected:,} {unit}")
        if not outcome.verified:
            raise _failed(result, outcome, "the online store does not hold every key written"
                          if base is not None else "the online store does not hold every key of the window")
        if not verify_only and outcome.method != UNCHANGED:
            assert table is not None
            reached("materialize registry")
            store.registry.apply_materialization(fv, store.project, window_start, end)
            whole = base is not None or window_start <= end - _ttl(view)
            reached("materialize marker")
            state.set_marker(view.name, Marker(view.version, end, table.id, view.job.fingerprint) if whole else None)
            outcome.lineage = lineage.record_feature_set(_record(result, view, outcome, store.project))
            result.warnings += lineage_warning(f"feature view {view.name}", outcome.lineage)
    if not verify_only:   # the registry file changed: serving's catalog follows it
        refresh_catalog(project, settings, store_config, repo_path, store)
    return result


def _window(view: ViewSpec, start: datetime, end: datetime, settings: Settings | None = None) -> Window:
    """The rows of ``view``'s pinned table version within ``[start, end]`` (``settings``: its
    storage options, for delta-rs)."""
    return Window(view.path, view.version, list(view.join_keys), view.timestamp,
                  [*view.join_keys, *view.features, view.timestamp], start, end,
                  (settings.storage_options or None) if settings is not None else None)


def _ttl(view: ViewSpec) -> timedelta:
    """The span of a view's whole window: its ttl (a year without one)."""
    return timedelta(seconds=view.ttl_seconds) if view.ttl_seconds else timedelta(weeks=52)


@dataclass(frozen=True)
class _Base:
    """Where ``--incremental`` continues from: the store's marker, and whether the table has
    recorded its changes since (Change Data Feed on at the marker's version and now)."""

    marker: Marker
    change_data: bool


def _base(view: ViewSpec, state: OnlineStore, layout: Any, table: TableInfo, end: datetime, settings: Settings,
          warnings: list[str]) -> _Base | None:
    """Where ``--incremental`` continues from for ``view``, or None: the whole window (where the
    store had a marker, a warning says why it cannot continue from it)."""
    marker = state.marker(view.name)
    if marker is None:
        return None
    why = ("the online store has no featurekit key layout to read keys back with" if layout is None
           else "the job's spec changed since" if marker.fingerprint != view.job.fingerprint
           else f"the table at {view.path} was made again since" if marker.table_id != table.id
           else f"the table is at version {view.version}, before the one the store holds ({marker.delta_version})"
           if view.version < marker.delta_version
           else f"{arg('end')} is before the end the store holds ({marker.window_end.isoformat()})"
           if end < marker.window_end else "")
    since = table
    if not why and marker.delta_version != view.version:
        try:
            since = table_info(view.path, marker.delta_version, settings.storage_options or None)
        except VersionGone as exc:
            why = str(exc)
    if why:
        warnings.append(f"feature view {view.name}: the whole window is materialized, not the changes: {why}")
        return None
    return _Base(marker, table.change_data and since.change_data)


def _changed_view(outcome: ViewResult, view: ViewSpec, start: _Base, state: OnlineStore, layout: Any,
                  settings: Settings, result: MaterializeResult, *, spark: "SparkSession | None",
                  store_config: dict[str, Any], repo_path: str, view_proto: bytes) -> int:
    """``--incremental`` from ``start`` (see the module doc): fills ``outcome`` (the keys written
    verified by key) and returns the rows the writers must have been given (one per key)."""
    base, change_data = start.marker, start.change_data
    outcome.delta_version_from = base.delta_version + 1
    if view.version == base.delta_version and outcome.end == base.window_end:
        outcome.method, outcome.online = UNCHANGED, KeyCount(0, 0, 0)
        return 0
    outcome.method = END_MOVED if view.version == base.delta_version else CHANGE_FEED if change_data else VERSION_DIFF
    if outcome.method == VERSION_DIFF:
        result.warnings.append(
            f"feature view {view.name}: {view.path} does not record its changes (delta.enableChangeDataFeed) for "
            f"versions {base.delta_version + 1}..{view.version}: the changed keys come from comparing both versions' "
            "windows, which reads them whole (set the property on the table to make this follow the changes)")
    until = (outcome.end - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1) * 1000
    if result.engine == "arrow":
        expected = _arrow_changes(outcome, view, base, change_data, state, layout, settings, until)
    else:
        assert spark is not None
        writer = OnlineWriter(store_config, repo_path, view_proto, layout, replace_until=until)
        expected = _spark_changes(outcome, view, base, change_data, state, layout, spark, writer,
                                  single_writer=state.single_writer, batch_rows=settings.feast.write_batch_rows)
    return expected


def _needs_lookup(state: OnlineStore, layout: Any, probe: Any, keys: list[str], timestamp: str) -> Any:
    """The changed keys (``probe``: keys and the newest held changed row's time, null if none)
    whose latest row may be an untouched one: no held changed row, or the store holds a newer
    value than that row (at the store's time resolution); a pyarrow Table of their keys."""
    import pyarrow as pa

    stored = state.stored_times(layout, probe.select(keys))
    candidates = _nanos(probe.column(timestamp))
    step = state.precision_ns
    need = [c is None or (s is not None and s > c - c % step) for s, c in zip(stored, candidates)]
    return probe.select(keys).filter(pa.array(need, pa.bool_()))


def _check_keys(state: OnlineStore, layout: Any, expected: Any, keys: list[str], timestamp: str) -> KeyCount:
    """Read back the keys written: (keys present, holding the row's time, holding a newer one)."""
    stored = state.stored_times(layout, expected.select(keys))
    step = state.precision_ns
    wanted = [None if c is None else c - c % step for c in _nanos(expected.column(timestamp))]
    present = sum(s is not None for s in stored)
    same = sum(s is not None and w is not None and s == w for s, w in zip(stored, wanted))
    newer = sum(s is not None and w is not None and s > w for s, w in zip(stored, wanted))
    return KeyCount(present, same, newer)


def _nanos(column: Any) -> list[int | None]:
    """A pyarrow timestamp column as epoch nanoseconds."""
    import pyarrow as pa

    return column.cast(pa.timestamp("ns", tz="UTC")).cast(pa.int64()).to_pylist()


def _arrow_changes(outcome: ViewResult, view: ViewSpec, base: Marker, change_data: bool, state: OnlineStore,
                   layout: Any, settings: Settings, until: int) -> int:
    """``--incremental`` with delta-rs, in memory that follows the changed rows: the changes'
    newest held rows, lookups, rows newer than the marker's end; the latest per key replaces
    the store's value."""
    import pyarrow as pa

    keys, ts = list(view.join_keys), view.timestamp
    window = _window(view, outcome.end - _ttl(view), outcome.end, settings)
    parts = []
    if outcome.method != END_MOVED:
        per_key = newest_present(window_changes(window, base.delta_version, change_data), keys, ts)
        outcome.changed = per_key.num_rows
        lookup = _needs_lookup(state, layout, per_key, keys, ts) if per_key.num_rows else per_key.select(keys)
        held = per_key.filter(per_key.column(ts).is_valid())
        if lookup.num_rows:
            held = held.filter(pa.array(_not_in(held, lookup, keys), pa.bool_()))
            parts.append(window_rows(window, lookup))
        parts.append(held)
    if outcome.end > base.window_end:
        newer = max(window.start, base.window_end + timedelta(microseconds=1))
        parts.append(window_rows(replace(window, start=newer)))
    rows = stack_rows([part.select(window.columns) for part in parts])
    latest = latest_per_key(rows, keys, ts)
    outcome.rows, outcome.keys = rows.num_rows, latest.num_rows
    write = state.batch_writer(layout, replace_until=until)
    assert write is not None   # the arrow engine runs on stores with featurekit's writer only
    for batch in latest.to_batches(max_chunksize=settings.feast.write_batch_rows):
        write(batch)
        outcome.written += batch.num_rows
    outcome.online = _check_keys(state, layout, latest, keys, ts)
    return outcome.keys


def _not_in(rows: Any, keys_table: Any, keys: list[str]) -> list[bool]:
    """Per row of ``rows``, whether its key is not among ``keys_table``'s."""
    drop = set(zip(*(keys_table.column(k).to_pylist() for k in keys)))
    return [key not in drop for key in zip(*(rows.column(k).to_pylist() for k in keys))]


def _spark_changes(outcome: ViewResult, view: ViewSpec, base: Marker, change_data: bool, state: OnlineStore,
                   layout: Any, spark: "SparkSession", writer: OnlineWriter, *, single_writer: bool,
                   batch_rows: int) -> int:
    """``--incremental`` in Spark: the change rows (Change Data Feed or version diff) reduced to
    each changed key's newest held row, lookups of the keys that need one (broadcast semi-join),
    rows newer than the marker's end; the latest per key written, then read back by key."""
    from pyspark import StorageLevel
    from pyspark.sql import Window as Over
    from pyspark.sql import functions as F

    keys, ts = list(view.join_keys), view.timestamp
    columns = [*keys, *view.features, ts]
    low = outcome.end - _ttl(view)
    window = _window(view, low, outcome.end)
    current = window_frame(spark, window).select(*columns)
    changes = change_rows(spark, window, base.delta_version, change_data, current)
    if outcome.method == END_MOVED:
        changes = changes.limit(0)
    held = F.col(ADDED) & (F.col(VERSION) == F.max(VERSION).over(Over.partitionBy(*keys, ts)))
    per_key = (changes.withColumn("__fk_held", held).groupBy(*keys)
               .agg(F.max_by(F.struct(*view.features, ts), F.when(F.col("__fk_held"), F.col(ts))).alias("__fk_latest"))
               .select(*keys, *(F.col(f"__fk_latest.`{c}`").alias(c) for c in [*view.features, ts]))
               .persist(StorageLevel.MEMORY_AND_DISK))
    try:
        probe = per_key.select(*keys, ts).toArrow()
        outcome.changed = probe.num_rows
        lookup = _needs_lookup(state, layout, probe, keys, ts) if probe.num_rows else probe.select(keys)
        held = per_key.where(F.col(ts).isNotNull()).select(*columns)
        if not lookup.num_rows and outcome.end == base.window_end:   # the changes' rows are the latest ones
            expected = probe.filter(probe.column(ts).is_valid())
            outcome.rows = outcome.keys = expected.num_rows
            if outcome.keys:
                outcome.written = write_in_workers(spark, held, writer, single_writer=single_writer,
                                                   batch_rows=batch_rows)
        else:
            expected = _write_latest(outcome, view, spark, writer, current, held, lookup, base, low,
                                     single_writer=single_writer, batch_rows=batch_rows)
    finally:
        per_key.unpersist()
    outcome.online = _check_keys(state, layout, expected, keys, ts)
    return outcome.keys


def _write_latest(outcome: ViewResult, view: ViewSpec, spark: "SparkSession", writer: OnlineWriter,
                  current: "DataFrame", held: "DataFrame", lookup: Any, base: Marker, low: datetime, *,
                  single_writer: bool, batch_rows: int) -> Any:
    """Write the latest row per key among the changes' ``held`` rows (but for the keys in
    ``lookup``: theirs in ``current``, found by a broadcast semi-join) and the rows after the
    marker's end; fills ``outcome``; the keys and times written (pyarrow)."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    keys, ts = list(view.join_keys), view.timestamp
    columns = [*keys, *view.features, ts]
    union = held
    if lookup.num_rows:
        found = F.broadcast(spark.createDataFrame(lookup))
        union = held.join(found, keys, "left_anti").select(*columns).unionByName(
            current.join(found, keys, "left_semi").select(*columns))
    if outcome.end > base.window_end:
        newer = max(low, base.window_end + timedelta(microseconds=1))
        union = union.unionByName(window_frame(spark, _window(view, newer, outcome.end)).select(*columns))
    latest = (union.groupBy(*keys)
              .agg(F.count(F.lit(1)).alias("__fk_rows"), F.max_by(F.struct(*view.features, ts), F.col(ts)).alias("__fk_latest"))
              .select(*keys, "__fk_rows", *(F.col(f"__fk_latest.`{c}`").alias(c) for c in [*view.features, ts]))
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


def _spark_view(outcome: ViewResult, view: ViewSpec, spark: "SparkSession", writer: OnlineWriter | None, *,
                single_writer: bool, batch_rows: int) -> int:
    """Count (and with a ``writer``, write) the window in Spark; fills ``outcome``, returns the
    rows the writers must have been given (one per key)."""
    latest, counts = latest_rows(spark, _window(view, outcome.start, outcome.end), f"materialize_{view.name}")
    if writer is None:
        counted = latest.agg({"*": "count"}).collect()
        outcome.keys = int(counted[0][0])
        outcome.rows = int(counts.get.get("rows") or 0) if outcome.keys else 0
    else:
        outcome.written = write_in_workers(spark, latest, writer, single_writer=single_writer, batch_rows=batch_rows)
        observed = counts.get
        outcome.rows, outcome.keys = int(observed.get("rows") or 0), int(observed.get("keys") or 0)
    return outcome.keys


def _arrow_view(outcome: ViewResult, view: ViewSpec, settings: Settings, state: OnlineStore, layout: Any,
                verify_only: bool) -> int:
    """Count (and unless ``verify_only``, stream into Redis) the window with delta-rs; fills
    ``outcome``, returns the rows the writer must have been given (every row of the window)."""
    window = _window(view, outcome.start, outcome.end, settings)
    outcome.rows, outcome.keys = window_counts(window)
    if not verify_only:
        outcome.written = _write_arrow(window, state, layout, settings.feast.write_batch_rows)
    return outcome.rows


def _arrow_supported(state: OnlineStore, layouts: dict[str, Any]) -> None:
    """The arrow engine streams unsorted rows: only a writer of featurekit's that keeps the
    newer value per key makes the store end with each key's latest row."""
    if not state.keeps_newer or any(layout is None for layout in layouts.values()):
        raise ConfigError.single(
            f"materialize engine 'arrow' writes a plain Redis online store only (this env's is {state.kind}): it streams "
            "the window's rows unsorted and relies on the writer keeping each key's newer value; use engine 'spark'",
            file="materialize", field="engine")


def _write_arrow(window: Window, state: OnlineStore, layout: Any, batch_rows: int) -> int:
    """Stream the window's rows into the store in this process; the rows given to the writer."""
    write = state.batch_writer(layout)
    assert write is not None   # checked by _arrow_supported
    given = 0
    for batch in window_batches(window, batch_rows):
        write(batch)
        given += batch.num_rows
    return given


def _check_applied(chosen: list[ViewSpec], registered: dict[str, Any], settings: Settings) -> None:
    """The registry must hold each view as the jobs declare it now (else: apply first)."""
    stale = []
    for view in chosen:
        fv = registered.get(view.name)
        declared = {**view.join_keys, **view.features}
        held = {f.name: str(f.dtype) for f in fv.schema} if fv is not None else {}
        if fv is None or set(held) != set(declared) or fv.tags.get("featurekit.fingerprint") != view.job.fingerprint:
            stale.append(view.name)
    if stale:
        raise ConfigError.single(
            f"Feast's registry does not hold the current definition of {', '.join(stale)}: "
            f"run `featurekit feast apply --env {settings.env}` first", file="feature_repo", field="registry")


def _incremental_start(fv: Any, view: ViewSpec, end: datetime) -> datetime:
    """``--verify-only --incremental``: the window from the registry's last end (else end - ttl)."""
    last = fv.most_recent_end_time
    if last is not None:
        return _aware(last)
    return end - _ttl(view)


def _failed(result: MaterializeResult, outcome: ViewResult, why: str) -> DataError:
    online = outcome.online or KeyCount(0, 0, 0)
    if outcome.method in (CHANGE_FEED, VERSION_DIFF):
        details = [
            f"view {outcome.view}: Delta {outcome.delta_path} versions {outcome.delta_version_from}..{outcome.delta_version} "
            f"({outcome.method}), window end {outcome.end.isoformat()}",
            f"expected {outcome.keys:,} keys ({outcome.changed:,} changed); written {outcome.written:,}; read back from "
            f"the online store ({result.online_store}): {online.present:,} present, {online.in_window:,} with the row "
            f"written, {online.newer:,} newer",
        ]
        return DataError(f"materialization of {outcome.view} not verified: {why}", details)
    details = [
        f"view {outcome.view}: Delta {outcome.delta_path} version {outcome.delta_version}, "
        f"window {outcome.start.isoformat()} .. {outcome.end.isoformat()}",
        f"expected {outcome.keys:,} keys ({outcome.rows:,} rows in the window); "
        f"written {outcome.written:,}; online store ({result.online_store}): {online.present:,} keys of the view, "
        f"{online.in_window:,} with a value from the window, {online.newer:,} newer",
    ]
    return DataError(f"materialization of {outcome.view} not verified: {why}", details)


def _record(result: MaterializeResult, view: ViewSpec, outcome: ViewResult, project: str) -> FeatureSetRecord:
    return FeatureSetRecord(
        run_id=result.run_id, feast_project=project, feature_view=view.name, features=list(view.features),
        job=view.job.name, spec_fingerprint=view.job.fingerprint, delta_path=view.path,
        delta_version=view.version, delta_version_from=outcome.delta_version_from,
        window_start=outcome.start.isoformat(), window_end=outcome.end.isoformat(),
        rows=outcome.rows, keys=outcome.keys, online_store=result.online_store,
        recorded_at=datetime.now(UTC).isoformat(),
        view_schema={"join_keys": view.join_keys, "timestamp": view.timestamp, "features": view.features},
    )
