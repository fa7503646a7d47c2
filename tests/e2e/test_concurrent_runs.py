"""Two runs of one job at once, as real processes racing on one project.

The race is made, not hoped for: runs started with ``FEATUREKIT_TEST_PAUSE_BEFORE_COMMIT``
(a test hook, :mod:`featurekit.pipeline.conflicts`) read their tables, write their data files
and pause before their commits; another run then commits first, and the paused ones are let
go. Three JVMs at once, one test: two losers (one may run again, one may not) and the winner.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from deltalake import DeltaTable

from featurekit.pipeline.conflicts import PAUSE_ENV
from tests.conftest import REPO
from tests.e2e.test_incremental_cli import FEATUREKIT
from tests.e2e.test_incremental_cli import _env as _plain_env

JOB = """
name: race
sources:
  t: {format: csv, path: "${raw_root}/race", options: {header: true}, schema: {id: long, v: long}}
steps: []
validate:
  columns: {v: {checks: {ge: 0}}}
  max_bad_fraction: 0.5
output: {path: "${lake_root}/race", mode: overwrite}
"""
ROWS = [(1, 10), (2, -2), (3, 30), (4, -4), (5, 50)]


def _env(root: Path) -> dict[str, str]:
    return {**_plain_env(root), "PYTHONPATH": str(REPO)}  # this checkout's featurekit, whatever is installed


def _cli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*FEATUREKIT, *args], cwd=root, env=_env(root), capture_output=True, text=True, timeout=600)


def _paused(folder: Path, process: subprocess.Popen[str], timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not list(folder.glob("paused-*")):
        assert process.poll() is None, f"exit {process.returncode} before its commit:\n{process.communicate()[1][-3000:]}"
        assert time.monotonic() < deadline, "no pause within the timeout"
        time.sleep(0.1)


def _start(root: Path, folder: Path, *args: str) -> subprocess.Popen[str]:
    folder.mkdir()
    return subprocess.Popen([*FEATUREKIT, "run", "race", *args], cwd=root, env={**_env(root), PAUSE_ENV: str(folder)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _reports(root: Path) -> dict[str, dict[str, Any]]:
    """The run reports of the job, by run id."""
    found = (json.loads(p.read_text()) for p in (root / ".featurekit" / "runs" / "race").glob("*.json"))
    return {r["run_id"]: r for r in found}


def _versions(root: Path) -> dict[str, int]:
    return {name: DeltaTable(str(root / "data" / "lake" / name)).version() for name in ("race", "race_quarantine")}


def test_runs_that_lose_a_race_run_again_or_fail_in_one_line(make_project: Callable[..., Path]) -> None:
    root = make_project({"race": JOB})
    base = (root / "conf" / "local" / "featurekit.yaml").read_text()
    (root / "conf" / "noretry").mkdir()
    (root / "conf" / "noretry" / "featurekit.yaml").write_text(base + "concurrency: {retries: 0}\n")
    (root / "data" / "raw" / "race").mkdir(parents=True)
    (root / "data" / "raw" / "race" / "t.csv").write_text("id,v\n" + "".join(f"{a},{b}\n" for a, b in ROWS))

    # both read a table that does not exist yet, write their files and pause before committing
    again = _start(root, root / "pause-again")
    once = _start(root, root / "pause-once", "--env", "noretry")
    _paused(root / "pause-again", again)
    _paused(root / "pause-once", once)
    assert [r["status"] for r in _reports(root).values()] == ["running", "running"]  # reports are written at start

    first = _cli(root, "run", "race")
    assert first.returncode == 0, first.stderr[-3000:]
    [winner] = [run_id for run_id, r in _reports(root).items() if r["status"] == "succeeded"]
    assert _versions(root) == {"race": 0, "race_quarantine": 0}

    # no retry allowed: one line, exit 1, both tables as the winner left them
    (root / "pause-once" / "go").write_text("")
    out, err = once.communicate(timeout=300)
    assert once.returncode == 1, f"{out[-2000:]}\n{err[-3000:]}"
    assert "Traceback" not in err and "\tat " not in err and "Exception" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    assert lines[0].startswith(f"error: another run of race committed version 0 of {root / 'data' / 'lake' / 'race'} "
                               "while this one ran (DELTA_"), err
    assert lines[0].endswith("); nothing of this run was committed"), err
    assert _versions(root) == {"race": 0, "race_quarantine": 0}
    [report] = [r for r in _reports(root).values() if r["status"] == "failed"]
    assert (report["status"], report["exit_code"], report["error"]) == ("failed", 1, lines[0].removeprefix("error: "))
    assert [(c["version"], c["retried"]) for c in report["conflicts"]] == [(0, False)]
    assert "0 retries used" in report["conflicts"][0]["why"]

    # a retry allowed: the run runs again on the table the winner made, and commits after it
    (root / "pause-again" / "go").write_text("")
    out, err = again.communicate(timeout=300)
    assert again.returncode == 0, f"{out[-2000:]}\n{err[-3000:]}"
    [retried] = [r for r in _reports(root).values() if r["run_id"] not in (winner, report["run_id"])]
    assert retried["status"] == "succeeded" and retried["table_version"] == 1
    assert [(c["attempt"], c["version"], c["retried"]) for c in retried["conflicts"]] == [(1, 0, True)]
    assert retried["conflicts"][0]["error"].startswith("another run of race committed version 0")

    # every table at a consistent version: the good rows once, each bad row quarantined once (by the winner)
    assert _versions(root) == {"race": 1, "race_quarantine": 0}
    table = sorted((r["id"], r["v"]) for r in DeltaTable(str(root / "data" / "lake" / "race")).to_pyarrow_table().to_pylist())
    assert table == [(a, b) for a, b in ROWS if b >= 0]
    quarantine = DeltaTable(str(root / "data" / "lake" / "race_quarantine")).to_pyarrow_table().to_pylist()
    assert sorted((r["id"], r["_fk_run_id"]) for r in quarantine) == [(2, winner), (4, winner)]
    assert retried["quarantine"]["inserted"] == 0 and retried["rows_quarantined"] == 2
    history = DeltaTable(str(root / "data" / "lake" / "race")).history()
    assert sorted((h["version"], json.loads(h["userMetadata"])["run_id"]) for h in history) == [
        (0, winner), (1, retried["run_id"])]
