"""Feast's offline retrieval on Spark: the point-in-time join of a spine with feature views
read at recorded Delta versions.

- The spine reaches Feast as a Spark DataFrame (Feast's Spark store takes one and registers
  it as a temporary view), never as pandas: only counts and Feast's min/max of the spine's
  timestamps come back to the driver.
- Versions are pinned. The views Feast applied read "the table", i.e. its latest version when
  Spark runs. For one retrieval, the registry's views are copied with their Delta source
  carrying ``versionAsOf`` = the recorded version (Delta time travel; Feast passes a
  ``DeltaFormat``'s properties as reader options), and the copies are handed to the Spark
  offline store's ``get_historical_features`` — the call ``FeatureStore.get_historical_features``
  makes after resolving the views from the registry, where no version can be given. A commit
  landing meanwhile is not read, so a lineage record of the versions is true by construction
  (a before/after version check would be too, but would fail whenever a job commits meanwhile).
- Feast gets a session of its own: its Spark store uses the active session and sets
  ``spark.sql.parser.quotedRegexColumnNames=true`` on it, which would change how featurekit's
  session parses SQL. :func:`feast_session` makes a new session on the same SparkContext
  (same Delta setup, settings as configured) the active one only while Feast runs.
- Time zones: Feast turns the spine's min/max timestamps into SQL literals; PySpark returns
  TIMESTAMP values in the Python process's local time, and Spark reads literals in the session
  time zone. The timestamp goes to Feast as TIMESTAMP_NTZ (UTC wall clock, which PySpark
  returns unshifted) and the session must be on UTC (:func:`check_time_zone`), so the bounds
  are right on any machine. :func:`restore_timestamp` gives the column the spine's type again.
"""

from __future__ import annotations

import copy
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from featurekit.errors import ConfigError, arg
from featurekit.feast.definitions import FINGERPRINT_TAG, ServiceSpec, ViewSpec
from featurekit.yamlconf.names import did_you_mean

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

EVENT_TIMESTAMP = "event_timestamp"          # the spine's timestamp column, as Feast names it
RESERVED = ("entity_timestamp",)             # added by Feast's point-in-time query
RESERVED_SUFFIX = "__entity_row_unique_id"
SPARK_TYPES = {"Int64": "bigint", "Int32": "int", "String": "string"}   # join keys' Feast types
INTEGRAL = ("tinyint", "smallint", "int", "bigint")
TIMESTAMP_TYPES = ("timestamp", "timestamp_ntz", "date")


def absolute(path: str) -> str:
    """A local path made absolute (a URI as it is): how view, spine and output paths compare."""
    return path if "://" in path else str(Path(path).expanduser().resolve())


def pinned_views(store: Any, service: ServiceSpec, views: list[ViewSpec], env: str) -> tuple[list[Any], list[str]]:
    """The registry's views of ``service``, copied with their Delta source read at the recorded
    version; and the feature references (``view:feature``) in the service's order.

    The registry must hold the service and its views as the jobs declare them now (``env``
    names the environment to apply them in, for the message).
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
                or absolute(fv.batch_source.path or "") != absolute(view.path)):
            stale.append(f"view {view.name}")
        fvs[view.name] = fv
    if stale or registered is None:
        raise ConfigError.single(
            f"Feast's registry does not hold the current definition of {', '.join(stale)}: "
            f"run `featurekit feast apply --env {env}` first", file="feature_repo", field="registry")
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
        with quiet():
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
def quiet() -> Iterator[None]:
    """Without Feast's warning that its Spark store is experimental (once per build is noise)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*experimental feature.*", category=RuntimeWarning)
        yield


def check_time_zone(spark: "SparkSession") -> None:
    """Refuse a session whose SQL time zone is not UTC (see the module doc)."""
    zone = spark.conf.get("spark.sql.session.timeZone")
    jvm: Any = spark._jvm  # type: ignore[attr-defined]
    if not jvm.java.time.ZoneId.of(zone).normalized().equals(jvm.java.time.ZoneOffset.UTC):
        raise ConfigError.single(
            f"training sets need spark.sql.session.timeZone UTC (it is {zone!r}): Feast's point-in-time "
            "join compares timestamps as UTC text", file="conf", field="spark.conf")


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
                        + (f" (give its name with {arg('timestamp')})" if timestamp == EVENT_TIMESTAMP else ""))
    elif types[timestamp] not in TIMESTAMP_TYPES:
        problems.append(f"the event timestamp {timestamp!r} is {types[timestamp]}; expected a timestamp "
                        "(CSV: values like 2024-01-15 10:00:00)")
    if timestamp != EVENT_TIMESTAMP and EVENT_TIMESTAMP in types:
        problems.append(f"{EVENT_TIMESTAMP!r} is a column too, but {arg('timestamp')} is {timestamp!r}; rename one")
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


def count_spine(frame: "DataFrame") -> tuple[int, int]:
    """(rows, rows with a timestamp) of the spine: one aggregate."""
    from pyspark.sql import functions as F

    row = frame.agg(F.count(F.lit(1)), F.count(F.col(EVENT_TIMESTAMP))).collect()[0]
    return int(row[0]), int(row[1])


def retrieve(store: Any, feature_views: list[Any], refs: list[str], spine: "DataFrame") -> "DataFrame":
    """Feast's point-in-time join on Spark (lazy: nothing runs until the write)."""
    from feast.infra.offline_stores.contrib.spark_offline_store.spark import SparkOfflineStore

    job: Any = SparkOfflineStore.get_historical_features(
        config=store.config, feature_views=feature_views, feature_refs=refs, entity_df=spine,
        registry=store.registry, project=store.project, full_feature_names=False,
    )
    return job.to_spark_df()


def restore_timestamp(frame: "DataFrame", timestamp: str, original_type: str) -> "DataFrame":
    """The retrieved rows with the spine's timestamp under its own name and type again."""
    from pyspark.sql import functions as F

    return frame.select(*(F.col(c).cast(original_type).alias(timestamp) if c == EVENT_TIMESTAMP else F.col(c)
                          for c in frame.columns))
