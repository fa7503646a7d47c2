"""The one redaction facility (featurekit.redaction) and the boundaries that use it without a JVM:
conf flagging secret variables, conf refusing a password in the Feast registry's URL, manifests
refusing a secret value, the CLI's consoles and the log records of the process."""

from __future__ import annotations

import json
import logging
import textwrap
from pathlib import Path
from typing import Any

import pytest

from featurekit import redaction
from featurekit.cli import main
from featurekit.config import Project, load_settings
from featurekit.deploy.sparkapp import render
from featurekit.errors import ConfigError
from featurekit.redaction import MASK, leaks, redact, redact_text
from featurekit.spec.loader import load_job

JOB = """
name: trips
sources:
  raw: {format: parquet, path: "s3a://featurekit-raw/trips"}
output: {path: "s3a://featurekit-lake/trips"}
"""


@pytest.mark.parametrize(("text", "masked"), [
    ("http://featurekit:pw-1@127.0.0.1:8080/api", "http://featurekit:***@127.0.0.1:8080/api"),
    ("redis://:pw-2@redis:6379/0", "redis://:***@redis:6379/0"),
    ("postgresql://feast:pw-3@db/feast and s3a://AKIA:pw-4@bucket/x", "postgresql://feast:***@db/feast and s3a://AKIA:***@bucket/x"),
    ("localhost:6379,password=pw-5,ssl=true", "localhost:6379,password=***,ssl=true"),
    ("jdbc:postgresql://db/x?user=u&password=pw-6", "jdbc:postgresql://db/x?user=u&password=***"),
    # references are not secrets: conf and feature_store.yaml keep them readable
    ("127.0.0.1:6379,password=${REDIS_PASSWORD}", "127.0.0.1:6379,password=${REDIS_PASSWORD}"),
    ("e.g. password=$${REDIS_PASSWORD}", "e.g. password=$${REDIS_PASSWORD}"),
    ("redis://:${REDIS_PASSWORD}@redis:6379", "redis://:${REDIS_PASSWORD}@redis:6379"),
    ("http://127.0.0.1:8080/api/model_registry/v1/artifacts/7", "http://127.0.0.1:8080/api/model_registry/v1/artifacts/7"),
])
def test_passwords_in_urls_and_pairs_are_masked_and_references_kept(text: str, masked: str) -> None:
    assert redact_text(text) == masked


def test_values_of_secret_environment_variables_are_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FK_TEST_SECRET_ACCESS_KEY", "aws-secret-0b1c")
    monkeypatch.setenv("FK_TEST_API_TOKEN", "tok-77f1e")
    monkeypatch.setenv("FK_TEST_PLAIN", "plain-value-9")                       # no secret in its name
    monkeypatch.setenv("FK_TEST_TOKENIZERS_PARALLELISM", "false")             # a plain word: left alone
    monkeypatch.setenv("FK_TEST_CREDENTIALS_FILE", "/etc/credentials-path")   # names where a secret is
    monkeypatch.setenv("FK_TEST_DATABASE_URL", "postgresql://app:url-pw-31@db/app")   # a password in any URL
    text = ("key aws-secret-0b1c, bearer tok-77f1e, plain-value-9, parallel false, /etc/credentials-path, "
            "and url-pw-31 alone")
    assert redact_text(text) == (f"key {MASK}, bearer {MASK}, plain-value-9, parallel false, "
                                 f"/etc/credentials-path, and {MASK} alone")


def test_variables_flagged_by_conf_are_masked_whatever_their_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FK_TEST_MR_KEY_OF_THE_DAY", "day-3c9d")
    redaction.flag_env(["FK_TEST_MR_KEY_OF_ANOTHER_DAY"])
    assert redact_text("x day-3c9d y") == "x day-3c9d y"
    redaction.flag_env(["FK_TEST_MR_KEY_OF_THE_DAY"])
    assert redact_text("x day-3c9d y") == f"x {MASK} y"


def test_data_is_masked_by_key_and_by_value_and_the_rest_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FK_TEST_REDIS_PASSWORD", "redis-pw-41")
    report = {"options": {"password": "x", "user": "u"}, "token_env": "NAME", "keys": 3, "join_keys": ["driver_id"],
              "error": "WRONGPASS for redis-pw-41", "sources": [{"path": "s3a://k:p@b/x", "rows_read": 5}],
              "ok": True, "spark.hadoop.fs.s3a.secret.key": "k"}
    assert redact(report) == {
        "options": {"password": MASK, "user": "u"}, "token_env": MASK, "keys": 3, "join_keys": ["driver_id"],
        "error": f"WRONGPASS for {MASK}", "sources": [{"path": f"s3a://k:{MASK}@b/x", "rows_read": 5}],
        "ok": True, "spark.hadoop.fs.s3a.secret.key": MASK}


def test_mappings_whose_keys_are_data_are_masked_by_value_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FK_TEST_SCHEMA_TOKEN", "schema-tok-19")
    record = {"view_schema": {"features": {"token_count": "INT64", "password_resets": "INT64"}},
              "delta_path": "s3a://lake:p@bucket/x", "note": "schema-tok-19"}
    assert redact(record, by_key=False) == {"view_schema": {"features": {"token_count": "INT64", "password_resets": "INT64"}},
                                            "delta_path": f"s3a://lake:{MASK}@bucket/x", "note": MASK}


def test_leaks_name_the_paths_holding_a_secret_value_not_secret_looking_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FK_TEST_LEAK_TOKEN", "leak-tok-5e")
    manifest = {"spec": {"sparkConf": {"spark.hadoop.fs.s3a.aws.credentials.provider": "EnvironmentVariableCredentialsProvider",
                                       "spark.hadoop.fs.s3a.endpoint": "http://u:p4ss@minio:9000"},
                         "env": [{"name": "AWS_SECRET_ACCESS_KEY", "valueFrom": {"secretKeyRef": {"name": "s3", "key": "secret"}}},
                                 {"name": "MR", "value": "leak-tok-5e"}]}}
    assert leaks(manifest) == ["spec.sparkConf.spark.hadoop.fs.s3a.endpoint", "spec.env.1.value"]


def test_log_records_are_masked_with_their_arguments_and_tracebacks(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FK_TEST_LOG_TOKEN", "log-tok-8a1f")
    redaction.redact_logs()
    redaction.redact_logs()   # idempotent: one factory
    log_file = tmp_path / "featurekit.log"
    handler = logging.FileHandler(log_file)
    logger = logging.getLogger("featurekit.test_redaction")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        logger.info("HTTP Request: GET %s with %s", "http://fk:url-pw-9@127.0.0.1:1/x", "log-tok-8a1f")
        try:
            raise RuntimeError("refused with log-tok-8a1f")
        except RuntimeError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
        handler.close()
    text = log_file.read_text()
    assert "HTTP Request: GET http://fk:***@127.0.0.1:1/x with ***" in text
    assert "RuntimeError: refused with ***" in text and "Traceback" in text
    assert "log-tok-8a1f" not in text and "url-pw-9" not in text


def test_a_secret_set_or_removed_between_two_calls_is_seen_by_the_second(monkeypatch: pytest.MonkeyPatch) -> None:
    text = "connected with sess-8f2c-77"
    assert redaction.redact_text(text) == text
    monkeypatch.setenv("FK_TEST_SESSION_TOKEN", "sess-8f2c-77")
    assert redaction.redact_text(text) == "connected with ***"
    monkeypatch.delenv("FK_TEST_SESSION_TOKEN")
    assert redaction.redact_text(text) == text


def test_a_record_without_secrets_keeps_its_arguments_for_formatters_that_read_them() -> None:
    from uvicorn.logging import AccessFormatter

    redaction.redact_logs()
    args = ("127.0.0.1:5000", "POST", "/v1/models/eta:predict", "1.1", 200)
    record = logging.getLogger("uvicorn.access").makeRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d', args, None)
    assert record.args == args
    line = AccessFormatter("%(client_addr)s %(request_line)s %(status_code)s", use_colors=False).format(record)
    assert line == "127.0.0.1:5000 POST /v1/models/eta:predict HTTP/1.1 200 OK"


def _project(tmp_path: Path, conf: str, env: str = "secrets") -> Project:
    root = tmp_path / "project"
    (root / "jobs").mkdir(parents=True)
    (root / "conf" / "base").mkdir(parents=True)
    (root / "conf" / env).mkdir(parents=True)
    (root / "conf" / env / "featurekit.yaml").write_text(textwrap.dedent(conf).lstrip())
    (root / "jobs" / "trips.yaml").write_text(textwrap.dedent(JOB).lstrip())
    return Project(root)


def test_conf_flags_the_variables_it_names_as_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = _project(tmp_path, """
        registry: {url: "http://featurekit:conf-url-pw-2b@127.0.0.1:8080", token_env: FK_TEST_MR_BEARER}
        feast:
          online_store: {type: redis, connection_string: "127.0.0.1:6379,password=$${FK_TEST_REDIS_PW}"}
        secrets: {env: [FK_TEST_DB_PW]}
        """)
    settings = load_settings(project, "secrets")
    assert settings.secret_env() == ["FK_TEST_DB_PW", "FK_TEST_MR_BEARER", "FK_TEST_REDIS_PW"]
    for name, value in (("FK_TEST_MR_BEARER", "bearer-6d0a"), ("FK_TEST_REDIS_PW", "rpw-6d0a"), ("FK_TEST_DB_PW", "db-6d0a")):
        monkeypatch.setenv(name, value)
    assert redact_text("bearer-6d0a rpw-6d0a db-6d0a conf-url-pw-2b") == " ".join([MASK] * 4)


def test_a_password_in_the_feast_registry_url_is_refused_at_its_line(tmp_path: Path) -> None:
    project = _project(tmp_path, """
        feast:
          registry: {registry_type: sql, path: "postgresql://feast:inline-pw@db:5432/feast"}
        """)
    with pytest.raises(ConfigError) as info:
        load_settings(project, "secrets")
    (problem,) = info.value.problems
    assert (problem.file, problem.line, problem.field) == ("conf/secrets/featurekit.yaml", 2, "feast.registry")
    assert "holds a password in its URL" in problem.message and "inline-pw" not in str(info.value)


K8S = """
kubernetes:
  image: registry.example.com/featurekit-jobs:0.1.0
  namespace: featurekit
  service_account: featurekit-spark
  env: {MINIO_URL: "http://minio:minio-pw-7c@minio:9000"}
  secret_env:
    AWS_SECRET_ACCESS_KEY: {secret: featurekit-s3, key: secret-access-key}
"""


def test_a_manifest_refuses_a_secret_value_and_keeps_references(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-sk-manifest-1f")
    project = _project(tmp_path, K8S)
    settings = load_settings(project, "secrets")
    job = load_job(project.job_path("trips"), settings.vars)
    with pytest.raises(ConfigError) as info:
        render(project, settings, job)
    (problem,) = info.value.problems
    assert (problem.file, problem.field) == ("conf/secrets", "kubernetes.env.MINIO_URL")
    assert "kubernetes.secret_env" in problem.message and "minio-pw-7c" not in str(info.value)

    project = _project(tmp_path / "clean", K8S.replace('env: {MINIO_URL: "http://minio:minio-pw-7c@minio:9000"}',
                                                       'env: {MINIO_URL: "http://minio:9000"}'))
    settings = load_settings(project, "secrets")
    manifest = render(project, settings, load_job(project.job_path("trips"), settings.vars)).manifest
    assert {"name": "AWS_SECRET_ACCESS_KEY", "valueFrom": {"secretKeyRef": {"name": "featurekit-s3", "key": "secret-access-key"}}} \
        in manifest["spec"]["driver"]["env"]
    assert "aws-sk-manifest-1f" not in json.dumps(manifest)


def test_the_cli_prints_no_secret_even_from_an_old_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("FK_TEST_OLD_TOKEN", "old-report-tok-4e")
    project = _project(tmp_path, "paths: {runs: \"${project_root}/runs\"}\n")
    folder = project.root / "runs" / "trips"
    folder.mkdir(parents=True)
    old: dict[str, Any] = {"run_id": "20260101T000000Z-0000aaaa", "job": "trips", "status": "failed", "exit_code": 1,
                           "error": "refused: old-report-tok-4e at redis://:old-pw-4e@h:6379", "sources": []}
    (folder / "20260101T000000Z-0000aaaa.json").write_text(json.dumps(old))
    monkeypatch.chdir(project.root)
    assert main(["runs", "show", "20260101", "--env", "secrets"]) == 0
    shown = capsys.readouterr().out
    assert "refused: *** at redis://:***@h:6379" in shown
    assert "old-report-tok-4e" not in shown and "old-pw-4e" not in shown
    # an error line goes through the same console
    assert main(["plan", "redis://:old-pw-4e@h/trips.yaml", "--env", "secrets"]) == 2
    assert "job file not found: redis://:***@h/trips.yaml" in capsys.readouterr().err
