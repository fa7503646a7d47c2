"""``featurekit transformer``: real transformer processes (one per protocol, V1 and V2) in front of
a real predictor process (a tiny ``kserve.Model`` that echoes what it is given, in either
protocol), over HTTP, with the embedded Model Registry and a SQLite online store.

No Spark: the project is the one of ``test_online_catalog`` (delta-rs table, real ``feast apply``,
rows written through the online-store port); the feature set of its view is recorded in the
registry with the very artifact ``materialize`` sends, and the model version is linked to the
service by ``lineage.link`` (what ``featurekit lineage link --service`` calls).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from featurekit.config import Project, Settings
from featurekit.lineage import FeatureSetRecord, TrainingSetRecord
from featurekit.lineage.client import RegistryClient, tagged, untagged
from featurekit.lineage.registry_lineage import feature_set_artifact, training_set_artifact
from featurekit.lineage.tree import render
from featurekit.online import OnlineFeatures
from featurekit.online.transformer import linked_features
from featurekit.pipeline import lineage
from featurekit.registry import create_registry_app
from tests.conftest import REPO, _free_port
from tests.integration.registry_helpers import serve
from tests.integration.test_online_catalog import make_project

pytestmark = [pytest.mark.feast, pytest.mark.registry]

CLI = "import sys; from featurekit.cli import main; sys.exit(main())"
# The predictor: answers each V1 instance with the instance itself (refuses one holding "boom"); a
# V2 request with one BYTES output holding the JSON of the input tensors (name, datatype, shape,
# data) that arrived.
PREDICTOR = """
import json
import sys
import kserve

class Echo(kserve.Model):
    def __init__(self, name):
        super().__init__(name)
        self.ready = True

    async def predict(self, payload, headers=None, response_headers=None):
        if isinstance(payload, kserve.InferRequest):
            seen = [{"name": i.name, "datatype": i.datatype, "shape": list(i.shape), "data": i.data}
                    for i in payload.inputs]
            return {"model_name": self.name, "id": payload.id,
                    "outputs": [{"name": "received", "datatype": "BYTES", "shape": [1], "data": [json.dumps(seen)]}]}
        if any("boom" in instance for instance in payload["instances"]):
            raise kserve.errors.InvalidInput("the predictor refuses boom")
        return {"predictions": payload["instances"]}

kserve.ModelServer(http_port=int(sys.argv[1]), enable_grpc=False).start([Echo(sys.argv[2])])
"""


def _start(args: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    # to a file, not a pipe: KServe logs a traceback for every 400, and a full pipe would block it
    with log.open("wb") as sink:
        return subprocess.Popen(args, stdout=sink, stderr=subprocess.STDOUT, env=env)


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"process exited {proc.returncode} before it was ready:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    pytest.fail(f"{url} not ready after {timeout} s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _record_feature_set(client: RegistryClient, settings: Settings) -> dict[str, Any]:
    """The feature set of ``rider_stats`` in the registry, as ``materialize`` records it."""
    record = FeatureSetRecord(
        run_id="r1", feast_project=settings.feast.project, feature_view="rider_stats",
        features=["trips", "rating", "city"], job="rider_stats", spec_fingerprint="f", delta_path="lake/rider_stats",
        delta_version=0, window_start="2026-01-01T00:00:00Z", window_end="2026-01-02T00:00:00Z", rows=3, keys=3,
        online_store="sqlite", recorded_at="2026-01-02T00:00:00Z")
    artifact, _ = client.artifact(feature_set_artifact(record, None))
    return artifact


def _version(client: RegistryClient, model: str, version: str, **fields: Any) -> dict[str, Any]:
    return client.model_version(client.registered_model(model)["id"], version, **fields)


@dataclass(frozen=True)
class Running:
    transformer: str            # base URLs: V1, V2
    transformer_v2: str
    registry: str
    predictor: str              # host:port
    project: Project
    settings: Settings
    feature_set: dict[str, Any]     # its artifact


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """The transformer, with the predictor and the registry behind it."""
    root = tmp_path_factory.mktemp("transformer")
    project, settings = make_project(root / "project")
    server, thread, registry_port = serve(create_registry_app(root / "registry.db"))
    registry_url = f"http://127.0.0.1:{registry_port}"
    with RegistryClient(registry_url) as client:
        feature_set = _record_feature_set(client, settings)
        # a version with a property of its own, which the link keeps
        _version(client, "eta", "1", customProperties=tagged({"framework": "sklearn"}))
        lineage.link(project, settings, "eta", "1", service="rider_service", client=client)
        _version(client, "eta", "bare")       # nothing linked
    env = {**os.environ, "PYTHONPATH": str(REPO), "FEATUREKIT_REGISTRY_URL": registry_url}
    predictor_port, transformer_port, v2_port = _free_port(), _free_port(), _free_port()
    logs = {name: root / f"{name}.log" for name in ("predictor", "transformer", "transformer-v2")}
    predictor = _start([sys.executable, "-c", PREDICTOR, str(predictor_port), "eta-isvc"], logs["predictor"], env)
    transformers = {
        (port, protocol): _start(
            [sys.executable, "-c", CLI, "--project", str(project.root),
             "transformer", "--model", "eta", "--version", "1",
             # as KServe's controller appends them
             "--model_name", "eta-isvc", "--predictor_host", f"127.0.0.1:{predictor_port}",
             "--http_port", str(port), "--workers", "1", "--protocol", protocol], log, env)
        for port, protocol, log in ((transformer_port, "v1", logs["transformer"]),
                                    (v2_port, "v2", logs["transformer-v2"]))}
    try:
        _wait_ready(f"http://127.0.0.1:{predictor_port}/v1/models/eta-isvc", predictor, logs["predictor"])
        for (port, protocol), proc in transformers.items():
            _wait_ready(f"http://127.0.0.1:{port}/{protocol}/models/eta-isvc", proc,
                        logs["transformer" if protocol == "v1" else "transformer-v2"])
        yield Running(f"http://127.0.0.1:{transformer_port}", f"http://127.0.0.1:{v2_port}", registry_url,
                      f"127.0.0.1:{predictor_port}", project, settings, feature_set)
    finally:
        for proc in transformers.values():
            _stop(proc)
        _stop(predictor)
        server.should_exit = True
        thread.join(timeout=10)


def test_instances_reach_the_predictor_with_their_online_features(running: Running) -> None:
    url = running.transformer
    body = {"instances": [{"rider_id": 1, "hour": 8}, {"rider_id": 3}, {"rider_id": 2, "city": "Paris"}]}
    answer = httpx.post(f"{url}/v1/models/eta-isvc:predict", json=body, timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.json()["predictions"] == [
        {"rider_id": 1, "hour": 8, "trips": 4, "rating": 4.5, "city": "Lyon"},
        {"rider_id": 3, "trips": None, "rating": 5.0, "city": "Oslo"},
        {"rider_id": 2, "city": "Paris", "trips": 5, "rating": 3.25},     # a field given is kept as given
    ]


def test_an_unknown_entity_gets_nulls(running: Running) -> None:
    url = running.transformer
    answer = httpx.post(f"{url}/v1/models/eta-isvc:predict", json={"instances": [{"rider_id": 999}]}, timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.json()["predictions"] == [{"rider_id": 999, "trips": None, "rating": None, "city": None}]


@pytest.mark.parametrize(("body", "reason"), [
    ({"instances": [{"rider_id": 1}, {"hour": 8}]}, "instances[1]: missing join key(s) rider_id"),
    ({"instances": [5]}, "instances[0]: expected an object with the join key(s) rider_id; got int"),
    ({"instances": [{"rider_id": [1]}]}, "instances[0].rider_id: expected a string or an integer; got [1]"),
    ({"inputs": []}, 'expected a JSON object with "instances": a list of objects'),
])
def test_a_bad_request_is_a_400_with_the_reason(running: Running, body: dict, reason: str) -> None:
    url = running.transformer
    answer = httpx.post(f"{url}/v1/models/eta-isvc:predict", json=body, timeout=30)
    assert (answer.status_code, answer.json()) == (400, {"error": reason})


def test_a_body_without_a_json_content_type_is_read_as_json(running: Running) -> None:
    url = f"{running.transformer}/v1/models/eta-isvc:predict"
    plain = {"content-type": "application/x-www-form-urlencoded"}          # what `curl -d` sends
    answer = httpx.post(url, content=b'{"instances": [{"rider_id": 2}]}', headers=plain, timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.json()["predictions"] == [{"rider_id": 2, "trips": 5, "rating": 3.25, "city": None}]
    refused = httpx.post(url, content=b"rider_id=2", headers=plain, timeout=30)
    assert refused.status_code == 400 and refused.json()["error"].startswith("the body is not JSON: ")


def test_forked_workers_reach_the_predictor_and_the_store(running: Running, tmp_path: Path) -> None:
    port, log = _free_port(), tmp_path / "workers.log"
    env = {**os.environ, "PYTHONPATH": str(REPO), "FEATUREKIT_REGISTRY_URL": running.registry}
    proc = _start([sys.executable, "-c", CLI, "--project", str(running.project.root), "transformer", "--model", "eta",
                   "--version", "1", "--model_name", "eta-isvc", "--predictor_host", running.predictor,
                   "--http_port", str(port), "--workers", "2"], log, env)
    try:
        _wait_ready(f"http://127.0.0.1:{port}/v1/models/eta-isvc", proc, log)
        for _ in range(4):       # both workers, whichever answers
            answer = httpx.post(f"http://127.0.0.1:{port}/v1/models/eta-isvc:predict",
                                json={"instances": [{"rider_id": 2}]}, timeout=30)
            assert answer.status_code == 200, answer.text + log.read_text()[-3000:]
            assert answer.json()["predictions"] == [{"rider_id": 2, "trips": 5, "rating": 3.25, "city": None}]
    finally:
        _stop(proc)


def test_a_version_without_linked_features_stops_the_transformer_before_it_listens(running: Running) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "FEATUREKIT_REGISTRY_URL": running.registry}
    done = subprocess.run(
        [sys.executable, "-c", CLI, "--project", str(running.project.root),
         "transformer", "--model", "eta", "--version", "bare", "--http_port", str(_free_port())],
        capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "model eta version bare has no linked training set or feature sets" in done.stdout + done.stderr



def test_an_error_of_the_predictor_is_a_500_that_names_it(running: Running) -> None:
    answer = httpx.post(f"{running.transformer}/v1/models/eta-isvc:predict", timeout=30,
                        json={"instances": [{"rider_id": 1, "boom": True}]})
    assert answer.status_code == 500
    assert answer.json()["error"] == (f"the predictor answered http://{running.predictor}/v1/models/eta-isvc:predict "
                                      'with 400: {"error":"the predictor refuses boom"}')


# -- V2 (Open Inference Protocol) ------------------------------------------------------------

def _infer(running: Running, inputs: list[dict[str, Any]], **fields: Any) -> httpx.Response:
    return httpx.post(f"{running.transformer_v2}/v2/models/eta-isvc/infer", json={"inputs": inputs, **fields},
                      timeout=30)


def _received(answer: httpx.Response) -> list[dict[str, Any]]:
    assert answer.status_code == 200, answer.text
    (output,) = answer.json()["outputs"]
    return json.loads(output["data"][0])


def test_v2_appends_one_tensor_per_feature_with_its_datatype(running: Running) -> None:
    answer = _infer(running, [{"name": "rider_id", "datatype": "INT64", "shape": [3], "data": [1, 999, 3]},
                              {"name": "hour", "datatype": "FP32", "shape": [3], "data": [8.0, 9.5, 10.0]}], id="req-7")
    assert answer.json()["id"] == "req-7" and answer.json()["model_name"] == "eta-isvc"
    assert _received(answer) == [
        {"name": "rider_id", "datatype": "INT64", "shape": [3], "data": [1, 999, 3]},
        {"name": "hour", "datatype": "FP32", "shape": [3], "data": [8.0, 9.5, 10.0]},
        {"name": "trips", "datatype": "INT64", "shape": [3], "data": [4, None, None]},   # 999: unknown entity
        {"name": "rating", "datatype": "FP64", "shape": [3], "data": [4.5, None, 5.0]},
        {"name": "city", "datatype": "BYTES", "shape": [3], "data": ["Lyon", None, "Oslo"]},
    ]


def test_v2_keeps_an_input_the_request_carries(running: Running) -> None:
    received = _received(_infer(running, [{"name": "city", "datatype": "BYTES", "shape": [1], "data": ["Paris"]},
                                          {"name": "rider_id", "datatype": "INT32", "shape": [1], "data": [2]}]))
    assert [(t["name"], t["data"]) for t in received] == [("city", ["Paris"]), ("rider_id", [2]), ("trips", [5]),
                                                          ("rating", [3.25])]


@pytest.mark.parametrize(("inputs", "reason"), [
    ([{"name": "hour", "datatype": "FP32", "shape": [1], "data": [8.0]}],
     "missing input tensor(s) rider_id: one input per join key, named by the key, shape [n]"),
    ([{"name": "rider_id", "datatype": "INT64", "shape": [2, 1], "data": [1, 2]}],
     "input rider_id: expected shape [n], one value per entity; got [2, 1]"),
    ([{"name": "rider_id", "datatype": "INT64", "shape": [3], "data": [1, 2]}],
     "input rider_id: shape [3] but 2 value(s)"),
    ([{"name": "rider_id", "datatype": "INT64", "shape": [1], "data": [1]},
      {"name": "hour", "datatype": "FLOAT", "shape": [1], "data": [8.0]}],
     "input hour: unknown datatype 'FLOAT' (expected one of BOOL, INT8, INT16, INT32, INT64, UINT8, UINT16, UINT32, "
     "UINT64, FP16, FP32, FP64, BYTES)"),
    ([{"name": "rider_id", "datatype": "BYTES", "shape": [1], "data": ["1"]}],
     "input rider_id: datatype BYTES cannot carry the join key rider_id (INT64); expected an integer datatype"),
    ([{"name": "rider_id", "datatype": "INT64", "shape": [2], "data": [1, None]}],
     "input rider_id, value 1: expected an integer; got null"),
])
def test_v2_a_bad_request_is_a_400_with_the_reason(running: Running, inputs: list[dict[str, Any]], reason: str) -> None:
    answer = _infer(running, inputs)
    assert (answer.status_code, answer.json()) == (400, {"error": reason})


def test_each_transformer_tells_a_request_of_the_other_protocol_where_to_go(running: Running) -> None:
    v1 = httpx.post(f"{running.transformer_v2}/v1/models/eta-isvc:predict", json={"instances": [{"rider_id": 1}]},
                    timeout=30)
    assert (v1.status_code, v1.json()) == (400, {"error": "this transformer's predictor speaks V2: send V2 requests "
                                                          '({"inputs": [...]}) to /v2/models/eta-isvc/infer'})
    v2 = httpx.post(f"{running.transformer}/v2/models/eta-isvc/infer", timeout=30,
                    json={"inputs": [{"name": "rider_id", "datatype": "INT64", "shape": [1], "data": [1]}]})
    assert (v2.status_code, v2.json()) == (400, {"error": "this transformer's predictor speaks V1: send V1 requests "
                                                          '({"instances": [...]}) to /v1/models/eta-isvc:predict'})


# -- which service a model version is served with ----------------------------------------------

def test_link_names_the_service_on_the_version_and_keeps_its_other_properties(running: Running) -> None:
    with RegistryClient(running.registry) as client:
        version = client.find_model_version(client.registered_model("eta")["id"], "1")
        assert version is not None
        assert untagged(version["customProperties"]) == {
            "framework": "sklearn", "feature_service": "rider_service", "feast_project": running.settings.feast.project}
        tree = lineage.show(running.project, running.settings, model="eta", version="1", client=client)
    shown = render(tree, "text")
    assert isinstance(shown, str)
    assert f"served with feature service {running.settings.feast.project}.rider_service" in shown


def test_the_version_property_wins_then_the_training_set_then_the_views(running: Running) -> None:
    project, settings = running.project, running.settings
    services = OnlineFeatures(settings.env, project, settings).services
    training = TrainingSetRecord(
        run_id="t1", feast_project=settings.feast.project, feature_service="rider_stats",
        feature_views={"rider_stats": 0}, features=["trips"], spine_path="spine", output_path="lake/train",
        output_version=0, rows=3, recorded_at="2026-01-03T00:00:00Z")
    with RegistryClient(running.registry) as client:
        trained, _ = client.artifact(training_set_artifact(training, {"rider_stats": running.feature_set}))
        # linked before the link named the service: artifacts only
        for name, artifacts in (("old-views", [running.feature_set]), ("old-training", [running.feature_set, trained])):
            version_id = _version(client, "eta", name)["id"]
            for artifact in artifacts:
                client.link(version_id, artifact["id"])
        # linked with the training set (its service recorded), then with another service: the last link wins
        lineage.link(project, settings, "eta", "both", training_set=trained["id"], client=client)
        first = linked_features(client, settings.feast.project, "eta", "both", services)
        lineage.link(project, settings, "eta", "both", service="rider_service", client=client)
        found = {name: linked_features(client, settings.feast.project, "eta", name, services)
                 for name in ("both", "old-training", "old-views")}
    assert (first.service, first.origin) == ("rider_stats", "feature_service of model eta version both")
    assert (found["both"].service, found["both"].origin) == ("rider_service", "feature_service of model eta version both")
    assert (found["old-training"].service, found["old-training"].origin) == (
        "rider_stats", "training set of model eta version old-training")
    # two catalog services cover exactly the view: no guess, every feature of the view
    assert (found["old-views"].service, found["old-views"].features) == (
        None, ["rider_stats:trips", "rider_stats:rating", "rider_stats:city"])
