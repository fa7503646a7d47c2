"""As a user would: the CLI and spark-submit on a copy of the example project.

Each run here starts its own JVM, as `featurekit run` and `spark-submit` do for users.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from deltalake import DeltaTable

from tests.conftest import REPO

FEATUREKIT = [str(Path(sys.executable).parent / "featurekit")]
DATA_END = "2026-01-15T00:00:00Z"  # the generated trips end there


def _env(root: Path) -> dict[str, str]:
    return {
        **os.environ,
        "FEATUREKIT_JARS_DIR": str(REPO / ".featurekit" / "jars"),
        "PYTHONPATH": "",
    }


def _cli(root: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*FEATUREKIT, *args], cwd=cwd or root, env=_env(root), capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example project (conf/ + jobs/) with a small generated raw data set."""
    root = tmp_path_factory.mktemp("e2e") / "shop"
    root.mkdir()
    for folder in ("conf", "jobs"):
        subprocess.run(["cp", "-r", str(REPO / folder), str(root / folder)], check=True)
    done = _cli(root, "generate-demo-data", "--rows", "4000")
    assert done.returncode == 0, done.stderr
    return root


def test_validate_plan_run_show(project: Path) -> None:
    nested = project / "jobs"  # found from a subfolder, like git
    done = _cli(project, "validate", cwd=nested)
    assert done.returncode == 0, done.stderr
    assert "2 job(s) valid" in done.stdout

    done = _cli(project, "run", "driver_profile")
    assert done.returncode == 0, done.stderr
    assert "written" in done.stdout
    profile = DeltaTable(str(project / "data" / "lake" / "driver_profile"))
    manifest = json.loads((project / "data" / "raw" / "_manifest.json").read_text())
    frame = profile.to_pandas()
    assert frame["driver_id"].is_unique
    assert len(frame) == manifest["drivers"]

    done = _cli(project, "run", "driver_hourly_stats", "--end", DATA_END)
    assert done.returncode == 0, done.stderr
    stats = DeltaTable(str(project / "data" / "lake" / "driver_hourly_stats"))
    first = stats.to_pandas().sort_values(["driver_id", "event_ts"]).reset_index(drop=True)
    assert stats.version() == 0
    assert not first.duplicated(["driver_id", "event_ts"]).any()
    # the dirty rows are counted or quarantined, not lost:
    # read = malformed (quarantined) + dropped by each filter/dedup + aggregated
    report = json.loads(max((project / ".featurekit" / "runs" / "driver_hourly_stats").glob("*.json")).read_text())
    assert report["status"] == "succeeded"
    read = report["sources"][0]["rows_read"]
    assert read == manifest["trips_rows"]
    assert report["sources"][0]["rows_malformed"] == manifest["bad_timestamp"]
    dropped = {s["index"]: s["dropped"] for s in report["steps"]}
    assert dropped[0] == manifest["null_driver_id"]
    assert dropped[1] == manifest["negative_fare"]
    assert dropped[2] == manifest["duplicate_trip_id"]
    assert first["trips_1h"].sum() == read - manifest["bad_timestamp"] - sum(dropped[i] for i in (0, 1, 2))
    quarantine = DeltaTable(str(project / "data" / "lake" / "driver_hourly_stats_quarantine")).to_pandas()
    assert len(quarantine) == manifest["bad_timestamp"]
    assert quarantine["_fk_raw"].notna().all() and set(quarantine["_fk_source"]) == {"trips"}

    # the incremental job's rerun recomputes its last interval (the 2 days of lookback) from
    # the same input: the same contents in a new version
    assert report["incremental"]["watermark_after"] == DATA_END
    done = _cli(project, "run", "driver_hourly_stats", "--end", DATA_END)
    assert done.returncode == 0, done.stderr
    rerun = json.loads(max((project / ".featurekit" / "runs" / "driver_hourly_stats").glob("*.json")).read_text())
    assert rerun["incremental"]["interval"] == "(2026-01-13T00:00:00Z, 2026-01-15T00:00:00Z]"
    assert "(2026-01-13T00:00:00Z, 2026-01-15T00:00:00Z]" in done.stdout
    stats = DeltaTable(str(project / "data" / "lake" / "driver_hourly_stats"))
    assert stats.version() == 1
    again = stats.to_pandas().sort_values(["driver_id", "event_ts"]).reset_index(drop=True)
    assert again.equals(first)
    # ... and the quarantine holds each bad record once: the rerun took only rows without a
    # time from files that arrived since the first run (none)
    assert rerun["sources"][0]["rows_malformed"] == 0 and not rerun["quarantine"]
    quarantine = DeltaTable(str(project / "data" / "lake" / "driver_hourly_stats_quarantine"))
    assert len(quarantine.to_pandas()) == manifest["bad_timestamp"]

    done = _cli(project, "show", "driver_hourly_stats", "--limit", "2")
    assert done.returncode == 0, done.stderr
    assert "version 1" in done.stdout and "WRITE" in done.stdout
    assert f"{len(first):,} rows" in done.stdout and "first 2 rows" in done.stdout


def test_spark_submit_runs_the_planned_command(project: Path, tmp_path: Path) -> None:
    """`featurekit plan` prints the spark-submit command; run exactly that, from elsewhere."""
    from featurekit import pipeline
    from featurekit.config import Project

    os.environ["FEATUREKIT_JARS_DIR"] = str(REPO / ".featurekit" / "jars")
    try:
        proj = Project(project)
        job, settings = pipeline.load(proj, "driver_hourly_stats", "local")
        command = pipeline.submit_command(proj, job, settings)
    finally:
        del os.environ["FEATUREKIT_JARS_DIR"]
    planned = _cli(project, "plan", "driver_hourly_stats")
    assert planned.returncode == 0
    assert command[-7].endswith("featurekit/entrypoint.py")
    assert command[-6:] == ["--project", str(project), "run", str(project / "jobs" / "driver_hourly_stats.yaml"), "--env", "local"]
    assert " ".join(command[-6:]) in planned.stdout.replace("\n", "")
    table = project / "data" / "lake" / "driver_hourly_stats"
    before = DeltaTable(str(table)).version() if (table / "_delta_log").exists() else -1
    fresh = _cli(project, "generate-demo-data", "--rows", "4000", "--seed", "8")  # new trips: a real MERGE
    assert fresh.returncode == 0, fresh.stderr
    done = subprocess.run(command, cwd=tmp_path, env=_env(project), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "written" in done.stdout
    assert DeltaTable(str(table)).version() == before + 1


def _one_column_job(jobs: Path, name: str, expression: str) -> None:
    """``jobs/<name>.yaml``: the raw trips plus one column ``x`` computed by ``expression``."""
    (jobs / f"{name}.yaml").write_text(
        f"name: {name}\n"
        "sources:\n"
        "  trips: {format: csv, path: \"${raw_root}/trips\", options: {header: true}}\n"
        "steps:\n"
        f"  - with_columns: {{x: \"{expression}\"}}\n"
        f"output: {{path: \"${{lake_root}}/{name}\"}}\n"
    )


def test_exit_codes(project: Path) -> None:
    jobs = project / "jobs"
    (jobs / "broken.yaml").write_text("name: broken\nsources: {}\noutput: {path: x, mode: upsert}\n")
    done = _cli(project, "validate")
    assert done.returncode == 2
    assert "jobs/broken.yaml:2:10 sources: must not be empty" in done.stderr
    assert ("jobs/broken.yaml:3:25 output.mode: expected one of 'overwrite', 'append', 'merge', "
            "'replace_partitions'; got 'upsert' — did you mean 'merge'?") in done.stderr
    (jobs / "broken.yaml").unlink()

    _one_column_job(jobs, "boom", "if(trip_id IS NOT NULL, raise_error('bad row'), 'ok')")
    done = _cli(project, "run", "boom")
    assert done.returncode == 3, done.stderr[-2000:]
    assert "bad row" in done.stderr
    assert not (project / "data" / "lake" / "boom").exists()
    (jobs / "boom.yaml").unlink()

    # a step Spark cannot analyse: one line at the step, no log of PySpark's own (see --debug)
    _one_column_job(jobs, "nocol", "no_such_column + 1")
    done = _cli(project, "run", "nocol")
    assert done.returncode == 2, done.stderr[-2000:]
    assert "jobs/nocol.yaml:5:5 steps[0].with_columns: Spark cannot apply this step: [UNRESOLVED_COLUMN" in done.stderr
    assert "SQLQueryContextLogger" not in done.stderr and "Traceback" not in done.stderr
    (jobs / "nocol.yaml").unlink()

    # the gate refuses: strict policy, and the raw trips have unparsable timestamps
    (jobs / "strict.yaml").write_text(
        "name: strict\n"
        "sources:\n"
        "  trips:\n"
        "    format: csv\n"
        "    path: \"${raw_root}/trips\"\n"
        "    options: {header: true}\n"
        "    schema: {trip_id: string, driver_id: long, fare: double, distance_km: double,\n"
        "             city: string, payment_type: string, event_ts: timestamp}\n"
        "validate:\n"
        "  policy: strict\n"
        "  columns:\n"
        "    fare: {checks: {ge: 0}}\n"
        "output: {path: \"${lake_root}/strict\"}\n"
    )
    done = _cli(project, "run", "strict")
    assert done.returncode == 3, done.stderr[-2000:]
    assert "validation gate failed: policy strict:" in done.stderr
    assert "nothing was written" in done.stderr
    assert "fare: ge — must be >= 0" in done.stderr
    manifest = json.loads((project / "data" / "raw" / "_manifest.json").read_text())
    assert (f"{manifest['negative_fare']} row(s) break the checks, "
            f"{manifest['bad_timestamp']} source record(s) do not parse") in done.stderr
    assert not (project / "data" / "lake" / "strict").exists()
    assert not (project / "data" / "lake" / "strict_quarantine").exists()
    listed = _cli(project, "runs", "strict")
    assert listed.returncode == 0 and "failed 3" in listed.stdout
    (jobs / "strict.yaml").unlink()

    done = _cli(project, "run", "driver_hourly_stat")
    assert done.returncode == 2
    assert "did you mean 'driver_hourly_stats'" in done.stderr
