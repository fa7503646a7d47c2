"""`featurekit api` over real HTTP: uvicorn in a thread, httpx as the client.

One project for the module: the driver_stats job run twice (Delta versions 0 and 1), its
feature repository applied, a materialization into SQLite recorded in the run log, and the
feature service linked to a model version in an embedded Model Registry. A second app points
at a registry URL nobody listens on (with a password in it). A registry token is set in the
environment; no answer may hold it, the URL's password, or a password written in a job spec.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from featurekit.api import create_api
from featurekit.config import Project, Settings
from featurekit.config.settings import REGISTRY_URL_ENV
from featurekit.pipeline import lineage
from featurekit.pipeline.materialize import MaterializeResult, materialize
from featurekit.registry import create_registry_app
from featurekit.spec.loader import load_job
from tests.conftest import _free_port
from tests.integration.helpers import Lab, online_newest
from tests.integration.registry_helpers import serve
from tests.integration.test_feast import STATS_JOB, T0, feature_lab

pytestmark = [pytest.mark.feast, pytest.mark.registry]

TOKEN_ENV, TOKEN = "FK_API_TEST_REGISTRY_TOKEN", "tok-3b7f0c9e-never-in-a-body"
SPEC_PASSWORD = "pw-5d1e-never-in-a-body"
URL_PASSWORD = "url-pw-8a2c-never-in-a-body"
SECRETS = (TOKEN, SPEC_PASSWORD, URL_PASSWORD)

VAULT_JOB = f"""
name: vault_export
description: Not run; its source has a password option.
owner: security
sources:
  accounts:
    format: parquet
    path: "${{raw_root}}/accounts"
    options: {{password: "{SPEC_PASSWORD}", mergeSchema: "true"}}
output:
  path: ${{lake_root}}/vault_export
"""


@dataclass
class World:
    lab: Lab
    project: Project
    settings: Settings
    reports: list[dict[str, Any]]       # driver_stats runs, oldest first
    materialized: MaterializeResult
    api: httpx.Client                   # the app over the embedded registry
    down: httpx.Client                  # the app over a closed port
    down_port: int
    bodies: list[str] = field(default_factory=list)


def with_registry(settings: Settings, url: str) -> Settings:
    conf = {"url": url, "enabled": True, "token_env": TOKEN_ENV, "retries": 0, "backoff_s": 0.0, "timeout_s": 5.0}
    return settings.model_copy(update={"registry": settings.registry.model_copy(update=conf)})


@pytest.fixture(scope="module")
def world(spark: object, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("api") / "project"
    with pytest.MonkeyPatch.context() as env:
        env.setenv(TOKEN_ENV, TOKEN)
        env.delenv(REGISTRY_URL_ENV, raising=False)
        lab, project, plain = feature_lab(root, spark)
        lab.run("driver_stats", STATS_JOB)                                    # a second run: Delta version 1
        lab.write_job("vault_export", VAULT_JOB)
        done = materialize(project, plain, start=T0, end=T0 + timedelta(hours=12, minutes=30), spark=spark)

        registry, registry_thread, registry_port = serve(create_registry_app(root / "registry.db"))
        settings = with_registry(plain, f"http://127.0.0.1:{registry_port}")
        lineage.link(project, settings, "driver-eta", "1", service="driver_rates")
        server, thread, port = serve(create_api(project, settings))
        down_port = _free_port()                                              # nobody listens there
        down_settings = with_registry(plain, f"http://featurekit:{URL_PASSWORD}@127.0.0.1:{down_port}")
        down_server, down_thread, api_down_port = serve(create_api(project, down_settings))
        bodies: list[str] = []

        def keep(response: httpx.Response) -> None:
            response.read()
            bodies.append(response.text)

        hooks = {"response": [keep]}
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30, event_hooks=hooks) as api, \
                    httpx.Client(base_url=f"http://127.0.0.1:{api_down_port}", timeout=30, event_hooks=hooks) as down:
                yield World(lab, project, settings, lab.reports("driver_stats"), done, api, down, down_port, bodies)
        finally:
            for each, its_thread in ((server, thread), (down_server, down_thread), (registry, registry_thread)):
                each.should_exit = True
                its_thread.join(timeout=10)


def test_health_and_the_openapi_document_name_every_route(world: World) -> None:
    health = world.api.get("/health")
    assert health.status_code == 200
    assert health.json() == {"status": "ok", "env": "local", "feast_project": "featurekit",
                             "registry_url": world.settings.registry.url, "registry_enabled": True,
                             "featurekit_version": "0.1.0"}
    document = world.api.get("/openapi.json").json()
    assert set(document["paths"]) == {
        "/health", "/api/v1/jobs", "/api/v1/jobs/{name}", "/api/v1/runs", "/api/v1/runs/{run_id}",
        "/api/v1/feature-sets", "/api/v1/feature-sets/{view}", "/api/v1/lineage/models/{model}/versions/{version}"}
    assert all(set(item) == {"get"} for item in document["paths"].values())   # read-only
    job = document["paths"]["/api/v1/jobs/{name}"]["get"]["responses"]
    assert job["200"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/JobDetail"}
    assert job["404"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorBody"}
    docs = world.api.get("/docs")
    assert docs.status_code == 200 and "swagger-ui" in docs.text and "/openapi.json" in docs.text


def test_jobs_list_and_detail_carry_the_loaded_fingerprint_and_recent_runs(world: World) -> None:
    lab = world.lab
    loaded = load_job(lab.root / "jobs" / "driver_stats.yaml", world.settings.vars)
    listed = world.api.get("/api/v1/jobs").json()
    assert listed["problems"] == []
    by_name = {job["name"]: job for job in listed["jobs"]}
    assert sorted(by_name) == ["driver_stats", "vault_export"]
    stats = by_name["driver_stats"]
    assert stats["fingerprint"] == loaded.fingerprint and stats["owner"] == "mobility-data"
    assert stats["file"] == "jobs/driver_stats.yaml"
    assert stats["output"] == {"path": str(lab.lake / "driver_stats"), "mode": "overwrite", "keys": [],
                               "partition_by": []}
    assert stats["features"] == {"entity": "driver", "join_keys": ["driver_id"], "timestamp": "event_ts",
                                 "ttl": "1d", "online": True, "services": ["driver_stats", "driver_rates"]}
    assert by_name["vault_export"]["features"] is None

    detail = world.api.get("/api/v1/jobs/driver_stats").json()
    assert detail["fingerprint"] == loaded.fingerprint
    assert detail["spec"]["sources"]["stats"] == {"format": "parquet", "path": str(lab.raw / "stats"), "options": {}}
    assert detail["spec"]["output"]["path"] == str(lab.lake / "driver_stats")          # ${lake_root} filled
    assert detail["spec"]["steps"] == [{"with_columns": {"event_date": "to_date(event_ts)"}}]
    assert detail["spec"]["features"]["services"] == {"driver_rates": ["driver_stats:conv_rate", "driver_stats:active"]}
    newest, older = world.reports[1], world.reports[0]
    assert [r["run_id"] for r in detail["recent_runs"]] == [newest["run_id"], older["run_id"]]
    assert detail["recent_runs"][0] == {
        "run_id": newest["run_id"], "job": "driver_stats", "status": "succeeded", "env": "local",
        "started_at": newest["started_at"], "fingerprint": loaded.fingerprint, "rows_read": 6, "rows_written": 6,
        "rows_quarantined": newest["rows_quarantined"], "table_version": 1, "exit_code": 0, "error": ""}
    vault = world.api.get("/api/v1/jobs/vault_export").json()
    assert vault["spec"]["sources"]["accounts"]["options"] == {"password": "***", "mergeSchema": "true"}
    assert vault["recent_runs"] == []


def test_unknown_names_are_404_with_a_close_match(world: World) -> None:
    cases = {
        "/api/v1/jobs/driver_stat": "unknown job 'driver_stat' — did you mean 'driver_stats'?",
        "/api/v1/jobs/zzz": "unknown job 'zzz' (jobs: driver_stats, vault_export)",
        "/api/v1/runs?job=driver_stat": "unknown job 'driver_stat' — did you mean 'driver_stats'?",
        "/api/v1/runs/19990101T000000Z": "unknown run '19990101T000000Z': no run id starts with it",
        "/api/v1/feature-sets/driver_stat": "unknown feature view 'driver_stat' — did you mean 'driver_stats'?",
        "/api/v1/feature-sets/vault_export": "unknown feature view 'vault_export' (feature views: driver_stats)",
    }
    for url, detail in cases.items():
        answer = world.api.get(url)
        assert (answer.status_code, answer.json()) == (404, {"detail": detail}), url
    assert world.api.get("/api/v1/runs?limit=0").status_code == 422


def test_runs_list_and_reports_equal_the_files_on_disk(world: World) -> None:
    lab = world.lab
    ids = [r["run_id"] for r in reversed(world.reports)]                       # newest first
    listed = world.api.get("/api/v1/runs").json()["runs"]
    assert [r["run_id"] for r in listed] == ids                                # lineage records are not runs
    latest = world.api.get("/api/v1/runs", params={"job": "driver_stats", "limit": 1}).json()["runs"]
    assert [r["run_id"] for r in latest] == ids[:1]
    assert world.api.get("/api/v1/runs", params={"job": "vault_export"}).json() == {"runs": []}
    for run_id in ids:
        on_disk = json.loads((lab.runs / "driver_stats" / f"{run_id}.json").read_text())
        assert world.api.get(f"/api/v1/runs/{run_id}").json() == on_disk
        assert world.api.get(f"/api/v1/runs/{run_id[:-2]}").json() == on_disk   # a unique prefix will do
    common = ids[0][:next(i for i, (a, b) in enumerate(zip(*ids)) if a != b)]
    ambiguous = world.api.get(f"/api/v1/runs/{common}")
    assert ambiguous.status_code == 409
    assert ambiguous.json()["detail"].startswith(f"run id {common!r} is ambiguous: 2 runs start with it (")
    assert world.api.get("/api/v1/runs/feature_set").status_code == 404       # not the run log's lineage records


def test_feature_sets_name_the_materialized_delta_version_and_run_ids(world: World) -> None:
    (view,) = world.materialized.views
    version = world.lab.table("driver_stats").version()
    assert version == view.delta_version == 1
    listed = world.api.get("/api/v1/feature-sets").json()
    (summary,) = listed["feature_sets"]
    assert (summary["view"], summary["job"], summary["declared"], summary["delta_versions"],
            summary["materialization_count"]) == ("driver_stats", "driver_stats", True, [1], 1)
    assert summary["latest"]["run_id"] == world.materialized.run_id

    detail = world.api.get("/api/v1/feature-sets/driver_stats").json()
    (one,) = detail["materializations"]
    assert one == {
        "run_id": world.materialized.run_id, "feast_project": "featurekit", "job": "driver_stats",
        "spec_fingerprint": world.reports[1]["fingerprint"], "delta_path": str(world.lab.lake / "driver_stats"),
        "delta_version": version, "window_start": "2026-03-01T00:00:00+00:00",
        "window_end": "2026-03-01T12:30:00+00:00", "rows": 4, "keys": 3, "online_store": "sqlite",
        "features": ["conv_rate", "trips", "city", "active"], "recorded_at": one["recorded_at"],
        "newest_event": online_newest(world.settings, "driver_stats"),      # driver 1's 12:00 value
        "job_run_id": world.reports[1]["run_id"]}                              # the run whose commit is v1
    assert one["newest_event"] == "2026-03-01T12:00:00+00:00"
    assert detail["table_version"] == version and detail["training_sets"] == []
    assert (detail["entity"], detail["join_keys"], detail["online"], detail["ttl"]) == ("driver", ["driver_id"], True, "1d")


def test_lineage_of_a_model_version_is_the_tree_of_lineage_show(world: World) -> None:
    answer = world.api.get("/api/v1/lineage/models/driver-eta/versions/1")
    assert answer.status_code == 200
    tree = answer.json()
    with pytest.MonkeyPatch.context() as env:
        env.setenv(TOKEN_ENV, TOKEN)
        assert tree == asdict(lineage.show(world.project, world.settings, model="driver-eta", version="1"))
    assert (tree["kind"], tree["label"]) == ("model_version", "model driver-eta version 1")
    (feature_set,) = tree["children"]
    assert feature_set["kind"] == "feature_set" and feature_set["label"] == "feature set featurekit.driver_stats"
    assert "newest online value 2026-03-01T12:00:00+00:00" in feature_set["details"]
    (delta,) = feature_set["children"]
    assert delta["label"] == f"Delta {world.lab.lake / 'driver_stats'} @ v1"
    (run,) = delta["children"]
    assert run["label"] == f"job run driver_stats {world.reports[1]['run_id']}" and "status succeeded" in run["details"]
    (source,) = run["children"]
    assert source["label"] == f"source stats: parquet {world.lab.raw / 'stats'}"

    unknown_version = world.api.get("/api/v1/lineage/models/driver-eta/versions/9")
    assert unknown_version.status_code == 404
    assert unknown_version.json()["detail"].startswith("registered model 'driver-eta' has no version '9'")
    unknown_model = world.api.get("/api/v1/lineage/models/driver-etb/versions/1")
    assert unknown_model.status_code == 404
    assert unknown_model.json()["detail"].startswith("no registered model 'driver-etb' in the Model Registry at")


def test_an_unreachable_registry_is_a_503_with_the_reason(world: World) -> None:
    answer = world.down.get("/api/v1/lineage/models/driver-eta/versions/1")
    assert answer.status_code == 503
    detail = answer.json()["detail"]
    assert detail.startswith(f"the Model Registry at http://featurekit:***@127.0.0.1:{world.down_port} is unavailable")
    assert "ConnectError" in detail
    # the rest of that app does not need the registry
    assert world.down.get("/api/v1/feature-sets/driver_stats").json()["table_version"] == 1
    assert world.down.get("/health").json()["registry_url"] == f"http://featurekit:***@127.0.0.1:{world.down_port}"


def test_no_answer_holds_a_secret(world: World) -> None:
    urls = ["/health", "/openapi.json", "/docs", "/api/v1/jobs", "/api/v1/jobs/vault_export",
            "/api/v1/jobs/driver_stats", "/api/v1/runs", f"/api/v1/runs/{world.reports[0]['run_id']}",
            "/api/v1/feature-sets", "/api/v1/feature-sets/driver_stats", "/api/v1/lineage/models/driver-eta/versions/1",
            "/api/v1/lineage/models/x/versions/1", "/api/v1/jobs/nope", "/api/v1/runs/nope"]
    for client in (world.api, world.down):
        for url in urls:
            client.get(url)
    assert len(world.bodies) >= 2 * len(urls)
    assert SPEC_PASSWORD in (world.lab.root / "jobs" / "vault_export.yaml").read_text()   # it was there to leak
    leaks = [(secret, body[:200]) for body in world.bodies for secret in SECRETS if secret in body]
    assert leaks == []
    assert not any(TOKEN_ENV in body for body in world.bodies)                 # not even the variable's name


def test_the_job_list_reports_a_broken_job_and_still_lists_the_others(world: World) -> None:
    broken = world.lab.write_job("broken", "name: broken\nsources: {}\noutput: {path: /x, mode: upsert}\n")
    try:
        listed = world.api.get("/api/v1/jobs").json()
        assert sorted(j["name"] for j in listed["jobs"]) == ["driver_stats", "vault_export"]
        assert any(p.startswith("jobs/broken.yaml:") and "did you mean 'merge'" in p for p in listed["problems"])
        answer = world.api.get("/api/v1/jobs/broken")
        assert answer.status_code == 422
        assert answer.json()["detail"].startswith("job 'broken' does not load: jobs/broken.yaml:")
    finally:
        Path(broken).unlink()


@pytest.mark.parametrize(("value", "masked"), [
    ({"options": {"password": "x", "user": "u"}}, {"options": {"password": "***", "user": "u"}}),
    ({"spark.hadoop.fs.s3a.secret.key": "k", "fs.azure.account.key.acct": "k2", "token_env": "NAME"},
     {"spark.hadoop.fs.s3a.secret.key": "***", "fs.azure.account.key.acct": "***", "token_env": "***"}),
    ("jdbc:postgresql://db/x?user=u&password=p1", "jdbc:postgresql://db/x?user=u&password=***"),
    ("s3a://AKIA:p2@bucket/lake and redis://:p3@host:6379", "s3a://AKIA:***@bucket/lake and redis://:***@host:6379"),
    ("localhost:6379,password=p4,ssl=true", "localhost:6379,password=***,ssl=true"),
    ({"keys": 3, "join_keys": ["driver_id"], "rows": 4}, {"keys": 3, "join_keys": ["driver_id"], "rows": 4}),
])
def test_secret_looking_values_are_masked_and_the_rest_kept(value: Any, masked: Any) -> None:
    from featurekit.api.reads import redact

    assert redact(value) == masked
