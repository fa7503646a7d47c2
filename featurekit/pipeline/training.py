"""Training sets: point-in-time correct features for a spine, written as a Delta table.

``training_set(project, settings, service=..., out=..., spine=... | start=..., end=...)``:

1. the feature service and its views come from the jobs' ``features:`` blocks, each view with
   the Delta version of its table to read: the current one (delta-rs), or with ``as_of`` the
   one current at that time (:func:`featurekit.pipeline.training_inputs.as_of`);
2. the rows: a spine (a Delta table, Parquet or CSV with a header) read by Spark and checked
   (the join keys of every view, the event timestamp column, no column named like a feature),
   or without one, the first view's rows between ``start`` and ``end``; counted, with their
   time range, in one aggregate;
3. the point-in-time join: for each row and view, the latest row of the same key at or before
   the row's time and within the view's ttl (else nulls), the views read at the versions of
   step 1 — featurekit's own join in Spark (:mod:`featurekit.engine.point_in_time`), or with
   ``engine="feast"`` Feast's Spark retrieval (:mod:`featurekit.feast.retrieval`), which needs
   the definitions applied to Feast's registry;
4. Spark writes the result as Delta (overwrite) inside an open transaction: Delta's count of
   the written rows must equal the spine's, or nothing is committed;
5. the training set (views and Delta versions read, spine or range, ``as_of``, output version,
   rows) goes to the lineage store, with an offline feature set per view: its Delta table at
   the version read.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from featurekit.config import Project, Settings
from featurekit.config.storage import absolute
from featurekit.engine.point_in_time import point_in_time, spine_counts
from featurekit.engine.spine import check_time_zone, read_spine
from featurekit.errors import DataError, FeaturekitError, UsageError, arg
from featurekit.feast.definitions import ServiceSpec, ViewSpec
from featurekit.lineage import LineageStore, OfflineFeatureSetRecord, TrainingSetRecord
from featurekit.pipeline.core import new_run_id, session
from featurekit.pipeline.lineage import lineage_store, lineage_warning
from featurekit.pipeline.phases import reached
from featurekit.pipeline.spark_errors import classify
from featurekit.pipeline.training_inputs import (as_of as views_as_of, check_spine, join_view, no_timed_rows,
                                                 range_spine, select_service)
from featurekit.sinks.delta import prepare
from featurekit.sinks.transaction import CommitMeta
from featurekit.spec.models import OutputSpec

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

OWNER_PREFIX = "training-set:"               # the output table's featurekit.job property
EVENT_TIMESTAMP = "event_timestamp"          # the spine's timestamp column unless told otherwise
ENGINES = ("featurekit", "feast")

__all__ = ["ENGINES", "TrainingSetResult", "select_service", "training_set"]


@dataclass
class TrainingSetResult:
    run_id: str
    service: str
    views: dict[str, int]               # view -> Delta version read
    features: list[str]                 # "view:feature", in output order
    spine: str                          # "" when the rows are a range of the first view
    out: str
    engine: str = "featurekit"
    as_of: str | None = None            # the views read as they were at this time (ISO 8601)
    start: str | None = None            # without a spine: the first view's rows in [start, end]
    end: str | None = None
    spine_format: str = ""              # "delta", "parquet" or "csv"
    spine_version: int | None = None    # the spine's Delta version, if it is a Delta table
    rows: int = 0                       # = spine rows = output rows
    rows_without_timestamp: int = 0     # spine rows with a null timestamp (their features are null)
    out_version: int = -1
    columns: list[str] = field(default_factory=list)   # of the output: the spine's, then the features
    lineage: str = ""                   # where the lineage record went
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)   # e.g. lineage waiting in the outbox


def training_set(project: Project, settings: Settings, *, service: str, out: str, spine: str | None = None,
                 timestamp: str = EVENT_TIMESTAMP, as_of: datetime | None = None, start: datetime | None = None,
                 end: datetime | None = None, engine: str = "featurekit", spark: "SparkSession | None" = None,
                 lineage: LineageStore | None = None) -> TrainingSetResult:
    """Build the training set of ``service`` for the rows of ``spine`` (or the first view's rows
    from ``start`` to ``end``) into ``out``; see the module doc."""
    began = time.perf_counter()
    _check_arguments(spine, start, end, engine)
    chosen, views = select_service(project, settings, service)
    if as_of is not None:
        views = views_as_of(views, as_of, settings)
    spine_path, out_path = absolute(spine) if spine else "", absolute(out)
    _check_out(out_path, spine_path, views)
    refs = [f"{view}:{name}" for view, names in chosen.features.items() for name in names]
    versions = {v.name: v.version for v in views}
    result = TrainingSetResult(run_id=new_run_id(), service=service, views=versions, features=refs, spine=spine_path,
                               out=out_path, engine=engine, as_of=_iso(as_of), start=_iso(start), end=_iso(end))
    spark = spark or session(settings, f"{settings.spark.app_name}:training-set")
    lineage = lineage or lineage_store(project, settings)
    meta = CommitMeta(f"{OWNER_PREFIX}{service}", result.run_id,
                      ",".join(sorted(v.job.fingerprint for v in views)), settings.env)
    try:
        check_time_zone(spark)
        if engine == "feast":
            _build_with_feast(project, settings, spark, chosen, views, timestamp, meta, result)
        else:
            built, rows = _join(spark, _served(chosen, views), timestamp, start, end, result)
            _write(spark, built, rows, meta, result)
    except FeaturekitError:
        raise
    except Exception as exc:
        raise classify(exc) from exc
    reached("training-set lineage")
    recorded_at = datetime.now(UTC).isoformat()
    result.lineage = lineage.record_training_set(TrainingSetRecord(
        run_id=result.run_id, feast_project=settings.feast.project, feature_service=service, feature_views=versions,
        features=refs, spine_path=spine_path, output_path=out_path, output_version=result.out_version,
        rows=result.rows, recorded_at=recorded_at, spine_version=result.spine_version,
        offline_feature_sets=[offline_feature_set(settings.feast.project, view, recorded_at) for view in views],
        as_of=result.as_of, start=result.start, end=result.end,
    ))
    result.warnings += lineage_warning(f"training set {result.run_id}", result.lineage)
    result.seconds = round(time.perf_counter() - began, 3)
    return result


def offline_feature_set(feast_project: str, view: ViewSpec, recorded_at: str) -> OfflineFeatureSetRecord:
    """What a training set read of ``view``: its Delta table at the version pinned for the join."""
    return OfflineFeatureSetRecord(
        feast_project=feast_project, feature_view=view.name, job=view.job.name, spec_fingerprint=view.job.fingerprint,
        delta_path=view.path, delta_version=view.version, recorded_at=recorded_at,
        view_schema={"join_keys": view.join_keys, "timestamp": view.timestamp, "features": view.features})


def _served(chosen: ServiceSpec, views: list[ViewSpec]) -> list[ViewSpec]:
    """``views`` with only the features the service lists, in its order (as Feast returns them):
    a service may take some features of a view, not all."""
    return [replace(v, features={f: v.features[f] for f in chosen.features[v.name]}) for v in views]


def _join(spark: "SparkSession", views: list[ViewSpec], timestamp: str, start: datetime | None,
          end: datetime | None, result: TrainingSetResult) -> tuple["DataFrame", int]:
    """featurekit's point-in-time join of the rows (spine or range) with the views: the lazy
    result and its row count."""
    if start is not None and end is not None:
        frame, timestamp = range_spine(spark, views, start, end)
        joined = views[1:]
        frame = check_spine(frame, joined, timestamp, source=f"first view {views[0].name!r}")
    else:
        frame, result.spine_format, result.spine_version, warnings = read_spine(spark, result.spine)
        result.warnings += warnings
        joined = views
        frame = check_spine(frame, joined, timestamp)
    counts = spine_counts(frame, timestamp)
    if counts.timed == 0:
        if result.spine:
            raise no_timed_rows(result.spine, counts.rows)
        raise DataError(f"feature view {views[0].name!r} has no row from {result.start} to {result.end} "
                        f"(at version {views[0].version}); nothing was written")
    result.rows_without_timestamp = counts.rows - counts.timed
    reached("training-set build")
    return point_in_time(frame, timestamp, [join_view(spark, v) for v in joined], counts.bounds), counts.rows


def _build_with_feast(project: Project, settings: Settings, spark: "SparkSession", chosen: Any,
                      views: list[ViewSpec], timestamp: str, meta: CommitMeta, result: TrainingSetResult) -> None:
    """Spine -> Feast's point-in-time join -> Delta, on a session of Feast's own."""
    from featurekit.feast import retrieval
    from featurekit.feast import store as feast_store
    from featurekit.pipeline.features import feast_session_conf

    with retrieval.quiet():
        store = feast_store.open_store(project, settings, feast_session_conf(settings))
        feature_views, refs = retrieval.pinned_views(store, chosen, views, settings.env)
    with retrieval.feast_session(spark) as feast_spark:
        frame, result.spine_format, result.spine_version, warnings = read_spine(feast_spark, result.spine)
        result.warnings += warnings
        frame = check_spine(frame, views, timestamp)
        counts = spine_counts(frame, timestamp)
        if counts.timed == 0:
            raise no_timed_rows(result.spine, counts.rows)
        result.rows_without_timestamp = counts.rows - counts.timed
        frame, original_type = retrieval.feast_spine(frame, timestamp)
        reached("training-set build")
        built = retrieval.restore_timestamp(retrieval.retrieve(store, feature_views, refs, frame), timestamp,
                                            original_type)
        _write(feast_spark, built, counts.rows, meta, result)


def _write(spark: "SparkSession", built: "DataFrame", rows: int, meta: CommitMeta, result: TrainingSetResult) -> None:
    """``built`` -> the output table (overwrite), committed only if it holds one row per spine row."""
    prepared = prepare(spark, built, OutputSpec(path=result.out, mode="overwrite"), meta)
    try:
        if prepared.rows != rows:
            counted = "?" if prepared.rows is None else f"{prepared.rows:,}"
            raise DataError(
                f"training set of {result.service}: {counted} rows built for {rows:,} spine rows; "
                "nothing was written",
                ["a feature view holds several rows for one entity key and timestamp, or join keys "
                 "concatenate alike (Feast joins on their text): each spine row then matches more than once"])
        reached("training-set commit")
        done = prepared.commit()
    except Exception:
        prepared.abandon()
        raise
    result.rows, result.out_version, result.columns = rows, done.version, built.columns


def _iso(when: datetime | None) -> str | None:
    return None if when is None else when.isoformat()


def _check_arguments(spine: str | None, start: datetime | None, end: datetime | None, engine: str) -> None:
    if engine not in ENGINES:
        raise UsageError("engine", f"{arg('engine')} is {engine!r}; expected one of {', '.join(ENGINES)}")
    if spine is not None and (start is not None or end is not None):
        raise UsageError("spine", f"give either {arg('spine')} or {arg('start')} and {arg('end')}, not both")
    if spine is None and (start is None or end is None):
        raise UsageError("spine", f"give {arg('spine')}, or {arg('start')} and {arg('end')} (the rows of the "
                                  "service's first view in that range)")
    if engine == "feast" and spine is None:
        raise UsageError("engine", f"{arg('engine')} feast needs {arg('spine')}")
    if start is not None and end is not None and start > end:
        raise UsageError("start", f"{arg('start')} {start.isoformat()} is after {arg('end')} {end.isoformat()}")


def _check_out(out: str, spine: str, views: list[ViewSpec]) -> None:
    if spine and out.rstrip("/") == spine.rstrip("/"):
        raise UsageError("out", f"{arg('out')} is the spine ({spine}); write the training set elsewhere")
    for view in views:
        if out.rstrip("/") == absolute(view.path).rstrip("/"):
            raise UsageError("out", f"{arg('out')} is the table of feature view {view.name!r} ({view.path})")
