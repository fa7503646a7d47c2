"""A KServe InferenceService for a model version of the Model Registry, with featurekit's transformer.

``featurekit render inferenceservice --model M --version V`` writes a ``serving.kserve.io/v1beta1``
InferenceService whose

- predictor serves the version's model artifact: ``storageUri`` is its ``uri``, ``modelFormat``
  its ``modelFormatName`` / ``modelFormatVersion`` (and its ``serviceAccountName``, when it has
  one, is the predictor's: KServe's storage initializer reads the credentials from it);
- transformer runs the image the environment's SparkApplications use (``kubernetes.image``) as
  ``featurekit transformer --model M --version V --env ENV``, to which KServe appends
  ``--model_name``, ``--predictor_host``, ``--http_port`` and ``--workers``; its pod has the
  service account, pull secrets and environment of the job pods (``kubernetes.env``,
  ``secret_env``, ``env_from_secrets``: the registry token and the online store's credentials).

It carries the labels through which the Model Registry's InferenceService controller links a
deployment to the registry: ``registered-model-id``, ``model-version-id``, the registry service's
``name`` and ``namespace`` when ``registry.url`` is a cluster Service address
(``http://NAME.NAMESPACE.svc[.cluster.local][:PORT]``), and the annotation ``url`` (the registry as
the cluster reaches it: conf's ``registry.url``, never ``FEATUREKIT_REGISTRY_URL``, which is how
this machine reaches it).

:func:`record` writes the deployment into the registry: the serving environment (the namespace),
the inference service (the manifest's name; found again and updated on a later render, never
duplicated) and a serve model of the version, whose ``lastKnownState`` stays ``UNKNOWN`` until
something reports. The manifest then also carries ``inference-service-id``, so that the
controller links to that record instead of creating a second one.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

from featurekit.config import Project, Settings
from featurekit.deploy.sparkapp import LABEL_PREFIX, kubernetes_of, manifests_yaml, pod_env, pod_env_from
from featurekit.errors import ConfigError, NotFound, Problem, UsageError
from featurekit.lineage.client import MODEL, RegistryClient, existing_version
from featurekit.redaction import leaks

API_VERSION = "serving.kserve.io/v1beta1"
MODEL_REGISTRY = "modelregistry.kubeflow.org"
RUNTIME = "kserve"
# KServe names the transformer's Service "<name>-transformer", a DNS-1035 label (at most 63).
MAX_NAME = 63 - len("-transformer")
_DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
# A Kubernetes Service's cluster address: NAME.NAMESPACE.svc or NAME.NAMESPACE.svc.cluster.local.
_SERVICE_HOST = re.compile(r"^(?P<name>[a-z0-9]([-a-z0-9]*[a-z0-9])?)\.(?P<namespace>[a-z0-9]([-a-z0-9]*[a-z0-9])?)"
                           r"\.svc(\.cluster\.local)?$")


@dataclass(frozen=True)
class ModelSource:
    """What the registry says about the version to deploy."""

    model: dict[str, Any]       # the registered model
    version: dict[str, Any]     # the model version
    artifact: dict[str, Any]    # its model artifact (the first, which `lineage register-model` keeps current)


@dataclass
class RenderedService:
    """The InferenceService manifest, where it runs, and what it serves."""

    name: str
    namespace: str
    source: ModelSource
    manifest: dict[str, Any]
    recorded: dict[str, Any] | None = None      # the registry's inference service, after record()


def default_name(model: str, version: str) -> str:
    """``Driver ETA`` version ``1.0.0`` -> ``driver-eta-1-0-0``: a DNS-1035 label (a letter first, at
    most :data:`MAX_NAME`); a long one is cut and told apart by a hash of the model and version."""
    def label(text: str) -> str:
        return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")

    name = "-".join(part for part in (label(model), label(version)) if part) or "model"
    if not name[0].isalpha():
        name = f"m-{name}"
    if len(name) > MAX_NAME:
        digest = hashlib.sha256(f"{model}\0{version}".encode()).hexdigest()[:6]
        name = f"{name[:MAX_NAME - len(digest) - 1].rstrip('-')}-{digest}"
    return name


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot name the InferenceService, or None."""
    if not _DNS_1035.match(name):
        return (f"expected a DNS-1035 label (lowercase letters, digits and '-', starting with a letter and ending "
                f"with a letter or digit); got {name!r}")
    if len(name) > MAX_NAME:
        return (f"{name!r} is {len(name)} characters; at most {MAX_NAME} (KServe names the transformer's Service "
                f"'<name>-transformer', at most 63)")
    return None


def model_source(client: RegistryClient, model: str, version: str) -> ModelSource:
    """The registered model, the version and its model artifact; NotFound (exit 2) naming the missing one."""
    registered, found = existing_version(client, model, version)
    artifacts = client.version_artifacts(found["id"], MODEL)
    if not artifacts:
        raise NotFound("model artifact", f"{model}/{version}", f"model {model!r} version {version!r} has no model "
                       "artifact in the Model Registry: the predictor's storageUri and model format come from it "
                       "(featurekit lineage register-model gives it one)", param="version")
    artifact = artifacts[0]
    uses = {"uri": "storageUri", "modelFormatName": "modelFormat"}
    missing = [key for key in uses if not artifact.get(key)]
    if missing:
        raise UsageError("version", f"the model artifact {artifact['id']} of model {model!r} version {version!r} has "
                         f"no {' and no '.join(missing)}, which the predictor's "
                         f"{' and '.join(uses[key] for key in missing)} come{'s' if len(missing) == 1 else ''} from "
                         "(featurekit lineage register-model --uri URI --format NAME sets them)")
    return ModelSource(registered, found, artifact)


def registry_service(url: str) -> tuple[str, str] | None:
    """(name, namespace) of the registry's Kubernetes Service when ``url`` is its cluster address."""
    match = _SERVICE_HOST.match(urlsplit(url).hostname or "")
    return (match["name"], match["namespace"]) if match else None


def render(project: Project, settings: Settings, client: RegistryClient, model: str, version: str,
           name: str | None = None) -> RenderedService:
    """The InferenceService serving version ``version`` of ``model`` in the environment's cluster."""
    k8s = kubernetes_of(project, settings)
    conf_file = project.shown(project.conf_dir / settings.env)
    if name is not None:
        problem = name_problem(name)
        if problem:
            raise UsageError("name", problem)
    source = model_source(client, model, version)
    name = name or default_name(model, version)
    labels = {
        "app.kubernetes.io/name": "featurekit",
        "app.kubernetes.io/component": "inference-service",
        "app.kubernetes.io/managed-by": "featurekit",
        f"{LABEL_PREFIX}/env": settings.env,
        **k8s.labels,
        f"{MODEL_REGISTRY}/registered-model-id": source.model["id"],
        f"{MODEL_REGISTRY}/model-version-id": source.version["id"],
    }
    service = registry_service(settings.registry.url)
    if service is not None:
        labels[f"{MODEL_REGISTRY}/name"], labels[f"{MODEL_REGISTRY}/namespace"] = service
    annotations = {f"{MODEL_REGISTRY}/url": settings.registry.url, f"{LABEL_PREFIX}/model": model,
                   f"{LABEL_PREFIX}/model-version": version}
    artifact = source.artifact
    model_format = {"name": artifact["modelFormatName"],
                    **({"version": artifact["modelFormatVersion"]} if artifact.get("modelFormatVersion") else {})}
    predictor: dict[str, Any] = {"model": {"modelFormat": model_format, "storageUri": artifact["uri"]}}
    if artifact.get("serviceAccountName"):
        predictor["serviceAccountName"] = artifact["serviceAccountName"]
    container: dict[str, Any] = {
        "name": "kserve-container",
        "image": k8s.image,
        "imagePullPolicy": k8s.image_pull_policy,
        # the image's entrypoint is Spark's; the transformer is the featurekit command of its venv
        "command": [k8s.python, "-m", "featurekit"],
        "args": ["transformer", "--model", model, "--version", version, "--env", settings.env],
        "env": pod_env(k8s),
    }
    if k8s.env_from_secrets:
        container["envFrom"] = pod_env_from(k8s)
    transformer: dict[str, Any] = {"serviceAccountName": k8s.service_account, "containers": [container]}
    if k8s.image_pull_secrets:
        transformer["imagePullSecrets"] = [{"name": secret} for secret in k8s.image_pull_secrets]
    manifest = {
        "apiVersion": API_VERSION,
        "kind": "InferenceService",
        "metadata": {"name": name, "namespace": k8s.namespace, "labels": labels, "annotations": annotations},
        "spec": {"predictor": predictor, "transformer": transformer},
    }
    leaked = leaks(manifest)
    if leaked:
        raise ConfigError([Problem(conf_file, None, None, f"manifest {where}", "holds a secret; credentials reach "
                                   "the pods as references (kubernetes.secret_env, kubernetes.env_from_secrets)")
                           for where in leaked])
    return RenderedService(name, k8s.namespace, source, manifest)


def record(client: RegistryClient, rendered: RenderedService) -> RenderedService:
    """Record the deployment in the registry (see the module doc); the manifest then names the record."""
    source = rendered.source
    environment = client.serving_environment(rendered.namespace)
    existing = client.find_inference_service(environment["id"], rendered.name)
    if existing is not None and existing.get("registeredModelId") != source.model["id"]:
        raise UsageError("name", f"inference service {rendered.name!r} of serving environment {rendered.namespace!r} "
                         f"is recorded for registered model {existing.get('registeredModelId')}, not "
                         f"{source.model['name']!r} ({source.model['id']}); give the deployment another name")
    # no customProperties: an update would replace the ones the registry's controller keeps there (url)
    service, _ = client.inference_service(environment["id"], rendered.name, source.model["id"],
                                          modelVersionId=source.version["id"], runtime=RUNTIME, desiredState="DEPLOYED")
    client.serve_model(service["id"], source.version["id"], lastKnownState="UNKNOWN")
    manifest = {**rendered.manifest, "metadata": {**rendered.manifest["metadata"]}}
    manifest["metadata"]["labels"] = {**manifest["metadata"]["labels"],
                                      f"{MODEL_REGISTRY}/inference-service-id": service["id"]}
    return replace(rendered, manifest=manifest, recorded=service)


def to_yaml(rendered: RenderedService) -> str:
    """The manifest as YAML (``kubectl apply -f`` takes it as it is)."""
    return manifests_yaml([rendered.manifest])
