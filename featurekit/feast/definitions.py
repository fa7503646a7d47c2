"""Feast objects built from the job specs: each job's ``features:`` block is the source of truth.

Two steps, so that the plan can be read and tested without importing Feast:

- :func:`view_specs` reads every job with a ``features:`` block and the schema of its Delta
  table (with delta-rs: no JVM) and returns plain :class:`ViewSpec` descriptions;
- :func:`feast_objects` turns them into Feast Entities, Spark data sources over the Delta
  tables, FeatureViews and FeatureServices, named so Feast's ``apply`` picks them up.

A job's FeatureView and its FeatureService are both named after the job (Feast keeps the two
kinds apart). Columns Feast cannot serve (``date``, ``decimal``, maps, structs) are left out of
the view and named in its ``featurekit.skipped`` tag, so nobody wonders where they went.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from featurekit.config import Project
from featurekit.config.settings import Settings
from featurekit.errors import ConfigError, Problem, SpecError
from featurekit.spec.durations import parse_duration
from featurekit.spec.loader import LoadedJob, load_jobs
from featurekit.yamlconf.names import did_you_mean

# Delta primitive type -> Feast type name (feast.types.<name>)
FEAST_TYPES = {
    "long": "Int64", "integer": "Int32", "short": "Int32", "byte": "Int32",
    "double": "Float64", "float": "Float32", "string": "String", "boolean": "Bool",
    "timestamp": "UnixTimestamp", "timestamp_ntz": "UnixTimestamp", "binary": "Bytes",
}
# Array element types Feast serves (Array(<type>)).
ARRAY_TYPES = {"long", "integer", "double", "float", "string", "boolean", "binary", "timestamp"}

JOB_TAG = "featurekit.job"
FINGERPRINT_TAG = "featurekit.fingerprint"
SKIPPED_TAG = "featurekit.skipped"


@dataclass(frozen=True)
class ViewSpec:
    """One FeatureView, described without Feast: what the job's table serves."""

    name: str
    job: LoadedJob
    path: str
    version: int
    entity: str
    join_keys: dict[str, str]          # column -> Feast type name
    timestamp: str
    ttl_seconds: int
    online: bool
    features: dict[str, str]           # column -> Feast type name ("Array(Int64)" for arrays)
    skipped: dict[str, str] = field(default_factory=dict)   # column -> Delta type
    tags: dict[str, str] = field(default_factory=dict)
    description: str = ""
    owner: str = ""


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    features: dict[str, list[str]]     # view -> feature names (in view order)
    description: str = ""


def feature_jobs(project: Project, settings: Settings) -> list[LoadedJob]:
    """Every job in ``jobs/`` that declares ``features:`` (all specs must be valid)."""
    jobs, problems = load_jobs(project.job_files(), settings.vars, base=project.root)
    if problems:
        raise SpecError(problems)
    return [job for job in jobs if job.spec.features is not None]


def feast_type(delta_type: Any) -> str | None:
    """The Feast type name for a Delta schema type (JSON form), or None if Feast cannot serve it."""
    if isinstance(delta_type, str):
        return FEAST_TYPES.get(delta_type)
    if isinstance(delta_type, dict) and delta_type.get("type") == "array":
        element = delta_type.get("elementType")
        if isinstance(element, str) and element in ARRAY_TYPES:
            return f"Array({FEAST_TYPES[element]})"
    return None


def _shown_type(delta_type: Any) -> str:
    if isinstance(delta_type, dict):
        return str(delta_type.get("type", "complex"))
    return str(delta_type)


def table_schema(job: LoadedJob, settings: Settings) -> tuple[int, list[tuple[str, Any]]]:
    """(version, [(column, Delta type)]) of the job's table, read with delta-rs."""
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    path = job.spec.output.path
    try:
        table = DeltaTable(path, storage_options=settings.storage_options or None)
    except TableNotFoundError:
        raise ConfigError.single(
            f"feature view {job.name!r} reads {path}, which has not been written yet: "
            f"run `featurekit run {job.name} --env {settings.env}` first",
            file=job.shown_path, field="output.path",
        ) from None
    schema = json.loads(table.schema().to_json())
    columns = [(f["name"], f["type"]) for f in schema["fields"]]
    return table.version(), columns


def view_spec(job: LoadedJob, settings: Settings) -> ViewSpec:
    """The FeatureView of one job, typed from its Delta table's schema."""
    features_spec = job.spec.features
    assert features_spec is not None  # feature_jobs() keeps only these
    version, columns = table_schema(job, settings)
    types = dict(columns)
    problems = []
    for role, name in [*(("join_keys", k) for k in features_spec.join_keys), ("timestamp", features_spec.timestamp)]:
        if name not in types:
            problems.append(job.positions.problem(("features", role), f"column {name!r} is not in the table "
                                                  f"{job.spec.output.path} (columns: {', '.join(types)})", True))
    if features_spec.timestamp in types and _shown_type(types[features_spec.timestamp]) not in ("timestamp", "timestamp_ntz"):
        problems.append(job.positions.problem(("features", "timestamp"), "expected a timestamp column; "
                                              f"{features_spec.timestamp!r} is {_shown_type(types[features_spec.timestamp])}", True))
    join_keys: dict[str, str] = {}
    for key in features_spec.join_keys:
        typed = feast_type(types.get(key)) if key in types else None
        if key in types and (typed is None or typed.startswith("Array") or typed in ("UnixTimestamp", "Float32", "Float64")):
            problems.append(job.positions.problem(("features", "join_keys"), f"join key {key!r} is "
                                                  f"{_shown_type(types[key])}; expected string, integer or long", True))
        elif typed is not None:
            join_keys[key] = typed
    if problems:
        raise SpecError(problems)
    features: dict[str, str] = {}
    skipped: dict[str, str] = {}
    for name, delta_type in columns:
        if name in join_keys or name == features_spec.timestamp:
            continue
        typed = feast_type(delta_type)
        if typed is None:
            skipped[name] = _shown_type(delta_type)
        else:
            features[name] = typed
    tags = {str(k): str(v) for k, v in features_spec.tags.items()}
    tags[JOB_TAG] = job.name
    tags[FINGERPRINT_TAG] = job.fingerprint
    if skipped:
        tags[SKIPPED_TAG] = ",".join(f"{k}:{v}" for k, v in skipped.items())
    return ViewSpec(
        name=job.name, job=job, path=job.spec.output.path, version=version, entity=features_spec.entity,
        join_keys=join_keys, timestamp=features_spec.timestamp, ttl_seconds=parse_duration(features_spec.ttl),
        online=features_spec.online, features=features, skipped=skipped, tags=tags,
        description=features_spec.description or job.spec.description, owner=job.spec.owner,
    )


def view_specs(project: Project, settings: Settings) -> list[ViewSpec]:
    """Every FeatureView of the project; every problem found is reported at once."""
    views: list[ViewSpec] = []
    problems: list[Problem] = []
    for job in feature_jobs(project, settings):
        try:
            views.append(view_spec(job, settings))
        except SpecError as exc:
            problems += exc.problems
    if problems:
        raise ConfigError(problems) if all(p.field == "output.path" for p in problems) else SpecError(problems)
    _check_entities(views)
    return views


def _check_entities(views: list[ViewSpec]) -> None:
    """One entity name means one set of join keys with one set of types."""
    seen: dict[str, ViewSpec] = {}
    problems = []
    for view in views:
        first = seen.setdefault(view.entity, view)
        if first.join_keys != view.join_keys:
            problems.append(view.job.positions.problem(("features", "entity"), f"entity {view.entity!r} has join keys "
                                                       f"{_keys(view.join_keys)} here but {_keys(first.join_keys)} "
                                                       f"in {first.job.shown_path}", True))
    if problems:
        raise SpecError(problems)


def _keys(join_keys: dict[str, str]) -> str:
    return ", ".join(f"{k} ({t})" for k, t in join_keys.items())


def service_specs(views: list[ViewSpec]) -> list[ServiceSpec]:
    """One service per view (named after the job) plus those the specs declare."""
    by_name = {v.name: v for v in views}
    services = [ServiceSpec(v.name, {v.name: list(v.features)}, f"All features of {v.name}.") for v in views]
    problems = []
    for view in views:
        declared = view.job.spec.features.services if view.job.spec.features else {}
        for name, entries in declared.items():
            if name in by_name and name != view.name:
                problems.append(view.job.positions.problem(("features", "services", name),
                                                           f"{name!r} is already the service of job {name!r}; pick another name"))
                continue
            chosen: dict[str, list[str]] = {}
            for i, entry in enumerate(entries):
                view_name, _, feature = entry.partition(":")
                target = by_name.get(view_name)
                where = ("features", "services", name, i)
                if target is None:
                    problems.append(view.job.positions.problem(
                        where, f"unknown feature view {view_name!r}" + did_you_mean(view_name, by_name)
                        + f" (views: {', '.join(by_name)})", True))
                elif feature and feature not in target.features:
                    problems.append(view.job.positions.problem(
                        where, f"view {view_name!r} has no feature {feature!r}" + did_you_mean(feature, target.features)
                        + f" (features: {', '.join(target.features)})", True))
                else:
                    picked = chosen.setdefault(view_name, [])
                    for name_ in ([feature] if feature else list(target.features)):
                        if name_ not in picked:
                            picked.append(name_)
            services.append(ServiceSpec(name, chosen, f"Declared in {view.job.shown_path}."))
    if problems:
        raise SpecError(problems)
    return services


def feast_entities(view: ViewSpec) -> list[tuple[str, str]]:
    """The Feast entities of ``view`` as (name, join key): its ``entity``, or with several join
    keys one entity per key, ``<entity>__<key>``, since a Feast Entity has a single join key."""
    keys = list(view.join_keys)
    if len(keys) == 1:
        return [(view.entity, keys[0])]
    return [(f"{view.entity}__{key}", key) for key in keys]


def feast_objects(views: list[ViewSpec], services: list[ServiceSpec]) -> dict[str, Any]:
    """Feast objects keyed by a module-level name (``entity_driver``, ``view_<job>``, ...)."""
    from datetime import timedelta

    import feast.types as ft
    from feast import Entity, FeatureService, FeatureView, Field, ValueType
    from feast.infra.offline_stores.contrib.spark_offline_store.spark_source import SparkSource
    from feast.table_format import DeltaFormat

    from featurekit.feast import quiet_spark_source

    quiet_spark_source()

    def typed(name: str) -> Any:
        if name.startswith("Array("):
            return ft.Array(getattr(ft, name[6:-1]))
        return getattr(ft, name)

    value_types = {"Int64": ValueType.INT64, "Int32": ValueType.INT32, "String": ValueType.STRING,
                   "Bool": ValueType.BOOL, "Bytes": ValueType.BYTES}
    objects: dict[str, Any] = {}
    entities: dict[str, Any] = {}
    for view in views:
        for name, key in feast_entities(view):
            if name not in entities:
                entities[name] = Entity(
                    name=name, join_keys=[key], value_type=value_types[view.join_keys[key]],
                    description=f"Declared by {view.job.shown_path}.", tags={JOB_TAG: view.job.name},
                )
                objects[f"entity_{name}"] = entities[name]
    feature_views: dict[str, Any] = {}
    for view in views:
        source = SparkSource(
            name=view.name, path=view.path, table_format=DeltaFormat(), timestamp_field=view.timestamp,
            description=f"Delta table written by job {view.name}.", tags={JOB_TAG: view.name}, owner=view.owner,
        )
        schema = [Field(name=k, dtype=typed(t)) for k, t in view.join_keys.items()]
        schema += [Field(name=k, dtype=typed(t)) for k, t in view.features.items()]
        feature_views[view.name] = FeatureView(
            name=view.name, entities=[entities[name] for name, _ in feast_entities(view)], ttl=timedelta(seconds=view.ttl_seconds),
            schema=schema, source=source, online=view.online, tags=view.tags,
            description=view.description, owner=view.owner,
        )
        objects[f"view_{view.name}"] = feature_views[view.name]
    for service in services:
        projections = [feature_views[v][names] for v, names in service.features.items()]
        objects[f"service_{service.name}"] = FeatureService(
            name=service.name, features=projections, description=service.description,
        )
    return objects
