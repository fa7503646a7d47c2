"""The lineage tree, built from the Model Registry's artifacts and the run reports.

Model version -> training set -> feature sets -> Delta versions -> job runs -> sources (or a
feature view's latest feature sets -> ...). A training set's feature sets are the offline ones:
the views' Delta tables at the versions it read. The tree is plain data
(:class:`~featurekit.lineage.tree.Node`); :func:`featurekit.lineage.tree.render` draws it. A job run's validation summary and sources come
from its run report when the run log has it, else from what the feature set's artifact carries.
"""

from __future__ import annotations

import json
from typing import Any, Callable

from featurekit.lineage.client import DATASET, RegistryClient, RegistryRefused, existing_version, untagged
from featurekit.lineage.registry_lineage import (
    FEATURE_SET,
    KIND,
    OFFLINE_FEATURE_SET,
    TRAINING_SET,
    feature_set_query,
)
from featurekit.lineage.tree import Node

# (job, run id) -> the run's report, or None when the run log does not hold it
ReportLookup = Callable[[str, str], "dict[str, Any] | None"]


class TreeBuilder:
    """Builds lineage trees from ``client``'s artifacts in the Feast project ``feast_project``,
    with the run reports ``report`` finds."""

    def __init__(self, client: RegistryClient, feast_project: str, report: ReportLookup) -> None:
        self.client, self.feast_project, self.report = client, feast_project, report

    def of_model_version(self, model: str, version: str) -> Node:
        client = self.client
        registered, mv = existing_version(client, model, version)
        root = Node("model_version", f"model {model} version {version}", key=f"mv:{mv['id']}",
                    details=[f"registered model {registered['id']}, model version {mv['id']}"
                             + (f", author {mv['author']}" if mv.get("author") else "")],
                    link={"model": model, "version": version})
        served = untagged(mv.get("customProperties"))
        if served.get("feature_service"):
            root.details.append(f"served with feature service {served.get('feast_project') or '?'}."
                                f"{served['feature_service']}")
        for artifact in client.version_artifacts(mv["id"], DATASET):
            root.add(self.artifact(artifact))
        if not root.children:
            root.add(Node("note", "no dataset artifacts linked (featurekit lineage link)"))
        for deployment in self.deployments(mv["id"]):
            root.add(deployment)
        return root

    def deployments(self, version_id: str) -> list[Node]:
        """Where the version is deployed: the inference services serving it (``render inferenceservice
        --record``, or the registry's InferenceService controller)."""
        try:
            services = self.client.inference_services(f'modelVersionId = "{version_id}"')
        except RegistryRefused:  # a registry that cannot filter inference services so: lineage without them
            return []
        nodes = []
        for service in services:
            environment = self.client.request("GET", f"/serving_environments/{service.get('servingEnvironmentId')}",
                                              missing_ok=True) or {}
            where = environment.get("name") or f"serving environment {service.get('servingEnvironmentId')}"
            nodes.append(Node("note", f"deployed: inference service {service.get('name') or service['id']} in {where}",
                              key=f"isvc:{service['id']}",
                              details=[f"inference service {service['id']}, desired state "
                                       f"{service.get('desiredState', 'DEPLOYED')}, runtime {service.get('runtime', '?')}"]))
        return nodes

    def of_view(self, view: str, limit: int) -> Node:
        project = self.feast_project
        found = self.client.artifacts(feature_set_query(project, view), limit=limit)
        root = Node("note", f"feature view {project}.{view}", key=f"view:{project}:{view}",
                    details=[f"latest {len(found)} feature set(s) in the Model Registry at {self.client.url}"],
                    link={"view": view})
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
        if kind == OFFLINE_FEATURE_SET:
            return self.offline_feature_set(artifact)
        if kind == TRAINING_SET:
            return self.training_set(artifact)
        return Node("note", f"dataset {artifact.get('name') or artifact['id']}", key=f"artifact:{artifact['id']}",
                    details=[artifact.get("uri", "")])

    def training_set(self, artifact: dict[str, Any]) -> Node:
        props = untagged(artifact.get("customProperties"))
        node = Node("training_set", f"training set {props.get('feature_service')} (run {props.get('training_set_run_id')})",
                    key=f"artifact:{artifact['id']}",
                    details=[f"Delta {props.get('delta_path')} @ v{props.get('delta_version')}",
                             f"{_count(props.get('rows'))} rows, artifact {artifact['id']}"]
                    + ([f"rows of its first view from {props['start']} to {props['end']}"] if props.get("start") else [])
                    + ([f"views as of {props['as_of']}"] if props.get("as_of") else []),
                    link=_link(training_set=props.get("training_set_run_id")))
        if props.get("spine_path"):
            spine = f"spine {props['spine_path']}" + (f" @ v{props['spine_version']}" if props.get("spine_version") else "")
            node.add(Node("source", spine, key=f"source:{props['spine_path']}@{props.get('spine_version')}"))
        for ref in _json(props.get("feature_sets"), []):
            found = self.client.get_artifact(str(ref["id"])) if ref.get("id") else None
            if found is not None:
                node.add(self.artifact(found))
            else:
                node.add(Node("note", f"feature view {ref.get('view')} @ Delta v{ref.get('delta_version')}",
                              details=["no feature set was materialized from this version"],
                              link=_link(view=ref.get("view"))))
        return node

    def feature_set(self, artifact: dict[str, Any]) -> Node:
        props = untagged(artifact.get("customProperties"))
        features = _json(props.get("features"), [])
        node = Node("feature_set", f"feature set {props.get('feast_project')}.{props.get('feast_view')}",
                    key=f"artifact:{artifact['id']}",
                    details=[f"window {props.get('window_start')} .. {props.get('window_end')}",
                             f"{_count(props.get('rows'))} rows, {_count(props.get('keys'))} keys into "
                             f"{props.get('online_store')} (materialization {props.get('materialization_run_id')})"]
                    + ([f"newest online value {props['newest_event']}"] if props.get("newest_event") else [])
                    + [f"features: {', '.join(features)}", f"artifact {artifact['id']}"],
                    link=_link(view=props.get("feast_view")))
        self._delta(node, props, artifact)
        return node

    def offline_feature_set(self, artifact: dict[str, Any]) -> Node:
        props = untagged(artifact.get("customProperties"))
        features = _json(props.get("features"), [])
        node = Node("feature_set", f"offline feature set {props.get('feast_project')}.{props.get('feast_view')}",
                    key=f"artifact:{artifact['id']}",
                    details=[f"features: {', '.join(features)}", f"artifact {artifact['id']}"],
                    link=_link(view=props.get("feast_view")))
        self._delta(node, props, artifact)
        return node

    def _delta(self, node: Node, props: dict[str, Any], artifact: dict[str, Any]) -> None:
        path, version = props.get("delta_path", ""), props.get("delta_version", "")
        delta = node.add(Node("delta", f"Delta {path} @ v{version}", key=f"delta:{path}@{version}",
                              link=_link(job=props.get("job"))))   # the job writing the table shows its versions
        delta.add(self.job_run(props, artifact))

    def job_run(self, props: dict[str, Any], artifact: dict[str, Any]) -> Node:
        job, run_id = props.get("job", ""), props.get("job_run_id", "")
        if not run_id:
            return Node("note", f"job {job}: no featurekit run named in the table's log at this version",
                        link=_link(job=job))
        report = self.report(job, run_id)
        gate = (report or {}).get("gate") or _json(artifact.get("profile"), {})
        status = (report or {}).get("status") or props.get("job_status") or "?"
        node = Node("job_run", f"job run {job} {run_id}", key=f"run:{run_id}", details=[f"status {status}"],
                    link=_link(job=job, run_id=run_id))
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


def _link(**fields: Any) -> dict[str, str]:
    """A node's ``link`` from what the artifact says, leaving out what it does not."""
    return {name: str(value) for name, value in fields.items() if value not in (None, "")}


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
