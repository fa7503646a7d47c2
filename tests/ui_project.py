"""A small project for the `featurekit ui` tests, made without Spark (shared by the TestClient and
the browser tests).

Three job files (one a feature view with an extra service, one never materialized, one with a
password in its spec), the feature view's Delta table written twice with delta-rs (each commit
carrying its run's ``userMetadata`` as featurekit writes it), its quarantine table, three run
reports written as featurekit writes them (two succeeded, one failed), and a materialization of
table version 1 in the run log, whose newest online value is long past the view's ttl (stale).
"""

from __future__ import annotations

import json
import shutil
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
from deltalake import CommitProperties, write_deltalake

from featurekit.config import Project, Settings, load_settings
from featurekit.lineage import RunLogLineage
from featurekit.lineage.records import FeatureSetRecord
from featurekit.pipeline.report import RunResult, StepCount, write_report
from featurekit.spec.loader import LoadedJob, load_job
from tests.conftest import REPO

SPEC_PASSWORD = "pw-71c4-never-in-a-page"

STATS_JOB = """
name: driver_stats
description: Hourly conversion and trip counts per driver.
owner: mobility-data
sources:
  stats: {format: parquet, path: "${raw_root}/stats"}
steps:
  - filter: "driver_id IS NOT NULL"
output:
  path: ${lake_root}/driver_stats
  mode: overwrite
features:
  entity: driver
  join_keys: [driver_id]
  timestamp: event_ts
  ttl: 1d
  description: How often a driver accepts a ride.
  tags: {team: mobility}
  services:
    driver_rates: ["driver_stats:conv_rate"]
"""

TRIPS_JOB = """
name: driver_trips
description: Trips per driver, written but never materialized.
owner: mobility-data
sources:
  trips: {format: parquet, path: "${raw_root}/trips"}
output:
  path: ${lake_root}/driver_trips
features:
  entity: driver
  join_keys: [driver_id]
  timestamp: event_ts
  ttl: 7d
"""

VAULT_JOB = f"""
name: vault_export
description: Not run; its source has a password option.
owner: security
sources:
  accounts:
    format: parquet
    path: "${{raw_root}}/accounts"
    options: {{password: "{SPEC_PASSWORD}"}}
output:
  path: ${{lake_root}}/vault_export
"""

URL_PASSWORD = "url-pw-4e0b-never-in-a-page"

RUN_IDS = ["20260301T100000Z-aaaa0001", "20260301T110000Z-bbbb0002", "20260301T120000Z-cccc0003"]


@dataclass
class UiProject:
    project: Project
    settings: Settings
    job: LoadedJob             # driver_stats, the feature view with runs
    materialization: str       # the run id of its materialization


def report(job: LoadedJob, run_id: str, version: int | None, read: int, dropped: int, bad: int) -> RunResult:
    """A run's report with the numbers a run of the job would write."""
    out = read - dropped
    failed = version is None
    gate = {"policy": "quarantine", "max_bad_fraction": 0.5, "rows_checked": out, "rows_good": out - bad,
            "rows_bad": bad, "rows_malformed": 0, "failed_because": "", "unique": [], "rows_released": 0,
            "schema_errors": [],
            "checks": [{"check": "in_range(0, 1)", "column": "conv_rate", "message": "conv_rate outside [0, 1]",
                        "failures": bad, "examples": [{"driver_id": 7, "conv_rate": 1.7}]}] if bad else []}
    return RunResult(
        run_id=run_id, job=job.name, fingerprint=job.fingerprint, env="local", started_at=f"{run_id[:15]}",
        status="failed" if failed else "succeeded",
        sources=[{"name": "stats", "format": "parquet", "path": "raw/stats", "rows_read": read, "rows_malformed": 0}],
        steps=[StepCount(1, "filter", read, out, dropped)], rows_out=out,
        rows_written=None if failed else out - bad, rows_quarantined=None if failed else bad, gate=gate,
        output_path=job.spec.output.path, mode="overwrite", table_version=version,
        commit_operation="" if failed else "WRITE", commit_metrics={} if failed else {"numOutputRows": out - bad},
        durations={"read": 0.4, "gate": 0.2, "write": 0.9}, exit_code=1 if failed else 0,
        error="InfraError: the lake is not reachable\nmore lines" if failed else "",
    )


def make_ui_project(root: Path, registry_url: str | None = None) -> UiProject:
    """Write the project into ``root`` (a folder that does not exist yet) and return it loaded; its
    Model Registry at ``registry_url`` (asked once, no retries) when given."""
    shutil.copytree(REPO / "conf", root / "conf")
    (root / "jobs").mkdir()
    for name, text in (("driver_stats", STATS_JOB), ("driver_trips", TRIPS_JOB), ("vault_export", VAULT_JOB)):
        (root / "jobs" / f"{name}.yaml").write_text(textwrap.dedent(text).lstrip())
    project = Project(root)
    settings = load_settings(project, "local")
    if registry_url is not None:
        settings = settings.model_copy(update={"registry": settings.registry.model_copy(
            update={"url": registry_url, "retries": 0, "backoff_s": 0.0})})
    job = load_job(root / "jobs" / "driver_stats.yaml", settings.vars, shown_as="jobs/driver_stats.yaml")

    table = pa.table({"driver_id": pa.array([1, 2, 3], pa.int64()), "conv_rate": [0.1, 0.5, 0.9],
                      "trips": pa.array([1, 5, 9], pa.int32()),
                      "event_ts": pa.array([0, 1, 2], pa.timestamp("us", tz="UTC"))})
    for version, run_id in enumerate(RUN_IDS[:2]):
        meta = json.dumps({"job": job.name, "run_id": run_id, "fingerprint": job.fingerprint, "env": "local"})
        write_deltalake(job.spec.output.path, table, mode="overwrite",
                        commit_properties=CommitProperties(custom_metadata={"userMetadata": meta}))
    write_deltalake(str(root / "data" / "lake" / "driver_trips"), table.select(["driver_id", "trips", "event_ts"]))
    quarantine = job.spec.quarantine_path
    reason = pa.struct([("check", pa.string()), ("column", pa.string()), ("message", pa.string())])
    write_deltalake(quarantine, pa.table({
        "driver_id": pa.array([7, None, 8], pa.int64()), "conv_rate": [1.7, None, 2.5],
        "_fk_errors": pa.array([[{"check": "in_range(0, 1)", "column": "conv_rate", "message": "conv_rate outside [0, 1]"}],
                                [{"check": "parse", "column": "stats", "message": "the record does not parse"}],
                                [{"check": "in_range(0, 1)", "column": "conv_rate", "message": "outside"}]],
                               pa.list_(reason)),
        "_fk_source": [None, "stats", None], "_fk_raw": [None, '{"driver_id": "x"}', None],
        "_fk_row_hash": ["h1", "h2", "h3"], "_fk_run_id": [RUN_IDS[0], RUN_IDS[0], "20250101T000000Z-other000"],
        "_fk_quarantined_at": pa.array([0, 0, 0], pa.timestamp("us", tz="UTC"))}))
    first = report(job, RUN_IDS[0], 0, read=5, dropped=1, bad=1)
    first.quarantine = {"path": quarantine, "version": 0, "rows": 2, "inserted": 2}
    write_report(settings.runs_dir, first)
    write_report(settings.runs_dir, report(job, RUN_IDS[1], 1, read=4, dropped=1, bad=0))
    write_report(settings.runs_dir, report(job, RUN_IDS[2], None, read=6, dropped=0, bad=0))
    materialization = "20260301T130000Z-dddd0004"
    RunLogLineage(settings.runs_dir).record_feature_set(FeatureSetRecord(
        run_id=materialization, feast_project=settings.feast.project, feature_view="driver_stats",
        features=["conv_rate", "trips"], job="driver_stats", spec_fingerprint=job.fingerprint,
        delta_path=job.spec.output.path, delta_version=1, window_start="2026-03-01T00:00:00+00:00",
        window_end="2026-03-01T12:30:00+00:00", rows=3, keys=3, online_store="sqlite",
        recorded_at="2026-03-01T13:00:00+00:00", newest_event="2026-03-01T12:00:00+00:00",
        view_schema={"join_keys": {"driver_id": "Int64"}, "timestamp": "event_ts",
                     "features": {"conv_rate": "Float64", "trips": "Int32"}}))
    return UiProject(project, settings, job, materialization)
