"""Lineage in the Kubeflow Model Registry, wired: where records go, linking models, the tree.

- :func:`lineage_store`: what ``materialize`` and ``training_set`` record into: the run log
  always, and the Model Registry when ``registry.enabled`` (unreachable -> the outbox).
- :func:`link`: attach the DataSet artifacts of a training set, or of the latest materialized
  feature sets of a feature service's views, to a model version (created if absent), and name
  the service in the version's customProperties. Training code calls it too:
  ``link(project, settings, "eta", "3", service="driver_rates")``.
- :func:`flush`: replay the outbox, exactly once per record.
- :func:`show`: the tree model version -> training set -> feature sets -> Delta versions -> job
  runs -> sources (or a feature view's feature sets -> ...), built by
  :class:`featurekit.lineage.tree_builder.TreeBuilder` from the registry's artifacts and the run
  reports; :func:`featurekit.lineage.tree.render` draws it.

The job run behind a feature set's Delta version is read from the table's log: the commit at
that version carries featurekit's ``userMetadata`` (job, run id, fingerprint). Commits without
it that change no data (OPTIMIZE, VACUUM, properties) are stepped over to the commit before;
a RESTORE leads to the version it restored. The run report (``<runs>/<job>/<run id>.json``)
gives the validation summary and the sources read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from featurekit.config import Project, Settings
from featurekit.errors import ConfigError, NotFound, UsageError, arg
from featurekit.lineage import (
    BothLineage,
    FeatureSetRecord,
    LineageStore,
    Producer,
    RunLogLineage,
    TrainingSetRecord,
    is_queued,
)
from featurekit.lineage.client import RegistryClient, RegistryUnavailable, registry_client, untagged
from featurekit.lineage.registry_lineage import (
    FEATURE_SET,
    KIND,
    TRAINING_SET,
    FlushResult,
    RegistryLineage,
    latest_feature_set,
    training_set_external_id,
    training_set_id,
)
from featurekit.lineage.tree import Node
from featurekit.lineage.tree_builder import TreeBuilder
from featurekit.pipeline.report import read_report
from featurekit.yamlconf.names import did_you_mean

# Operations that change no row: the producer of the version is the one before.
_NO_DATA_CHANGE = ("OPTIMIZE", "VACUUM START", "VACUUM END", "SET TBLPROPERTIES", "UNSET TBLPROPERTIES",
                   "ADD CONSTRAINT", "DROP CONSTRAINT", "UPGRADE PROTOCOL", "REORG", "CHANGE COLUMN",
                   "ADD COLUMNS", "SET COLUMN COMMENT")
_WALK_BACK = 20


# -- the store ------------------------------------------------------------------------------


def registry_lineage(settings: Settings, client: RegistryClient | None = None) -> RegistryLineage:
    return RegistryLineage(client or registry_client(settings), Path(settings.registry.outbox),
                           producer=lambda record: find_producer(settings.runs_dir, record.delta_path,
                                                                 record.delta_version, record.job,
                                                                 settings.storage_options))


def lineage_store(project: Project, settings: Settings, client: RegistryClient | None = None) -> LineageStore:
    """The run log, plus the Model Registry when ``registry.enabled`` (see the module doc)."""
    del project  # every environment's registry is in its settings
    log = RunLogLineage(settings.runs_dir)
    if not settings.registry.enabled:
        return log
    return BothLineage(log, registry_lineage(settings, client))


def lineage_warning(what: str, marker: str) -> list[str]:
    """The warning for a result when a record went to the outbox (else none)."""
    return [f"lineage of {what} is not in the Model Registry yet: {marker}"] if is_queued(marker) else []


# -- producers ------------------------------------------------------------------------------


def find_producer(runs_dir: Path, delta_path: str, version: int, job: str,
                  storage_options: dict[str, str] | None = None) -> Producer:
    """The job run whose commit made ``version`` of the table, with its report's summary."""
    return find_producers(runs_dir, delta_path, [version], job, storage_options)[version]


def find_producers(runs_dir: Path, delta_path: str, versions: list[int], job: str,
                   storage_options: dict[str, str] | None = None) -> dict[int, Producer]:
    """:func:`find_producer` of several versions of one table, its log read once (not once per
    version: a view materialized from many versions of its table lists them all)."""
    from featurekit.sinks.inspect import commits_since

    if not versions:
        return {}
    try:
        commits = commits_since(delta_path, max(0, min(versions) - _WALK_BACK), storage_options)
    except Exception:  # an unreadable log (storage credentials, a foreign table) must not fail the run
        commits = {}
    return {version: _producer_in(commits, runs_dir, version, job) for version in versions}


def _producer_in(commits: dict[int, dict[str, Any]], runs_dir: Path, version: int, job: str) -> Producer:
    oldest = max(0, version - _WALK_BACK)       # as far back as one version's lookup reads
    current: int | None = version
    seen = set()
    while current is not None and current >= oldest and current in commits and current not in seen:
        seen.add(current)
        commit = commits[current]
        meta = commit["metadata"]
        if meta.get("run_id"):
            return _with_report(runs_dir, Producer(job=str(meta.get("job") or job), run_id=str(meta["run_id"]),
                                                   delta_version=current, operation=commit["operation"]),
                                str(meta.get("fingerprint") or ""))
        if commit["operation"] == "RESTORE":
            restored = commit["parameters"].get("version")
            current = int(restored) if str(restored or "").isdigit() else None
        elif commit["operation"] in _NO_DATA_CHANGE:
            current -= 1
        else:
            current = None
    return Producer(job=job, run_id="", delta_version=version, operation=commits.get(version, {}).get("operation", ""))


def _with_report(runs_dir: Path, producer: Producer, fingerprint: str) -> Producer:
    report = read_report(runs_dir, producer.job, producer.run_id)
    if report is None:
        return producer
    gate = dict(report.get("gate") or {})
    validation = {k: v for k, v in gate.items() if k != "checks"}
    # the checks' counts and messages, not their example rows (values stay in the lake)
    validation["checks"] = [{k: v for k, v in c.items() if k != "examples"} for c in gate.get("checks") or []]
    validation["fingerprint"] = fingerprint or report.get("fingerprint", "")
    sources = [{k: s.get(k) for k in ("name", "format", "path", "delta_version", "rows_read", "rows_malformed")}
               for s in report.get("sources") or []]
    return Producer(job=producer.job, run_id=producer.run_id, delta_version=producer.delta_version,
                    operation=producer.operation, validation=validation, sources=sources,
                    status=str(report.get("status") or ""))


# -- link -----------------------------------------------------------------------------------


@dataclass
class LinkResult:
    model: dict[str, Any]
    version: dict[str, Any]
    artifacts: list[dict[str, Any]] = field(default_factory=list)   # linked, in order
    urls: list[str] = field(default_factory=list)


def link(project: Project, settings: Settings, model: str, version: str, training_set: str | None = None,
         service: str | None = None, *, author: str | None = None, client: RegistryClient | None = None) -> LinkResult:
    """Attach lineage to version ``version`` of the registered model ``model`` (both created if
    absent): the training set ``training_set`` (its run id, or its artifact id), or with
    ``service`` the latest materialized feature set of each of the service's views. The model
    version's customProperties then name the feature service (``feature_service``, the training
    set's own with ``training_set``) and ``feast_project``: the service it is served with.

    A record the run log holds but the registry does not yet (recorded with the registry
    disabled, or waiting in the outbox) is sent first; "latest" compares the registry's newest
    feature set of a view with the run log's by the time they were recorded.
    """
    if (training_set is None) == (service is None):
        raise UsageError("training_set", f"give {arg('training_set')} or {arg('service')}")
    own = client is None
    client = client or registry_client(settings)
    try:
        store = registry_lineage(settings, client)
        if training_set is not None:
            artifacts = [_training_set_artifact(settings, store, training_set)]
        else:
            artifacts = _service_artifacts(project, settings, store, str(service))
        registered = client.registered_model(model, **({"owner": author} if author else {}))
        mv = client.model_version(registered["id"], version, **({"author": author} if author else {}))
        linked = [client.link(mv["id"], a["id"]) for a in artifacts]
        served = {"feature_service": service, "feast_project": settings.feast.project}
        if training_set is not None:
            props = untagged(artifacts[0].get("customProperties"))
            served = {"feature_service": props.get("feature_service"),
                      "feast_project": props.get("feast_project") or settings.feast.project}
        if served["feature_service"]:
            # the service the version is served with (the KServe transformer reads it); the last link wins
            mv = client.set_version_properties(mv, served)
        return LinkResult(registered, mv, linked, [client.api_url(f"/artifacts/{a['id']}") for a in linked])
    finally:
        if own:
            client.close()


def _sent(store: RegistryLineage, marker: str) -> dict[str, Any]:
    """The artifact a store's answer names; an outbox marker means the registry is down."""
    if is_queued(marker):
        raise RegistryUnavailable(marker)
    found = store.client.get_artifact(marker.rsplit("/", 1)[1])
    assert found is not None
    return found


def _training_set_artifact(settings: Settings, store: RegistryLineage, ident: str) -> dict[str, Any]:
    client = store.client
    if ident.isdigit():
        found = client.get_artifact(ident)
        if found is None or untagged(found.get("customProperties")).get(KIND) != TRAINING_SET:
            raise NotFound("training set", ident, f"artifact {ident} of the Model Registry at {client.url} is not a "
                           "featurekit training set", param="training_set")
        return found
    log = RunLogLineage(settings.runs_dir)
    records = [r for r in log.records() if r.get("kind") == TRAINING_SET and str(r["run_id"]).startswith(ident)]
    exact = [r for r in records if r["run_id"] == ident]
    if len(exact) == 1 or len(records) == 1:
        fields = {k: v for k, v in (exact or records)[0].items() if k != "kind"}
        record = TrainingSetRecord(**fields)
        existing = client.find_artifact(training_set_external_id(record))
        return existing if existing is not None else _sent(store, store.record_training_set(record))
    found = client.find_artifact(training_set_id(settings.feast.project, ident))
    if found is not None:
        return found
    if records:
        raise UsageError("training_set", f"{len(records)} training sets have a run id starting with {ident!r}: give "
                         f"more of it ({', '.join(r['run_id'] for r in records[:5])})")
    raise NotFound("training set", ident, f"no training set with run id {ident!r} in the Model Registry at {client.url} "
                   f"or the run log ({settings.runs_dir})", param="training_set")


def _service_artifacts(project: Project, settings: Settings, store: RegistryLineage, service: str) -> list[dict[str, Any]]:
    from featurekit.pipeline.features import definitions

    views, services = definitions(project, settings)
    by_name = {s.name: s for s in services}
    offline = {v.name for v in views if not v.online}
    if service not in by_name:
        raise NotFound("feature service", service, f"unknown feature service {service!r}"
                       + did_you_mean(service, by_name) + f" (services: {', '.join(by_name) or 'none'})", param="service")
    feast_project = settings.feast.project
    logged = [r for r in RunLogLineage(settings.runs_dir).records()
              if r.get("kind") == FEATURE_SET and r.get("feast_project") == feast_project]
    artifacts, missing = [], []
    for view in by_name[service].features:
        found = latest_feature_set(store.client, feast_project, view)
        mine = [r for r in logged if r["feature_view"] == view]
        recorded = untagged(found.get("customProperties")).get("recorded_at", "") if found else ""
        if mine and str(mine[-1]["recorded_at"]) > str(recorded or ""):   # the run log knows a newer one
            fields = {k: v for k, v in mine[-1].items() if k != "kind"}
            found = _sent(store, store.record_feature_set(FeatureSetRecord(**fields)))
        if found is None:
            missing.append(view)
        else:
            artifacts.append(found)
    if missing:
        hint = (f"run `featurekit materialize --env {settings.env}` first" if not offline & set(missing)
                else "views with `online: false` are never materialized: link a training set instead")
        raise NotFound("feature set", ", ".join(missing), f"feature service {service!r}: no materialized feature set of "
                       f"{', '.join(missing)} ({hint})", param="service")
    return artifacts


# -- flush ----------------------------------------------------------------------------------


def flush(project: Project, settings: Settings, client: RegistryClient | None = None) -> FlushResult:
    """Send what waits in the outbox (see :meth:`RegistryLineage.flush`)."""
    del project
    own = client is None
    client = client or registry_client(settings)
    try:
        return registry_lineage(settings, client).flush()
    finally:
        if own:
            client.close()


# -- show -----------------------------------------------------------------------------------


def show(project: Project, settings: Settings, *, model: str | None = None, version: str | None = None,
         feature_view: str | None = None, limit: int = 10, client: RegistryClient | None = None) -> Node:
    """The lineage tree of a model version, or of a feature view's latest ``limit`` feature sets."""
    del project
    if (feature_view is None) == (model is None) or (model is not None and version is None):
        raise UsageError("model", f"give {arg('model')} with {arg('version')}, or {arg('feature_view')}")
    own = client is None
    client = client or registry_client(settings)
    try:
        tree = TreeBuilder(client, settings.feast.project, partial(read_report, settings.runs_dir))
        if feature_view is not None:
            return tree.of_view(feature_view, limit)
        return tree.of_model_version(str(model), str(version))
    finally:
        if own:
            client.close()


@dataclass(frozen=True)
class Registered:
    """A model version and its model artifact, as the registry holds them now."""

    model: dict[str, Any]
    version: dict[str, Any]
    artifact: dict[str, Any]
    url: str


def register_model(settings: Settings, model: str, version: str, uri: str, model_format: str,
                   format_version: str | None = None, *, author: str | None = None,
                   client: RegistryClient | None = None) -> Registered:
    """Give version ``version`` of ``model`` (both created if absent) its model artifact: where the
    trained model is (``uri``, the predictor's ``storageUri``) and its format (KServe's
    ``modelFormat``). Registering again updates the version's one model artifact."""
    if "://" not in uri:
        raise UsageError("uri", f"expected a URI with a scheme (s3://, gs://, pvc://, https://, file://...); got {uri!r}")
    own = client is None
    client = client or registry_client(settings)
    try:
        registered = client.registered_model(model, **({"owner": author} if author else {}))
        mv = client.model_version(registered["id"], version, **({"author": author} if author else {}))
        # named after the model, as the official client names it and finds it (name + version id)
        body = {"name": model, "uri": uri, "modelFormatName": model_format,
                **({"modelFormatVersion": format_version} if format_version else {})}
        artifact = client.version_model_artifact(mv["id"], body)
        return Registered(registered, mv, artifact, client.api_url(f"/model_artifacts/{artifact['id']}"))
    finally:
        if own:
            client.close()
