"""What a training set reads, chosen and checked before Spark does any work.

- the feature service and its views, each with the Delta version to read: the current one, or
  the one that was current at ``--as-of`` (:func:`as_of`);
- the spine's columns against the views' join keys and the features (:func:`check_spine`);
- without a spine, the rows of the service's first view in a time range (:func:`range_spine`).
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from featurekit.config import Project, Settings
from featurekit.engine.point_in_time import RESERVED_PREFIX, JoinView
from featurekit.errors import ConfigError, DataError, NotFound, UsageError, arg
from featurekit.feast.definitions import ServiceSpec, ViewSpec, service_specs, view_specs
from featurekit.yamlconf.names import did_you_mean

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

SPARK_TYPES = {"Int64": "bigint", "Int32": "int", "String": "string"}   # join keys' Feast types
INTEGRAL = ("tinyint", "smallint", "int", "bigint")
TIMESTAMP_TYPES = ("timestamp", "timestamp_ntz", "date")


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


def as_of(views: list[ViewSpec], when: datetime, settings: Settings) -> list[ViewSpec]:
    """``views`` pinned to the versions their tables were at ``when``: each table's latest commit
    at or before it (Delta's ``timestampAsOf``), whose schema must still hold the view."""
    from deltalake import DeltaTable

    pinned, problems = [], []
    for view in views:
        table = DeltaTable(view.path, storage_options=settings.storage_options or None)
        history = table.history()   # read first: delta-rs numbers it wrongly once an older version is loaded
        try:
            table.load_as_version(when)
            # delta-rs loads the earliest version for a time before it, rather than failing
            existed = not _committed_after(history, table.version(), when)
        except Exception:   # delta-rs: "... timestamp ... before the earliest version"
            existed = False
        if not existed:
            first = _first_commit(history)
            problems.append(f"feature view {view.name!r}: its table did not exist yet at {when.isoformat()} "
                            f"(earliest commit kept: {first})")
            continue
        fields = {f["name"] for f in json.loads(table.schema().to_json())["fields"]}
        missing = [c for c in (*view.join_keys, view.timestamp, *view.features) if c not in fields]
        if missing:
            problems.append(f"feature view {view.name!r}: its table at version {table.version()} (current at "
                            f"{when.isoformat()}) has no column(s) {', '.join(map(repr, missing))}")
            continue
        pinned.append(replace(view, version=table.version()))
    if problems:
        raise UsageError("as_of", "; ".join(problems))
    return pinned


def _committed_after(history: list[dict[str, Any]], version: int, when: datetime) -> bool:
    """Whether ``version`` was committed after ``when`` (False if its commit is no longer in the log)."""
    commit = next((c for c in history if c.get("version") == version), {})
    stamp = commit.get("timestamp")
    return isinstance(stamp, int) and stamp > when.timestamp() * 1000


def _first_commit(history: list[dict[str, Any]]) -> str:
    if not history:
        return "none"
    oldest = min(history, key=lambda c: int(c.get("version", 0)))
    stamp = oldest.get("timestamp")
    shown = datetime.fromtimestamp(stamp / 1000).astimezone().isoformat() if isinstance(stamp, int) else "?"
    return f"version {oldest.get('version')} at {shown}"


def join_keys(views: list[ViewSpec]) -> dict[str, str]:
    """Every join key of ``views`` and its Spark type."""
    keys: dict[str, str] = {}
    for view in views:
        for key, feast_type in view.join_keys.items():
            keys.setdefault(key, SPARK_TYPES[feast_type])
    return keys


def check_spine(frame: "DataFrame", views: list[ViewSpec], timestamp: str, *, source: str = "spine",
                reserved: tuple[str, ...] = (RESERVED_PREFIX,)) -> "DataFrame":
    """The spine with its join keys typed as the views' (integers widened or narrowed alike).

    Every problem is reported at once, naming the spine's columns: a missing or untyped
    timestamp, missing join keys, keys of another type, columns named like a feature, two views
    with a feature of one name, columns starting with a ``reserved`` prefix.
    """
    from pyspark.sql import functions as F

    types = dict(frame.dtypes)
    shown = ", ".join(f"{c} ({t})" for c, t in frame.dtypes)
    problems: list[str] = []
    keys = join_keys(views)
    if timestamp not in types:
        problems.append(f"no event timestamp column {timestamp!r}" + did_you_mean(timestamp, types)
                        + (f" (give its name with {arg('timestamp')})" if source == "spine" else ""))
    elif types[timestamp] not in TIMESTAMP_TYPES:
        problems.append(f"the event timestamp {timestamp!r} is {types[timestamp]}; expected a timestamp "
                        "(CSV: values like 2024-01-15 10:00:00)")
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
    for view in views:
        for name in view.features:
            if name in seen:
                problems.append(f"two views of the service have a feature {name!r}")
            seen.add(name)
    clashes = [c for c in types if c in seen or c.startswith(reserved) or c.endswith(reserved)]
    if clashes:
        problems.append(f"column(s) {', '.join(map(repr, clashes))} would clash with the features or the join's "
                        "own columns")
    if problems:
        raise ConfigError.single("; ".join(problems) + f" — the {source} has: {shown}", file=source, field="columns")
    return frame.select(*(F.col(f"`{c}`").cast(keys[c]).alias(c) if c in keys and types[c] != keys[c]
                          else F.col(f"`{c}`") for c in frame.columns))


def read_view(spark: "SparkSession", view: ViewSpec) -> "DataFrame":
    """The view's table at its pinned version: the join keys, the time and the features."""
    from pyspark.sql import functions as F

    frame = spark.read.format("delta").option("versionAsOf", view.version).load(view.path)
    return frame.select(*(F.col(f"`{c}`") for c in dict.fromkeys((*view.join_keys, view.timestamp, *view.features))))


def join_view(spark: "SparkSession", view: ViewSpec) -> JoinView:
    return JoinView(view.name, read_view(spark, view), tuple(view.join_keys), view.timestamp, view.ttl_seconds,
                    tuple(view.features))


def range_spine(spark: "SparkSession", views: list[ViewSpec], start: datetime,
                end: datetime) -> tuple["DataFrame", str]:
    """The training set's rows without a spine: every row of the first view with
    ``start <= time <= end`` (its keys, time and features), and the name of its time column.
    The other views join on it, so their join keys must be among its columns."""
    from pyspark.sql import functions as F

    first = views[0]
    columns = {*first.join_keys, first.timestamp, *first.features}
    missing = {v.name: [k for k in v.join_keys if k not in columns] for v in views[1:]}
    missing = {name: keys for name, keys in missing.items() if keys}
    if missing:
        listed = "; ".join(f"{name} joins on {', '.join(map(repr, keys))}" for name, keys in missing.items())
        raise UsageError("start", f"without a spine, the rows are those of the first view, {first.name!r}, and the "
                                  f"other views join on its columns: {listed}, which {first.name!r} does not have "
                                  f"(give a {arg('spine')} instead)")
    at = F.col(f"`{first.timestamp}`")
    # the bounds as instants compared in the session's time zone (UTC, checked): no local-time shift
    rows = read_view(spark, first).where((at >= F.lit(start.isoformat()).cast("timestamp"))
                                         & (at <= F.lit(end.isoformat()).cast("timestamp")))
    return rows, first.timestamp


def no_timed_rows(spine: str, rows: int) -> DataError:
    return DataError(f"the spine {spine} has no row with an event timestamp ({rows:,} rows)")
