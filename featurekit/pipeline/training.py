"""Training sets: point-in-time correct features for a spine, written as a Delta table.

``training_set(project, settings, spine=..., service=..., out=...)``:

1. the feature service and its views come from the jobs' ``features:`` blocks, each view with
   the version of its Delta table read now (delta-rs); Feast's registry must hold the same
   definitions (else: ``featurekit feast apply`` first);
2. the spine (a Delta table, Parquet or CSV with a header) is read by Spark and checked: the
   join keys of every view, the event timestamp column (``event_timestamp`` unless told
   otherwise), no column named like a feature; its rows are counted;
3. Feast's Spark offline store runs its point-in-time join: for each spine row and view, the
   latest row of the same key with a timestamp at or before the spine's and within the view's
   ttl (else nulls); the views are read at the versions of step 1
   (:mod:`featurekit.feast.retrieval` says how);
4. Spark writes the result as Delta (overwrite) inside an open transaction: Delta's count of
   the written rows must equal the spine's, or nothing is committed;
5. the training set (views and Delta versions read, spine, output version, rows) goes to the
   lineage store, with an offline feature set per view: its Delta table at the version read.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from featurekit.config import Project, Settings
from featurekit.engine.spine import read_spine
from featurekit.errors import DataError, FeaturekitError, NotFound, UsageError, arg
from featurekit.feast import retrieval
from featurekit.feast import store as feast_store
from featurekit.feast.definitions import ServiceSpec, ViewSpec, service_specs, view_specs
from featurekit.feast.retrieval import EVENT_TIMESTAMP, absolute, feast_session
from featurekit.lineage import LineageStore, OfflineFeatureSetRecord, TrainingSetRecord
from featurekit.pipeline.core import new_run_id, session
from featurekit.pipeline.features import feast_session_conf
from featurekit.pipeline.lineage import lineage_store, lineage_warning
from featurekit.pipeline.phases import reached
from featurekit.pipeline.spark_errors import classify
from featurekit.sinks.delta import prepare
from featurekit.sinks.transaction import CommitMeta
from featurekit.spec.models import OutputSpec
from featurekit.yamlconf.names import did_you_mean

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

OWNER_PREFIX = "training-set:"               # the output table's featurekit.job property


@dataclass
class TrainingSetResult:
    run_id: str
    service: str
    views: dict[str, int]               # view -> Delta version read
    features: list[str]                 # "view:feature", in output order
    spine: str
    out: str
    spine_format: str = ""              # "delta", "parquet" or "csv"
    spine_version: int | None = None    # the spine's Delta version, if it is a Delta table
    rows: int = 0                       # = spine rows = output rows
    rows_without_timestamp: int = 0     # spine rows with a null timestamp (their features are null)
    out_version: int = -1
    columns: list[str] = field(default_factory=list)   # of the output: the spine's, then the features
    lineage: str = ""                   # where the lineage record went
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)   # e.g. lineage waiting in the outbox


def training_set(project: Project, settings: Settings, *, spine: str, service: str, out: str,
                 timestamp: str = EVENT_TIMESTAMP, spark: "SparkSession | None" = None,
                 lineage: LineageStore | None = None) -> TrainingSetResult:
    """Build the training set of ``service`` for the rows of ``spine`` into ``out``; see the module doc."""
    began = time.perf_counter()
    chosen, views = select_service(project, settings, service)
    spine_path, out_path = absolute(spine), absolute(out)
    _check_out(out_path, spine_path, views)
    with retrieval.quiet():
        store = feast_store.open_store(project, settings, feast_session_conf(settings))
        feature_views, refs = retrieval.pinned_views(store, chosen, views, settings.env)
    spark = spark or session(settings, f"{settings.spark.app_name}:training-set")
    lineage = lineage or lineage_store(project, settings)
    versions = {v.name: v.version for v in views}
    result = TrainingSetResult(run_id=new_run_id(), service=service, views=versions, features=refs,
                               spine=spine_path, out=out_path)
    meta = CommitMeta(f"{OWNER_PREFIX}{service}", result.run_id,
                      ",".join(sorted(v.job.fingerprint for v in views)), settings.env)
    try:
        with feast_session(spark) as feast_spark:
            _build(feast_spark, store, feature_views, views, timestamp, meta, result)
    except FeaturekitError:
        raise
    except Exception as exc:
        raise classify(exc) from exc
    reached("training-set lineage")
    recorded_at = datetime.now(UTC).isoformat()
    result.lineage = lineage.record_training_set(TrainingSetRecord(
        run_id=result.run_id, feast_project=store.project, feature_service=service, feature_views=versions,
        features=refs, spine_path=spine_path, output_path=out_path, output_version=result.out_version,
        rows=result.rows, recorded_at=recorded_at, spine_version=result.spine_version,
        offline_feature_sets=[offline_feature_set(store.project, view, recorded_at) for view in views],
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


def _build(spark: "SparkSession", store: Any, feature_views: list[Any], views: list[ViewSpec], timestamp: str,
           meta: CommitMeta, result: TrainingSetResult) -> None:
    """Spine -> Feast's point-in-time join -> Delta, on Feast's session; fills ``result``."""
    retrieval.check_time_zone(spark)
    frame, result.spine_format, result.spine_version = read_spine(spark, result.spine)
    frame, original_type = retrieval.check_spine(frame, views, [r.split(":", 1)[1] for r in result.features], timestamp)
    rows, timed = retrieval.count_spine(frame)
    if timed == 0:
        raise DataError(f"the spine {result.spine} has no row with an event timestamp ({rows:,} rows)")
    reached("training-set build")
    built = retrieval.restore_timestamp(retrieval.retrieve(store, feature_views, result.features, frame), timestamp,
                                        original_type)
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
    result.rows, result.rows_without_timestamp = rows, rows - timed
    result.out_version, result.columns = done.version, built.columns


def select_service(project: Project, settings: Settings, name: str) -> tuple[ServiceSpec, list[ViewSpec]]:
    """The service named ``name`` and its views (each with its table's current Delta version)."""
    views = view_specs(project, settings)
    services = {s.name: s for s in service_specs(views)}
    if name not in services:
        raise NotFound("feature service", name, f"unknown feature service {name!r}" + did_you_mean(name, services)
                       + f" (services: {', '.join(services) or 'none'})", param="service")
    chosen = services[name]
    by_name = {v.name: v for v in views}
    return chosen, [by_name[v] for v in chosen.features]


def _check_out(out: str, spine: str, views: list[ViewSpec]) -> None:
    if out.rstrip("/") == spine.rstrip("/"):
        raise UsageError("out", f"{arg('out')} is the spine ({spine}); write the training set elsewhere")
    for view in views:
        if out.rstrip("/") == absolute(view.path).rstrip("/"):
            raise UsageError("out", f"{arg('out')} is the table of feature view {view.name!r} ({view.path})")
