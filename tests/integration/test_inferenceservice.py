"""``featurekit render inferenceservice``: the KServe InferenceService of a model version, against
KServe's CRD, with the embedded Model Registry over real HTTP.

One registry server for the module (every exchange checked against the Model Registry spec, the
CLI's requests too), models registered with the official ``model-registry`` client, the CLI in its
own process on a project with the repository's conf/ (env ``k8s``; this machine reaches the
registry through ``FEATUREKIT_REGISTRY_URL``). The deployment ``--record`` writes is read back
with the official client's generated API. No Spark, no cluster.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

import httpx
import jsonschema
import pytest
import yaml
from ruamel.yaml import YAML

from featurekit.config import Project, load_settings
from featurekit.config.settings import REGISTRY_TOKEN_ENV, REGISTRY_URL_ENV
from featurekit.deploy.inferenceservice import MAX_NAME, default_name, record, registry_service, render
from featurekit.errors import NotFound, UsageError
from featurekit.lineage.client import RegistryClient
from featurekit.lineage.tree_builder import TreeBuilder
from featurekit.registry import create_registry_app
from tests.conftest import REPO
from tests.integration.registry_helpers import V1, Contract, Recorder, serve
from tests.unit.test_sparkapp import _structural

pytestmark = pytest.mark.registry

T = TypeVar("T")
CRD = REPO / "tests" / "contracts" / "kserve" / "serving.kserve.io_inferenceservices.yaml"
REFERENCE = REPO.parent / "shared" / "reference" / "kserve" / CRD.name
FEATUREKIT = str(Path(sys.executable).parent / "featurekit")
MR = "modelregistry.kubeflow.org"
URI = "s3://featurekit-models/driver-eta/1/model.onnx"


@cache
def _validator() -> jsonschema.Draft7Validator:
    # libyaml's loader (PyYAML, which kserve and kfp bring): the CRD is 2 MB, several times slower in ruamel
    crd = yaml.load(CRD.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    assert crd["spec"]["names"]["kind"] == "InferenceService"
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1beta1"]
    return jsonschema.Draft7Validator(_structural(version["schema"]["openAPIV3Schema"]))


def schema_errors(manifest: dict[str, Any]) -> list[str]:
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in _validator().iter_errors(manifest)]


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


@dataclass
class Setup:
    url: str
    port: int
    project: Path
    recorder: Recorder
    http: httpx.Client      # the test's own reads (the spec asks for a bearer token)

    def cli(self, *args: str) -> tuple[int, str, str]:
        env = {**os.environ, REGISTRY_URL_ENV: self.url, REGISTRY_TOKEN_ENV: "featurekit-test",
               "FEATUREKIT_PROJECT": str(self.project)}
        done = subprocess.run([FEATUREKIT, *args], cwd=self.project, env=env, capture_output=True, text=True,
                              timeout=120)
        return done.returncode, done.stdout, done.stderr

    def client(self) -> RegistryClient:
        return RegistryClient(self.url, token="featurekit-test", retries=0)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    from model_registry import ModelRegistry

    root = tmp_path_factory.mktemp("isvc")
    project = root / "project"
    shutil.copytree(REPO / "conf", project / "conf")
    (project / "jobs").mkdir()
    recorder = Recorder(create_registry_app(root / "registry.db"), Contract(), check_requests=True)
    server, thread, port = serve(recorder)
    url = f"http://127.0.0.1:{port}"
    try:
        registry = ModelRegistry("http://127.0.0.1", port, author="featurekit-ci", is_secure=False,
                                 user_token="featurekit-test", async_runner=_run)
        registry.register_model("Driver ETA", URI, version="1.0.0", model_format_name="onnx",
                                model_format_version="1", service_account_name="models-reader")
        with httpx.Client(base_url=url, headers={"Authorization": "Bearer featurekit-test"}) as http:
            yield Setup(url, port, project, recorder, http)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    assert not recorder.problems, "\n".join(recorder.problems)


def _yaml(text: str) -> dict[str, Any]:
    return YAML(typ="safe", pure=True).load(text)


def test_the_vendored_crd_is_kserves() -> None:
    assert CRD.stat().st_size > 1_000_000
    if REFERENCE.is_file():
        assert CRD.read_bytes() == REFERENCE.read_bytes()


def test_the_manifest_validates_against_the_crd_and_carries_the_registrys_labels(setup: Setup) -> None:
    code, out, err = setup.cli("render", "inferenceservice", "--model", "Driver ETA", "--version", "1.0.0")
    assert code == 0, err
    manifest = _yaml(out)
    assert schema_errors(manifest) == []
    assert (manifest["apiVersion"], manifest["kind"]) == ("serving.kserve.io/v1beta1", "InferenceService")
    metadata = manifest["metadata"]
    assert (metadata["name"], metadata["namespace"]) == ("driver-eta-1-0-0", "featurekit")
    model = setup.http.get(f"{V1}/registered_model", params={"name": "Driver ETA"}).json()
    version = setup.http.get(f"{V1}/model_version", params={"name": "1.0.0", "parentResourceId": model["id"]}).json()
    # the registry service named by conf/k8s's registry.url (model-registry-service.kubeflow.svc...)
    assert {k: v for k, v in metadata["labels"].items() if k.startswith(MR)} == {
        f"{MR}/registered-model-id": model["id"], f"{MR}/model-version-id": version["id"],
        f"{MR}/name": "model-registry-service", f"{MR}/namespace": "kubeflow"}
    # the URL the cluster reaches the registry at (conf), not the one this machine used
    assert metadata["annotations"][f"{MR}/url"] == "http://model-registry-service.kubeflow.svc.cluster.local:8080"
    predictor = manifest["spec"]["predictor"]
    assert predictor == {"model": {"modelFormat": {"name": "onnx", "version": "1"}, "storageUri": URI},
                         "serviceAccountName": "models-reader"}
    (container,) = manifest["spec"]["transformer"]["containers"]
    settings = load_settings(Project(setup.project), "k8s")
    assert settings.kubernetes is not None
    assert container["image"] == settings.kubernetes.image
    assert container["command"] + container["args"] == [
        settings.kubernetes.python, "-m", "featurekit", "transformer", "--model", "Driver ETA", "--version", "1.0.0",
        "--env", "k8s"]
    assert manifest["spec"]["transformer"]["serviceAccountName"] == settings.kubernetes.service_account
    env = {e["name"]: e for e in container["env"]}
    # credentials as secret references, never values
    assert env["FEATUREKIT_REGISTRY_TOKEN"] == {"name": "FEATUREKIT_REGISTRY_TOKEN", "valueFrom": {
        "secretKeyRef": {"name": "model-registry-token", "key": "token"}}}
    assert all("value" not in e for name, e in env.items() if name in settings.kubernetes.secret_env)
    assert f"{MR}/inference-service-id" not in metadata["labels"]  # nothing recorded without --record
    assert setup.http.get(f"{V1}/inference_services").json()["size"] == 0

    # the check is not vacuous: a predictor model without a format name, a misspelt key, fail
    broken = _yaml(out)
    del broken["spec"]["predictor"]["model"]["modelFormat"]["name"]
    broken["spec"]["transformer"]["containers"][0]["comand"] = ["x"]
    assert sorted(schema_errors(broken)) == [
        "spec.predictor.model.modelFormat: 'name' is a required property",
        "spec.transformer.containers.0: Additional properties are not allowed ('comand' was unexpected)"]


def test_record_writes_the_deployment_once_and_the_official_client_reads_it(setup: Setup, tmp_path: Path) -> None:
    from model_registry import ModelRegistry
    from model_registry.core import ModelRegistryAPIClient

    registry = ModelRegistry("http://127.0.0.1", setup.port, author="featurekit-ci", is_secure=False,
                             user_token="featurekit-test", async_runner=_run)
    registry.register_model("fare", "s3://featurekit-models/fare/1", version="1", model_format_name="sklearn",
                            model_format_version="1")
    out = tmp_path / "fare.yaml"
    code, _, err = setup.cli("render", "inferenceservice", "--model", "fare", "--version", "1", "--record", "-o", str(out))
    assert code == 0, err
    first = _yaml(out.read_text())
    assert schema_errors(first) == []
    service_id = first["metadata"]["labels"][f"{MR}/inference-service-id"]
    assert f"recorded inference service {service_id} (fare-1, serving environment featurekit)" in err

    # a new version, deployed under the same name: the same inference service, now serving version 2
    registry.register_model("fare", "s3://featurekit-models/fare/2", version="2", model_format_name="sklearn",
                            model_format_version="1")
    code, out_text, err = setup.cli("render", "inferenceservice", "--model", "fare", "--version", "2", "--name",
                                    "fare-1", "--record")
    assert code == 0, err
    assert _yaml(out_text)["metadata"]["labels"][f"{MR}/inference-service-id"] == service_id
    project = Project(setup.project)
    settings = load_settings(project, "k8s")
    with setup.client() as client:  # the same from Python, once more: recording again changes nothing
        again = record(client, render(project, settings, client, "fare", "2", name="fare-1"))
        assert again.manifest == _yaml(out_text)

    api = ModelRegistryAPIClient.insecure_connection("http://127.0.0.1", setup.port, "featurekit-test")

    async def read() -> tuple[Any, ...]:
        async with api.get_client() as client:
            environment = await client.find_serving_environment(name="featurekit")
            services = await client.get_environment_inference_services(environment.id)
            service = await client.get_inference_service(service_id)
            serves = await client.get_inference_service_serves(service_id)
            version = await client.get_inference_service_version(service_id)
            model = await client.get_inference_service_model(service_id)
            return environment, services, service, serves, version, model

    environment, services, service, serves, version, model = _run(read())
    assert [s.id for s in services.items if s.name == "fare-1"] == [service_id]
    assert (service.name, service.runtime, service.desired_state.value) == ("fare-1", "kserve", "DEPLOYED")
    assert service.serving_environment_id == environment.id
    assert (model.name, version.name) == ("fare", "2")
    assert service.model_version_id == version.id
    by_version = {s.model_version_id: s.last_known_state.value for s in serves.items}
    v1 = registry.get_model_version("fare", "1")
    assert v1 is not None and by_version == {v1.id: "UNKNOWN", version.id: "UNKNOWN"}

    # `lineage show` of the version names where it is deployed
    with setup.client() as client:
        tree = TreeBuilder(client, "featurekit", lambda job, run: None).of_model_version("fare", "2")
    deployed = [node for node in tree.children if node.key == f"isvc:{service_id}"]
    assert [(n.label, n.details) for n in deployed] == [(
        "deployed: inference service fare-1 in featurekit",
        [f"inference service {service_id}, desired state DEPLOYED, runtime kserve"])]

    # another model under a recorded name: refused, nothing changed
    with setup.client() as client, pytest.raises(UsageError) as taken:
        record(client, render(project, settings, client, "Driver ETA", "1.0.0", name="fare-1"))
    driver_eta = registry.get_registered_model("Driver ETA")
    assert driver_eta is not None and taken.value.param == "name"
    assert taken.value.text() == (f"inference service 'fare-1' of serving environment 'featurekit' is recorded for "
                                  f"registered model {model.id}, not 'Driver ETA' ({driver_eta.id}); give the "
                                  "deployment another name")
    assert setup.http.get(f"{V1}/inference_services/{service_id}").json()["modelVersionId"] == version.id


def test_a_version_that_cannot_be_served_is_a_clear_error(setup: Setup) -> None:
    project = Project(setup.project)
    settings = load_settings(project, "k8s")
    with setup.client() as client:
        model = client.registered_model("no-artifact")
        client.model_version(model["id"], "1")
        with pytest.raises(NotFound) as missing:
            render(project, settings, client, "no-artifact", "1")
        assert missing.value.param == "version" and missing.value.text() == (
            "model 'no-artifact' version '1' has no model artifact in the Model Registry: the predictor's "
            "storageUri and model format come from it (featurekit lineage register-model gives it one)")
        version = client.model_version(model["id"], "2")
        artifact = client.request("POST", f"/model_versions/{version['id']}/artifacts",
                                  body={"artifactType": "model-artifact", "name": "weights", "uri": "s3://m/2"})
        assert artifact is not None
        with pytest.raises(UsageError) as no_format:
            render(project, settings, client, "no-artifact", "2")
        assert no_format.value.param == "version" and no_format.value.text() == (
            f"the model artifact {artifact['id']} of model 'no-artifact' version '2' has no modelFormatName, which the "
            "predictor's modelFormat comes from (featurekit lineage register-model --uri URI --format NAME sets them)")
        # set as `lineage register-model` sets it: then it serves
        client.version_model_artifact(version["id"], {"uri": "s3://m/2", "modelFormatName": "xgboost"})
        fixed = render(project, settings, client, "no-artifact", "2")
        assert fixed.manifest["spec"]["predictor"]["model"] == {"modelFormat": {"name": "xgboost"}, "storageUri": "s3://m/2"}
        with pytest.raises(NotFound) as no_version:
            render(project, settings, client, "Driver ETA", "9")
        assert no_version.value.text() == (f"registered model 'Driver ETA' has no version '9' in the Model "
                                           f"Registry at {setup.url}")
    code, out, err = setup.cli("render", "inferenceservice", "--model", "nope", "--version", "1")
    assert (code, out) == (2, "")
    assert f"--model: no registered model 'nope' in the Model Registry at {setup.url}" in err
    with setup.client() as client, pytest.raises(UsageError) as bad_name:
        render(project, settings, client, "Driver ETA", "1.0.0", name="Driver_ETA")
    assert bad_name.value.param == "name" and bad_name.value.text() == (
        "expected a DNS-1035 label (lowercase letters, digits and '-', starting with a letter and ending with a "
        "letter or digit); got 'Driver_ETA'")


def test_default_names_are_dns_1035_labels_and_registry_services_are_read_from_urls() -> None:
    assert default_name("Driver ETA", "1.0.0") == "driver-eta-1-0-0"
    assert default_name("2026_churn", "v3") == "m-2026-churn-v3"
    long = default_name("a" * 80, "1")
    assert len(long) == MAX_NAME and long != default_name("a" * 81, "1")
    assert registry_service("http://model-registry-service.kubeflow.svc.cluster.local:8080") == (
        "model-registry-service", "kubeflow")
    assert registry_service("https://mr.ns.svc") == ("mr", "ns")
    assert registry_service("https://registry.example.com") is None
