"""Lineage in the Model Registry over real HTTP: featurekit's client against the embedded server.

Each test gets its own registry (uvicorn in a thread on a free loopback port, SQLite in the
test's folder). Every request featurekit sends and every answer of the server is validated
against the vendored OpenAPI spec by the recorder of ``registry_helpers``. Faults are made by a
small ASGI wrapper in front of the recorder: 5xx answers, slow answers, answers that are not
JSON, a server without ``/api/model_registry/v1`` (answering it 404 in plain text as a v0.3
Kubeflow Model Registry does, or 405, or 501), 401 and 403. The last test runs the real flow with
Spark and Feast: job -> feast apply -> materialize (registry down, then up) -> training set ->
link -> show.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import httpx
import pyarrow as pa
import pytest
import uvicorn
from deltalake import CommitProperties, DeltaTable, write_deltalake

from featurekit.config import Project, Settings, load_settings
from featurekit.config.project import PROJECT_ENV
from featurekit.config.settings import REGISTRY_TOKEN_ENV, REGISTRY_URL_ENV
from featurekit.errors import ConfigError, FeaturekitError, InfraError
from featurekit.lineage import (
    FeatureSetRecord,
    OfflineFeatureSetRecord,
    Producer,
    RunLogLineage,
    TrainingSetRecord,
    is_queued,
)
from featurekit.lineage.client import RegistryAuthError, RegistryBadResponse, RegistryRefused, tagged, untagged
from featurekit.lineage.registry_lineage import (
    RegistryLineage,
    feature_set_external_id,
    offline_feature_set_external_id,
)
from featurekit.lineage.tree import render
from featurekit.pipeline import lineage
from featurekit.registry import create_registry_app
from tests.conftest import REPO
from tests.integration.registry_helpers import ALPHA, V1, Contract, Recorder, serve

pytestmark = pytest.mark.registry

W_START, W_END = "2026-03-01T00:00:00+00:00", "2026-03-01T12:30:00+00:00"
JOB_RUN = "20260301T090000Z-0b5e7a11"
# The spec asks for a bearer token (the embedded server ignores it): featurekit reads it from conf's token_env.
TOKEN_ENV, TOKEN = "FK_TEST_REGISTRY_TOKEN", "featurekit-test"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


# -- a registry that can fail ----------------------------------------------------------------

class Faults:
    """ASGI wrapper: ``mode`` "error" answers 500 (not JSON), "forbidden" 403, "unauthorized" 401
    (plain text, as an auth proxy does), "missing" 404 (plain text), "malformed" 200 with HTML, "slow" waits ``delay`` seconds
    and then passes the request on; for the next ``times`` requests (all when None) whose method is
    in ``methods``. ``no_v1`` (a status, with its plain-text body) answers every request under /v1
    so, counting them in ``v1_hits``: a server of the v0.3 line or a proxy in front of it."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.mode: str | None = None
        self.times: int | None = None
        self.methods = ("GET", "POST", "PATCH")
        self.delay = 0.0
        self.no_v1: tuple[int, bytes] | None = None
        self.hits = self.v1_hits = 0
        self.last_headers: dict[str, str] = {}

    def set(self, mode: str | None, times: int | None = None, methods: tuple[str, ...] = ("GET", "POST", "PATCH"),
            delay: float = 0.0) -> None:
        self.mode, self.times, self.methods, self.delay, self.hits = mode, times, methods, delay, 0

    async def _answer(self, send: Any, status: int, body: bytes, content_type: str) -> None:
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", content_type.encode())]})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self.last_headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        if self.no_v1 is not None and scope["path"].startswith(V1 + "/"):
            self.v1_hits += 1
            await self._answer(send, *self.no_v1, "text/plain; charset=utf-8")
            return
        mode = self.mode if scope["method"] in self.methods and (self.times is None or self.hits < self.times) else None
        if mode is not None:
            self.hits += 1
        if mode == "error":
            await self._answer(send, 500, b"upstream exploded", "text/plain")
        elif mode == "forbidden":
            await self._answer(send, 403, b'{"code": "403", "message": "token not allowed"}', "application/json")
        elif mode == "missing":
            await self._answer(send, 404, b"404 page not found\n", "text/plain; charset=utf-8")
        elif mode == "unauthorized":
            await self._answer(send, 401, b"Unauthorized\n", "text/plain; charset=utf-8")
        elif mode == "malformed":
            await self._answer(send, 200, b"<html><body>Sign in to continue</body></html>", "application/json")
        elif mode == "slow":   # the request arrived whole; the answer is late (the work still gets done)
            messages = [await receive()]
            while messages[-1].get("more_body"):
                messages.append(await receive())
            await asyncio.sleep(self.delay)

            async def replay() -> Any:
                return messages.pop(0) if messages else await receive()

            await self.app(scope, replay, send)
        else:
            await self.app(scope, receive, send)


@dataclass
class Registry:
    """The embedded registry behind :class:`Faults`, stoppable and restartable on its port."""

    db: Path
    contract: Contract
    port: int = 0
    faults: Faults | None = None
    recorders: list[Recorder] = field(default_factory=list)
    _server: uvicorn.Server | None = None
    _thread: threading.Thread | None = None

    def start(self) -> None:
        recorder = Recorder(create_registry_app(self.db), self.contract, check_requests=True)
        self.recorders.append(recorder)
        self.faults = Faults(recorder)
        self._server, self._thread, self.port = serve(self.faults, self.port or None)

    def stop(self) -> None:
        assert self._server is not None and self._thread is not None
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._server = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def exchanges(self) -> list[Any]:
        return [e for r in self.recorders for e in r.exchanges]

    @property
    def problems(self) -> list[str]:
        return [p for r in self.recorders for p in r.problems]

    def get(self, path: str, **params: str) -> Any:
        return httpx.get(f"{self.url}{V1}{path}", params=params, headers=AUTH, timeout=10).json()

    def artifacts(self) -> list[dict[str, Any]]:
        return self.get("/artifacts", pageSize="1000")["items"]


@pytest.fixture(scope="module")
def contract() -> Contract:
    return Contract()


@pytest.fixture
def registry(tmp_path: Path, contract: Contract) -> Iterator[Registry]:
    server = Registry(tmp_path / "registry.db", contract)
    server.start()
    yield server
    if server._server is not None:
        server.stop()
    assert not server.problems, "\n".join(server.problems)


@pytest.fixture(autouse=True)
def _environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(REGISTRY_URL_ENV, raising=False)
    monkeypatch.setenv(TOKEN_ENV, TOKEN)


def with_registry(settings: Settings, url: str, **changes: Any) -> Settings:
    conf = {"url": url, "enabled": True, "retries": 2, "backoff_s": 0.01, "timeout_s": 5.0, "token_env": TOKEN_ENV,
            **changes}
    return settings.model_copy(update={"registry": settings.registry.model_copy(update=conf)})


@pytest.fixture
def settings(tmp_path: Path, registry: Registry) -> Settings:
    root = tmp_path / "project"
    shutil.copytree(REPO / "conf", root / "conf")
    (root / "jobs").mkdir()
    return with_registry(load_settings(Project(root), "local"), registry.url)


def feature_set(view: str = "driver_stats", version: int = 3, start: str = W_START, end: str = W_END,
                rows: int = 4, run_id: str = "20260301T130000Z-7c0ffee1") -> FeatureSetRecord:
    return FeatureSetRecord(
        run_id=run_id, feast_project="featurekit", feature_view=view, features=["conv_rate", "trips"],
        job=view, spec_fingerprint="5cede85a2c74f17e", delta_path=f"/lake/{view}", delta_version=version,
        window_start=start, window_end=end, rows=rows, keys=3, online_store="sqlite",
        recorded_at="2026-03-01T13:00:05+00:00", newest_event="2026-03-01T12:00:00+00:00",
        view_schema={"join_keys": {"driver_id": "Int64"}, "timestamp": "event_ts",
                     "features": {"conv_rate": "Float64", "trips": "Int64"}})


def offline(view: str, version: int) -> OfflineFeatureSetRecord:
    return OfflineFeatureSetRecord(
        feast_project="featurekit", feature_view=view, job=view, spec_fingerprint="5cede85a2c74f17e",
        delta_path=f"/lake/{view}", delta_version=version, recorded_at="2026-03-02T08:00:09+00:00",
        view_schema={"join_keys": {"driver_id": "Int64"}, "timestamp": "event_ts", "features": {"conv_rate": "Float64"}})


def producer(record: FeatureSetRecord | OfflineFeatureSetRecord) -> Producer:
    """What the pipeline finds in the table's log and the run report (here: made up)."""
    return Producer(job=record.job, run_id=JOB_RUN, delta_version=record.delta_version, operation="WRITE",
                    validation={"policy": "quarantine", "rows_checked": 6, "rows_bad": 1, "rows_malformed": 0,
                                "checks": [{"column": "trips", "check": "ge", "failures": 1, "message": ">= 0"}]},
                    sources=[{"name": "stats", "format": "parquet", "path": "/raw/stats", "delta_version": None,
                              "rows_read": 7}],
                    status="succeeded")


def store(settings: Settings) -> RegistryLineage:
    return RegistryLineage(lineage.registry_client(settings), Path(settings.registry.outbox), producer=producer)


def training_set(views: dict[str, int], run_id: str = "20260302T080000Z-5e7f00d1",
                 with_offline: bool = True) -> TrainingSetRecord:
    """``with_offline=False``: a record made before training sets named their offline feature sets."""
    return TrainingSetRecord(
        run_id=run_id, feast_project="featurekit", feature_service="driver_rates", feature_views=views,
        features=[f"{v}:conv_rate" for v in views], spine_path="/lake/spine", output_path="/lake/train",
        output_version=0, rows=12, recorded_at="2026-03-02T08:00:09+00:00", spine_version=2,
        offline_feature_sets=[offline(v, n) for v, n in views.items()] if with_offline else [])


def cli(args: list[str], project: Path) -> tuple[int, str, str]:
    """``featurekit ARGS`` in its own process, in ``project``, with this environment: (code, out, err)."""
    done = subprocess.run([str(Path(sys.executable).parent / "featurekit"), *args], cwd=project,
                          env={**os.environ, PROJECT_ENV: str(project)}, capture_output=True, text=True, timeout=120)
    return done.returncode, done.stdout, done.stderr


def artifact_id(marker: str) -> str:
    assert not is_queued(marker), marker
    return marker.rsplit("/", 1)[1]


# -- records ---------------------------------------------------------------------------------

def test_a_feature_set_is_one_dataset_artifact_and_recording_again_finds_it(registry: Registry,
                                                                            settings: Settings) -> None:
    lineage_store = store(settings)
    record = replace(feature_set(), rows=12_000_000_000)   # more than a 32-bit int_value holds
    marker = lineage_store.record_feature_set(record)
    assert marker.startswith(f"{registry.url}{V1}/artifacts/")
    again = store(settings).record_feature_set(record)     # a retry, e.g. a rerun of the materialization
    assert again == marker
    (artifact,) = registry.artifacts()
    assert artifact["id"] == artifact_id(marker)
    assert artifact["externalId"] == ("featurekit:feature-set:featurekit:driver_stats:3:"
                                      "2026-03-01T00:00:00+00:00:2026-03-01T12:30:00+00:00")
    assert (artifact["artifactType"], artifact["uri"], artifact["digest"], artifact["sourceType"]) == (
        "dataset-artifact", "/lake/driver_stats@v3", "3", "delta")
    assert artifact["source"] == f"featurekit://jobs/driver_stats/runs/{JOB_RUN}"
    assert json.loads(artifact["schema"]) == record.view_schema
    assert json.loads(artifact["profile"])["rows_bad"] == 1
    props = artifact["customProperties"]
    assert props["rows"] == {"metadataType": "MetadataStringValue", "string_value": "12000000000"}
    assert props["delta_version"] == {"metadataType": "MetadataStringValue", "string_value": "3"}
    plain = untagged(props)
    assert {k: plain[k] for k in ("featurekit_kind", "feast_project", "feast_view", "window_start", "window_end",
                                  "keys", "online_store", "spec_fingerprint", "materialization_run_id",
                                  "job", "job_run_id", "newest_event")} == {
        "featurekit_kind": "feature_set", "feast_project": "featurekit", "feast_view": "driver_stats",
        "window_start": W_START, "window_end": W_END, "keys": "3", "online_store": "sqlite",
        "spec_fingerprint": "5cede85a2c74f17e", "materialization_run_id": "20260301T130000Z-7c0ffee1",
        "job": "driver_stats", "job_run_id": JOB_RUN, "newest_event": "2026-03-01T12:00:00+00:00"}
    assert json.loads(plain["features"]) == ["conv_rate", "trips"]
    # a record of an older featurekit (or of a store holding none) leaves the property out
    older = store(settings).record_feature_set(replace(feature_set(end="2026-03-01T13:00:00+00:00"), newest_event=None))
    (held,) = [a for a in registry.artifacts() if a["id"] == artifact_id(older)]
    assert "newest_event" not in untagged(held["customProperties"])
    assert json.loads(plain["job_sources"])[0]["path"] == "/raw/stats"
    # another window of the same version is another feature set
    other = store(settings).record_feature_set(feature_set(end="2026-03-01T14:00:00+00:00"))
    assert other != marker and len(registry.artifacts()) == 3


def test_tagged_values_keep_32_bit_ints_as_the_api_wants() -> None:
    assert tagged({"a": 7, "b": 2**31, "c": 0.5, "d": True, "e": ["x"], "f": None}) == {
        "a": {"metadataType": "MetadataIntValue", "int_value": "7"},
        "b": {"metadataType": "MetadataStringValue", "string_value": "2147483648"},
        "c": {"metadataType": "MetadataDoubleValue", "double_value": 0.5},
        "d": {"metadataType": "MetadataBoolValue", "bool_value": True},
        "e": {"metadataType": "MetadataStringValue", "string_value": '["x"]'},
    }
    assert untagged(tagged({"a": 7, "d": False})) == {"a": 7, "d": False}


def test_a_training_set_names_the_delta_versions_it_read_not_a_materialization(registry: Registry,
                                                                              settings: Settings) -> None:
    lineage_store = store(settings)
    materialized = {artifact_id(lineage_store.record_feature_set(feature_set(version=3, end=end)))
                    for end in ("2026-03-01T06:00:00+00:00", W_END)}                # two windows of v3 went online
    lineage_store.record_feature_set(feature_set(version=4))
    views = {"driver_stats": 3, "driver_profile": 5, "trips": 1}                     # the last two never materialized
    marker = lineage_store.record_training_set(training_set(views))
    artifact = registry.get(f"/artifacts/{artifact_id(marker)}")
    assert artifact["externalId"] == "featurekit:training-set:featurekit:20260302T080000Z-5e7f00d1"
    assert (artifact["uri"], artifact["digest"]) == ("/lake/train@v0", "0")
    props = untagged(artifact["customProperties"])
    refs = {r["view"]: r for r in json.loads(props["feature_sets"])}
    assert set(refs) == set(views) and not materialized & {r["id"] for r in refs.values()}
    for view, version in views.items():
        read = registry.get(f"/artifacts/{refs[view]['id']}")
        assert refs[view] == {"view": view, "delta_version": version, "delta_path": f"/lake/{view}",
                              "id": read["id"], "externalId": offline_feature_set_external_id(offline(view, version))}
        assert read["externalId"] == f"featurekit:offline-feature-set:featurekit:{view}:{version}:/lake/{view}"
        assert (read["artifactType"], read["uri"], read["digest"], read["sourceType"]) == (
            "dataset-artifact", f"/lake/{view}@v{version}", str(version), "delta")
        assert read["source"] == f"featurekit://jobs/{view}/runs/{JOB_RUN}"          # the run that made that version
        assert json.loads(read["schema"]) == offline(view, version).view_schema
        assert json.loads(read["profile"])["rows_checked"] == 6
        plain = untagged(read["customProperties"])
        assert {k: plain[k] for k in ("featurekit_kind", "feast_view", "delta_path", "delta_version", "job_run_id")} == {
            "featurekit_kind": "offline_feature_set", "feast_view": view, "delta_path": f"/lake/{view}",
            "delta_version": str(version), "job_run_id": JOB_RUN}
        assert "online_store" not in plain and "window_start" not in plain
    assert props["feature_set_ids"] == ",".join(refs[v]["id"] for v in views)
    assert json.loads(props["feature_views"]) == {"driver_stats": "3", "driver_profile": "5", "trips": "1"}
    assert lineage_store.record_training_set(training_set({"driver_stats": 3})) == marker   # idempotent

    # another training set reading driver_stats v3 names the same feature data; trips v2 is new data
    other = lineage_store.record_training_set(training_set({"driver_stats": 3, "trips": 2}, run_id="20260303T080000Z-1"))
    others = {r["view"]: r for r in json.loads(untagged(registry.get(f"/artifacts/{artifact_id(other)}")
                                                         ["customProperties"])["feature_sets"])}
    assert others["driver_stats"]["id"] == refs["driver_stats"]["id"] and others["trips"]["id"] != refs["trips"]["id"]
    kinds = [untagged(a["customProperties"])["featurekit_kind"] for a in registry.artifacts()]
    assert (kinds.count("feature_set"), kinds.count("offline_feature_set"), kinds.count("training_set")) == (3, 4, 2)


def test_a_training_set_recorded_before_offline_feature_sets_names_the_materialization(
        registry: Registry, settings: Settings) -> None:
    """An outbox file or run-log record of an earlier featurekit has no offline feature sets: it is
    sent as it would have been then."""
    lineage_store = store(settings)
    lineage_store.record_feature_set(feature_set(version=3, end="2026-03-01T06:00:00+00:00"))
    newer = artifact_id(lineage_store.record_feature_set(feature_set(version=3)))
    record = training_set({"driver_stats": 3, "trips": 1}, with_offline=False)
    earlier = {k: v for k, v in asdict(record).items() if k not in ("offline_feature_sets", "kind")}
    lineage_store._queue(lineage_store._entry("training_set", "featurekit:training-set:featurekit:" + record.run_id,
                                              earlier, None), "test")
    done = lineage.flush(Project(settings.runs_dir.parents[1]), settings)
    assert (len(done.sent), done.created, done.failed) == (1, 1, [])
    props = untagged(registry.get(f"/artifacts/{done.sent[0].rsplit('/', 1)[1]}")["customProperties"])
    refs = {r["view"]: r for r in json.loads(props["feature_sets"])}
    assert refs["driver_stats"]["id"] == newer
    assert refs["trips"] == {"view": "trips", "delta_version": 1, "id": None, "externalId": None}


def test_link_a_training_set_from_the_run_log_and_the_official_client_reads_it(registry: Registry,
                                                                              settings: Settings) -> None:
    from model_registry.core import ModelRegistryAPIClient
    from model_registry.types import DataSet

    store(settings).record_feature_set(feature_set(version=3))
    record = training_set({"driver_stats": 3})
    RunLogLineage(settings.runs_dir).record_training_set(record)     # built with the registry disabled
    project = Project(settings.runs_dir.parents[1])
    linked = lineage.link(project, settings, "driver-eta", "1.0.0", training_set=record.run_id[:18])
    assert linked.model["name"] == "driver-eta" and linked.version["name"] == "1.0.0"
    (artifact,) = linked.artifacts
    assert untagged(artifact["customProperties"])["training_set_run_id"] == record.run_id
    # linking again (or by the artifact's id) changes nothing
    again = lineage.link(project, settings, "driver-eta", "1.0.0", training_set=artifact["id"])
    assert again.version["id"] == linked.version["id"] and again.artifacts[0]["id"] == artifact["id"]
    assert len([a for a in registry.artifacts() if "training-set" in a["externalId"]]) == 1

    api = ModelRegistryAPIClient.insecure_connection("http://127.0.0.1", registry.port, "featurekit-test")
    read = asyncio.run(api.get_model_version_artifacts(linked.version["id"]))
    assert [(type(a), a.id, a.uri, a.digest) for a in read] == [(DataSet, artifact["id"], "/lake/train@v0", "0")]

    with pytest.raises(ConfigError, match="no training set with run id 'nope'"):
        lineage.link(project, settings, "driver-eta", "1.0.0", training_set="nope")


def test_the_tree_names_each_node_s_page_and_the_picture_links_to_it(registry: Registry, settings: Settings) -> None:
    from featurekit.lineage.svg import svg
    from tests.unit.test_lineage_svg import SVG_NS, ui_href

    lineage_store = store(settings)
    lineage_store.record_feature_set(feature_set(version=3))
    record = training_set({"driver_stats": 3, "trips": 1})
    lineage_store.record_training_set(record)
    project = Project(settings.runs_dir.parents[1])
    lineage.link(project, settings, "driver-eta", "1.0.0", training_set=record.run_id)

    tree = lineage.show(project, settings, model="driver-eta", version="1.0.0")
    links: dict[str, list[dict[str, str]]] = {}
    stack = [tree]
    while stack:
        node = stack.pop()
        links.setdefault(node.kind, []).append(node.link)
        stack.extend(node.children)
    assert links["model_version"] == [{"model": "driver-eta", "version": "1.0.0"}]
    assert links["training_set"] == [{"training_set": record.run_id}]
    assert sorted(v["view"] for v in links["feature_set"]) == ["driver_stats", "trips"]
    assert sorted(d["job"] for d in links["delta"]) == ["driver_stats", "trips"]
    assert sorted(r["run_id"] for r in links["job_run"]) == [JOB_RUN, JOB_RUN]
    assert {r["job"] for r in links["job_run"]} == {"driver_stats", "trips"}
    assert all(link == {} for link in links["source"])

    anchors = ET.fromstring(svg(tree, ui_href)).iter(f"{SVG_NS}a")
    hrefs = {a.findtext(f"{SVG_NS}title", "").split("\n")[0]: a.get("href") for a in anchors}
    assert hrefs["model driver-eta version 1.0.0"] == "/lineage/driver-eta/1.0.0"
    assert hrefs["offline feature set featurekit.trips"] == "/features/trips"
    assert hrefs["Delta /lake/trips @ v1"] == "/jobs/trips"
    assert hrefs[f"job run driver_stats {JOB_RUN}"] == f"/runs/{JOB_RUN}"

    by_view = lineage.show(project, settings, feature_view="driver_stats")
    assert by_view.link == {"view": "driver_stats"} and by_view.children[0].link == {"view": "driver_stats"}
    # the metadata API's JSON carries the links too
    from featurekit.api.app import node

    assert node(tree).model_dump() == asdict(tree)


# -- faults ----------------------------------------------------------------------------------

def test_registry_down_queues_then_flush_sends_each_record_exactly_once(registry: Registry,
                                                                       settings: Settings) -> None:
    project = Project(settings.runs_dir.parents[1])
    registry.stop()                                      # the port is closed now
    both = lineage.lineage_store(project, settings)
    first = both.record_feature_set(feature_set(version=3))
    second = both.record_feature_set(feature_set(view="driver_profile", version=5))
    trained = both.record_training_set(training_set({"driver_stats": 3, "driver_profile": 5}))
    for marker in (first, second, trained):
        assert is_queued(marker) and "ConnectError" in marker and "featurekit lineage flush" in marker
    assert lineage.lineage_warning("feature view driver_stats", first)[0].startswith(
        "lineage of feature view driver_stats is not in the Model Registry yet: queued in the lineage outbox")
    outbox = Path(settings.registry.outbox)
    assert len(list(outbox.glob("*.json"))) == 3
    assert len(RunLogLineage(settings.runs_dir).records()) == 3   # the run log has them regardless
    still_down = lineage.flush(project, settings)        # nothing lost
    assert (still_down.sent, still_down.remaining) == ([], 3)
    (failure,) = still_down.failed
    assert "ConnectError" in failure

    registry.start()                                      # same port, same database
    done = lineage.flush(project, settings)
    assert (len(done.sent), done.created, done.failed, done.remaining) == (3, 3, [], 0)
    assert list(outbox.iterdir()) == []
    artifacts = registry.artifacts()
    assert len(artifacts) == 5                           # 2 feature sets, the 2 offline ones read, the training set
    ts = next(a for a in artifacts if "training-set" in a["externalId"])
    assert len(untagged(ts["customProperties"])["feature_set_ids"].split(",")) == 2
    again = lineage.flush(project, settings)
    assert (again.sent, again.created, again.remaining) == ([], 0, 0)

    # a flush that died after sending but before deleting its file: the replay finds the artifact
    lineage_store = RegistryLineage(lineage.registry_client(settings), outbox)
    lineage_store._queue(lineage_store._entry("feature_set", feature_set_external_id(feature_set(version=3)),
                                              asdict(feature_set(version=3)), None), "test")
    replay = lineage.flush(project, settings)
    assert (len(replay.sent), replay.created, replay.remaining) == (1, 0, 0)
    assert len(registry.artifacts()) == 5


def test_5xx_is_retried_and_then_queued(registry: Registry, settings: Settings) -> None:
    assert registry.faults is not None
    registry.faults.set("error", times=2, methods=("POST",))       # two failures, then the real answer
    marker = store(settings).record_feature_set(feature_set())
    assert registry.faults.hits == 2 and len(registry.artifacts()) == 1
    artifact_id(marker)

    registry.faults.set("error", methods=("POST",))                # every POST fails
    failing = store(settings)
    queued = failing.record_feature_set(feature_set(version=9))
    assert is_queued(queued) and "HTTP 500: upstream exploded" in queued and "3 attempts" in queued
    assert registry.faults.hits == 3                               # 1 + retries (2)
    # the store remembers: the next record goes straight to the outbox, no more waiting
    assert is_queued(failing.record_feature_set(feature_set(version=10)))
    assert registry.faults.hits == 3
    registry.faults.set(None)
    assert lineage.flush(Project(settings.runs_dir.parents[1]), settings).created == 2
    assert len(registry.artifacts()) == 3


def test_slow_answers_time_out_are_retried_and_never_duplicate(registry: Registry, settings: Settings) -> None:
    assert registry.faults is not None
    quick = with_registry(settings, registry.url, timeout_s=0.3)
    lineage_store = store(quick)
    assert lineage_store.client.prefix == V1
    # the first POST answers after the client gave up, but the server still creates the artifact
    registry.faults.set("slow", times=1, methods=("POST",), delay=0.8)
    marker = lineage_store.record_feature_set(feature_set())
    threading.Event().wait(1.0)                                    # let the slow request finish
    (artifact,) = registry.artifacts()
    assert artifact["id"] == artifact_id(marker)

    registry.faults.set("slow", methods=("POST",), delay=0.5)      # always too slow: queued
    queued = store(quick).record_feature_set(feature_set(version=7))
    assert is_queued(queued) and "ReadTimeout" in queued
    threading.Event().wait(0.8)
    registry.faults.set(None)
    done = lineage.flush(Project(settings.runs_dir.parents[1]), settings)
    assert (len(done.sent), done.remaining) == (1, 0)             # created by the late request, or now
    assert len(registry.artifacts()) == 2


def test_malformed_and_refused_answers_are_clear_errors(registry: Registry, settings: Settings) -> None:
    assert registry.faults is not None
    registry.faults.set("malformed", methods=("GET",))
    with pytest.raises(RegistryBadResponse) as info:
        store(settings).client.prefix
    message = str(info.value)
    assert message == (f"the Model Registry at {registry.url} answered GET {V1}/registered_models with 200 and a "
                       "body that is not a JSON object: <html><body>Sign in to continue</body></html>")
    assert isinstance(info.value, InfraError) and info.value.exit_code == 1 and "\n" not in message
    registry.faults.set(None)
    client = store(settings).client
    client.request("POST", "/registered_models", body={"name": "eta"})
    with pytest.raises(RegistryRefused) as refused:       # a 4xx other than auth: retrying won't help
        client.request("POST", "/registered_models", body={"name": "eta"})
    assert refused.value.status == 409 and refused.value.exit_code == 1 and str(refused.value).startswith(
        f"the Model Registry at {registry.url} refused POST {V1}/registered_models: 409 ")
    registry.faults.set("missing")                         # not a registry: every path is 404
    with pytest.raises(RegistryRefused) as nowhere:
        store(settings).client.prefix
    assert str(nowhere.value) == (f"no Model Registry API at {registry.url}: GET {V1} and {ALPHA}"
                                  "/registered_models answered 404 and 404 (is the URL the registry's root?)")


# What answers /api/model_registry/v1 on a registry without it: Go's router of a v0.3 Kubeflow
# Model Registry (plain text), a proxy refusing the method, a proxy not implementing it.
NO_V1 = {404: b"404 page not found\n", 405: b"Method Not Allowed\n", 501: b"Not Implemented\n"}


@pytest.mark.parametrize("status", sorted(NO_V1))
def test_a_registry_without_v1_is_spoken_to_in_v1alpha3(status: int, registry: Registry, settings: Settings) -> None:
    assert registry.faults is not None
    registry.faults.no_v1 = (status, NO_V1[status])
    lineage_store = store(settings)
    marker = lineage_store.record_feature_set(feature_set())
    assert marker.startswith(f"{registry.url}{ALPHA}/artifacts/")
    assert lineage_store.record_feature_set(feature_set()) == marker
    trained = lineage_store.record_training_set(training_set({"driver_stats": 3}))
    assert trained.startswith(f"{registry.url}{ALPHA}/artifacts/")
    assert registry.faults.v1_hits == 1                  # asked once: the client keeps its answer
    linked = lineage.link(Project(settings.runs_dir.parents[1]), settings, "eta", "1", training_set=artifact_id(trained))
    assert linked.version["name"] == "1" and linked.urls == [trained]
    assert registry.faults.v1_hits == 2                  # link's own client asked once too
    paths = [e.path for e in registry.exchanges]
    assert paths and all(p.startswith(ALPHA + "/") for p in paths)
    # the lineage landed: the feature set, the training set, the view's Delta version it read
    registry.faults.no_v1 = None
    kinds = sorted(untagged(a["customProperties"])["featurekit_kind"] for a in registry.artifacts())
    assert kinds == ["feature_set", "offline_feature_set", "training_set"]
    assert [a["uri"] for a in registry.artifacts()].count("/lake/driver_stats@v3") == 2


def test_401_and_403_name_the_token_variable_exit_2_and_keep_the_record(
        registry: Registry, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    assert registry.faults is not None
    project = Project(settings.runs_dir.parents[1])
    outbox = Path(settings.registry.outbox)
    # no token_env in conf and FEATUREKIT_REGISTRY_TOKEN unset: no token sent, the proxy wants one
    monkeypatch.delenv(REGISTRY_TOKEN_ENV, raising=False)
    untokened = with_registry(settings, registry.url, token_env=None)
    registry.faults.set("unauthorized")
    with pytest.raises(RegistryAuthError) as info:
        lineage.lineage_store(project, untokened).record_feature_set(feature_set())
    assert str(info.value).startswith(
        f"conf registry.token_env: the Model Registry at {registry.url} refused GET {V1}/registered_models: "
        "401 Unauthorized; no bearer token was sent: featurekit reads it from the environment variable "
        "FEATUREKIT_REGISTRY_TOKEN, which is not set; the record waits in the lineage outbox (")
    assert info.value.exit_code == 2 and info.value.status == 401 and "\n" not in str(info.value)
    assert "authorization" not in registry.faults.last_headers
    assert len(list(outbox.glob("feature_set-*.json"))) == 1

    # a token from the variable conf names, which the registry refuses
    monkeypatch.setenv(TOKEN_ENV, "expired-s3cret")
    registry.faults.set("forbidden", methods=("POST",))
    with pytest.raises(RegistryAuthError) as refused:
        lineage.lineage_store(project, settings).record_training_set(training_set({"driver_stats": 3}))
    message = str(refused.value)
    assert message.startswith(f"conf registry.token_env: the Model Registry at {registry.url} refused POST "
                              f"{V1}/artifacts: 403 token not allowed; the bearer token featurekit sent, from the "
                              f"environment variable {TOKEN_ENV}, was refused (expired, or without access to the "
                              "registry?)")
    assert "expired-s3cret" not in message and registry.faults.last_headers["authorization"] == "Bearer expired-s3cret"
    assert len(list(outbox.glob("*.json"))) == 2 and registry.artifacts() == []

    # through the CLI: one line, exit 2 (the user fixes the token), the outbox kept
    monkeypatch.setenv(REGISTRY_URL_ENV, registry.url)
    monkeypatch.setenv(REGISTRY_TOKEN_ENV, "expired-s3cret")
    registry.faults.set("unauthorized")
    code, _, err = cli(["lineage", "flush"], project.root)
    assert code == 2 and "401 Unauthorized; the bearer token featurekit sent, from the environment variable " \
        "FEATUREKIT_REGISTRY_TOKEN, was refused" in err and "Traceback" not in err and "expired-s3cret" not in err
    assert len(list(outbox.glob("*.json"))) == 2

    # the token fixed: the flush sends both records, each once
    registry.faults.set(None)
    code, out, _ = cli(["lineage", "flush"], project.root)
    assert code == 0 and "sent 2 record(s): 2 new in the registry" in out
    kinds = sorted(untagged(a["customProperties"])["featurekit_kind"] for a in registry.artifacts())
    assert kinds == ["feature_set", "offline_feature_set", "training_set"]


def test_settings_token_and_url_override(registry: Registry, settings: Settings,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    dead = with_registry(settings, "http://127.0.0.1:9", retries=0)
    monkeypatch.setenv(REGISTRY_URL_ENV, registry.url)
    client = lineage.registry_client(dead)
    assert client.url == registry.url and client.prefix == V1
    tokened = with_registry(settings, registry.url, token_env="FK_TEST_OTHER_TOKEN")
    with pytest.raises(ConfigError, match="registry.token_env names the environment variable FK_TEST_OTHER_TOKEN"):
        lineage.registry_client(tokened)
    monkeypatch.setenv("FK_TEST_OTHER_TOKEN", "s3cret")
    store(tokened).record_feature_set(feature_set())
    assert registry.exchanges[-1].headers["authorization"] == "Bearer s3cret"


# -- which job run made a Delta version ------------------------------------------------------

def test_the_producer_of_a_version_steps_over_optimize_and_follows_restore(tmp_path: Path) -> None:
    path = str(tmp_path / "table")
    rows = pa.table({"a": [1, 2]})

    def commit(run_id: str, mode: Literal["error", "append"]) -> None:
        meta = json.dumps({"job": "trips", "run_id": run_id, "fingerprint": "f1", "env": "local"})
        write_deltalake(path, rows, mode=mode, commit_properties=CommitProperties(custom_metadata={"userMetadata": meta}))

    commit("run-0", "error")                       # v0
    commit("run-1", "append")                      # v1
    DeltaTable(path).optimize.compact()            # v2: OPTIMIZE, no userMetadata
    DeltaTable(path).restore(0)                    # v3: RESTORE to v0
    runs = tmp_path / "runs"
    (runs / "trips").mkdir(parents=True)
    (runs / "trips" / "run-1.json").write_text(json.dumps({
        "run_id": "run-1", "status": "succeeded", "fingerprint": "f1",
        "sources": [{"name": "raw", "format": "csv", "path": "/raw", "delta_version": None, "rows_read": 9}],
        "gate": {"policy": "fail", "rows_checked": 2, "rows_bad": 0,
                 "checks": [{"column": "a", "check": "ge", "failures": 0, "message": "", "examples": [{"a": 1}]}]}}))
    found = {v: lineage.find_producer(runs, path, v, "trips") for v in range(4)}
    assert [(p.run_id, p.delta_version) for p in found.values()] == [
        ("run-0", 0), ("run-1", 1), ("run-1", 1), ("run-0", 0)]
    assert found[2].status == "succeeded" and found[2].sources[0]["rows_read"] == 9
    assert found[2].validation["checks"] == [{"column": "a", "check": "ge", "failures": 0, "message": ""}]
    assert found[0].validation == {} and found[0].status == ""          # no report: nothing made up
    assert lineage.find_producers(runs, path, [0, 1, 2, 3], "trips") == found        # one read of the log, same answers
    assert lineage.find_producer(runs, str(tmp_path / "nope"), 0, "trips").run_id == ""


# -- the real flow ---------------------------------------------------------------------------

@pytest.mark.feast
def test_show_after_materialize_and_link_names_the_delta_version_and_job_run(
        registry: Registry, spark: object, tmp_path: Path) -> None:
    from model_registry.core import ModelRegistryAPIClient

    from featurekit.pipeline.materialize import materialize
    from tests.integration.test_feast import STATS_JOB, T0, feature_lab

    lab, project, plain = feature_lab(tmp_path / "flow", spark)
    lab.run("driver_stats", STATS_JOB)                               # a second run: version 1
    settings = with_registry(plain, registry.url)
    earlier, report = lab.reports("driver_stats")
    run_id, version = report["run_id"], report["table_version"]
    assert version == 1 and earlier["table_version"] == 0
    end = T0 + timedelta(hours=12, minutes=30)

    registry.stop()                                                  # down during the materialization
    down = materialize(project, settings, start=T0, end=end, spark=spark)
    assert down.views[0].keys == 3 and is_queued(down.views[0].lineage)
    (warning,) = down.warnings
    assert warning.startswith("lineage of feature view driver_stats is not in the Model Registry yet")
    registry.start()
    assert lineage.flush(project, settings).created == 1
    up = materialize(project, settings, start=T0, end=end, spark=spark)   # same window again: same artifact
    assert up.warnings == [] and not is_queued(up.views[0].lineage)
    (artifact,) = registry.artifacts()
    assert up.views[0].lineage.endswith(f"/artifacts/{artifact['id']}")
    assert artifact["uri"] == f"{lab.lake / 'driver_stats'}@v{version}"
    assert artifact["source"] == f"featurekit://jobs/driver_stats/runs/{run_id}"
    assert json.loads(artifact["profile"])["rows_checked"] == report["gate"]["rows_checked"]
    assert json.loads(artifact["schema"])["features"]["conv_rate"] == "Float64"

    linked = lineage.link(project, settings, "driver-eta", "1", service="driver_rates")
    assert [a["id"] for a in linked.artifacts] == [artifact["id"]]
    api = ModelRegistryAPIClient.insecure_connection("http://127.0.0.1", registry.port, "featurekit-test")
    (read,) = asyncio.run(api.get_model_version_artifacts(linked.version["id"]))
    assert read.uri == artifact["uri"] and read.custom_properties["job_run_id"] == run_id

    tree = lineage.show(project, settings, model="driver-eta", version="1")
    text = render(tree, "text")
    assert isinstance(text, str)
    assert "model driver-eta version 1" in text and "feature set featurekit.driver_stats" in text
    assert f"Delta {lab.lake / 'driver_stats'} @ v{version}" in text
    assert f"job run driver_stats {run_id}" in text and "status succeeded" in text
    assert earlier["run_id"] not in text and "@ v0" not in text
    assert f"source stats: parquet {lab.raw / 'stats'}" in text and "6 rows read" in text
    mermaid = render(tree, "mermaid")
    assert isinstance(mermaid, str) and mermaid.splitlines()[0] == "flowchart LR"
    assert f"v{version}" in mermaid and run_id in mermaid and mermaid.count(" --> ") == 4
    dot = render(tree, "dot")
    assert isinstance(dot, str) and dot.startswith("digraph lineage {")
    assert len(re.findall(r"^  n\d+ -> n\d+;$", dot, re.M)) == 4
    by_view = render(lineage.show(project, settings, feature_view="driver_stats"), "text")
    assert f"job run driver_stats {run_id}" in by_view
    if shutil.which("dot") is None:
        with pytest.raises(InfraError, match="needs Graphviz's `dot` program, which is not installed"):
            render(tree, "png")
    else:
        drawing = render(tree, "png")
        assert isinstance(drawing, bytes) and drawing.startswith(b"\x89PNG")
    with pytest.raises(ConfigError, match="registered model 'driver-eta' has no version '2'"):
        lineage.show(project, settings, model="driver-eta", version="2")

    # a training set read the same table version: model version -> training set -> that Delta version
    # (its offline feature set, not the materialization) -> the job run -> ...
    from featurekit.pipeline.training import training_set as build

    stamps = pa.array([T0 + timedelta(hours=13)] * 2, pa.timestamp("us", tz="UTC"))
    lab.parquet("spine", pa.table({"driver_id": pa.array([1, 2], pa.int64()), "event_timestamp": stamps}))
    built = build(project, settings, spine=str(lab.raw / "spine"), service="driver_rates", out=str(lab.lake / "train"),
                  spark=spark)
    assert built.views == {"driver_stats": version} and built.warnings == [] and not is_queued(built.lineage)
    lineage.link(project, settings, "driver-eta", "2", training_set=built.run_id)
    trained = render(lineage.show(project, settings, model="driver-eta", version="2"), "text")
    assert isinstance(trained, str)
    assert f"training set driver_rates (run {built.run_id})" in trained
    assert f"Delta {lab.lake / 'train'} @ v{built.out_version}" in trained
    assert "offline feature set featurekit.driver_stats" in trained and f"artifact {artifact['id']}" not in trained
    assert f"Delta {lab.lake / 'driver_stats'} @ v{version}" in trained and f"job run driver_stats {run_id}" in trained
    assert f"spine {lab.raw / 'spine'}" in trained
    (read_back,) = asyncio.run(api.get_artifacts(filter_query='featurekit_kind.string_value = "offline_feature_set"'))
    assert read_back.uri == artifact["uri"] and read_back.custom_properties["job_run_id"] == run_id
    assert read_back.custom_properties["delta_version"] == str(version) and read_back.id != artifact["id"]
    with pytest.raises(FeaturekitError, match="unknown feature service 'driver_rate' — did you mean 'driver_rates'"):
        lineage.link(project, settings, "driver-eta", "1", service="driver_rate")
