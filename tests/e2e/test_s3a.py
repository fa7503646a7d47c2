"""The cluster environment for real: jobs on ``s3a://`` object storage through conf/k8s.

A real MinIO on loopback stands in for the cluster's S3 service. The project is a copy of the
repository with conf/k8s as it is, plus one file that points the s3a endpoint at that server
(raw files stay local: the lake is what lives on object storage). Credentials arrive as the
pods get them from the secret references: ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY`` in
the environment, read by the credentials provider conf/k8s names.

1. ``driver_profile`` runs from its rendered SparkApplication: the manifest's ``sparkConf`` and
   ``arguments`` under local ``spark-submit``, with the jars the image bakes in (the k8s env's
   jar cache: Delta, hadoop-aws, the AWS SDK). Later its ``--materialize`` manifest runs too.
2. ``driver_hourly_stats`` runs with ``featurekit run --env k8s``: it reads the first job's Delta
   table from S3, writes its own and its quarantine table there, and a rerun adds no version.
3. Everything is read back independently with delta-rs over the S3 API.
4. The Feast side on the same storage: ``featurekit show`` and ``feast apply`` read the tables
   with delta-rs (the s3a settings mapped to its options), Feast's registry is the S3 object
   conf/k8s names, ``materialize`` reads the tables with Spark into Redis and verifies,
   ``online`` answers.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from deltalake import DeltaTable
from ruamel.yaml import YAML

from featurekit.config import Project, load_settings
from featurekit.config.versions import packages_of
from featurekit.engine.jars import cached_jars
from tests.conftest import MINIO_PASSWORD, MINIO_USER, REPO
from tests.e2e.manifests import local_submit_command

FEATUREKIT = [str(Path(sys.executable).parent / "featurekit")]
BUCKET = "featurekit-lake"  # conf/k8s's bucket: its lake_root and Feast registry are used as they are


def _k8s_jars() -> list[Path]:
    settings = load_settings(Project(REPO), "k8s")
    jars = cached_jars(settings.jars_dir, packages_of(settings.spark.packages))
    if jars is None:
        message = f"the k8s env's jars are not cached in {settings.jars_dir}: `make s3-deps`"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return jars


def test_jobs_read_and_write_delta_on_s3a_through_the_k8s_env(tmp_path: Path, minio_server: tuple[str, Path],
                                                              redis_server: str) -> None:
    endpoint, data = minio_server
    jars = _k8s_jars()
    (data / BUCKET).mkdir()  # a folder in MinIO's data folder is a bucket
    project = tmp_path / "shop"
    project.mkdir()
    for folder in ("conf", "jobs"):
        subprocess.run(["cp", "-r", str(REPO / folder), str(project / folder)], check=True)
    (project / "feature_repo").mkdir()
    shutil.copy(REPO / "feature_repo" / "features.py", project / "feature_repo" / "features.py")
    # conf/k8s as it is but for: raw files local, the S3 endpoint of the MinIO here, the local
    # redis-server for the cluster's, lineage kept local (the registry has its own tests).
    (project / "conf" / "k8s" / "zz-test-storage.yaml").write_text(
        "vars:\n"
        "  raw_root: ${project_root}/data/raw\n"
        "spark:\n"
        "  conf:\n"
        f"    spark.hadoop.fs.s3a.endpoint: {endpoint}\n"
        "    spark.sql.shuffle.partitions: 2\n"
        "    spark.databricks.delta.snapshotPartitions: 2\n"
        "    spark.ui.enabled: false\n"
        "feast:\n"
        f"  online_store: {{type: redis, connection_string: '{redis_server}'}}\n"
        "registry: {enabled: false}\n"
    )
    env = {
        **os.environ, "PYTHONPATH": "", "SPARK_LOCAL_IP": "127.0.0.1",
        "FEATUREKIT_PROJECT": str(project), "FEATUREKIT_JARS_DIR": str(jars[0].parent),
        # what kubernetes.secret_env puts into the pods
        "AWS_ACCESS_KEY_ID": MINIO_USER, "AWS_SECRET_ACCESS_KEY": MINIO_PASSWORD,
        "COLUMNS": "250",  # rich tables unfolded
    }
    done = subprocess.run([*FEATUREKIT, "generate-demo-data", "--rows", "3000"], cwd=project, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    raw = json.loads((project / "data" / "raw" / "_manifest.json").read_text())

    # 1. the rendered SparkApplication's conf and arguments, under spark-submit
    def submit_rendered(job: str, *options: str) -> tuple[dict, subprocess.CompletedProcess[str]]:
        done = subprocess.run([*FEATUREKIT, "render", "sparkapp", job, "--env", "k8s", *options], cwd=project,
                              env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        spec = YAML(typ="safe", pure=True).load(done.stdout)["spec"]
        done = subprocess.run(local_submit_command(spec, jars), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        return spec, done

    spec, done = submit_rendered("driver_profile")
    assert spec["sparkConf"]["spark.hadoop.fs.s3a.endpoint"] == endpoint
    assert "EnvironmentVariableCredentialsProvider" in spec["sparkConf"]["spark.hadoop.fs.s3a.aws.credentials.provider"]
    secret_env = {e["name"] for e in spec["driver"]["env"] if "valueFrom" in e}
    assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= secret_env
    assert f"s3a://{BUCKET}/lake/driver_profile v0" in done.stdout.replace("\n", "")

    # 2. the CLI in the same env: reads the first table from S3, writes its own there; a rerun
    # recomputes its last interval (incremental) to the same contents
    for _ in range(2):
        done = subprocess.run([*FEATUREKIT, "run", "driver_hourly_stats", "--env", "k8s", "--end", "2026-01-15T00:00:00Z"],
                              cwd=project, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
    reports = sorted((project / ".featurekit" / "runs" / "driver_hourly_stats").glob("*.json"))
    first, rerun = (json.loads(p.read_text()) for p in reports)
    assert first["status"] == rerun["status"] == "succeeded" and first["env"] == "k8s"
    assert rerun["incremental"]["interval"] == "(2026-01-13T00:00:00Z, 2026-01-15T00:00:00Z]"
    assert first["output_path"] == f"s3a://{BUCKET}/lake/driver_hourly_stats" and first["table_version"] == 0
    assert rerun["table_version"] == 1
    assert first["quarantine"]["path"] == f"s3a://{BUCKET}/lake/driver_hourly_stats_quarantine"
    assert first["quarantine"]["rows"] == raw["bad_timestamp"]
    # rows without a time are taken from files that arrived since the last run: none, on S3 too
    assert rerun["sources"][0]["rows_malformed"] == 0 and not rerun["quarantine"]

    # 3. read back over the S3 API, independently of Spark
    options = {"AWS_ENDPOINT_URL": endpoint, "AWS_ALLOW_HTTP": "true", "AWS_REGION": "us-east-1",
               "AWS_ACCESS_KEY_ID": MINIO_USER, "AWS_SECRET_ACCESS_KEY": MINIO_PASSWORD}
    profile = DeltaTable(f"s3://{BUCKET}/lake/driver_profile", storage_options=options)
    assert profile.version() == 0 and len(profile.to_pandas()) == raw["drivers"]
    stats = DeltaTable(f"s3://{BUCKET}/lake/driver_hourly_stats", storage_options=options)
    assert stats.version() == 1
    frame = stats.to_pandas()
    assert not frame.duplicated(["driver_id", "event_ts"]).any()
    assert len(frame) == first["rows_written"]
    assert len(DeltaTable(f"s3://{BUCKET}/lake/driver_hourly_stats", version=0, storage_options=options).to_pandas()) == len(frame)
    quarantine = DeltaTable(f"s3://{BUCKET}/lake/driver_hourly_stats_quarantine", storage_options=options).to_pandas()
    assert len(quarantine) == raw["bad_timestamp"] and quarantine["_fk_raw"].notna().all()
    commit = json.loads(stats.history(1)[0]["userMetadata"])
    assert (commit["run_id"], commit["env"], commit["job"]) == (rerun["run_id"], "k8s", "driver_hourly_stats")
    assert commit["interval"]["end"] == "2026-01-15T00:00:00Z"

    # 4. the Feast side on the same storage
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([*FEATUREKIT, *args, "--env", "k8s"], cwd=project, env=env, capture_output=True,
                              text=True, timeout=600)
        assert done.returncode == 0, (args, done.stderr[-3000:])
        return done

    shown = cli("show", "driver_hourly_stats", "--limit", "1").stdout
    assert f"s3a://{BUCKET}/lake/driver_hourly_stats  version 1, {len(frame):,} rows" in shown
    assert rerun["run_id"] in shown
    cli("feast", "apply")
    assert (data / BUCKET / "feast" / "registry.pb").is_dir()  # MinIO keeps an object as a folder
    # the job's SparkApplication with --materialize: a rerun (nothing new) then the incremental
    # materialization of its view, in the same session, Spark's Python workers writing to Redis
    spec, done = submit_rendered("driver_profile", "--materialize")
    assert spec["arguments"] == ["run", "driver_profile", "--env", "k8s", "--materialize"]
    assert "materialized into redis" in done.stdout and "driver_profile" in done.stdout
    # the other view with the arrow engine (delta-rs reads s3a:// in the command's process), then
    # checked by the Spark engine
    window = ("--views", "driver_hourly_stats", "--start", "2026-01-01T00:00:00Z", "--end", "2026-01-15T00:00:00Z")
    done = cli("materialize", *window, "--engine", "arrow")
    assert "engine arrow" in done.stdout and "driver_hourly_stats" in done.stdout
    done = cli("materialize", *window, "--verify-only", "--engine", "spark")
    assert "verified into redis" in done.stdout
    profiles = profile.to_pandas().set_index("driver_id")
    some = int(profiles.index[0])
    done = cli("online", f"driver_id={some}", "--view", "driver_profile")
    assert str(profiles.loc[some, "city"]) in done.stdout
    latest = frame.sort_values("event_ts").groupby("driver_id").last().loc[some]
    done = cli("online", f"driver_id={some}", "--view", "driver_hourly_stats")
    assert f"{int(latest['trips_7d'])}" in done.stdout
