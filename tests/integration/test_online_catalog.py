"""Serving without Feast: ``featurekit online`` reads the registry's catalog kept beside the
project while it is current, and reads the registry again after a plain ``feast apply``.

No Spark: the feature table is written with delta-rs, ``featurekit feast apply`` registers it
(real Feast, file registry, SQLite online store) and the online-store port's writer loads it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pytest

from featurekit.config import Project, Settings, load_settings
from featurekit.feast.catalog import catalog_path, fingerprint, registry_file
from featurekit.feast.store import online_config, repo_dir
from featurekit.online import OnlineFeatures
from featurekit.online_store import open_online_store
from featurekit.pipeline import features
from tests.conftest import REPO

pytestmark = pytest.mark.feast

JOB = """
name: rider_stats
owner: tests
sources:
  stats: {format: delta, path: "${lake_root}/rider_stats"}
output:
  path: ${lake_root}/rider_stats
  mode: overwrite
features:
  entity: rider
  join_keys: [rider_id]
  timestamp: event_ts
  ttl: 30d
  services:
    rider_service: [rider_stats]
"""


def make_project(root: Path) -> tuple[Project, Settings]:
    """A project with one feature table, applied, and its rows in the SQLite online store."""
    from deltalake import write_deltalake

    shutil.copytree(REPO / "conf", root / "conf")
    (root / "jobs").mkdir()
    (root / "jobs" / "rider_stats.yaml").write_text(JOB.lstrip())
    (root / "feature_repo").mkdir()
    shutil.copy(REPO / "feature_repo" / "features.py", root / "feature_repo" / "features.py")
    (root / "conf" / "local" / "zz_test.yaml").write_text("registry:\n  enabled: false\n")
    table = pa.table({
        "rider_id": pa.array([1, 2, 3], pa.int64()),
        "event_ts": pa.array([datetime(2026, 1, 1, tzinfo=UTC)] * 3, pa.timestamp("us", tz="UTC")),
        "trips": pa.array([4, 5, None], pa.int64()),
        "rating": pa.array([4.5, 3.25, 5.0]),
        "city": pa.array(["Lyon", None, "Oslo"]),
    })
    write_deltalake(str(root / "data" / "lake" / "rider_stats"), table, mode="overwrite")
    project = Project(root)
    settings = load_settings(project, "local")
    features.apply(project, settings)
    config, repo = online_config(project, settings), str(repo_dir(settings))
    client = OnlineFeatures(project=project, settings=settings)
    store = open_online_store(config, repo)
    write = store.batch_writer(store.writer_layout(client.layouts["rider_stats"]))
    assert write is not None and write(table.to_batches()[0]) == 3
    return project, settings


@pytest.fixture(scope="module")
def applied(tmp_path_factory: pytest.TempPathFactory) -> tuple[Project, Settings]:
    return make_project(tmp_path_factory.mktemp("serving") / "project")


def test_featurekit_online_imports_neither_spark_nor_feast_while_the_catalog_is_current(
        applied: tuple[Project, Settings]) -> None:
    project, settings = applied
    kept = json.loads(catalog_path(project, "local").read_text())
    registry = registry_file(online_config(project, settings), str(repo_dir(settings)))
    assert registry is not None and kept["fingerprint"] == fingerprint(registry)
    assert kept["services"] == {"rider_service": [["rider_stats", ["trips", "rating", "city"]]],
                                "rider_stats": [["rider_stats", ["trips", "rating", "city"]]]}
    code = (
        "import sys; from featurekit.cli import main; "
        "rc = main(['online', 'rider_id=1', 'rider_id=2', 'rider_id=9', '--service', 'rider_service']); "
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'pyspark', 'feast', 'pandas'}); "
        "print('HEAVY', heavy, rc)"
    )
    env = {k: v for k, v in os.environ.items() if k != "FEATUREKIT_PROJECT"}
    done = subprocess.run([sys.executable, "-c", code], cwd=project.root, capture_output=True, text=True,
                          timeout=120, env=env)
    assert "HEAVY [] 0" in done.stdout, done.stdout + done.stderr
    cells = [[cell.strip() for cell in line.strip("│").split("│")] for line in done.stdout.splitlines()
             if line.startswith("│")]
    rows = {cell[0]: cell[1:] for cell in cells}
    assert rows["rider_id"] == ["1", "2", "9"]
    assert rows["trips"] == ["4", "5", "None"]
    assert rows["rating"] == ["4.5", "3.25", "None"]
    assert rows["city"] == ["Lyon", "None", "None"]


def test_a_plain_feast_apply_since_is_picked_up_by_serving(tmp_path: Path) -> None:
    project, settings = make_project(tmp_path / "project")
    path = catalog_path(project, "local")
    before = json.loads(path.read_text())["fingerprint"]
    job = project.root / "jobs" / "rider_stats.yaml"
    job.write_text(job.read_text().replace("    rider_service: [rider_stats]\n",
                                           "    rider_service: [rider_stats]\n    rider_city: [\"rider_stats:city\"]\n"))
    feast = Path(sys.executable).with_name("feast")
    # skipping source validation: Feast would start Spark to read the table
    done = subprocess.run([str(feast), "apply", "--skip-source-validation"], cwd=project.root / "feature_repo", capture_output=True, text=True,
                          timeout=300, env={**os.environ, "FEATUREKIT_ENV": "local"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(path.read_text())["fingerprint"] == before   # plain feast knows nothing of it

    client = OnlineFeatures(project=project, settings=settings)
    assert client.get({"rider_id": [1, 3]}, service="rider_city") == {"rider_id": [1, 3], "city": ["Lyon", "Oslo"]}
    kept = json.loads(path.read_text())
    registry = registry_file(online_config(project, settings), str(repo_dir(settings)))
    assert registry is not None and kept["fingerprint"] == fingerprint(registry) != before
    assert kept["services"]["rider_city"] == [["rider_stats", ["city"]]]
