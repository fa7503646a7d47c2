"""As a user would: incremental runs and backfills through the CLI, each its own JVM.

A backfill killed with SIGKILL mid-way (the JVM with it) and run again resumes from the chunks
the table says were committed, and ends equal to one full run; two runs of one job started at
once never process an interval twice. The trips are generated (seeded) as one small CSV file;
the tables are read with delta-rs.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from deltalake import DeltaTable

from tests.conftest import REPO

FEATUREKIT = [str(Path(sys.executable).parent / "featurekit")]
START = datetime(2026, 3, 1, tzinfo=UTC)
END = START + timedelta(hours=36)  # a backfill of (START, END] in 6h batches: 6 chunks
CHUNKS = 6


def _env(root: Path) -> dict[str, str]:
    return {
        **os.environ,
        "FEATUREKIT_JARS_DIR": str(REPO / ".featurekit" / "jars"),
        "PYTHONPATH": "",
        "COLUMNS": "200",  # rich's tables one line per row when not on a terminal
    }


def _cli(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*FEATUREKIT, *args], cwd=root, env=_env(root), capture_output=True, text=True, timeout=600)


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def job_text(name: str, incremental: bool = True) -> str:
    block = "incremental: {time_column: event_ts, lookback: 6h}\n" if incremental else ""
    return f"""
name: {name}
sources:
  trips:
    format: csv
    path: ${{raw_root}}/trips
    options: {{header: true}}
    schema: {{trip_id: string, driver_id: long, fare: double, event_ts: timestamp}}
{block}steps:
  - filter: "driver_id IS NOT NULL AND event_ts IS NOT NULL"
  - filter: "fare >= 0"
  - dedup: {{keys: [trip_id], order_by: event_ts}}
  - aggregate:
      keys: [driver_id]
      timestamp: event_ts
      every: 1h
      windows: [1h, 6h]
      metrics:
        trips: "count(*)"
        fare_sum: "sum(fare)"
        fare_avg: "avg(fare)"
        fare_max: "max(fare)"
      expire: true
validate: {{max_bad_fraction: 0.1}}
output:
  path: ${{lake_root}}/{name}
  mode: merge
  keys: [driver_id, event_ts]
"""


def write_trips(root: Path, seed: int, trips: int = 300) -> int:
    """``data/raw/trips/trips.csv``: trips in (START, END - 1h], plus negative fares, trips
    without a driver, exact duplicates, corrections (a later time in the same hour, another
    fare: ``dedup`` keeps them) and records whose time does not parse. Integral fares keep
    every sum exact whatever order Spark adds them in. Returns the unparsable records' count."""
    rng = random.Random(seed)
    lines = ["trip_id,driver_id,fare,event_ts"]
    for number in range(trips):
        hour = START + timedelta(hours=rng.randrange(0, 35))
        moment = hour + timedelta(seconds=rng.randrange(1, 1800))  # never on a bucket's edge
        driver = "" if number % 41 == 0 else str(rng.randrange(1, 6))
        fare = -rng.randrange(1, 9) if number % 37 == 0 else rng.randrange(0, 60)
        lines.append(f"t{number},{driver},{fare},{_iso(moment)}")
        if number % 29 == 0:
            lines.append(lines[-1])
        if number % 13 == 0 and driver:
            later = moment + timedelta(seconds=rng.randrange(60, 1700))
            lines.append(f"t{number},{driver},{rng.randrange(0, 60)},{_iso(later)}")
    bad = 3
    lines += [f"bad{i},1,5,not-a-time" for i in range(bad)]
    folder = root / "data" / "raw" / "trips"
    folder.mkdir(parents=True)
    (folder / "trips.csv").write_text("\n".join(lines) + "\n")
    return bad


def rows(root: Path, name: str) -> list[dict[str, Any]]:
    """The table's rows read by delta-rs, sorted by every column (nulls last)."""
    found = DeltaTable(str(root / "data" / "lake" / name)).to_pyarrow_table().to_pylist()
    return sorted(found, key=lambda row: tuple((value is None, value) for value in row.values()))


def reports(root: Path, job: str) -> list[dict[str, Any]]:
    """The run reports of ``job`` written so far (one being written is not yet one)."""
    found = []
    for path in (root / ".featurekit" / "runs" / job).glob("*.json"):
        try:
            found.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
    return found


def succeeded_chunks(root: Path, job: str) -> list[dict[str, Any]]:
    return [r for r in reports(root, job)
            if r.get("status") == "succeeded" and (r.get("incremental") or {}).get("kind") == "backfill"]


def statuses(table_output: str) -> list[str]:
    """The status column of ``featurekit backfill``'s chunk table, chunk by chunk."""
    return re.findall(r"\]\s*│?\s*(done before|planned|committed)\b", table_output)


def test_backfill_killed_then_resumed_equals_a_full_run(make_project: Callable[..., Path]) -> None:
    root = make_project({"trips_inc": job_text("trips_inc"), "trips_full": job_text("trips_full", incremental=False)})
    write_trips(root, seed=21)
    command = ["backfill", "trips_inc", "--start", _iso(START), "--end", _iso(END), "--batch", "6h"]

    # the first attempt: killed (kill -9, its JVM too) once a chunk has committed
    log = root / "first-attempt.log"
    with log.open("w") as sink:
        process = subprocess.Popen([*FEATUREKIT, *command], cwd=root, env=_env(root), stdout=sink, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        try:
            deadline = time.monotonic() + 240
            while process.poll() is None and not succeeded_chunks(root, "trips_inc") and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=60)
    reported = len(succeeded_chunks(root, "trips_inc"))
    assert reported, f"no chunk committed within 240 s:\n{log.read_text()[-3000:]}"
    if process.returncode >= 0:  # finished before the kill: then it finished well (and resumes nothing below)
        assert process.returncode == 0 and reported == CHUNKS, log.read_text()[-3000:]

    # a kill leaves the table at a committed version, readable by another reader
    table = DeltaTable(str(root / "data" / "lake" / "trips_inc"))
    assert table.version() >= 0
    assert table.to_pyarrow_table().num_rows > 0

    # the plan shows what the table remembers: a chunk whose report exists was committed
    plan = _cli(root, *command, "--dry-run")
    assert plan.returncode == 0, plan.stderr[-3000:]
    planned = statuses(plan.stdout)
    assert len(planned) == CHUNKS, plan.stdout
    done_before = planned.count("done before")
    assert planned == ["done before"] * done_before + ["planned"] * (CHUNKS - done_before)
    assert 1 <= reported <= done_before  # a chunk may commit and be killed before its report
    assert DeltaTable(str(root / "data" / "lake" / "trips_inc")).version() == table.version() == done_before - 1

    # the same command again runs only the rest
    again = _cli(root, *command)
    assert again.returncode == 0, again.stderr[-3000:]
    chunks = statuses(again.stdout)
    assert chunks == ["done before"] * done_before + ["committed"] * (CHUNKS - done_before), again.stdout
    assert DeltaTable(str(root / "data" / "lake" / "trips_inc")).version() == CHUNKS - 1  # one commit a chunk
    assert len(succeeded_chunks(root, "trips_inc")) == reported + CHUNKS - done_before
    ends = sorted(r["incremental"]["end"] for r in succeeded_chunks(root, "trips_inc"))
    assert len(set(ends)) == len(ends)  # no chunk reported twice

    full = _cli(root, "run", "trips_full", "--end", _iso(END))
    assert full.returncode == 0, full.stderr[-3000:]
    expected = rows(root, "trips_full")
    assert any(r["trips_1h"] == 0 for r in expected)  # expiry rows are compared too
    assert rows(root, "trips_inc") == expected

    # a completed backfill run again commits nothing
    version = DeltaTable(str(root / "data" / "lake" / "trips_inc")).version()
    third = _cli(root, *command)
    assert third.returncode == 0, third.stderr[-3000:]
    assert statuses(third.stdout) == ["done before"] * CHUNKS, third.stdout
    assert DeltaTable(str(root / "data" / "lake" / "trips_inc")).version() == version
    assert rows(root, "trips_inc") == expected


def test_two_runs_at_once_process_nothing_twice(make_project: Callable[..., Path]) -> None:
    root = make_project({"trips_inc": job_text("trips_inc"), "trips_full": job_text("trips_full", incremental=False)})
    bad = write_trips(root, seed=5)
    command = [*FEATUREKIT, "run", "trips_inc", "--end", _iso(END)]
    both = [subprocess.Popen(command, cwd=root, env=_env(root), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             start_new_session=True) for _ in range(2)]
    outputs = [p.communicate(timeout=600) for p in both]
    outcomes = [(p.returncode, out, err) for p, (out, err) in zip(both, outputs)]
    for code, out, err in outcomes:
        assert code == 0 or (code == 1 and "another" in err), f"exit {code}\n{out[-2000:]}\n{err[-3000:]}"
    winners = [code for code, _, _ in outcomes if code == 0]
    assert winners, outcomes

    full = _cli(root, "run", "trips_full", "--end", _iso(END))
    assert full.returncode == 0, full.stderr[-3000:]
    assert rows(root, "trips_inc") == rows(root, "trips_full")
    # each committed run is one commit, and each bad record is quarantined once
    history = DeltaTable(str(root / "data" / "lake" / "trips_inc")).history()
    assert len(history) == len(winners)
    quarantine = DeltaTable(str(root / "data" / "lake" / "trips_inc_quarantine")).to_pandas()
    assert len(quarantine) == bad
