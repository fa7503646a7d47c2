"""The compiled Kubeflow pipeline run end to end by KFP's local runner (``featurekit pipeline
run --local``, over ``kfp.local``) on the local env of a small project: each task a process,
each job a real ``featurekit run``; on the cluster env, each job task a real submission."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from deltalake import DeltaTable

from tests.conftest import REPO

pytestmark = [pytest.mark.spark, pytest.mark.e2e]

FEATUREKIT = [sys.executable, "-m", "featurekit"]
JOBS = {
    "base": """
        name: base
        sources:
          raw: {format: csv, path: "${raw_root}/things", options: {header: true}, schema: {id: long, v: long}}
        steps:
          - filter: "v >= 0"
        output: {path: "${lake_root}/base", mode: overwrite}
        """,
    "doubled": """
        name: doubled
        sources:
          base: {format: delta, path: "${lake_root}/base"}
        steps:
          - with_columns: {v: "v * 2"}
        output: {path: "${lake_root}/doubled", mode: overwrite}
        """,
}
LOCAL = """
spark:
  master: local[2]
  conf: {spark.driver.memory: 1g, spark.ui.enabled: false, spark.sql.shuffle.partitions: 2}
registry:
  enabled: false
"""


def _project(make_project: Callable[..., Path]) -> Path:
    root = make_project({name: textwrap.dedent(text) for name, text in JOBS.items()})
    (root / "conf" / "local" / "featurekit.yaml").write_text(LOCAL)
    return root


def _run(root: Path, *args: str, **env_vars: str) -> subprocess.CompletedProcess[str]:
    # the task processes import this checkout and find the jars the repository already has
    env = {**os.environ, "PYTHONPATH": str(REPO), "FEATUREKIT_JARS_DIR": str(REPO / ".featurekit" / "jars"), **env_vars}
    return subprocess.run([*FEATUREKIT, "pipeline", "run", *args], cwd=root, env=env, capture_output=True,
                          text=True, timeout=900)


def test_the_local_runner_runs_the_jobs_in_order(make_project: Callable[..., Path]) -> None:
    root = _project(make_project)
    (root / "data" / "raw" / "things").mkdir(parents=True)
    (root / "data" / "raw" / "things" / "part-0.csv").write_text("id,v\n1,10\n2,-1\n3,30\n")

    done = _run(root, "--local", "--end", "2026-03-01T00:00:00Z")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "pipeline 'featurekit' ran 2 job(s) locally for env local" in done.stderr
    # doubled read base's table: it ran after base committed
    doubled = DeltaTable(str(root / "data" / "lake" / "doubled")).to_pyarrow_table().to_pylist()
    assert sorted((row["id"], row["v"]) for row in doubled) == [(1, 20), (3, 60)]
    assert (root / ".featurekit" / "kfp" / "featurekit-local.yaml").is_file()  # the definition it ran


def test_a_failed_job_stops_the_local_run_at_its_task(make_project: Callable[..., Path]) -> None:
    root = _project(make_project)  # no raw files: the first job fails, the second never starts

    done = _run(root, "--local")
    assert done.returncode == 1
    assert "error: the pipeline stopped at task 'job-base'; its error is above" in done.stderr
    assert "job-doubled" not in done.stdout + done.stderr  # never started
    assert not (root / "data" / "lake" / "doubled").exists()

    done = _run(root)
    assert done.returncode == 2 and "give --local (runs here); on a cluster, upload the YAML" in done.stderr


def test_on_a_cluster_env_the_job_tasks_submit_to_the_kubeconfigs_api(make_project: Callable[..., Path]) -> None:
    """``--env k8s`` (pipeline.run_jobs: sparkapp): the tasks run here and submit each job's
    SparkApplication to the cluster of the kubeconfig; with no API server there (none runs in
    tests) the first job task fails saying so, and nothing after it starts."""
    root = _project(make_project)
    with socket.socket() as sock:  # a loopback port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    kubeconfig = root / "kubeconfig"
    kubeconfig.write_text(textwrap.dedent(f"""\
        apiVersion: v1
        kind: Config
        clusters: [{{name: test, cluster: {{server: "http://127.0.0.1:{port}"}}}}]
        users: [{{name: test, user: {{token: not-a-secret}}}}]
        contexts: [{{name: test, context: {{cluster: test, user: test}}}}]
        current-context: test
        """))

    done = _run(root, "--local", "--env", "k8s", "--end", "2026-03-01T00:00:00Z", KUBECONFIG=str(kubeconfig),
                KUBERNETES_SERVICE_HOST="")  # a CI runner in a pod: not its own cluster
    said = done.stdout + done.stderr
    assert done.returncode == 1, said[-3000:]
    assert "error: the pipeline stopped at task 'job-base'; its error is above" in done.stderr
    assert f"RuntimeError: job base: could not reach the Kubernetes API at http://127.0.0.1:{port}" in said
    assert "job-doubled" not in said
