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
   ttl (else nulls);
4. Spark writes the result as Delta (overwrite) inside an open transaction: Delta's count of
   the written rows must equal the spine's, or nothing is committed;
5. the training set (views and Delta versions read, spine, output version, rows) goes to the
   lineage store.

Choices worth knowing:

- The spine reaches Feast as a Spark DataFrame (Feast's Spark store takes one and registers
  it as a temporary view), never as pandas: only counts and Feast's min/max of the spine's
  timestamps come back to the driver.
- Versions are pinned. The views Feast applied read "the table", i.e. its latest version when
  Spark runs. For this retrieval only, the registry's views are copied with their Delta
  source carrying ``versionAsOf`` = the recorded version (Delta time travel; Feast passes a
  ``DeltaFormat``'s properties as reader options), and the copies are handed to the Spark
  offline store's ``get_historical_features`` — the call ``FeatureStore.get_historical_features``
  makes after resolving the views from the registry, where no version can be given. A commit
  landing meanwhile is not read, so the lineage record is true by construction (a
  before/after version check would be too, but would fail whenever a job commits meanwhile).
- Feast gets a session of its own: its Spark store uses the active session and sets
  ``spark.sql.parser.quotedRegexColumnNames=true`` on it, which would change how featurekit's
  session parses SQL. :func:`feast_session` makes a new session on the same SparkContext
  (same Delta setup, settings as configured) the active one only while Feast runs.
- Time zones: Feast turns the spine's min/max timestamps into SQL literals; PySpark returns
  TIMESTAMP values in the Python process's local time, and Spark reads literals in the session
  time zone. The timestamp goes to Feast as TIMESTAMP_NTZ (UTC wall clock, which PySpark
  returns unshifted) and the session must be on UTC (featurekit's default), so the bounds are
  right on any machine. The output's column has the spine's type again.
"""

from __future__ import annotations

import copy
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from featurekit.config import Project, Settings
from featurekit.engine.sources import delta_version
from featurekit.errors import ConfigError, DataError, FeaturekitError
from featurekit.feast import store as feast_store
from featurekit.feast.definitions import FINGERPRINT_TAG, ServiceSpec, ViewSpec, service_specs, view_specs
from featurekit.lineage import LineageStore, TrainingSetRecord
from featurekit.pipeline.core import new_run_id, session
from featurekit.pipeline.features import feast_session_conf
from featurekit.pipeline.lineage import lineage_store, lineage_warning
from featurekit.pipeline.spark_errors import classify
from featurekit.sinks.delta import CommitMeta, prepare
from featurekit.spec.models import OutputSpec
from featurekit.yamlconf.names import did_you_mean

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

EVENT_TIMESTAMP = "event_timestamp"          # the spine's timestamp column, as Feast names it
RESERVED = ("entity_timestamp",)             # added by Feast's point-in-time query
RESERVED_SUFFIX = "__entity_row_unique_id"
OWNER_PREFIX = "training-set:"               # the output table's featurekit.job property
SPARK_TYPES = {"Int64": "bigint", "Int32": "int", "String": "string"}   # join keys' Feast types
INTEGRAL = ("tinyint", "smallint", "int", "bigint")
TIMESTAMP_TYPES = ("timestamp", "timestamp_ntz", "date")
CLI = "command line"


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
    spine_path, out_path = _absolute(spine), _absolute(out)
    _check_out(out_path, spine_path, views)
    with _quiet():
        store = feast_store.open_store(project, settings, feast_session_conf(settings))
        feature_views, refs = pinned_views(store, chosen, views, settings)
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
    result.lineage = lineage.record_training_set(TrainingSetRecord(
        run_id=result.run_id, feast_project=store.project, feature_service=service, feature_views=versions,
        features=refs, spine_path=spine_path, output_path=out_path, output_version=result.out_version,
        rows=result.rows, recorded_at=datetime.now(UTC).isoformat(), spine_version=result.spine_version,
    ))
    result.warnings += lineage_warning(f"training set {result.run_id}", result.lineage)
    result.seconds = round(time.perf_counter() - began, 3)
    return result


def _build(spark: "SparkSession", store: Any, feature_views: list[Any], views: list[ViewSpec], timestamp: str,
           meta: CommitMeta, result: TrainingSetResult) -> None:
    """Spine -> Feast's point-in-time join -> Delta, on Feast's session; fills ``result``."""
    _check_time_zone(spark)
    frame, result.spine_format, result.spine_version = read_spine(spark, result.spine)
    frame, original_type = check_spine(frame, views, [r.split(":", 1)[1] for r in result.features], timestamp)
    rows, timed = _count(frame)
    if timed == 0:
        raise DataError(f"the spine {result.spine} has no row with an event timestamp ({rows:,} rows)")
    built = _restore_timestamp(_retrieve(store, feature_views, result.features, frame), timestamp, original_type)
    prepared = prepare(spark, built, OutputSpec(path=result.out, mode="overwrite"), meta)
    try:
        if prepared.rows != rows:
            counted = "?" if prepared.rows is None else f"{prepared.rows:,}"
            raise DataError(
                f"training set of {result.service}: {counted} rows built for {rows:,} spine rows; "
                "nothing was written",
                ["a feature view holds several rows for one entity key and timestamp, or join keys "
                 "concatenate alike (Feast joins on their text): each spine row then matches more than once"])
        done = prepared.commit()
    except Exception:
        prepared.abandon()
        raise
    result.rows, result.rows_without_timestamp = rows, rows - timed
    result.out_version, result.columns = done.version, built.columns


# ----------------------------------------------------------------------------- definitions


def select_service(project: Project, settings: Settings, name: str) -> tuple[ServiceSpec, list[ViewSpec]]:
    """The service named ``name`` and its views (each with its table's current Delta version)."""
    views = view_specs(project, settings)
    services = {s.name: s for s in service_specs(views)}
    if name not in services:
        raise ConfigError.single(f"unknown feature service {name!r}" + did_you_mean(name, services)
                                 + f" (services: {', '.join(services) or 'none'})", file=CLI, field="--service")
    chosen = services[name]
    by_name = {v.name: v for v in views}
    return chosen, [by_name[v] for v in chosen.features]


def _absolute(path: str) -> str:
    return path if "://" in path else str(Path(path).expanduser().resolve())


def _check_out(out: str, spine: str, views: list[ViewSpec]) -> None:
    if out.rstrip("/") == spine.rstrip("/"):
        raise ConfigError.single(f"--out is the spine ({spine}); write the training set elsewhere", file=CLI, field="--out")
    for view in views:
        if out.rstrip("/") == _absolute(view.path).rstrip("/"):
            raise ConfigError.single(f"--out is the table of feature view {view.name!r} ({view.path})",
                                     file=CLI, field="--out")


def pinned_views(store: Any, service: ServiceSpec, views: list[ViewSpec], settings: Settings) -> tuple[list[Any], list[str]]:
    """The registry's views of ``service``, copied with their Delta source read at the recorded
    version; and the feature references (``view:feature``) in the service's order.

    The registry must hold the service and its views as the jobs declare them now.
    """
    from feast.errors import FeastObjectNotFoundException
    from feast.table_format import DeltaFormat

    try:
        registered = store.get_feature_service(service.name)
        held = {p.name: [f.name for f in p.features] for p in registered.feature_view_projections}
    except FeastObjectNotFoundException:
        registered, held = None, {}
    stale = [] if held == service.features else [f"service {service.name}"]
    fvs: dict[str, Any] = {}
    for view in views:
        try:
            fv = store.get_feature_view(view.name)
        except FeastObjectNotFoundException:
            stale.append(f"view {view.name}")
            continue
        fields = {f.name for f in fv.schema}
        if (fields != {*view.join_keys, *view.features} or fv.tags.get(FINGERPRINT_TAG) != view.job.fingerprint
                or _absolute(fv.batch_source.path or "") != _absolute(view.path)):
            stale.append(f"view {view.name}")
        fvs[view.name] = fv
    if stale or registered is None:
        raise ConfigError.single(
            f"Feast's registry does not hold the current definition of {', '.join(stale)}: "
            f"run `featurekit feast apply --env {settings.env}` first", file="feature_repo", field="registry")
    by_name = {v.name: v for v in views}
    pinned, refs = [], []
    for projection in registered.feature_view_projections:
        view = by_name[projection.name]
        fv = fvs[projection.name].with_projection(copy.copy(projection))  # a copy; the registry is untouched
        source = type(fv.batch_source).from_proto(fv.batch_source.to_proto())
        properties = dict(source.table_format.properties) if source.table_format is not None else {}
        source.spark_options.table_format = DeltaFormat(properties={**properties, "versionAsOf": str(view.version)})
        fv.batch_source = source
        pinned.append(fv)
        refs += [f"{projection.name_to_use()}:{f.name}" for f in projection.features]
    return pinned, refs


# ----------------------------------------------------------------------------- Spark


@contextmanager
def feast_session(spark: "SparkSession") -> Iterator["SparkSession"]:
    """A new session on ``spark``'s SparkContext, the active one only inside the block.

    Feast's Spark store takes the active session and changes its SQL settings; this keeps
    them off ``spark``. The temporary views Feast registers there are dropped at the end.
    """
    from pyspark.sql import SparkSession

    ours = spark.newSession()
    # PySpark 4 keeps the Python-side active session in a class attribute next to the JVM's
    # (thread-local) one; getActiveSession() reads both, so both are switched and restored.
    jclass = SparkSession._get_j_spark_session_class(spark._jvm)  # type: ignore[attr-defined]
    before_py, before_jvm = SparkSession._activeSession, jclass.getActiveSession()
    jclass.setActiveSession(ours._jsparkSession)
    SparkSession._activeSession = ours
    try:
        with _quiet():
            yield ours
    finally:
        SparkSession._activeSession = before_py
        if before_jvm.isDefined():
            jclass.setActiveSession(before_jvm.get())
        else:
            jclass.clearActiveSession()
        for table in ours.catalog.listTables():
            if table.isTemporary:
                ours.catalog.dropTempView(table.name)


@contextmanager
def _quiet() -> Iterator[None]:
    """Without Feast's warning that its Spark store is experimental (once per build is noise)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*experimental feature.*", category=RuntimeWarning)
        yield


def _check_time_zone(spark: "SparkSession") -> None:
    zone = spark.conf.get("spark.sql.session.timeZone")
    jvm: Any = spark._jvm  # type: ignore[attr-defined]
    if not jvm.java.time.ZoneId.of(zone).normalized().equals(jvm.java.time.ZoneOffset.UTC):
        raise ConfigError.single(
            f"training sets need spark.sql.session.timeZone UTC (it is {zone!r}): Feast's point-in-time "
            "join compares timestamps as UTC text", file="conf", field="spark.conf")


def spine_format(spark: "SparkSession", path: str) -> str:
    """``delta``, ``parquet`` or ``csv``: a Delta table, else by the files' extensions."""
    jvm: Any = spark._jvm  # type: ignore[attr-defined]
    target = jvm.org.apache.hadoop.fs.Path(path)
    fs = target.getFileSystem(spark._jsc.hadoopConfiguration())  # type: ignore[attr-defined]
    if not fs.exists(target):
        raise ConfigError.single(f"no spine at {path}", file=CLI, field="--spine")
    if fs.getFileStatus(target).isDirectory():
        if fs.exists(jvm.org.apache.hadoop.fs.Path(target, "_delta_log")):
            return "delta"
        names = [s.getPath().getName() for s in fs.listStatus(target)]
        names = [n for n in names if not n.startswith(("_", "."))]
    else:
        names = [target.getName()]
    suffixes = {Path(n).suffix.lower() for n in names} - {""}
    for kind, endings in (("parquet", {".parquet"}), ("csv", {".csv"})):
        if suffixes and suffixes <= endings:
            return kind
    found = ", ".join(sorted(suffixes)) or "no data files"
    raise ConfigError.single(f"the spine {path} is not a Delta table, Parquet or CSV files ({found})",
                             file=CLI, field="--spine")


def read_spine(spark: "SparkSession", path: str) -> tuple["DataFrame", str, int | None]:
    """The spine as a DataFrame of ``spark`` (a Delta table pinned to its current version)."""
    kind = spine_format(spark, path)
    if kind == "delta":
        version = delta_version(spark, path)
        return spark.read.format("delta").option("versionAsOf", version).load(path), kind, version
    if kind == "parquet":
        return spark.read.parquet(path), kind, None
    return spark.read.option("header", True).option("inferSchema", True).csv(path), kind, None


def check_spine(frame: "DataFrame", views: list[ViewSpec], features: list[str],
                timestamp: str) -> tuple["DataFrame", str]:
    """The spine as Feast gets it (join keys typed as the views', the timestamp named
    ``event_timestamp`` as TIMESTAMP_NTZ in UTC), and the timestamp's original type.

    Every problem is reported at once, naming the spine's columns.
    """
    from pyspark.sql import functions as F

    types = dict(frame.dtypes)
    shown = ", ".join(f"{c} ({t})" for c, t in frame.dtypes)
    problems: list[str] = []
    keys: dict[str, str] = {}
    for view in views:
        for key, feast_type in view.join_keys.items():
            keys.setdefault(key, SPARK_TYPES[feast_type])
    if timestamp not in types:
        problems.append(f"no event timestamp column {timestamp!r}" + did_you_mean(timestamp, types)
                        + (" (give its name with --timestamp)" if timestamp == EVENT_TIMESTAMP else ""))
    elif types[timestamp] not in TIMESTAMP_TYPES:
        problems.append(f"the event timestamp {timestamp!r} is {types[timestamp]}; expected a timestamp "
                        "(CSV: values like 2024-01-15 10:00:00)")
    if timestamp != EVENT_TIMESTAMP and EVENT_TIMESTAMP in types:
        problems.append(f"{EVENT_TIMESTAMP!r} is a column too, but --timestamp is {timestamp!r}; rename one")
    missing = [k for k in keys if k not in types]
    if missing:
        problems.append(f"missing join key(s) {', '.join(map(repr, missing))} of feature view(s) "
                        f"{', '.join(v.name for v in views if set(v.join_keys) & set(missing))}")
    for key, wanted in keys.items():
        have = types.get(key)
        if have is None or have == wanted or (have in INTEGRAL and wanted in INTEGRAL):
            continue
        problems.append(f"join key {key!r} is {have}; the feature views have {wanted}")
    seen: set[str] = set()
    for name in features:
        if name in seen:
            problems.append(f"two views of the service have a feature {name!r}")
        seen.add(name)
    clashes = [c for c in types if c in seen or c in RESERVED or c.endswith(RESERVED_SUFFIX)]
    if clashes:
        problems.append(f"column(s) {', '.join(map(repr, clashes))} would clash with the features or Feast's own columns")
    if problems:
        raise ConfigError.single("; ".join(problems) + f" — the spine has: {shown}", file="spine", field="columns")
    columns = []
    for column in frame.columns:
        if column == timestamp:
            columns.append(F.col(column).cast("timestamp_ntz").alias(EVENT_TIMESTAMP))
        elif column in keys and types[column] != keys[column]:
            columns.append(F.col(column).cast(keys[column]).alias(column))
        else:
            columns.append(F.col(column))
    return frame.select(*columns), types[timestamp]


def _count(frame: "DataFrame") -> tuple[int, int]:
    """(rows, rows with a timestamp) of the spine: one aggregate."""
    from pyspark.sql import functions as F

    row = frame.agg(F.count(F.lit(1)), F.count(F.col(EVENT_TIMESTAMP))).collect()[0]
    return int(row[0]), int(row[1])


def _retrieve(store: Any, feature_views: list[Any], refs: list[str], spine: "DataFrame") -> "DataFrame":
    """Feast's point-in-time join on Spark (lazy: nothing runs until the write)."""
    from feast.infra.offline_stores.contrib.spark_offline_store.spark import SparkOfflineStore

    job: Any = SparkOfflineStore.get_historical_features(
        config=store.config, feature_views=feature_views, feature_refs=refs, entity_df=spine,
        registry=store.registry, project=store.project, full_feature_names=False,
    )
    return job.to_spark_df()


def _restore_timestamp(frame: "DataFrame", timestamp: str, original_type: str) -> "DataFrame":
    from pyspark.sql import functions as F

    return frame.select(*(F.col(c).cast(original_type).alias(timestamp) if c == EVENT_TIMESTAMP else F.col(c)
                          for c in frame.columns))
