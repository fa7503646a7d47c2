"""A rendered SparkApplication's entrypoint and arguments run unchanged under local spark-submit.

In the cluster the operator runs ``spark-submit <sparkConf> local:///opt/featurekit/featurekit/
entrypoint.py <arguments>`` in the image, where /opt/featurekit is the project. Here the same
file of the same package runs with the manifest's ``arguments`` as they are, the manifest's
``sparkConf`` (but for the image's Python path) and a project whose conf/k8s is the repository's
with the storage roots pointed at local folders (no object store runs here).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from deltalake import DeltaTable
from ruamel.yaml import YAML

from tests.conftest import REPO
from tests.e2e.manifests import local_submit_command

FEATUREKIT = [str(Path(sys.executable).parent / "featurekit")]


def test_the_manifests_arguments_run_under_local_spark_submit(tmp_path: Path) -> None:
    project = tmp_path / "shop"
    project.mkdir()
    for folder in ("conf", "jobs"):
        subprocess.run(["cp", "-r", str(REPO / folder), str(project / folder)], check=True)
    # Later files of an env win key by key: only the storage roots change.
    (project / "conf" / "k8s" / "zz-local-storage.yaml").write_text(
        "vars:\n  raw_root: ${project_root}/data/raw\n  lake_root: ${project_root}/data/lake\n")
    env = {**os.environ, "FEATUREKIT_JARS_DIR": str(REPO / ".featurekit" / "jars"), "PYTHONPATH": ""}
    done = subprocess.run([*FEATUREKIT, "generate-demo-data", "--rows", "2000"], cwd=project, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr

    done = subprocess.run([*FEATUREKIT, "render", "sparkapp", "driver_profile", "--env", "k8s"], cwd=project,
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "is a local path" in done.stderr  # the local override is noticed, not refused
    manifest = YAML(typ="safe", pure=True).load(done.stdout)
    spec = manifest["spec"]
    jars = sorted((REPO / ".featurekit" / "jars").glob("*.jar"))  # baked into the image there
    command = local_submit_command(spec, jars)
    assert spec["arguments"] == ["run", "driver_profile", "--env", "k8s"]

    pod_env = {e["name"]: e["value"] for e in spec["driver"]["env"] if "value" in e}
    assert pod_env["FEATUREKIT_PROJECT"] == "/opt/featurekit"
    run_env = {**env, "FEATUREKIT_PROJECT": str(project), "SPARK_LOCAL_IP": "127.0.0.1"}
    done = subprocess.run(command, cwd=tmp_path, env=run_env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "written" in done.stdout

    table = DeltaTable(str(project / "data" / "lake" / "driver_profile"))
    assert table.version() == 0
    raw = json.loads((project / "data" / "raw" / "_manifest.json").read_text())
    assert len(table.to_pandas()) == raw["drivers"]
    (report,) = (project / ".featurekit" / "runs" / "driver_profile").glob("*.json")
    run = json.loads(report.read_text())
    assert run["status"] == "succeeded" and run["env"] == "k8s"
    assert run["fingerprint"] == manifest["metadata"]["labels"]["featurekit.io/spec-fingerprint"]
    commit = table.history(1)[0]
    assert commit["operation"] in {"WRITE", "CREATE TABLE AS SELECT", "CREATE OR REPLACE TABLE AS SELECT"}
