"""What the UI and the metadata API keep between requests is read again as soon as its files change.

Each test makes a small project without Spark (a feature view's job file, its Delta table written
with delta-rs, a run report and a materialization record as featurekit writes them), asks a page
once so the answer is kept, changes one file, and asks again.
"""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import CommitProperties, write_deltalake
from fastapi.testclient import TestClient

from featurekit.api import reads
from featurekit.config import Project, Settings, load_settings
from featurekit.errors import ConfigError
from featurekit.lineage import RunLogLineage
from featurekit.lineage.records import FeatureSetRecord
from featurekit.spec.loader import LoadedJob, load_job
from featurekit.ui import create_ui
from tests.conftest import REPO

JOB = """
name: driver_stats
description: Hourly conversion per driver.
owner: mobility-data
sources:
  stats: {format: parquet, path: "${raw_root}/stats"}
output:
  path: ${lake_root}/driver_stats
  mode: overwrite
features:
  entity: driver
  join_keys: [driver_id]
  timestamp: event_ts
  ttl: 1d
"""

TABLE = pa.table({"driver_id": pa.array([1, 2], pa.int64()), "conv_rate": [0.1, 0.5],
                  "event_ts": pa.array([0, 1], pa.timestamp("us", tz="UTC"))})


class Small:
    def __init__(self, root: Path) -> None:
        shutil.copytree(REPO / "conf", root / "conf")
        (root / "jobs").mkdir()
        (root / "jobs" / "driver_stats.yaml").write_text(textwrap.dedent(JOB).lstrip())
        self.project = Project(root)
        self.settings: Settings = load_settings(self.project, "local")
        self.job: LoadedJob = load_job(root / "jobs" / "driver_stats.yaml", self.settings.vars,
                                       shown_as="jobs/driver_stats.yaml")
        self.client = TestClient(create_ui(self.project, self.settings))

    def commit(self, run_id: str, mode: str = "overwrite") -> None:
        meta = json.dumps({"job": self.job.name, "run_id": run_id, "fingerprint": self.job.fingerprint})
        write_deltalake(self.job.spec.output.path, TABLE, mode=mode,
                        commit_properties=CommitProperties(custom_metadata={"userMetadata": meta}))

    def materialized(self, run_id: str, version: int, rows: int = 2) -> Path:
        return Path(RunLogLineage(self.settings.runs_dir).record_feature_set(FeatureSetRecord(
            run_id=run_id, feast_project=self.settings.feast.project, feature_view="driver_stats",
            features=["conv_rate"], job="driver_stats", spec_fingerprint=self.job.fingerprint,
            delta_path=self.job.spec.output.path, delta_version=version, window_start="2026-03-01T00:00:00+00:00",
            window_end="2026-03-01T12:00:00+00:00", rows=rows, keys=rows, online_store="sqlite",
            recorded_at=f"2026-03-01T{12 + int(run_id[-1]):02d}:00:00+00:00",
            view_schema={"join_keys": {"driver_id": "Int64"}, "timestamp": "event_ts",
                         "features": {"conv_rate": "Float64"}})))

    def page(self, url: str) -> str:
        answer = self.client.get(url)
        assert answer.status_code == 200, answer.text[:500]
        return answer.text


@pytest.fixture
def small(tmp_path: Path) -> Small:
    return Small(tmp_path / "project")


def test_a_new_changed_or_removed_lineage_record_shows_at_once(small: Small) -> None:
    first = small.materialized("20260301T130000Z-mat00001", 0)
    small.commit("20260301T120000Z-run00001")
    assert [m.rows for m in reads.feature_set(small.project, small.settings, "driver_stats").materializations] == [2]

    second = small.materialized("20260301T140000Z-mat00002", 0, rows=7)
    assert [m.rows for m in reads.feature_set(small.project, small.settings, "driver_stats").materializations] == [7, 2]

    record = json.loads(first.read_text())
    first.write_text(json.dumps({**record, "rows": 12345}))
    detail = reads.feature_set(small.project, small.settings, "driver_stats")
    assert [m.rows for m in detail.materializations] == [7, 12345]
    assert "12345" in small.page("/features/driver_stats")

    second.unlink()
    first.write_text("{ not json")        # a record half written by hand: left out, not a failure
    assert reads.feature_set(small.project, small.settings, "driver_stats").materializations == []
    assert reads.lineage_records(small.settings.runs_dir) == []


def test_a_new_commit_shows_as_the_table_version(small: Small) -> None:
    small.commit("20260301T120000Z-run00001")
    assert reads.feature_set(small.project, small.settings, "driver_stats").table_version == 0
    assert "version 0" in small.page("/features/driver_stats")
    small.commit("20260301T130000Z-run00002", mode="append")
    assert reads.feature_set(small.project, small.settings, "driver_stats").table_version == 1
    assert "version 1" in small.page("/features/driver_stats")


def test_a_table_written_anew_names_its_new_producer(small: Small) -> None:
    small.commit("20260301T120000Z-run00001")
    small.materialized("20260301T130000Z-mat00001", 0)
    found = reads.feature_set(small.project, small.settings, "driver_stats").materializations
    assert [m.job_run_id for m in found] == ["20260301T120000Z-run00001"]

    shutil.rmtree(small.job.spec.output.path)                # dropped and written again: version 0 anew
    small.commit("20260301T150000Z-run00009")
    found = reads.feature_set(small.project, small.settings, "driver_stats").materializations
    assert [m.job_run_id for m in found] == ["20260301T150000Z-run00009"]
    assert "/runs/20260301T150000Z-run00009" in small.page("/features/driver_stats")


def test_the_manifest_follows_the_job_file_and_the_conf(small: Small) -> None:
    env, manifest = reads.job_manifest(small.project, small.settings, "driver_stats")
    assert env == "k8s" and "image: registry.example.com/featurekit-jobs:0.1.0" in manifest

    conf = small.project.root / "conf" / "k8s" / "featurekit.yaml"
    conf.write_text(conf.read_text().replace("featurekit-jobs:0.1.0", "featurekit-jobs:0.2.0"))
    assert "image: registry.example.com/featurekit-jobs:0.2.0" in small.page("/jobs/driver_stats")

    job_file = small.project.root / "jobs" / "driver_stats.yaml"
    job_file.write_text(job_file.read_text().replace("mode: overwrite", "mode: append"))
    changed = load_job(job_file, small.settings.vars, shown_as="jobs/driver_stats.yaml").fingerprint
    assert changed != small.job.fingerprint
    manifest = reads.job_manifest(small.project, small.settings, "driver_stats")[1]
    assert f"featurekit.io/spec-fingerprint: {changed}" in manifest

    typo = conf.read_text()
    conf.write_text(typo.replace("kubernetes:", "kubernetes_typo:", 1))        # no env can render it now
    for _ in range(2):                                   # the error is kept too, and the same each time
        with pytest.raises(ConfigError, match="environment 'local' has no kubernetes: settings"):
            reads.job_manifest(small.project, small.settings, "driver_stats")
    conf.write_text(typo)
    assert reads.job_manifest(small.project, small.settings, "driver_stats")[0] == "k8s"


def test_a_server_reads_the_project_ahead_and_still_sees_changes(small: Small) -> None:
    small.commit("20260301T120000Z-run00001")
    small.materialized("20260301T130000Z-mat00001", 0)
    assert reads.prime(small.project, small.settings) == ["driver_stats"]
    small.commit("20260301T140000Z-run00002", mode="append")          # after the read ahead
    small.materialized("20260301T150000Z-mat00002", 1, rows=9)
    detail = reads.feature_set(small.project, small.settings, "driver_stats")
    assert detail.table_version == 1
    assert [(m.rows, m.job_run_id) for m in detail.materializations] == [
        (9, "20260301T140000Z-run00002"), (2, "20260301T120000Z-run00001")]
