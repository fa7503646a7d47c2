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
   continues from it) and the feature set goes to the lineage store.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from featurekit.config import Project, Settings
from featurekit.errors import ConfigError, DataError
from featurekit.feast import store as feast_store
from featurekit.feast.definitions import ViewSpec, view_specs
from featurekit.feast.online import KeyCount, OnlineWriter, count_keys, writer_layout
from featurekit.lineage import FeatureSetRecord, LineageStore
from featurekit.pipeline.core import new_run_id, session
from featurekit.pipeline.features import feast_session_conf
from featurekit.pipeline.lineage import lineage_store, lineage_warning
from featurekit.sinks.window import Window, window_batches, window_counts
from featurekit.spec.names import did_you_mean

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

    @property
    def verified(self) -> bool:
        """Every key of the window holds a value at least as new as the window's in the store."""
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
        raise ConfigError.single("; ".join(problems), file="--views", field="views")
    return [online[n] for n in names]


def materialize(project: Project, settings: Settings, *, views: list[str] | None = None,
                start: datetime | None = None, end: datetime | None = None, incremental: bool = False,
                verify_only: bool = False, spark: "SparkSession | None" = None,
                lineage: LineageStore | None = None, engine: str | None = None) -> MaterializeResult:
    """Materialize (or with ``verify_only`` only check) the online views; see the module doc.
    ``engine``: ``spark`` or ``arrow`` (default: the env's ``feast.materialize_engine``)."""
    if not incremental and start is None:
        raise ConfigError.single("give --start and --end, or --incremental", file="materialize", field="--start")
    end = _aware(end) if end else _now()
    if start is not None and _aware(start) >= end:
        raise ConfigError.single(f"--start {start.isoformat()} is not before --end {end.isoformat()}",
                                 file="materialize", field="--start")
    chosen = select_views(project, settings, views)
    conf = feast_session_conf(settings)
    store = feast_store.open_store(project, settings, conf)
    store_config = feast_store.store_config(project, settings, conf)
    repo_path = str(feast_store.repo_dir(settings))
    registered = {v.name: v for v in store.list_feature_views()}
    _check_applied(chosen, registered, settings)
    kind = str(store_config["online_store"].get("type", "sqlite"))
    engine = engine or settings.feast.materialize_engine
    layouts = {v.name: writer_layout(store_config, repo_path, registered[v.name]) for v in chosen}
    if engine == "arrow":
        _arrow_supported(kind, layouts)
    elif engine == "spark":
        spark = spark or session(settings, "featurekit:materialize")
    else:
        raise ConfigError.single(f"unknown materialize engine {engine!r} (spark, arrow)", file="materialize", field="engine")
    lineage = lineage or lineage_store(project, settings)
    result = MaterializeResult(new_run_id(), settings.env, kind, verify_only, engine)
    for view in chosen:
        fv = registered[view.name]
        window_start = _aware(start) if start else _incremental_start(fv, view, end)
        began = time.perf_counter()
        outcome = ViewResult(view.name, view.path, view.version, window_start, end)
        result.views.append(outcome)
        if engine == "arrow":
            expected = _arrow_view(outcome, view, settings, layouts[view.name], verify_only)
        else:
            assert spark is not None
            writer = None if verify_only else OnlineWriter(store_config, repo_path, fv.to_proto().SerializeToString(),
                                                           layouts[view.name])
            expected = _spark_view(outcome, view, spark, writer, single_writer=kind == "sqlite",
                                   batch_rows=settings.feast.write_batch_rows)
        outcome.online = count_keys(store_config, repo_path, view.name, window_start, end)
        outcome.seconds = round(time.perf_counter() - began, 3)
        if not verify_only and outcome.written != expected:
            unit = "rows in the window" if engine == "arrow" else "keys"
            raise _failed(result, outcome, f"the writers were given {outcome.written:,} rows for {expected:,} {unit}")
        if not outcome.verified:
            raise _failed(result, outcome, "the online store does not hold every key of the window")
        if not verify_only:
            store.registry.apply_materialization(fv, store.project, window_start, end)
            outcome.lineage = lineage.record_feature_set(_record(result, view, outcome, store.project))
            result.warnings += lineage_warning(f"feature view {view.name}", outcome.lineage)
    return result


def _spark_view(outcome: ViewResult, view: ViewSpec, spark: "SparkSession", writer: OnlineWriter | None, *,
                single_writer: bool, batch_rows: int) -> int:
    """Count (and with a ``writer``, write) the window in Spark; fills ``outcome``, returns the
    rows the writers must have been given (one per key)."""
    latest, counts = _latest_rows(spark, view, outcome.start, outcome.end)
    if writer is None:
        counted = latest.agg({"*": "count"}).collect()
        outcome.keys = int(counted[0][0])
        outcome.rows = int(counts.get.get("rows") or 0) if outcome.keys else 0
    else:
        outcome.written = _write(spark, latest, writer, single_writer=single_writer, batch_rows=batch_rows)
        observed = counts.get
        outcome.rows, outcome.keys = int(observed.get("rows") or 0), int(observed.get("keys") or 0)
    return outcome.keys


def _arrow_view(outcome: ViewResult, view: ViewSpec, settings: Settings, layout: Any, verify_only: bool) -> int:
    """Count (and unless ``verify_only``, stream into Redis) the window with delta-rs; fills
    ``outcome``, returns the rows the writer must have been given (every row of the window)."""
    window = Window(view.path, view.version, list(view.join_keys), view.timestamp,
                    [*view.join_keys, *view.features, view.timestamp], outcome.start, outcome.end,
                    settings.storage_options or None)
    outcome.rows, outcome.keys = window_counts(window)
    if not verify_only:
        outcome.written = _write_arrow(window, layout, settings.feast.write_batch_rows)
    return outcome.rows


def _arrow_supported(kind: str, layouts: dict[str, Any]) -> None:
    """The arrow engine streams unsorted rows: only featurekit's Redis writer, which keeps the
    newer value per key, makes the store end with each key's latest row."""
    from featurekit.feast.redis_writer import RedisLayout

    if not all(isinstance(layout, RedisLayout) for layout in layouts.values()):
        raise ConfigError.single(
            f"materialize engine 'arrow' writes a plain Redis online store only (this env's is {kind}): it streams "
            "the window's rows unsorted and relies on the writer keeping each key's newer value; use engine 'spark'",
            file="materialize", field="engine")


def _write_arrow(window: Window, layout: Any, batch_rows: int) -> int:
    """Stream the window's rows into Redis in this process; the rows given to the writer."""
    from featurekit.feast.redis_writer import RedisBatchWriter, redis_client

    writer = RedisBatchWriter(redis_client(layout.connection_string), layout)
    given = 0
    for batch in window_batches(window, batch_rows):
        writer.write(batch)
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
    last = fv.most_recent_end_time
    if last is not None:
        return _aware(last)
    return end - timedelta(seconds=view.ttl_seconds) if view.ttl_seconds else end - timedelta(weeks=52)


def _latest_rows(spark: "SparkSession", view: ViewSpec, start: datetime, end: datetime) -> tuple["DataFrame", Any]:
    """The latest row per entity key in ``[start, end]`` of the pinned table version, counted."""
    from pyspark.sql import Observation
    from pyspark.sql import functions as F

    keys = list(view.join_keys)
    columns = [*view.features, view.timestamp]
    frame = (spark.read.format("delta").option("versionAsOf", view.version).load(view.path)
             .where(F.col(view.timestamp).between(F.lit(start), F.lit(end)))
             .where(" AND ".join(f"`{k}` IS NOT NULL" for k in keys)))
    latest = (frame.groupBy(*keys)
              .agg(F.count(F.lit(1)).alias("__fk_rows"),
                   F.max_by(F.struct(*columns), F.col(view.timestamp)).alias("__fk_latest"))
              .select(*keys, "__fk_rows", *(F.col(f"__fk_latest.`{c}`").alias(c) for c in columns)))
    counts = Observation(f"materialize_{view.name}")
    latest = latest.observe(counts, F.count(F.lit(1)).alias("keys"), F.sum("__fk_rows").alias("rows"))
    return latest.drop("__fk_rows"), counts


def _write(spark: "SparkSession", latest: "DataFrame", writer: OnlineWriter, *, single_writer: bool,
           batch_rows: int) -> int:
    """Run the writers in Spark's Python workers; the number of rows they wrote."""
    from pyspark.sql import functions as F

    key = "spark.sql.execution.arrow.maxRecordsPerBatch"
    before = spark.conf.get(key, None)
    spark.conf.set(key, str(batch_rows))
    try:
        frame = latest.coalesce(1) if single_writer else latest
        totals = frame.mapInArrow(writer, "written long, batches long").agg(F.sum("written")).collect()
    finally:
        if before is None:
            spark.conf.unset(key)
        else:
            spark.conf.set(key, before)
    return int(totals[0][0] or 0)


def _failed(result: MaterializeResult, outcome: ViewResult, why: str) -> DataError:
    online = outcome.online or KeyCount(0, 0, 0)
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
        delta_version=view.version, window_start=outcome.start.isoformat(), window_end=outcome.end.isoformat(),
        rows=outcome.rows, keys=outcome.keys, online_store=result.online_store,
        recorded_at=datetime.now(UTC).isoformat(),
        view_schema={"join_keys": view.join_keys, "timestamp": view.timestamp, "features": view.features},
    )
