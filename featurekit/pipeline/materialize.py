"""Materialization that can be trusted: Delta table version -> online store, then verified.

For each online feature view:

1. the window: ``--start/--end``, or ``--incremental`` (from the online store's
   :class:`~featurekit.online_store.Marker`, else ``end - ttl``);
2. the view's Delta table is read at one pinned version (recorded) and its window, or with a
   marker its changes since, written by an engine of :mod:`featurekit.materialization`
   (``spark`` or ``arrow``: ``feast.materialize_engine`` / ``--engine``);
3. the online store is read back directly (SQLite query / Redis SCAN; incremental: the keys
   written, by key): the keys holding a value from the window must equal the distinct keys of
   the window, else the run fails (exit 3) with the numbers and nothing is recorded;
4. the window is recorded in Feast's registry (so plain ``feast materialize-incremental``
   continues from it) and the feature set goes to the lineage store, with the event time of the
   newest value the store now holds for the view (:func:`_newest_event`); the online store keeps a
   marker of the Delta version and window end it now holds (written only after the
   verification; removed by a window that does not cover the view's whole ttl, which leaves
   older keys as they were). Nothing new since the marker: nothing is written or recorded.

A run killed part-way (SIGKILL) leaves nothing that claims a window it did not write whole:
the registry's window and the marker are recorded only after the verification, and a whole
window, or changes found by a version diff, first removes the view's marker, so the next
``--incremental`` writes the whole window again. Changes read from the Change Data Feed keep
the marker: what they write is each changed key's latest row, never older than the marker's
content, and the next run, from the same marker, finds the same keys changed and writes them again.

No marker, or one that no longer describes the store's content (another job spec, another
table at the path, an earlier version or end, a version the table's log no longer has, a store
without featurekit's key layout): the whole window ``[end - ttl, end]``, as the first time. The
changes are read from files Delta keeps for its retention period: a table vacuumed past the
marker's version fails the run (nothing written); a whole window (``--start``/``--end``) sets a
new marker.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

from featurekit.config import Project, Settings
from featurekit.errors import ConfigError, Conflict, DataError, UsageError, arg
from featurekit.feast import store as feast_store
from featurekit.feast.catalog import refresh_catalog, view_layout
from featurekit.feast.definitions import ViewSpec, view_specs
from featurekit.lineage import FeatureSetRecord, LineageStore
from featurekit.materialization.arrow import arrow_supported, arrow_view
from featurekit.materialization.incremental import base as incremental_base
from featurekit.materialization.incremental import changed_view
from featurekit.materialization.spark import spark_view
from featurekit.materialization.view import CHANGE_FEED, END_MOVED, UNCHANGED, VERSION_DIFF, WINDOW, Target, \
    ViewResult
from featurekit.materialization.window import table_info
from featurekit.materialization.writer import OnlineWriter
from featurekit.online_store import KeyCount, Marker, OnlineStore, open_online_store
from featurekit.pipeline.conflicts import pause_for_test
from featurekit.pipeline.core import new_run_id, session
from featurekit.pipeline.features import feast_session_conf
from featurekit.pipeline.lineage import lineage_store, lineage_warning
from featurekit.pipeline.phases import reached
from featurekit.yamlconf.names import did_you_mean

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

__all__ = ["CHANGE_FEED", "END_MOVED", "UNCHANGED", "VERSION_DIFF", "WINDOW", "MaterializeResult", "ViewResult",
           "materialize", "select_views"]


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
        arrow_supported(state, layouts)
    elif engine == "spark":
        spark = spark or session(settings, "featurekit:materialize")
    else:
        raise ConfigError.single(f"unknown materialize engine {engine!r} (spark, arrow)", file="materialize", field="engine")
    lineage = lineage or lineage_store(project, settings)
    result = MaterializeResult(new_run_id(), settings.env, state.kind, verify_only, engine)
    batch_rows = settings.feast.write_batch_rows
    for view in chosen:
        fv = registered[view.name]
        target, layout = _target(view, settings), layouts[view.name]
        # the Spark engine's writer, shipped to its workers (``replace_until``: incremental's replacing writes)
        writer = partial(OnlineWriter, store_config, repo_path, fv.to_proto().SerializeToString(), layout)
        began = time.perf_counter()
        table = None if verify_only else table_info(target.path, target.version, target.storage_options)
        found = None if verify_only else state.marker(view.name)  # what another materialization may change meanwhile
        base = incremental_base(target, state, layout, table, end, result.warnings) \
            if incremental and start is None and table is not None else None
        if start is not None:
            window_start = _aware(start)
        elif verify_only:
            window_start = _incremental_start(fv, target, end)
        else:   # a marker's end, or the whole window (never the registry's end: the store may have lost it)
            window_start = base.marker.window_end if base else end - target.ttl
        outcome = ViewResult(view.name, view.path, view.version, window_start, end)
        result.views.append(outcome)
        if not verify_only and (base is None or not base.change_data and view.version != base.marker.delta_version):
            # a whole window, or a version diff: the store's values change from here on in ways
            # the marker does not describe, so none may describe them until they are verified
            state.set_marker(view.name, None)
            found = None   # this run's own removal is no other materialization's change
        reached("materialize write")
        if base is not None:
            expected = changed_view(outcome, target, base, state, layout, engine=engine, spark=spark,
                                    writer=writer, single_writer=state.single_writer,
                                    batch_rows=batch_rows, warnings=result.warnings)
        elif engine == "arrow":
            expected = arrow_view(outcome, target, state, layout, verify_only=verify_only, batch_rows=batch_rows)
        else:
            assert spark is not None
            expected = spark_view(outcome, target, spark, None if verify_only else writer(),
                                  single_writer=state.single_writer, batch_rows=batch_rows)
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
            pause_for_test()
            _check_marker(state, view, found)
            reached("materialize registry")
            store.registry.apply_materialization(fv, store.project, window_start, end)
            whole = base is not None or window_start <= end - target.ttl
            outcome.newest_event = _newest_event(state, outcome, base.marker if base else None)
            reached("materialize marker")
            state.set_marker(view.name, Marker(view.version, end, table.id, view.job.fingerprint, outcome.newest_event)
                             if whole else None)
            outcome.lineage = lineage.record_feature_set(_record(result, view, outcome, store.project))
            result.warnings += lineage_warning(f"feature view {view.name}", outcome.lineage)
        elif base is not None:   # nothing new: the store holds what the marker says
            outcome.newest_event = base.marker.newest_event
    if not verify_only:   # the registry file changed: serving's catalog follows it
        refresh_catalog(project, settings, store_config, repo_path, store)
    return result


def _target(view: ViewSpec, settings: Settings) -> Target:
    """What the engines need of a view: its pinned table version, columns and whole window's
    span (its ttl; a year without one)."""
    ttl = timedelta(seconds=view.ttl_seconds) if view.ttl_seconds else timedelta(weeks=52)
    return Target(view.name, view.path, view.version, list(view.join_keys), list(view.features), view.timestamp, ttl,
                  view.job.fingerprint, settings.storage_options or None)


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


def _incremental_start(fv: Any, target: Target, end: datetime) -> datetime:
    """``--verify-only --incremental``: the window from the registry's last end (else end - ttl)."""
    last = fv.most_recent_end_time
    if last is not None:
        return _aware(last)
    return end - target.ttl


def _check_marker(state: OnlineStore, view: ViewSpec, found: Marker | None) -> None:
    """Fail the materialization (exit 1) if another one of ``view`` set or removed the store's
    marker since this one read it (``found``). Both wrote their keys: the store may hold either
    one's value of a key they both wrote, which no marker describes, so the marker is removed
    (the next ``--incremental`` writes the whole window) and this one records nothing."""
    now = state.marker(view.name)
    if now == found:
        return
    state.set_marker(view.name, None)
    what = f"set the online store's marker to Delta version {now.delta_version}" if now else "removed the online store's marker"
    raise Conflict(f"another materialization of {view.name} {what} while this one ran; the marker is removed, "
                   f"so the next {arg('incremental')} materializes the whole window — run it again",
                   path=view.path, version=now.delta_version if now else None)


def _newest_event(state: OnlineStore, outcome: ViewResult, marker: Marker | None) -> datetime | None:
    """The newest event time the view's keys hold after the run (None: the store holds none).

    A whole window scanned every key of the view to verify it: that scan's newest. An
    incremental run read back only the keys it wrote: the marker's newest (what the store held
    after the run that set it) or theirs, whichever is newer, unless a key the run may have
    given an older value (a deleted or back-dated row) held a time at least as new as the
    marker's, or the marker does not say (an older featurekit set it): then the store is
    scanned, once, as a whole window does. Values another writer put in the store since the
    marker (Feast's push or ``feast materialize``) are not read back by an incremental run:
    they count from the next whole window's scan on."""
    if outcome.online is None:
        return None
    if marker is None:
        return outcome.online.newest
    before = marker.newest_event
    replaced = outcome.replaced_newest
    if before is None or (replaced is not None and replaced >= _epoch_ns(before)):
        return state.count_keys(outcome.view, outcome.start, outcome.end).newest
    written = outcome.online.newest
    return before if written is None or written < before else written


def _epoch_ns(ts: datetime) -> int:
    return (ts - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1) * 1000


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
        newest_event=None if outcome.newest_event is None else outcome.newest_event.isoformat(),
        recorded_at=datetime.now(UTC).isoformat(),
        view_schema={"join_keys": view.join_keys, "timestamp": view.timestamp, "features": view.features},
    )
