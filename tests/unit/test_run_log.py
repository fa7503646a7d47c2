"""The run log: ``featurekit runs`` lists the newest reports of every job (or of one), never
the lineage records kept beside them, and tells a mistyped job from one without runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from featurekit.errors import ConfigError
from featurekit.pipeline import RunResult, list_runs
from featurekit.pipeline.report import write_report


def report(runs: Path, job: str, run_id: str) -> None:
    write_report(runs, RunResult(run_id=run_id, job=job, fingerprint="f", env="local", started_at=run_id[:16]))


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    """Two jobs' reports in mixed order, lineage records (newer than any run) beside them,
    and a report cut short by a full disk."""
    runs = tmp_path / "runs"
    for job, hour in [("hourly", 3), ("profile", 1), ("hourly", 0), ("profile", 4), ("hourly", 2)]:
        report(runs, job, f"20261127T0{hour}0000Z-0000000{hour}")
    (runs / "lineage").mkdir()
    for n in range(3):
        (runs / "lineage" / f"feature_set-20261128T00000{n}Z-aaaa-hourly.json").write_text(
            json.dumps({"kind": "feature_set", "run_id": f"20261128T00000{n}Z-aaaa"}))
    (runs / "hourly" / "20261126T230000Z-00000009.json").write_text('{"run_id": ')
    return runs


def ids(found: list[dict]) -> list[str]:
    return [r["run_id"][9:11] for r in found]  # the hour


def test_newest_runs_first_across_jobs_without_lineage_records(runs: Path) -> None:
    assert ids(list_runs(runs)) == ["04", "03", "02", "01", "00"]
    assert ids(list_runs(runs, limit=2)) == ["04", "03"]
    assert ids(list_runs(runs, limit=50)) == ["04", "03", "02", "01", "00"]  # the unreadable report skipped


def test_one_jobs_runs(runs: Path) -> None:
    assert ids(list_runs(runs, "hourly")) == ["03", "02", "00"]
    assert [r["job"] for r in list_runs(runs, "profile", limit=1)] == ["profile"]


def test_a_job_without_runs_is_named_with_a_suggestion(runs: Path) -> None:
    with pytest.raises(ConfigError) as info:
        list_runs(runs, "hourli")
    assert "no runs recorded for job 'hourli'" in str(info.value) and "hourly" in str(info.value)
