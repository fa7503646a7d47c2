"""The run log: ``featurekit runs`` lists the newest reports of every job (or of one), never
the lineage records kept beside them, and tells a mistyped job from one without runs; a run
whose process ended without finishing it is recorded as interrupted, never left running."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from featurekit.errors import ConfigError
from featurekit.pipeline import RunResult, list_runs, read_run
from featurekit.pipeline.report import INTERRUPTED, RUNNING, open_runs, this_process, write_report


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


# --------------------------------------------------------------------------- interrupted runs


def running_report(runs: Path, job: str, run_id: str, owner: dict) -> RunResult:
    result = RunResult(run_id=run_id, job=job, fingerprint="f", env="local", started_at=run_id[:16], owner=owner)
    write_report(runs, result)
    return result


def dead_owner() -> dict:
    """The owner of a run whose process was killed (a real process, SIGKILLed and reaped)."""
    import subprocess
    import sys

    import psutil

    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    owner = {"host": this_process()["host"], "pid": process.pid, "pid_started": psutil.Process(process.pid).create_time()}
    process.kill()
    process.wait()
    return owner


def test_a_run_whose_process_is_gone_is_listed_as_interrupted_and_stays_so(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    running_report(runs, "hourly", "20261127T010000Z-00000001", dead_owner())
    running_report(runs, "hourly", "20261127T020000Z-00000002", this_process())  # this test's own process: alive

    listed = {r["run_id"][9:11]: r for r in list_runs(runs, "hourly")}
    assert listed["01"]["status"] == INTERRUPTED and listed["02"]["status"] == RUNNING
    assert listed["01"]["exit_code"] == 1 and "ended before the run finished" in listed["01"]["error"]
    on_disk = json.loads((runs / "hourly" / "20261127T010000Z-00000001.json").read_text())
    assert on_disk["status"] == INTERRUPTED and on_disk["interrupted_found_at"]  # recorded, not only shown
    assert read_run(runs, "20261127T01")["status"] == INTERRUPTED
    # both stay open until a run of the job settles them; the next run reads only the open ones
    assert sorted(r["status"] for r in open_runs(runs, "hourly")) == [INTERRUPTED, RUNNING]


def test_a_pid_reused_by_another_process_is_not_the_owner(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    reused = {**this_process(), "pid_started": this_process()["pid_started"] - 3600}  # this pid, an hour earlier
    running_report(runs, "hourly", "20261127T010000Z-00000001", reused)
    assert list_runs(runs, "hourly")[0]["status"] == INTERRUPTED


def test_a_run_on_another_host_is_left_running(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    running_report(runs, "hourly", "20261127T010000Z-00000001", {"host": "elsewhere.example", "pid": 1, "pid_started": 0})
    assert list_runs(runs, "hourly")[0]["status"] == RUNNING


def test_a_finished_run_is_closed_and_a_report_is_never_half_written(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    result = running_report(runs, "hourly", "20261127T010000Z-00000001", this_process())
    assert [p.name for p in (runs / "hourly" / ".open").iterdir()] == [result.run_id]
    result.status = "succeeded"
    write_report(runs, result)
    assert not list((runs / "hourly" / ".open").iterdir()) and open_runs(runs, "hourly") == []
    # written whole through a temporary file, which is gone afterwards
    assert sorted(p.name for p in (runs / "hourly").iterdir()) == [".open", f"{result.run_id}.json"]
    assert json.loads((runs / "hourly" / f"{result.run_id}.json").read_text())["status"] == "succeeded"
