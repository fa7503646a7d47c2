"""No output of featurekit holds a secret: the demo's flow with secrets in the environment and conf.

Secrets set for the module: S3 keys (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``), the Redis
password of a real ``redis-server --requirepass`` (in a variable whose name says nothing: conf
refers to it as ``password=$${...}``), the Model Registry's bearer token (``registry.token_env``),
a password in the registry's URL written in conf, and a database URL with a password in the
environment. The flow: a job run (and a failing one whose error names a URL with a password), the
feature repository applied, a materialization into that Redis with lineage to an embedded
Model Registry over HTTP, a model version linked, the metadata API over HTTP, the CLI's run
listing, report and plan, manifests rendered for the cluster environment, and the process's log
records in a log file. Every file the flow wrote, every answer and every printed line is searched
for each secret value; the test also checks that the search covered real, non-empty outputs.
"""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from featurekit import redaction
from featurekit.api import create_api
from featurekit.cli import main
from featurekit.config import Project, Settings
from featurekit.pipeline import features, lineage
from featurekit.pipeline.materialize import materialize
from featurekit.registry import create_registry_app
from tests.conftest import REPO, _free_port, _missing, _wait_until_ready
from tests.integration.conftest import with_test_conf
from tests.integration.helpers import Lab
from tests.integration.registry_helpers import serve
from tests.integration.test_feast import STATS_JOB, T0, stats_table

pytestmark = [pytest.mark.feast, pytest.mark.registry, pytest.mark.redis]

ENV = {
    "AWS_ACCESS_KEY_ID": "AKIAFKSECRETS7Q2W3E4",
    "AWS_SECRET_ACCESS_KEY": "fk-aws-secret-9c1d4b7e2a",
    "FK_SECRETS_REDIS_AUTH": "redis-auth-5f3e8d21",             # flagged by conf's ${...}, not by its name
    "FK_SECRETS_REGISTRY_TOKEN": "mr-token-0a6b2c9d4e",
    "FK_SECRETS_DATABASE_URL": "postgresql://app:db-url-pw-71c3@db.internal/app",
}
URL_PASSWORD = "conf-url-pw-3d9a"                               # in conf: registry.url
SPEC_URL_PASSWORD = "spec-url-pw-8e2f"                          # in a job's source path
SPEC_OPTION_PASSWORD = "spec-option-pw-2c71"                    # in a job's source options
SECRETS = [*(v for k, v in ENV.items() if k != "FK_SECRETS_DATABASE_URL"), "db-url-pw-71c3", URL_PASSWORD,
           SPEC_URL_PASSWORD, SPEC_OPTION_PASSWORD]
FEATUREKIT = str(Path(sys.executable).parent / "featurekit")
DOWN_URL = f"http://featurekit:{URL_PASSWORD}@127.0.0.1:{_free_port()}"   # nobody listens there

FAILING_JOB = f"""
name: vault_import
sources:
  vault:
    format: parquet
    path: "s3a://vault:{SPEC_URL_PASSWORD}@featurekit-vault/raw"
    options: {{password: "{SPEC_OPTION_PASSWORD}"}}
output: {{path: "${{lake_root}}/vault_import"}}
"""


@dataclass
class Flow:
    lab: Lab
    project: Project
    settings: Settings
    log_file: Path
    registry_db: Path
    answers: list[str] = field(default_factory=list)     # API bodies
    printed: list[str] = field(default_factory=list)     # the CLI's stdout and stderr, the JVM's log


@pytest.fixture(scope="module")
def redis_with_password(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A ``redis-server`` that refuses every command without ``FK_SECRETS_REDIS_AUTH``'s password."""
    binary = shutil.which("redis-server")
    if binary is None:
        _missing("redis-server is not installed (apt-get install redis-server)")
    port = _free_port()
    process = subprocess.Popen(
        [str(binary), "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
         "--dir", str(tmp_path_factory.mktemp("redis-auth")), "--requirepass", ENV["FK_SECRETS_REDIS_AUTH"]],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    import redis

    client = redis.Redis(host="127.0.0.1", port=port, password=ENV["FK_SECRETS_REDIS_AUTH"])
    _wait_until_ready(process, client.ping, redis.ConnectionError, f"redis-server did not start on 127.0.0.1:{port}")
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(host="127.0.0.1", port=port).ping()             # the password is needed
    yield f"127.0.0.1:{port}"
    process.terminate()
    process.wait(timeout=20)


@pytest.fixture(scope="module")
def flow(spark: object, redis_with_password: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flow]:
    root = tmp_path_factory.mktemp("secrets") / "project"
    registry_db = root.parent / "registry.db"
    log_file = root.parent / "featurekit.log"
    registry, registry_thread, registry_port = serve(create_registry_app(registry_db))
    handler = logging.FileHandler(log_file, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    root_logger, httpx_logger = logging.getLogger(), logging.getLogger("httpx")
    levels = root_logger.level, httpx_logger.level
    with pytest.MonkeyPatch.context() as env:
        for name, value in ENV.items():
            env.setenv(name, value)
        env.delenv("FEATUREKIT_REGISTRY_URL", raising=False)
        redaction.redact_logs()      # as the CLI does at its start (`featurekit api`, `registry serve` too)
        root_logger.addHandler(handler)
        root_logger.setLevel(logging.INFO)
        httpx_logger.setLevel(logging.INFO)   # its request lines name the URL, user info included
        try:
            yield _run_flow(spark, root, redis_with_password, registry_port, registry_db, log_file)
        finally:
            root_logger.removeHandler(handler)
            handler.close()
            root_logger.setLevel(levels[0])
            httpx_logger.setLevel(levels[1])
            registry.should_exit = True
            registry_thread.join(timeout=10)


def _run_flow(spark: object, root: Path, redis_at: str, registry_port: int, registry_db: Path, log_file: Path) -> Flow:
    lab = Lab(root, spark)
    (root / "feature_repo").mkdir()
    shutil.copy(REPO / "feature_repo" / "features.py", root / "feature_repo" / "features.py")
    (root / "conf" / "local" / "secrets.yaml").write_text(
        "registry:\n"
        f"  url: http://featurekit:{URL_PASSWORD}@127.0.0.1:{registry_port}\n"
        "  token_env: FK_SECRETS_REGISTRY_TOKEN\n"
        "  retries: 0\n"
        "feast:\n"
        "  materialize_engine: arrow\n"
        f"  online_store: {{type: redis, connection_string: \"{redis_at},password=$${{FK_SECRETS_REDIS_AUTH}}\"}}\n")
    lab.parquet("stats", stats_table())
    lab.run("driver_stats", STATS_JOB)
    project = Project(root)
    from featurekit import pipeline

    _, settings = pipeline.load(project, "driver_stats", "local")
    registry = settings.registry.model_copy(update={"enabled": True})   # with_test_conf turns it off
    settings = with_test_conf(settings).model_copy(update={"registry": registry})
    features.apply(project, settings)
    done = materialize(project, settings, start=T0, end=T0 + timedelta(hours=12, minutes=30), engine="arrow")
    assert [v.keys for v in done.views] == [3]                          # written into the Redis that needs the password
    # Feast's own Redis store, on the settings featurekit hands it, fills the reference too
    read = features.open_store(project, settings).get_online_features(
        features=["driver_stats:conv_rate"], entity_rows=[{"driver_id": 1}]).to_dict()
    assert read["conv_rate"] == [0.2]
    linked = lineage.link(project, settings, "driver-eta", "1", service="driver_rates")
    assert linked.urls and all(f"featurekit:***@127.0.0.1:{registry_port}" in url for url in linked.urls)
    # the registry down: the record waits in the outbox, with the reason (which names the URL)
    down = settings.model_copy(update={"registry": registry.model_copy(update={"url": DOWN_URL})})
    queued = materialize(project, down, start=T0, end=T0 + timedelta(hours=12, minutes=30), engine="arrow")
    assert any("lineage-outbox" in warning for warning in queued.warnings), queued.warnings
    result = Flow(lab, project, settings, log_file, registry_db)

    server, thread, port = serve(create_api(project, settings))
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as api:
            runs = api.get("/api/v1/runs").json()["runs"]
            paths = ["/health", "/api/v1/jobs", "/api/v1/jobs/vault_import", "/api/v1/runs",
                     *(f"/api/v1/runs/{run['run_id']}" for run in runs), "/api/v1/feature-sets",
                     "/api/v1/feature-sets/driver_stats", "/api/v1/lineage/models/driver-eta/versions/1",
                     "/api/v1/lineage/models/driver-eta/versions/9"]
            for path in paths:
                answer = api.get(path)
                assert answer.status_code in (200, 404), (path, answer.text)
                result.answers.append(answer.text)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    return result


def _cli(flow: Flow, capfd: pytest.CaptureFixture[str], *args: str) -> int:
    code = main(list(args))
    captured = capfd.readouterr()
    flow.printed += [captured.out, captured.err]
    return code


def test_no_output_of_the_flow_holds_a_secret(flow: Flow, capfd: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    lab = flow.lab
    monkeypatch.chdir(flow.project.root)
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    # The one CLI process with a JVM: a run that fails reading a path with a password in it, where
    # Spark's own log names that path (shown with --debug) and the run report keeps the error.
    lab.write_job("vault_import", FAILING_JOB)
    process = subprocess.run([FEATUREKIT, "--debug", "run", "vault_import"],
                             cwd=lab.root, capture_output=True, text=True, timeout=600,
                             env={**os.environ, **ENV, "FEATUREKIT_REGISTRY_URL": ""})
    assert process.returncode == 1, process.stderr[-2000:]
    jvm_log = process.stderr
    flow.printed += [process.stdout, process.stderr]
    (failed,) = lab.reports("vault_import")
    capfd.readouterr()
    assert _cli(flow, capfd, "runs") == 0
    assert _cli(flow, capfd, "runs", "show", failed["run_id"]) == 0
    assert _cli(flow, capfd, "plan", "vault_import") == 0
    assert _cli(flow, capfd, "lineage", "show", "--model", "driver-eta", "--version", "1") == 0
    monkeypatch.setenv("FEATUREKIT_REGISTRY_URL", DOWN_URL)
    assert _cli(flow, capfd, "lineage", "show", "--model", "driver-eta", "--version", "1") == 1
    monkeypatch.delenv("FEATUREKIT_REGISTRY_URL")
    assert _cli(flow, capfd, "render", "sparkapp", "--all", "--env", "k8s", "--output", str(lab.root / "manifests")) == 0

    # every file the flow wrote but the conf and the job that hold the inline passwords on purpose
    written = [p for p in lab.root.rglob("*") if p.is_file() and p.parent.name not in ("conf", "local", "jobs")
               and "data" not in p.relative_to(lab.root).parts[:1]]
    files = {p: p.read_bytes() for p in [*written, flow.log_file, flow.registry_db]}
    texts = [*flow.answers, *flow.printed]
    leaks = [(str(path), secret) for path, data in files.items() for secret in SECRETS if secret.encode() in data]
    leaks += [(text[:120], secret) for text in texts for secret in SECRETS if secret in text]
    assert leaks == []

    # ... and the search covered what each boundary wrote, each holding what it should
    runs = lab.runs
    reports = list((runs / "driver_stats").glob("*.json")) + list((runs / "vault_import").glob("*.json"))
    records = list((runs / "lineage").glob("feature_set-*.json"))
    manifests = sorted((lab.root / "manifests").glob("*.yaml"))
    store_file = lab.root / "feature_repo" / "feature_store.yaml"
    assert len(reports) == 2 and len(records) == 2 and [m.name for m in manifests] == ["driver-stats.yaml", "vault-import.yaml"]
    assert all(p in files and files[p] for p in [*reports, *records, *manifests, store_file])
    assert failed["status"] == "failed" and failed["error"]
    assert "s3a://vault:***@featurekit-vault/raw" in jvm_log                        # Spark's log4j layout masks it
    assert "error: Spark failed" in jvm_log                                          # featurekit's own line
    outbox = list((lab.root / ".featurekit" / "lineage-outbox").glob("*.json"))
    assert len(outbox) == 1 and b"is unavailable" in files[outbox[0]]
    assert "password=${FK_SECRETS_REDIS_AUTH}" in store_file.read_text()                 # a reference, kept
    manifest = manifests[0].read_text()
    assert "secretKeyRef" in manifest and "AWS_SECRET_ACCESS_KEY" in manifest          # referenced, not valued
    log = flow.log_file.read_text()
    assert f"HTTP Request: POST http://featurekit:***@127.0.0.1:" in log              # the registry's requests
    with sqlite3.connect(flow.registry_db) as db:
        tables = [row[0] for row in db.execute("select name from sqlite_master where type = 'table'")]
        assert sum(db.execute(f"select count(*) from {t}").fetchone()[0] for t in tables) > 0   # lineage landed
    api = "\n".join(flow.answers)
    assert "driver_stats" in api and "model driver-eta version 1" in api
    printed = "\n".join(flow.printed)
    assert failed["run_id"] in printed and "spark-submit" in printed and "model driver-eta version 1" in printed
    assert "password=***" in printed                                                 # the plan's source options
    assert "the Model Registry at http://featurekit:***@127.0.0.1:" in printed      # the error line of the CLI
