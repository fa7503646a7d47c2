"""`featurekit ui` over a real Model Registry: the lineage pages, the models on the index and on a
feature view's page, and a registry that answers too slowly or is not one.

The project of ``test_ui`` (no Spark), its Model Registry the embedded server on a free loopback
port: a training set read from driver_stats at Delta version 1 (recorded in the run log) is linked
to model driver-eta version 1 with ``lineage link --training-set``, the feature service
driver_rates (the run log's materialization of driver_stats) to version 2 with ``lineage link
--service``, and a model churn has a version linked to nothing.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient

from featurekit.config import Project, Settings
from featurekit.config.settings import REGISTRY_TOKEN_ENV, REGISTRY_URL_ENV
from featurekit.lineage import OfflineFeatureSetRecord, RunLogLineage, TrainingSetRecord
from featurekit.lineage.client import registry_client
from featurekit.pipeline import lineage
from featurekit.registry import create_registry_app
from featurekit.spec.loader import LoadedJob
from featurekit.ui import create_ui
from featurekit.lineage.registry_lineage import offline_feature_set_artifact
from featurekit.ui import lineage as ui_lineage
from featurekit.ui.lineage import TIMEOUT_S, VERSION_TTL_S, ModelRegistry
from tests.integration.registry_helpers import Contract, Recorder, serve
from tests.integration.test_ui import Page, crawl
from tests.ui_project import RUN_IDS, URL_PASSWORD, make_ui_project

pytestmark = pytest.mark.registry

TRAINING_RUN = "20260302T080000Z-7a7a0005"
TOKEN = "tok-91d2-never-in-a-page"


@dataclass
class Lab:
    project: Project
    settings: Settings
    job: LoadedJob
    client: TestClient
    registry_url: str
    recorder: Recorder                  # every exchange with the registry, checked against its OpenAPI spec


def get(lab: Lab, url: str, status: int = 200, client: TestClient | None = None) -> Page:
    answer = (client or lab.client).get(url)
    assert answer.status_code == status, (url, answer.text[:500])
    assert URL_PASSWORD not in answer.text and TOKEN not in answer.text
    page = Page(answer.text)
    assert page.problems() == [], url
    return page


@contextmanager
def linked_project(root: Path, recorder: Recorder | None = None) -> Iterator[tuple[Project, Settings, LoadedJob, str]]:
    """The module's project in ``root`` with its embedded Model Registry running (stopped on exit),
    behind ``recorder`` if given: (project, settings, the driver_stats job, the registry's URL)."""
    registry = create_registry_app(root / "registry.db")
    if recorder is not None:
        recorder.app = registry
    server, thread, port = serve(recorder or registry)
    try:
        with pytest.MonkeyPatch.context() as env:
            env.delenv(REGISTRY_URL_ENV, raising=False)
            env.setenv(REGISTRY_TOKEN_ENV, TOKEN)                 # the API asks for a bearer token
            url = f"http://127.0.0.1:{port}"
            made = make_ui_project(root / "project", url)
            project, settings, job = made.project, made.settings, made.job
            path = str(job.spec.output.path)
            RunLogLineage(settings.runs_dir).record_training_set(TrainingSetRecord(
                run_id=TRAINING_RUN, feast_project=settings.feast.project, feature_service="driver_rates",
                feature_views={"driver_stats": 1}, features=["driver_stats:conv_rate"],
                spine_path=str(root / "spine"), output_path=str(root / "train"), output_version=0, rows=3,
                recorded_at="2026-03-02T08:00:09+00:00",
                offline_feature_sets=[OfflineFeatureSetRecord(
                    feast_project=settings.feast.project, feature_view="driver_stats", job="driver_stats",
                    spec_fingerprint=job.fingerprint, delta_path=path, delta_version=1,
                    recorded_at="2026-03-02T08:00:05+00:00",
                    view_schema={"join_keys": {"driver_id": "Int64"}, "timestamp": "event_ts",
                                 "features": {"conv_rate": "Float64"}})]))
            lineage.link(project, settings, "driver-eta", "1", training_set=TRAINING_RUN)
            lineage.link(project, settings, "driver-eta", "2", service="driver_rates")
            with registry_client(settings) as client:
                churn = client.registered_model("churn", description="Who leaves next month")
                client.model_version(churn["id"], "1")
            yield project, settings, job, url
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def contract() -> Contract:
    return Contract()                        # parsing the spec takes seconds: once for the module


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, contract: Contract) -> Iterator[Lab]:
    recorder = Recorder(None, contract, check_requests=True)
    with linked_project(tmp_path_factory.mktemp("ui-lineage"), recorder) as (project, settings, job, url):
        with TestClient(create_ui(project, settings)) as ui:
            yield Lab(project, settings, job, ui, url, recorder)


def test_the_lineage_page_draws_the_tree_and_lists_it_with_the_same_links(lab: Lab) -> None:
    page = get(lab, "/lineage/driver-eta/1")
    words = page.words
    assert "Lineage of model driver-eta version 1" in words and f"Model Registry at {lab.registry_url}" in words
    (picture,) = page.all("svg")
    assert picture["id"] == "lineage" and picture["role"] == "group"
    nodes = [a for a in page.all("a") if (a.get("class") or "").startswith("node ")]
    kinds = [a["data-kind"] for a in nodes]
    assert kinds == ["model_version", "training_set", "source", "feature_set", "delta", "job_run", "source"]
    drawn = [a["href"] for a in nodes]
    assert drawn[0] == "/lineage/driver-eta/1" and drawn[3] == "/features/driver_stats"
    assert drawn[4] == "/jobs/driver_stats" and drawn[5] == f"/runs/{RUN_IDS[1]}"   # the run whose commit is v1
    assert [h.startswith("#lineage-n") for h in drawn] == [False, True, True, False, False, False, True]  # no page
    # the list under the picture: the same tree, the same pages, in the same order
    listed = [link for link in page.links if link not in ("#content", "/", "/static/ui.css") and link not in drawn]
    assert listed == []
    in_list = words.split("As a list", 1)[1]
    assert f"model driver-eta version 1 registered model" in in_list
    assert f"training set driver_rates (run {TRAINING_RUN})" in in_list
    assert f"offline feature set {lab.settings.feast.project}.driver_stats features: conv_rate" in in_list
    assert f"Delta {lab.job.spec.output.path} @ v1 job run driver_stats {RUN_IDS[1]} status succeeded" in in_list
    assert "source stats: parquet raw/stats 4 rows read" in in_list
    assert [link for link in page.links if not link.startswith("#")][-4:] == [
        "/lineage/driver-eta/1", "/features/driver_stats", "/jobs/driver_stats", f"/runs/{RUN_IDS[1]}"]

    served = get(lab, "/lineage/driver-eta/2")                     # linked through the feature service
    assert f"feature set {lab.settings.feast.project}.driver_stats" in served.words
    assert "served with feature service" in served.words and "window 2026-03-01T00:00:00+00:00" in served.words
    assert "/features/driver_stats" in served.links


def test_the_feature_page_lists_the_model_versions_using_the_view(lab: Lab) -> None:
    page = get(lab, "/features/driver_stats")
    words = page.words
    assert ("Models using it Model versions linked in the lineage to the view's feature sets or to training sets "
            "that read it: model driver-eta version 1 model driver-eta version 2") in words
    assert "churn" not in words
    assert ["/lineage/driver-eta/1", "/lineage/driver-eta/2"] == [l for l in page.links if l.startswith("/lineage/")]
    assert "Models using it None linked (see featurekit lineage link )" in get(lab, "/features/driver_trips").words


def test_the_index_lists_the_models_and_links_each_version_to_its_lineage(lab: Lab) -> None:
    page = get(lab, "/")
    assert "Models (2) Registered model Versions: their lineage churn 1 driver-eta 1, 2" in page.words
    assert [l for l in page.links if l.startswith("/lineage/")] == [
        "/lineage/churn/1", "/lineage/driver-eta/1", "/lineage/driver-eta/2"]
    found = get(lab, "/?q=leaves")                                  # the model's description
    assert "Models (1)" in found.words and "/lineage/churn/1" in found.links
    lonely = get(lab, "/lineage/churn/1")
    assert "no dataset artifacts linked (featurekit lineage link)" in lonely.words


@pytest.mark.parametrize(("url", "detail", "closest"), [
    ("/lineage/drivr-eta/2", "unknown model 'drivr-eta' in the Model Registry at {url} — did you mean 'driver-eta'?",
     "/lineage/driver-eta/2"),
    ("/lineage/chrun/7", "unknown model 'chrun' in the Model Registry at {url} — did you mean 'churn'?",
     "/lineage/churn/1"),                                             # churn has no version 7: its newest
    ("/lineage/zzz/1", "unknown model 'zzz' in the Model Registry at {url} (models: churn, driver-eta)", None),
    ("/lineage/driver-eta/11", "model 'driver-eta' has no version '11' — did you mean '1'?", "/lineage/driver-eta/1"),
    ("/lineage/driver-eta/9", "model 'driver-eta' has no version '9' (versions: 1, 2)", None),
    ("/lineage/driver%2Feta/1", "unknown model 'driver/eta' in the Model Registry at {url} — did you mean "
     "'driver-eta'?", "/lineage/driver-eta/1"),
])
def test_an_unknown_model_or_version_is_a_404_with_a_close_match(lab: Lab, url: str, detail: str,
                                                                  closest: str | None) -> None:
    page = get(lab, url, 404)
    assert detail.format(url=lab.registry_url) in page.words
    assert [link for link in page.links if link not in ("#content", "/", "/static/ui.css")] == (
        [closest] if closest else [])


def test_pages_ask_the_registry_little_and_only_what_its_api_has(lab: Lab) -> None:
    def asked(url: str) -> list[str]:
        before = len(lab.recorder.exchanges)
        get(lab, url)
        return [f"{e.method} {e.path.rsplit('/v1', 1)[1]}" for e in lab.recorder.exchanges[before:]]

    get(lab, "/features/driver_stats")
    # the versions' artifacts are kept while the versions do not change: two lists per page
    assert asked("/features/driver_stats") == ["GET /registered_models", "GET /model_versions"]
    assert asked("/") == ["GET /registered_models", "GET /model_versions"]
    assert not lab.recorder.problems, "\n".join(lab.recorder.problems)


def test_every_link_of_every_page_resolves_the_lineage_pages_too(lab: Lab) -> None:
    seen = crawl(lab.client, "/")
    assert {"/lineage/driver-eta/1", "/lineage/driver-eta/2", "/lineage/churn/1", "/features/driver_stats",
            f"/runs/{RUN_IDS[1]}"} <= {urlsplit(u).path for u in seen}


def test_a_registry_that_does_not_answer_in_time_or_is_not_one_is_a_notice_not_a_wait(
        lab: Lab, tmp_path: Path) -> None:
    silent = socket.socket()                     # the kernel accepts connections; nobody ever answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    try:
        cases = {"ReadTimeout": f"http://127.0.0.1:{silent.getsockname()[1]}",
                 "no Model Registry API at": f"{lab.registry_url}/not-the-root"}
        for reason, url in cases.items():
            conf = lab.settings.registry.model_copy(update={"url": url, "timeout_s": 30.0, "retries": 3})
            settings = lab.settings.model_copy(update={"registry": conf})
            with TestClient(create_ui(lab.project, settings)) as client:
                started = time.monotonic()
                feature = get(lab, "/features/driver_stats", client=client)
                waited = time.monotonic() - started
                assert f"Models using it Model Registry unreachable at {url}:" in feature.words
                assert reason in feature.words and "conv_rate Float64" in feature.words
                assert waited < TIMEOUT_S + 1.5, waited               # the UI's timeout, no retries
                started = time.monotonic()
                page = get(lab, "/lineage/driver-eta/1", 503, client=client)
                assert f"Model Registry unreachable at {url}: " in page.words and reason in page.words
                if reason == "ReadTimeout":                            # known to be down: no second wait
                    assert time.monotonic() - started < 1.0
    finally:
        silent.close()


def test_kept_artifacts_are_read_again_after_a_while_a_few_versions_per_page(lab: Lab, contract: Contract,
                                                                            tmp_path: Path) -> None:
    """A link does not change its version: the catalog sees it once the version's kept artifacts
    expire, reading at most REFRESH_PER_PAGE expired versions per page."""
    recorder = Recorder(create_registry_app(tmp_path / "registry.db"), contract, check_requests=True)
    server, thread, port = serve(recorder)
    try:
        conf = lab.settings.registry.model_copy(update={"url": f"http://127.0.0.1:{port}"})
        settings = lab.settings.model_copy(update={"registry": conf})
        now = [1000.0]
        registry = ModelRegistry(settings, clock=lambda: now[0])
        with pytest.MonkeyPatch.context() as env:
            env.setenv(REGISTRY_TOKEN_ENV, TOKEN)
            env.setattr(ui_lineage, "REFRESH_PER_PAGE", 3)                  # a registry of few versions will do
            with registry_client(settings) as client:
                model = client.registered_model("trips-eta")
                versions = [client.model_version(model["id"], f"{n:02d}") for n in range(5)]
                assert registry.using("driver_trips") == []
                record = OfflineFeatureSetRecord(
                    feast_project=settings.feast.project, feature_view="driver_trips", job="driver_trips",
                    spec_fingerprint="f", delta_path="/lake/driver_trips", delta_version=0,
                    recorded_at="2026-03-02T08:00:05+00:00")
                artifact, _ = client.artifact(offline_feature_set_artifact(record, None))
                for version in versions:
                    client.link(version["id"], artifact["id"])

            assert registry.using("driver_trips") == []                     # kept: no version changed
            now[0] += VERSION_TTL_S
            before = len(recorder.exchanges)
            first = registry.using("driver_trips")
            assert len(recorder.exchanges) - before == 2 + 3                 # two lists, the 3 read longest ago
            assert [mv.version for mv in first] == [v["name"] for v in versions[:3]]
            assert [mv.href for mv in registry.using("driver_trips")] == [   # the other 2 on the next page
                f"/lineage/trips-eta/{v['name']}" for v in versions]
        registry.close()
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    assert not recorder.problems, "\n".join(recorder.problems)


def test_a_warm_start_reads_the_versions_before_the_first_page(lab: Lab) -> None:
    """``featurekit ui`` warms up: the first feature page of a new process asks only the two lists."""
    with TestClient(create_ui(lab.project, lab.settings, warm=True)) as fresh:
        warming = [t for t in threading.enumerate() if t.name == "featurekit-ui-warm"]
        for thread in warming:
            thread.join(timeout=30)
        assert warming and not any(t.is_alive() for t in warming)
        before = len(lab.recorder.exchanges)
        page = get(lab, "/features/driver_stats", client=fresh)
        asked = [f"{e.method} {e.path.rsplit('/v1', 1)[1]}" for e in lab.recorder.exchanges[before:]]
    assert asked == ["GET /registered_models", "GET /model_versions"]
    assert "driver-eta" in page.words
