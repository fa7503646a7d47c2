"""``featurekit transformer``: a real transformer process in front of a real predictor process (a
tiny ``kserve.Model`` that echoes the instances it is given), over HTTP, with the embedded Model
Registry and a SQLite online store.

No Spark: the project is the one of ``test_online_catalog`` (delta-rs table, real ``feast apply``,
rows written through the online-store port); the model version is linked to the feature set of
its view with the very artifact ``featurekit lineage link --service`` sends.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from featurekit.config import Project, Settings
from featurekit.lineage import FeatureSetRecord
from featurekit.lineage.client import RegistryClient
from featurekit.lineage.registry_lineage import feature_set_artifact
from featurekit.registry import create_registry_app
from tests.conftest import REPO, _free_port
from tests.integration.registry_helpers import serve
from tests.integration.test_online_catalog import make_project

pytestmark = [pytest.mark.feast, pytest.mark.registry]

CLI = "import sys; from featurekit.cli import main; sys.exit(main())"
# The predictor: answers each instance with the instance itself, so the test sees what arrived.
PREDICTOR = """
import sys
import kserve

class Echo(kserve.Model):
    def __init__(self, name):
        super().__init__(name)
        self.ready = True

    async def predict(self, payload, headers=None, response_headers=None):
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


def _link(registry_url: str, settings: Settings, model: str, version: str) -> None:
    record = FeatureSetRecord(
        run_id="r1", feast_project=settings.feast.project, feature_view="rider_stats",
        features=["trips", "rating", "city"], job="rider_stats", spec_fingerprint="f", delta_path="lake/rider_stats",
        delta_version=0, window_start="2026-01-01T00:00:00Z", window_end="2026-01-02T00:00:00Z", rows=3, keys=3,
        online_store="sqlite", recorded_at="2026-01-02T00:00:00Z")
    with RegistryClient(registry_url) as client:
        artifact, _ = client.artifact(feature_set_artifact(record, None))
        registered = client.registered_model(model)
        client.link(client.model_version(registered["id"], version)["id"], artifact["id"])


@dataclass(frozen=True)
class Running:
    transformer: str            # base URLs
    registry: str
    predictor: str              # host:port
    project: Project


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """The transformer, with the predictor and the registry behind it."""
    root = tmp_path_factory.mktemp("transformer")
    project, settings = make_project(root / "project")
    server, thread, registry_port = serve(create_registry_app(root / "registry.db"))
    registry_url = f"http://127.0.0.1:{registry_port}"
    _link(registry_url, settings, "eta", "1")
    with RegistryClient(registry_url) as client:      # a version with nothing linked
        client.model_version(client.registered_model("eta")["id"], "bare")
    env = {**os.environ, "PYTHONPATH": str(REPO), "FEATUREKIT_REGISTRY_URL": registry_url}
    predictor_port, transformer_port = _free_port(), _free_port()
    predictor_log, transformer_log = root / "predictor.log", root / "transformer.log"
    predictor = _start([sys.executable, "-c", PREDICTOR, str(predictor_port), "eta-isvc"], predictor_log, env)
    transformer = _start(
        [sys.executable, "-c", CLI, "--project", str(project.root),
         "transformer", "--model", "eta", "--version", "1",
         # as KServe's controller appends them
         "--model_name", "eta-isvc", "--predictor_host", f"127.0.0.1:{predictor_port}",
         "--http_port", str(transformer_port), "--workers", "1", "--protocol", "v1"], transformer_log, env)
    try:
        _wait_ready(f"http://127.0.0.1:{predictor_port}/v1/models/eta-isvc", predictor, predictor_log)
        _wait_ready(f"http://127.0.0.1:{transformer_port}/v1/models/eta-isvc", transformer, transformer_log)
        yield Running(f"http://127.0.0.1:{transformer_port}", registry_url, f"127.0.0.1:{predictor_port}", project)
    finally:
        _stop(transformer)
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

