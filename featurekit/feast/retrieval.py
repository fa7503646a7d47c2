"""Feast's offline retrieval on Spark (``training-set --engine feast``): the point-in-time join
of a spine with feature views read at recorded Delta versions. featurekit's own join
(:mod:`featurekit.engine.point_in_time`) is the default; this one stays as the reference it is
checked against, and for those who want Feast's semantics to the letter.

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
  are right on any machine (the session is checked to be on UTC by the caller).
  :func:`restore_timestamp` gives the column the spine's type again.
"""

from __future__ import annotations

import copy
import warnings
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Iterator

from featurekit.config.storage import absolute
from featurekit.errors import ConfigError, arg
from featurekit.feast.definitions import FINGERPRINT_TAG, ServiceSpec, ViewSpec

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

EVENT_TIMESTAMP = "event_timestamp"          # the spine's timestamp column, as Feast names it
RESERVED = ("entity_timestamp",)             # added by Feast's point-in-time query
RESERVED_SUFFIX = "__entity_row_unique_id"


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


def feast_spine(frame: "DataFrame", timestamp: str) -> tuple["DataFrame", str]:
    """The spine as Feast gets it (the timestamp named ``event_timestamp``, as TIMESTAMP_NTZ in
    UTC), and the timestamp's original type. Feast's own column names are refused."""
    from pyspark.sql import functions as F

    types = dict(frame.dtypes)
    problems = []
    if timestamp != EVENT_TIMESTAMP and EVENT_TIMESTAMP in types:
        problems.append(f"{EVENT_TIMESTAMP!r} is a column too, but {arg('timestamp')} is {timestamp!r}; rename one")
    clashes = [c for c in types if c in RESERVED or c.endswith(RESERVED_SUFFIX)]
    if clashes:
        problems.append(f"column(s) {', '.join(map(repr, clashes))} would clash with Feast's own columns")
    if problems:
        shown = ", ".join(f"{c} ({t})" for c, t in frame.dtypes)
        raise ConfigError.single("; ".join(problems) + f" — the spine has: {shown}", file="spine", field="columns")
    return frame.select(*(F.col(f"`{c}`").cast("timestamp_ntz").alias(EVENT_TIMESTAMP) if c == timestamp
                          else F.col(f"`{c}`") for c in frame.columns)), types[timestamp]


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
