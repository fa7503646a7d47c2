"""Spark operator manifests: every job in every cluster env validates against the operator's CRDs.

The CRDs (tests/contracts/spark-operator/, copied from the operator) are Kubernetes structural
schemas: the v1beta2 ``openAPIV3Schema`` is JSON Schema once the ``x-kubernetes-*`` keys are
read (``int-or-string`` = integer or string). The API server silently prunes keys a structural
schema does not know; here unknown keys are errors, so a misspelt field cannot vanish.
"""

from __future__ import annotations

import copy
import re
import subprocess
import sys
import textwrap
import tomllib
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from ruamel.yaml import YAML

from featurekit.config import Project, load_settings
from featurekit.config.versions import DELTA_VERSION, SPARK_VERSION
from featurekit.errors import ConfigError
from featurekit.deploy.cron import schedule_problem
from featurekit.deploy.sparkapp import Backfill, backfill_name, render, render_jobs, to_yaml
from featurekit.spec.loader import load_jobs
from tests.conftest import REPO

CRDS = REPO / "tests" / "contracts" / "spark-operator"
REFERENCE = REPO.parent / "shared" / "reference" / "spark-operator"
FEATUREKIT = [str(Path(sys.executable).parent / "featurekit")]
KINDS = {
    "SparkApplication": "sparkoperator.k8s.io_sparkapplications.yaml",
    "ScheduledSparkApplication": "sparkoperator.k8s.io_scheduledsparkapplications.yaml",
}
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def _structural(node: Any) -> Any:
    """A Kubernetes structural schema as plain JSON Schema, closed where Kubernetes would prune."""
    if isinstance(node, list):
        return [_structural(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {k: _structural(v) for k, v in node.items() if not k.startswith("x-kubernetes-") and k != "description"}
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if "properties" in out and "additionalProperties" not in out and not node.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    return out


@cache
def _validator(kind: str) -> jsonschema.Draft7Validator:
    crd = YAML(typ="safe", pure=True).load((CRDS / KINDS[kind]).read_text())
    assert crd["spec"]["names"]["kind"] == kind
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1beta2"]
    schema = _structural(version["schema"]["openAPIV3Schema"])
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def schema_errors(manifest: dict[str, Any]) -> list[str]:
    """Every way ``manifest`` breaks its CRD (and the object-name rule the CRD leaves to the API server)."""
    errors = [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in _validator(manifest["kind"]).iter_errors(manifest)]
    name = manifest["metadata"]["name"]
    if not DNS_SUBDOMAIN.match(name) or len(name) > 253:
        errors.append(f"metadata.name: {name!r} is not a Kubernetes object name")
    return errors


def _jobs(project: Project, env: str) -> list[Any]:
    settings = load_settings(project, env)
    jobs, problems = load_jobs(project.job_files(), settings.vars, base=project.root)
    assert not problems
    return jobs


def _cluster_envs(project: Project) -> list[str]:
    return [env for env in project.environments() if load_settings(project, env).kubernetes is not None]


def test_the_vendored_crds_are_the_operators() -> None:
    """The copies in tests/contracts are the reference files, byte for byte (checked where the reference is)."""
    for name in KINDS.values():
        assert (CRDS / name).stat().st_size > 100_000
        if REFERENCE.is_dir():
            assert (CRDS / name).read_bytes() == (REFERENCE / name).read_bytes(), name


def test_the_schema_check_catches_what_kubernetes_would_reject_or_drop() -> None:
    """The validator is not vacuous: a wrong type, a missing required field and a misspelt key fail."""
    project = Project(REPO)
    (job, *_) = _jobs(project, "k8s")
    good = render(project, load_settings(project, "k8s"), job).manifest
    assert schema_errors(good) == []
    bad = copy.deepcopy(good)
    bad["spec"]["driver"]["cores"] = "one"
    del bad["spec"]["sparkVersion"]
    bad["spec"]["executor"]["instanses"] = 3
    bad["spec"]["restartPolicy"]["type"] = "Sometimes"
    errors = schema_errors(bad)
    assert any(e.startswith("spec.driver.cores:") for e in errors)
    assert any("'sparkVersion' is a required property" in e for e in errors)
    assert any("'instanses' was unexpected" in e for e in errors)
    assert any(e.startswith("spec.restartPolicy.type:") for e in errors)


@pytest.mark.parametrize("schedule", [None, "0 * * * *", "@every 90m"])
def test_every_job_in_every_cluster_env_validates_against_the_crd(schedule: str | None) -> None:
    project = Project(REPO)
    envs = _cluster_envs(project)
    assert "k8s" in envs
    for env in envs:
        settings = load_settings(project, env)
        jobs = _jobs(project, env)
        assert len(jobs) == len(project.job_files()) >= 2
        for rendered in render_jobs(project, settings, jobs, schedule):
            assert schema_errors(rendered.manifest) == [], (env, rendered.job)
            kind = "ScheduledSparkApplication" if schedule else "SparkApplication"
            assert rendered.manifest["kind"] == kind
            assert rendered.manifest["apiVersion"] == "sparkoperator.k8s.io/v1beta2"


def test_envs_without_kubernetes_settings_say_so() -> None:
    project = Project(REPO)
    for env in set(project.environments()) - set(_cluster_envs(project)):
        done = subprocess.run([*FEATUREKIT, "render", "sparkapp", "--all", "--env", env], cwd=REPO, capture_output=True, text=True)
        assert done.returncode == 2
        assert f"environment {env!r} has no kubernetes: settings" in done.stderr
        assert done.stdout == ""


def test_the_k8s_manifest_carries_the_job_the_conf_and_no_credentials() -> None:
    project = Project(REPO)
    settings = load_settings(project, "k8s")
    k8s = settings.kubernetes
    assert k8s is not None
    for job in _jobs(project, "k8s"):
        manifest = render(project, settings, job).manifest
        spec = manifest["spec"]
        assert manifest["metadata"]["name"] == job.name.replace("_", "-")
        assert manifest["metadata"]["namespace"] == k8s.namespace == "featurekit"
        for labels in (manifest["metadata"]["labels"], spec["driver"]["labels"], spec["executor"]["labels"]):
            assert labels["featurekit.io/job"] == job.name
            assert labels["featurekit.io/spec-fingerprint"] == job.fingerprint
        assert spec["type"] == "Python" and spec["mode"] == "cluster"
        assert spec["mainApplicationFile"] == "local:///opt/featurekit/featurekit/entrypoint.py"
        assert spec["arguments"] == ["run", job.name, "--env", "k8s"]
        assert spec["sparkVersion"] == SPARK_VERSION
        assert spec["image"] == k8s.image
        conf = spec["sparkConf"]
        assert conf["spark.sql.extensions"] == "io.delta.sql.DeltaSparkSessionExtension"
        assert conf["spark.sql.catalog.spark_catalog"] == "org.apache.spark.sql.delta.catalog.DeltaCatalog"
        assert conf["spark.hadoop.fs.s3a.path.style.access"] == "true"
        assert conf["spark.hadoop.fs.s3a.endpoint"].startswith("http")
        assert conf["spark.pyspark.python"] == conf["spark.pyspark.driver.python"] == k8s.python
        assert all(isinstance(v, str) for v in conf.values())
        assert "deps" not in spec  # baked into the image
        assert job.spec.output.path.startswith("s3a://")
        # resources and retries from conf/k8s
        assert (spec["driver"]["cores"], spec["driver"]["memory"]) == (k8s.driver.cores, k8s.driver.memory)
        assert (spec["executor"]["cores"], spec["executor"]["memory"], spec["executor"]["instances"]) == (
            k8s.executor.cores, k8s.executor.memory, k8s.executor.instances)
        assert spec["driver"]["serviceAccount"] == k8s.service_account
        assert spec["dynamicAllocation"] == {"enabled": True, "initialExecutors": 2, "minExecutors": 1,
                                             "maxExecutors": 8, "shuffleTrackingEnabled": True}
        assert spec["restartPolicy"]["type"] == "OnFailure" and spec["restartPolicy"]["onFailureRetries"] == 3
        # credentials only as secret references, on driver and executors alike
        for pod in (spec["driver"], spec["executor"]):
            env = {e["name"]: e for e in pod["env"]}
            assert env["FEATUREKIT_PROJECT"]["value"] == k8s.project_dir
            assert env["AWS_SECRET_ACCESS_KEY"] == {
                "name": "AWS_SECRET_ACCESS_KEY",
                "valueFrom": {"secretKeyRef": {"name": "featurekit-s3", "key": "secret-access-key"}}}
            assert all("value" not in e for name, e in env.items() if name != "FEATUREKIT_PROJECT")


def test_render_cli_prints_writes_and_renders_all(tmp_path: Path) -> None:
    done = subprocess.run([*FEATUREKIT, "render", "sparkapp", "driver_profile", "--env", "k8s", "--schedule", "15 2 * * *"],
                          cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    (manifest,) = list(YAML(typ="safe", pure=True).load_all(done.stdout))
    assert manifest["kind"] == "ScheduledSparkApplication"
    assert manifest["spec"]["schedule"] == "15 2 * * *"
    assert manifest["spec"]["concurrencyPolicy"] == "Forbid"
    assert manifest["spec"]["template"]["arguments"] == ["run", "driver_profile", "--env", "k8s"]
    assert schema_errors(manifest) == []

    one_file = tmp_path / "all.yaml"
    done = subprocess.run([*FEATUREKIT, "render", "sparkapp", "--all", "--env", "k8s", "-o", str(one_file)],
                          cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    manifests = list(YAML(typ="safe", pure=True).load_all(one_file.read_text()))
    assert sorted(m["metadata"]["labels"]["featurekit.io/job"] for m in manifests) == sorted(
        p.stem for p in Project(REPO).job_files())
    folder = tmp_path / "manifests"  # not there yet: made, one file per job
    done = subprocess.run([*FEATUREKIT, "render", "sparkapp", "--all", "--env", "k8s", "-o", f"{folder}/"],
                          cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in folder.iterdir()) == ["driver-hourly-stats.yaml", "driver-profile.yaml"]
    for path in folder.iterdir():
        (manifest,) = list(YAML(typ="safe", pure=True).load_all(path.read_text()))
        assert manifest["metadata"]["name"] == path.stem and schema_errors(manifest) == []

    done = subprocess.run([*FEATUREKIT, "render", "sparkapp", "--env", "k8s"], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 2 and "give one job, or --all" in done.stderr


# -- variants of a cluster env, on a throwaway project ---------------------------------------------

_JOB = """\
name: trips_daily
sources:
  trips: {format: parquet, path: "${lake_root}/trips"}
steps:
  - filter: "fare >= 0"
output: {path: "${lake_root}/trips_daily", mode: overwrite}
"""

_K8S = """\
vars:
  lake_root: s3a://lake/root
kubernetes:
  image: registry.example.com/fk:1
  namespace: data
  service_account: spark
"""


def _project(tmp_path: Path, k8s: str, extra: str = "") -> Project:
    for folder in ("jobs", "conf/base", "conf/local", "conf/cluster"):
        (tmp_path / folder).mkdir(parents=True, exist_ok=True)
    (tmp_path / "jobs" / "trips_daily.yaml").write_text(_JOB)
    (tmp_path / "conf" / "cluster" / "featurekit.yaml").write_text(textwrap.dedent(k8s) + textwrap.dedent(extra))
    return Project(tmp_path.resolve())


def _render(project: Project, schedule: str | None = None) -> dict[str, Any]:
    settings = load_settings(project, "cluster")
    return render_jobs(project, settings, _jobs(project, "cluster"), schedule)[0].manifest


def test_a_minimal_cluster_env_renders_with_defaults(tmp_path: Path) -> None:
    manifest = _render(_project(tmp_path, _K8S))
    assert schema_errors(manifest) == []
    spec = manifest["spec"]
    assert spec["driver"] == {"cores": 1, "memory": "2g", "labels": manifest["metadata"]["labels"],
                              "env": [{"name": "FEATUREKIT_PROJECT", "value": "/opt/featurekit"}],
                              "serviceAccount": "spark"}
    assert spec["executor"]["instances"] == 2 and spec["executor"]["memory"] == "4g"
    assert "dynamicAllocation" not in spec and "imagePullSecrets" not in spec and "timeToLiveSeconds" not in spec
    assert spec["restartPolicy"] == {"type": "OnFailure", "onFailureRetries": 3, "onFailureRetryInterval": 60,
                                     "onSubmissionFailureRetries": 3, "onSubmissionFailureRetryInterval": 60}


def test_every_option_renders_into_a_valid_manifest(tmp_path: Path) -> None:
    extra = """\
      image_pull_policy: Always
      image_pull_secrets: [regcred]
      dependencies: packages
      env: {LOG_FORMAT: json}
      env_from_secrets: [s3-keys, registry-keys]
      secret_env: {REDIS_PASSWORD: {secret: redis, key: password}}
      labels: {team: mobility}
      time_to_live_s: 3600
      driver: {cores: 2, memory: 3g, memory_overhead: 1g, core_limit: 2500m}
      executor: {cores: 4, memory: 8g, instances: 5, core_limit: "4"}
      dynamic_allocation: {enabled: true, max_executors: 20, shuffle_tracking: false}
      restart_policy: {type: Never}
      schedule: {concurrency_policy: Replace, time_zone: Europe/Berlin, failed_run_history_limit: 10}
    spark:
      packages: [org.apache.hadoop:hadoop-aws:3.5.0]
    """
    project = _project(tmp_path, _K8S, extra)
    for schedule in (None, "*/10 6-22 * * mon-fri"):
        manifest = _render(project, schedule)
        assert schema_errors(manifest) == []
    spec = manifest["spec"]["template"]
    assert manifest["spec"]["timeZone"] == "Europe/Berlin" and manifest["spec"]["concurrencyPolicy"] == "Replace"
    assert spec["deps"] == {"packages": [f"io.delta:delta-spark_4.2_2.13:{DELTA_VERSION}", "org.apache.hadoop:hadoop-aws:3.5.0"]}
    assert spec["sparkConf"]["spark.jars.ivy"] == "/tmp/.ivy2"
    assert spec["imagePullSecrets"] == ["regcred"] and spec["imagePullPolicy"] == "Always"
    assert spec["restartPolicy"] == {"type": "Never"}
    assert spec["dynamicAllocation"] == {"enabled": True, "initialExecutors": 1, "minExecutors": 0,
                                         "maxExecutors": 20, "shuffleTrackingEnabled": False}
    assert spec["timeToLiveSeconds"] == 3600
    assert spec["driver"]["coreLimit"] == "2500m" and spec["driver"]["memoryOverhead"] == "1g"
    assert spec["executor"]["envFrom"] == [{"secretRef": {"name": "s3-keys"}}, {"secretRef": {"name": "registry-keys"}}]
    assert {"name": "LOG_FORMAT", "value": "json"} in spec["executor"]["env"]
    assert {"name": "REDIS_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "redis", "key": "password"}}} in spec["driver"]["env"]
    assert manifest["metadata"]["labels"]["team"] == "mobility"


def test_local_paths_are_warned_about(tmp_path: Path) -> None:
    project = _project(tmp_path, _K8S.replace("s3a://lake/root", "/mnt/lake"))
    settings = load_settings(project, "cluster")
    (rendered,) = render_jobs(project, settings, _jobs(project, "cluster"))
    assert rendered.warnings == [
        "jobs/trips_daily.yaml:3:28 sources.trips.path: '/mnt/lake/trips' is a local path; pods need shared storage "
        "(s3a://, gs://, abfss://, hdfs://) or a volume mounted at that path",
        "jobs/trips_daily.yaml:6:10 output.path: '/mnt/lake/trips_daily' is a local path; pods need shared storage "
        "(s3a://, gs://, abfss://, hdfs://) or a volume mounted at that path",
    ]


# -- bad conf: one clear line each, exit 2 ----------------------------------------------------------

@pytest.mark.parametrize(("conf", "args", "expected"), [
    (_K8S.replace("  image: registry.example.com/fk:1\n", ""), [],
     "conf/cluster/featurekit.yaml:3:1 kubernetes.image: required key is missing"),
    (_K8S + "  driver: {memory: -2g}\n", [],
     "conf/cluster/featurekit.yaml:7:20 kubernetes.driver.memory: expected a positive JVM memory size such as 512m or 4g; got '-2g'"),
    (_K8S + "  executor: {instances: 0}\n", [],
     "conf/cluster/featurekit.yaml:7:25 kubernetes.executor.instances: expected at least 1; got 0"),
    (_K8S + "  namespace_: x\n", [],
     "conf/cluster/featurekit.yaml:7:3 kubernetes.namespace_: unknown key 'namespace_' — did you mean 'namespace'?"),
    (_K8S.replace("namespace: data", "namespace: Data_Team"), [],
     "conf/cluster/featurekit.yaml:5:14 kubernetes.namespace: expected a Kubernetes name (lowercase letters, digits and '-', at most 63); got 'Data_Team'"),
    (_K8S + "  env: {S3_SECRET_KEY: abc}\n", [],
     "conf/cluster/featurekit.yaml:7:8 kubernetes.env: S3_SECRET_KEY: looks like a credential; give it as secret_env: "
     "{S3_SECRET_KEY: {secret: NAME, key: KEY}} (credentials never sit in conf)"),
    (_K8S + "spark:\n  conf: {spark.hadoop.fs.s3a.secret.key: abc}\n", [],
     "conf/cluster/featurekit.yaml:8:9 spark.conf: spark.hadoop.fs.s3a.secret.key: a credential set inline; credentials never sit in conf."),
    (_K8S + "spark:\n  conf: {spark.executor.memory: 8g}\n", [],
     "conf/cluster spark.conf.spark.executor.memory: the manifest sets this from its own fields; use kubernetes.executor.memory"),
    (_K8S + "  dynamic_allocation: {enabled: true, min_executors: 5, max_executors: 2}\n", [],
     "kubernetes.dynamic_allocation: expected min_executors <= initial_executors <= max_executors; got 5, 5, 2"),
    (_K8S + "feast:\n  online_store: {type: redis, connection_string: 'redis:6379,password=hunter2'}\n", [],
     "feast.online_store: connection_string: holds a password; credentials never sit in conf."),
    (_K8S, ["--schedule", "0 25 * * *"], "--schedule: hour field '25': 25 is outside 0-23"),
    (_K8S, ["--env", "clustr"], "conf --env: unknown environment 'clustr' — did you mean 'cluster'? (environments: cluster, local)"),
])
def test_bad_conf_is_a_clear_error(tmp_path: Path, conf: str, args: list[str], expected: str) -> None:
    _project(tmp_path, conf)
    done = subprocess.run([*FEATUREKIT, "render", "sparkapp", "trips_daily", "--env", "cluster", *args],
                          cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 2, done.stdout
    assert expected in done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""


def test_an_env_password_reference_is_not_a_credential(tmp_path: Path) -> None:
    project = _project(tmp_path, _K8S + "feast:\n  online_store: {type: redis, connection_string: 'redis:6379,password=$${REDIS_PASSWORD}'}\n")
    settings = load_settings(project, "cluster")
    assert settings.feast.online_store["connection_string"] == "redis:6379,password=${REDIS_PASSWORD}"


@pytest.mark.parametrize(("schedule", "problem"), [
    ("0 * * * *", None), ("@hourly", None), ("@every 1h30m", None), ("*/15 0-6,22 1 jan-mar sun", None),
    ("0 * * *", "expected 5 fields (minute hour day-of-month month day-of-week), e.g. '0 * * * *'; got 4 in '0 * * *'"),
    ("0 0 0 * *", "day of month field '0': 0 is outside 1-31"),
    ("0 0 * * funday", "day of week field 'funday': 'funday' is not a number or a name (sun, mon, tue, wed, thu, fri, sat)"),
    ("*/0 * * * *", "minute field '*/0': step '0' must be a whole number above 0"),
    ("0 5-2 * * *", "hour field '5-2': range '5-2' runs backwards"),
    ("@fortnightly", "unknown descriptor '@fortnightly'; expected one of @annually, @daily, @hourly, @midnight, "
                     "@monthly, @weekly, @yearly or '@every <duration>' (e.g. @every 90m)"),
    ("CRON_TZ=UTC 0 * * * *", "give the time zone in kubernetes.schedule.time_zone, not in the schedule"),
])
def test_schedules_are_checked_like_the_operator_parses_them(schedule: str, problem: str | None) -> None:
    assert schedule_problem(schedule) == problem


# -- incremental jobs: scheduled runs never overlap; a backfill is one run of `featurekit backfill` --

_INCREMENTAL_JOB = """\
name: driver_hourly_stats
sources:
  trips:
    format: parquet
    path: "${lake_root}/trips"
    schema: {driver_id: long, fare: double, event_ts: timestamp}
steps:
  - aggregate:
      keys: [driver_id]
      timestamp: event_ts
      every: 1h
      windows: [1h, 24h]
      metrics: {fare_sum: "sum(fare)"}
incremental: {time_column: event_ts, lookback: 2d}
output: {path: "${lake_root}/driver_hourly_stats", mode: merge, keys: [driver_id, event_ts]}
"""
_JANUARY = Backfill(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 31, tzinfo=UTC), "1d")


def _incremental_project(tmp_path: Path, k8s: str = _K8S) -> Project:
    """The throwaway project with an incremental job beside trips_daily (which is not one)."""
    project = _project(tmp_path, k8s)
    (tmp_path / "jobs" / "driver_hourly_stats.yaml").write_text(_INCREMENTAL_JOB)
    return project


def _rendered(project: Project, schedule: str | None = None, backfill: Backfill | None = None) -> dict[str, Any]:
    """Each job's rendering by job name."""
    settings = load_settings(project, "cluster")
    jobs = [job for job in _jobs(project, "cluster") if backfill is None or job.spec.incremental is not None]
    return {r.job: r for r in render_jobs(project, settings, jobs, schedule, backfill=backfill)}


def test_a_backfill_is_one_sparkapplication_running_featurekit_backfill(tmp_path: Path) -> None:
    project = _incremental_project(tmp_path)
    rendered = _rendered(project, backfill=_JANUARY)["driver_hourly_stats"]
    manifest = rendered.manifest
    assert manifest["kind"] == "SparkApplication" and schema_errors(manifest) == []
    assert manifest["spec"]["arguments"] == ["backfill", "driver_hourly_stats", "--start", "2026-01-01T00:00:00Z",
                                             "--end", "2026-01-31T00:00:00Z", "--batch", "1d", "--env", "cluster"]
    name = manifest["metadata"]["name"]
    assert name == rendered.name == "driver-hourly-stats-backfill-20260101t0000-20260131t0000"
    assert len(name) <= 63 - len("-driver")
    assert name != _rendered(project)["driver_hourly_stats"].name == "driver-hourly-stats"
    for labels in (manifest["metadata"]["labels"], manifest["spec"]["driver"]["labels"], manifest["spec"]["executor"]["labels"]):
        assert labels["featurekit.io/incremental"] == "true"
        assert labels["featurekit.io/backfill"] == "20260101T000000Z--20260131T000000Z"
    assert manifest["metadata"]["annotations"] == {
        "featurekit.io/job-file": "jobs/driver_hourly_stats.yaml", "featurekit.io/backfill-start": "2026-01-01T00:00:00Z",
        "featurekit.io/backfill-end": "2026-01-31T00:00:00Z", "featurekit.io/backfill-batch": "1d"}
    assert rendered.warnings == []


def test_the_backfill_command_line_takes_times_as_featurekit_backfill_does(tmp_path: Path) -> None:
    """Times are read as `featurekit backfill` reads them (UTC if no zone), written in UTC and
    aligned to the job's buckets, with a warning where that moved one."""
    _incremental_project(tmp_path)
    done = subprocess.run([*FEATUREKIT, "render", "sparkapp", "driver_hourly_stats", "--env", "cluster", "--backfill",
                           "--start", "2026-01-01", "--end", "2026-01-31T01:30:00+01:00", "--batch", "6h"],
                          cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    (manifest,) = list(YAML(typ="safe", pure=True).load_all(done.stdout))
    assert manifest["spec"]["arguments"] == ["backfill", "driver_hourly_stats", "--start", "2026-01-01T00:00:00Z",
                                             "--end", "2026-01-31T00:00:00Z", "--batch", "6h", "--env", "cluster"]
    assert manifest["metadata"]["name"] == "driver-hourly-stats-backfill-20260101t0000-20260131t0000"
    assert schema_errors(manifest) == []
    assert ("command line --end: 2026-01-31T00:30:00Z is not on a bucket bound (1h); the backfill runs with "
            "2026-01-31T00:00:00Z, as `featurekit backfill` aligns it") in done.stderr


def test_backfill_names_fit_the_operators_pod_names_and_stay_apart() -> None:
    limit = 63 - len("-driver")
    seconds = Backfill(datetime(2026, 1, 1, 0, 0, 30, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC))
    assert backfill_name("trips", seconds) == "trips-backfill-20260101t000030-20260102t0000"
    long_a, long_b = "driver_hourly_stats_by_city_and_payment", "driver_hourly_stats_by_city_and_payment_v2"
    names = {backfill_name(job, span) for job in (long_a, long_b) for span in (_JANUARY, seconds)}
    assert len(names) == 4
    for name in names:
        assert len(name) <= limit and DNS_SUBDOMAIN.match(name), name
        assert name.startswith("driver-h") and "-backfill-20260101t0000" in name
    assert backfill_name(long_a, _JANUARY).endswith("-backfill-20260101t0000-20260131t0000")


def test_a_scheduled_incremental_job_never_overlaps_its_runs(tmp_path: Path) -> None:
    """Forbid whatever the env says (two runs at once: the second fails at its commit), with a
    warning; jobs that are not incremental keep the env's policy."""
    project = _incremental_project(tmp_path, _K8S + "  schedule: {concurrency_policy: Allow}\n")
    rendered = _rendered(project, "0 * * * *")
    incremental, plain = rendered["driver_hourly_stats"], rendered["trips_daily"]
    assert incremental.manifest["kind"] == "ScheduledSparkApplication" and schema_errors(incremental.manifest) == []
    assert incremental.manifest["spec"]["concurrencyPolicy"] == "Forbid"
    assert incremental.manifest["metadata"]["labels"]["featurekit.io/incremental"] == "true"
    assert incremental.manifest["spec"]["template"]["driver"]["labels"]["featurekit.io/incremental"] == "true"
    assert incremental.manifest["spec"]["template"]["arguments"] == ["run", "driver_hourly_stats", "--env", "cluster"]
    assert incremental.warnings == [
        "conf/cluster kubernetes.schedule.concurrency_policy: Forbid, not Allow, for 'driver_hourly_stats': runs of an "
        "incremental job must not overlap (of two at once, the second fails at its commit)"]
    assert plain.manifest["spec"]["concurrencyPolicy"] == "Allow" and plain.warnings == []
    assert "featurekit.io/incremental" not in plain.manifest["metadata"]["labels"]
    assert schema_errors(plain.manifest) == []
    forbid = _rendered(_incremental_project(tmp_path / "forbid"), "0 * * * *")["driver_hourly_stats"]
    assert forbid.manifest["spec"]["concurrencyPolicy"] == "Forbid" and forbid.warnings == []


_RANGE = ["--start", "2026-01-01", "--end", "2026-01-31"]


@pytest.mark.parametrize(("args", "expected"), [
    (["driver_hourly_stats", "--backfill", *_RANGE, "--schedule", "0 * * * *"],
     "render sparkapp --schedule: a backfill runs once, never on a schedule (a scheduled incremental job already "
     "runs incremental runs); drop --schedule"),
    (["--all", "--backfill", *_RANGE], "render sparkapp --all: a backfill is of one job: give JOB, not --all"),
    (["trips_daily", "--backfill", *_RANGE],
     "jobs/trips_daily.yaml incremental: job 'trips_daily' has no incremental: block; a backfill needs one"),
    (["driver_hourly_stats", *_RANGE], "render sparkapp --start: --start, --end and --batch go with --backfill"),
    (["driver_hourly_stats", "--batch", "1d"], "render sparkapp --batch: --start, --end and --batch go with --backfill"),
    (["driver_hourly_stats", "--backfill", "--start", "2026-01-01"],
     "render sparkapp --backfill: give the range to recompute: --start and --end"),
    (["driver_hourly_stats", "--backfill", *_RANGE, "--materialize"],
     "render sparkapp --materialize: a backfill does not materialize; run `featurekit materialize --start .. --end ..` after it"),
    (["driver_hourly_stats", "--backfill", "--start", "2026-01-31", "--end", "2026-01-01"],
     "command line --end: --end 2026-01-01T00:00:00Z must be after --start 2026-01-31T00:00:00Z (aligned to 1h)"),
    (["driver_hourly_stats", "--backfill", "--start", "2026-01-01T00:10", "--end", "2026-01-01T00:50"],
     "command line --end: --end 2026-01-01T00:50:00Z must be after --start 2026-01-01T00:10:00Z (aligned to 1h)"),
    (["driver_hourly_stats", "--backfill", *_RANGE, "--batch", "90m"],
     "command line --batch: --batch 90m must be a whole multiple of the job's bucket (1h)"),
    (["driver_hourly_stats", "--backfill", *_RANGE, "--batch", "1day"],
     "command line --batch: expected a duration like '30s', '15m', '1h', '7d' or '2w'; got '1day'"),
    (["driver_hourly_stats", "--backfill", "--start", "new year", "--end", "2026-01-31"],
     "command line --start: expected an ISO 8601 time like 2026-01-15T00:00:00Z; got 'new year'"),
])
def test_a_bad_backfill_is_a_clear_error(tmp_path: Path, args: list[str], expected: str) -> None:
    _incremental_project(tmp_path)
    done = subprocess.run([*FEATUREKIT, "render", "sparkapp", "--env", "cluster", *args], cwd=tmp_path,
                          capture_output=True, text=True)
    assert done.returncode == 2, done.stdout
    assert expected in done.stderr.splitlines()
    assert "Traceback" not in done.stderr and done.stdout == ""


@pytest.mark.parametrize(("job", "start", "end", "batch"), [
    ("trips_daily", "2026-01-01", "2026-01-31", "1d"),
    ("driver_hourly_stats", "2026-01-31", "2026-01-01", "1d"),
    ("driver_hourly_stats", "2026-01-01", "2026-01-31", "90m"),
    ("driver_hourly_stats", "2026-01-01", "2026-01-31", "1day"),
])
def test_a_backfill_is_refused_as_featurekit_backfill_refuses_it(tmp_path: Path, job: str, start: str, end: str,
                                                                 batch: str) -> None:
    """deploy cannot import pipeline, so the renderer repeats `backfill_chunks`' checks: word for word."""
    from featurekit.pipeline.incremental import backfill_chunks

    project = _incremental_project(tmp_path)
    (loaded,) = [j for j in _jobs(project, "cluster") if j.name == job]
    span = Backfill(datetime.fromisoformat(start).replace(tzinfo=UTC), datetime.fromisoformat(end).replace(tzinfo=UTC), batch)
    with pytest.raises(ConfigError) as refused:
        backfill_chunks(loaded, span.start, span.end, span.batch)
    with pytest.raises(ConfigError) as rendered:
        render(project, load_settings(project, "cluster"), loaded, backfill=span)
    assert rendered.value.problems == refused.value.problems


# -- the image: the Dockerfile, pyproject.toml and the renderer agree --------------------------------

def test_dockerfile_pyproject_and_manifest_agree() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    deps = pyproject["project"]["dependencies"]
    assert f"pyspark=={SPARK_VERSION}" in deps and f"delta-spark=={DELTA_VERSION}" in deps
    (base,) = re.findall(r"^ARG SPARK_IMAGE=(\S+)$", dockerfile, re.MULTILINE)
    assert base.startswith(f"apache/spark:{SPARK_VERSION}-") and "java17" in base
    assert f"assert pyspark.__version__ == '{SPARK_VERSION}'" in dockerfile
    python = re.search(r"uv venv --python (\S+) (\S+);", dockerfile)
    assert python is not None
    assert pyproject["project"]["requires-python"] == f">={python[1]},<3.{int(python[1].split('.')[1]) + 1}"
    settings = load_settings(Project(REPO), "k8s")
    assert settings.kubernetes is not None
    assert settings.kubernetes.python == f"{python[2]}/bin/python"
    project_dir = settings.kubernetes.project_dir
    assert f"WORKDIR {project_dir}\n" in dockerfile and f"FEATUREKIT_PROJECT={project_dir}" in dockerfile
    for folder in ("featurekit", "conf", "jobs", "feature_repo"):
        assert f"COPY {folder} ./{folder}\n" in dockerfile
    assert (REPO / "featurekit" / "entrypoint.py").is_file()  # = mainApplicationFile under project_dir
    assert 'featurekit setup --env "$ENV"' in dockerfile and "ARG ENV=k8s" in dockerfile
    ignored = (REPO / ".dockerignore").read_text().split()
    assert {".venv", "data", ".featurekit"} <= set(ignored) and not {"conf", "jobs", "featurekit"} & set(ignored)


def test_to_yaml_round_trips_every_manifest() -> None:
    project = Project(REPO)
    settings = load_settings(project, "k8s")
    rendered = render_jobs(project, settings, _jobs(project, "k8s"))
    again = list(YAML(typ="safe", pure=True).load_all(to_yaml(rendered)))
    assert again == [r.manifest for r in rendered]


def test_setup_refuses_a_hadoop_module_of_another_version(tmp_path: Path) -> None:
    """hadoop-aws must match the Hadoop inside Spark; caught before anything is downloaded."""
    _project(tmp_path, _K8S, "spark:\n  packages: [org.apache.hadoop:hadoop-aws:3.4.1]\n")
    done = subprocess.run([*FEATUREKIT, "setup", "--env", "cluster"], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 2, done.stdout
    assert ("spark.packages: org.apache.hadoop:hadoop-aws:3.4.1: Spark 4.2.0 is built with Hadoop 3.5.0; "
            "use org.apache.hadoop:hadoop-aws:3.5.0") in done.stderr
    assert not (tmp_path / ".featurekit" / "jars").exists()


def test_materialize_is_added_only_for_jobs_with_online_features(tmp_path: Path) -> None:
    project = Project(REPO)
    settings = load_settings(project, "k8s")
    for rendered in render_jobs(project, settings, _jobs(project, "k8s"), materialize=True):
        assert rendered.manifest["spec"]["arguments"][-1] == "--materialize"
        assert schema_errors(rendered.manifest) == []
    other = _project(tmp_path, _K8S)
    (rendered,) = render_jobs(other, load_settings(other, "cluster"), _jobs(other, "cluster"), materialize=True)
    assert rendered.manifest["spec"]["arguments"] == ["run", "trips_daily", "--env", "cluster"]
    assert rendered.warnings[-1] == "jobs/trips_daily.yaml: no online features, so its runs do not materialize"
    done = subprocess.run([*FEATUREKIT, "run", "trips_daily", "--env", "cluster", "--materialize"], cwd=tmp_path,
                          capture_output=True, text=True)
    assert done.returncode == 2
    assert ("jobs/trips_daily.yaml features: --materialize: job 'trips_daily' has no online features "
            "(features: with online: true)") in done.stderr
