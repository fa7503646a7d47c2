"""Lineage in the Kubeflow Model Registry, wired: where records go, linking models, the tree.

- :func:`lineage_store`: what ``materialize`` and ``training_set`` record into: the run log
  always, and the Model Registry when ``registry.enabled`` (unreachable -> the outbox).
- :func:`link`: attach the DataSet artifacts of a training set, or of the latest materialized
  feature sets of a feature service's views, to a model version (created if absent). Training
  code calls it too: ``link(project, settings, "eta", "3", service="driver_rates")``.
- :func:`flush`: replay the outbox, exactly once per record.
- :func:`show`: the tree model version -> training set -> feature sets -> Delta versions -> job
  runs -> sources (or a feature view's feature sets -> ...), from the registry's artifacts and
  the run reports; :func:`featurekit.lineage.tree.render` draws it.

The job run behind a feature set's Delta version is read from the table's log: the commit at
that version carries featurekit's ``userMetadata`` (job, run id, fingerprint). Commits without
it that change no data (OPTIMIZE, VACUUM, properties) are stepped over to the commit before;
a RESTORE leads to the version it restored. The run report (``<runs>/<job>/<run id>.json``)
gives the validation summary and the sources read.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from featurekit.config import Project, Settings
from featurekit.errors import ConfigError
from featurekit.lineage import (
    BothLineage,
    FeatureSetRecord,
    LineageStore,
    Producer,
    RunLogLineage,
    TrainingSetRecord,
    is_queued,
)
from featurekit.lineage.client import DATASET, RegistryClient, RegistryUnavailable, untagged
from featurekit.lineage.registry_lineage import (
    FEATURE_SET,
    KIND,
    TRAINING_SET,
    FlushResult,
    RegistryLineage,
    feature_set_query,
    latest_feature_set,
    training_set_external_id,
    training_set_id,
)
from featurekit.lineage.tree import Node
from featurekit.yamlconf.names import did_you_mean

CLI = "command line"
# Operations that change no row: the producer of the version is the one before.
_NO_DATA_CHANGE = ("OPTIMIZE", "VACUUM START", "VACUUM END", "SET TBLPROPERTIES", "UNSET TBLPROPERTIES",
                   "ADD CONSTRAINT", "DROP CONSTRAINT", "UPGRADE PROTOCOL", "REORG", "CHANGE COLUMN",
                   "ADD COLUMNS", "SET COLUMN COMMENT")
_WALK_BACK = 20


# -- the store ------------------------------------------------------------------------------


def registry_client(settings: Settings) -> RegistryClient:
    """A client of the environment's registry (``FEATUREKIT_REGISTRY_URL`` wins over conf)."""
    conf = settings.registry
    token = None
    if conf.token_env:
        token = os.environ.get(conf.token_env)
        if not token:
            raise ConfigError.single(f"registry.token_env names the environment variable {conf.token_env}, "
                                     "which is not set (or empty)", file="conf", field="registry.token_env")
    return RegistryClient(conf.effective_url, token=token, timeout_s=conf.timeout_s, retries=conf.retries,
                          backoff_s=conf.backoff_s)


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
    from featurekit.sinks.inspect import commits_since

    try:
        commits = commits_since(delta_path, max(0, version - _WALK_BACK), storage_options)
    except Exception:  # an unreadable log (storage credentials, a foreign table) must not fail the run
        commits = {}
    current: int | None = version
    seen = set()
    while current is not None and current in commits and current not in seen:
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


def read_report(runs_dir: Path, job: str, run_id: str) -> dict[str, Any] | None:
    path = Path(runs_dir) / job / f"{run_id}.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


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
    ``service`` the latest materialized feature set of each of the service's views.

    A record the run log holds but the registry does not yet (recorded with the registry
    disabled, or waiting in the outbox) is sent first; "latest" compares the registry's newest
    feature set of a view with the run log's by the time they were recorded.
    """
    if (training_set is None) == (service is None):
        raise ConfigError.single("give --training-set or --service", file=CLI, field="--training-set")
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
            raise ConfigError.single(f"artifact {ident} of the Model Registry at {client.url} is not a featurekit "
                                     "training set", file=CLI, field="--training-set")
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
        raise ConfigError.single(f"{len(records)} training sets have a run id starting with {ident!r}: give more of it "
                                 f"({', '.join(r['run_id'] for r in records[:5])})", file=CLI, field="--training-set")
    raise ConfigError.single(f"no training set with run id {ident!r} in the Model Registry at {client.url} or the run "
                             f"log ({settings.runs_dir})", file=CLI, field="--training-set")


def _service_artifacts(project: Project, settings: Settings, store: RegistryLineage, service: str) -> list[dict[str, Any]]:
    from featurekit.pipeline.features import definitions

    views, services = definitions(project, settings)
    by_name = {s.name: s for s in services}
    offline = {v.name for v in views if not v.online}
    if service not in by_name:
        raise ConfigError.single(f"unknown feature service {service!r}" + did_you_mean(service, by_name)
                                 + f" (services: {', '.join(by_name) or 'none'})", file=CLI, field="--service")
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
        raise ConfigError.single(f"feature service {service!r}: no materialized feature set of "
                                 f"{', '.join(missing)} ({hint})", file=CLI, field="--service")
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
        raise ConfigError.single("give --model with --version, or --feature-view", file=CLI, field="--model")
    own = client is None
    client = client or registry_client(settings)
    try:
        tree = _Tree(client, settings)
        if feature_view is not None:
            return tree.of_view(feature_view, limit)
        return tree.of_model_version(str(model), str(version))
    finally:
        if own:
            client.close()


class _Tree:
    def __init__(self, client: RegistryClient, settings: Settings) -> None:
        self.client, self.settings = client, settings

    def of_model_version(self, model: str, version: str) -> Node:
        client = self.client
        registered = client.find_registered_model(model)
        if registered is None:
            raise ConfigError.single(f"no registered model {model!r} in the Model Registry at {client.url}",
                                     file=CLI, field="--model")
        mv = client.find_model_version(registered["id"], version)
        if mv is None:
            raise ConfigError.single(f"registered model {model!r} has no version {version!r} (Model Registry at "
                                     f"{client.url})", file=CLI, field="--version")
        root = Node("model_version", f"model {model} version {version}", key=f"mv:{mv['id']}",
                    details=[f"registered model {registered['id']}, model version {mv['id']}"
                             + (f", author {mv['author']}" if mv.get("author") else "")])
        for artifact in client.version_artifacts(mv["id"], DATASET):
            root.add(self.artifact(artifact))
        if not root.children:
            root.add(Node("note", "no dataset artifacts linked (featurekit lineage link)"))
        return root

    def of_view(self, view: str, limit: int) -> Node:
        project = self.settings.feast.project
        found = self.client.artifacts(feature_set_query(project, view), limit=limit)
        root = Node("note", f"feature view {project}.{view}", key=f"view:{project}:{view}",
                    details=[f"latest {len(found)} feature set(s) in the Model Registry at {self.client.url}"])
        for artifact in found:
            root.add(self.feature_set(artifact))
        if not found:
            root.add(Node("note", "no feature set recorded (materialize with registry.enabled, or "
                                  "featurekit lineage link --service)"))
        return root

    def artifact(self, artifact: dict[str, Any]) -> Node:
        kind = untagged(artifact.get("customProperties")).get(KIND)
        if kind == FEATURE_SET:
            return self.feature_set(artifact)
        if kind == TRAINING_SET:
            return self.training_set(artifact)
        return Node("note", f"dataset {artifact.get('name') or artifact['id']}", key=f"artifact:{artifact['id']}",
                    details=[artifact.get("uri", "")])

    def training_set(self, artifact: dict[str, Any]) -> Node:
        props = untagged(artifact.get("customProperties"))
        node = Node("training_set", f"training set {props.get('feature_service')} (run {props.get('training_set_run_id')})",
                    key=f"artifact:{artifact['id']}",
                    details=[f"Delta {props.get('delta_path')} @ v{props.get('delta_version')}",
                             f"{_count(props.get('rows'))} rows, artifact {artifact['id']}"])
        if props.get("spine_path"):
            spine = f"spine {props['spine_path']}" + (f" @ v{props['spine_version']}" if props.get("spine_version") else "")
            node.add(Node("source", spine, key=f"source:{props['spine_path']}@{props.get('spine_version')}"))
        for ref in _json(props.get("feature_sets"), []):
            found = self.client.get_artifact(str(ref["id"])) if ref.get("id") else None
            if found is not None:
                node.add(self.feature_set(found))
            else:
                node.add(Node("note", f"feature view {ref.get('view')} @ Delta v{ref.get('delta_version')}",
                              details=["no feature set was materialized from this version"]))
        return node

    def feature_set(self, artifact: dict[str, Any]) -> Node:
        props = untagged(artifact.get("customProperties"))
        features = _json(props.get("features"), [])
        node = Node("feature_set", f"feature set {props.get('feast_project')}.{props.get('feast_view')}",
                    key=f"artifact:{artifact['id']}",
                    details=[f"window {props.get('window_start')} .. {props.get('window_end')}",
                             f"{_count(props.get('rows'))} rows, {_count(props.get('keys'))} keys into "
                             f"{props.get('online_store')} (materialization {props.get('materialization_run_id')})",
                             f"features: {', '.join(features)}", f"artifact {artifact['id']}"])
        path, version = props.get("delta_path", ""), props.get("delta_version", "")
        delta = node.add(Node("delta", f"Delta {path} @ v{version}", key=f"delta:{path}@{version}"))
        delta.add(self.job_run(props, artifact))
        return node

    def job_run(self, props: dict[str, Any], artifact: dict[str, Any]) -> Node:
        job, run_id = props.get("job", ""), props.get("job_run_id", "")
        if not run_id:
            return Node("note", f"job {job}: no featurekit run named in the table's log at this version")
        report = read_report(self.settings.runs_dir, job, run_id)
        gate = (report or {}).get("gate") or _json(artifact.get("profile"), {})
        status = (report or {}).get("status") or props.get("job_status") or "?"
        node = Node("job_run", f"job run {job} {run_id}", key=f"run:{run_id}", details=[f"status {status}"])
        if props.get("job_delta_version") and props["job_delta_version"] != props.get("delta_version"):
            node.details.append(f"its commit is v{props['job_delta_version']}; later commits changed no data")
        if gate:
            counts = [f"{_count(gate[k])} {what}" for k, what in (("rows_checked", "rows checked"), ("rows_bad", "refused"),
                                                                 ("rows_malformed", "malformed")) if gate.get(k) is not None]
            node.details.append(f"gate ({gate.get('policy', '?')}): {', '.join(counts)}"
                                + (f"; failed: {gate['failed_because']}" if gate.get("failed_because") else ""))
            for check in (gate.get("checks") or [])[:5]:
                node.details.append(f"check {check.get('column')} {check.get('check')}: {_count(check.get('failures'))} failures")
        sources = (report or {}).get("sources") or _json(props.get("job_sources"), [])
        for source in sources:
            shown = f"source {source.get('name')}: {source.get('format')} {source.get('path')}"
            if source.get("delta_version") is not None:
                shown += f" @ v{source['delta_version']}"
            node.add(Node("source", shown, key=f"source:{source.get('path')}@{source.get('delta_version')}",
                          details=[f"{_count(source.get('rows_read'))} rows read"]))
        return node


def _json(value: Any, default: Any) -> Any:
    if not isinstance(value, str):
        return default
    try:
        return json.loads(value)
    except ValueError:
        return default


def _count(value: Any) -> str:
    try:
        return f"{int(value):,}"
    except (TypeError, ValueError):
        return "?"
