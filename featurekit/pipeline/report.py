"""Run reports: what a run did, in numbers, as JSON under the run-log folder; and reading
them back for ``featurekit runs``.

A run's report is written when it starts (status ``running``, with its ``owner``: host, pid
and the process's start time) and again when it ends. A run killed on the way (SIGKILL, an
out-of-memory kill, a lost machine) never writes its end: whoever reads the report next on the
same host finds its process gone and records it as ``interrupted``. While it runs, a run also
has a file named by its id in ``<runs>/<job>/.open/``; the next run of the job reads only those
(:func:`open_runs`), settles what the interrupted ones left (see
:mod:`featurekit.pipeline.recovery`) and closes them.

A report never holds a secret (:mod:`featurekit.redaction`): it is masked when written (an error
message may carry a URL with its password) and again when read, for reports written before.
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from featurekit import __version__
from featurekit.errors import ConfigError
from featurekit.redaction import redact
from featurekit.yamlconf.names import did_you_mean


@dataclass
class StepCount:
    index: int
    op: str
    rows_in: int | None
    rows_out: int | None
    dropped: int | None
    note: str = ""


@dataclass
class RunResult:
    """What a run did, in numbers; also written as JSON under the run-log folder."""

    run_id: str
    job: str
    fingerprint: str
    env: str
    started_at: str
    status: str = "running"
    sources: list[dict[str, Any]] = field(default_factory=list)
    steps: list[StepCount] = field(default_factory=list)
    rows_out: int | None = None           # rows entering the gate
    rows_written: int | None = None
    rows_quarantined: int | None = None   # refused by the checks (malformed source records are per source)
    gate: dict[str, Any] = field(default_factory=dict)
    quarantine: dict[str, Any] = field(default_factory=dict)
    incremental: dict[str, Any] = field(default_factory=dict)  # interval, watermark before and after
    output_path: str = ""
    mode: str = ""
    table_version: int | None = None
    commit_operation: str = ""
    commit_metrics: dict[str, Any] = field(default_factory=dict)
    durations: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)  # e.g. source values read at a lower precision
    error: str = ""
    exit_code: int = 0
    # each time another writer committed first: the version it made, and whether this run ran again
    conflicts: list[dict[str, Any]] = field(default_factory=list)
    report_path: str = ""
    featurekit_version: str = __version__
    owner: dict[str, Any] = field(default_factory=dict)       # host, pid, pid_started: the process running it
    recovered: list[dict[str, Any]] = field(default_factory=list)  # interrupted runs of the job this run settled

    def to_json(self) -> str:
        """The report as written to the run log, secrets masked."""
        return json.dumps(redact(asdict(self)), indent=2, default=str)


RUNNING, INTERRUPTED = "running", "interrupted"
OPEN = ".open"


def this_process() -> dict[str, Any]:
    """The owner of a run started here: host, pid, and the process's start time (a pid is
    reused; the pair is not)."""
    import psutil

    return {"host": socket.gethostname(), "pid": os.getpid(), "pid_started": psutil.Process().create_time()}


def owner_alive(owner: dict[str, Any]) -> bool | None:
    """Whether the process that owns a run still runs: None when it ran on another host (or
    the report does not say), which this one cannot look at."""
    import psutil

    if not owner or owner.get("host") != socket.gethostname() or not isinstance(owner.get("pid"), int):
        return None
    try:
        started = psutil.Process(owner["pid"]).create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return False
    return abs(started - float(owner.get("pid_started") or 0)) < 1.0


def write_report(runs_dir: Path, result: RunResult) -> Path | None:
    """Write the run's JSON report to ``<runs>/<job>/<run_id>.json``; never fails the run.
    A running run also gets its file in ``.open/``; a finished one loses it."""
    folder = runs_dir / result.job
    try:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{result.run_id}.json"
        result.report_path = str(path)
        _replace(path, result.to_json() + "\n")
        if result.status == RUNNING:  # after the report: an open run always has one to read
            (folder / OPEN).mkdir(exist_ok=True)
            (folder / OPEN / result.run_id).touch()
        else:
            close_run(runs_dir, result.job, result.run_id)
        return path
    except OSError:
        return None


def _replace(path: Path, text: str) -> None:
    """Write ``path`` whole or not at all (a kill while writing leaves the previous report)."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as sink:
            sink.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def settle(report: dict[str, Any], path: Path | None = None) -> dict[str, Any]:
    """A report that says ``running`` whose process has ended without finishing it: marked
    ``interrupted`` (and written back to ``path``, so it is said once and stays said)."""
    if report.get("status") != RUNNING or owner_alive(report.get("owner") or {}) is not False:
        return report
    owner = report.get("owner") or {}
    report.update(
        status=INTERRUPTED, exit_code=report.get("exit_code") or 1,
        error=report.get("error") or (f"interrupted: process {owner.get('pid')} on {owner.get('host')} ended "
                                      "before the run finished (killed or crashed)"),
        interrupted_found_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    if path is not None:
        try:
            _replace(path, json.dumps(report, indent=2, default=str) + "\n")
        except OSError:
            pass
    return report


def open_runs(runs_dir: Path, job: str) -> list[dict[str, Any]]:
    """The reports of ``job``'s runs still open (in ``.open/``), each settled: the runs still
    running and those found interrupted."""
    folder = runs_dir / job
    found = []
    for marker in sorted((folder / OPEN).glob("*")):
        path = folder / f"{marker.name}.json"
        try:
            report = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            report = None
        if not isinstance(report, dict):  # its report deleted or damaged by hand: nothing to settle
            close_run(runs_dir, job, marker.name)
            continue
        found.append(settle(report, path))
    return found


def close_run(runs_dir: Path, job: str, run_id: str) -> None:
    (runs_dir / job / OPEN / run_id).unlink(missing_ok=True)


def update_report(runs_dir: Path, job: str, run_id: str, **fields: Any) -> None:
    """Add ``fields`` to a run's report as written (what a later run found of it)."""
    path = runs_dir / job / f"{run_id}.json"
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
        report.update(fields)
        _replace(path, json.dumps(report, indent=2, default=str) + "\n")
    except (OSError, ValueError, AttributeError):
        pass


def list_runs(runs_dir: Path, job: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
    """The newest reports first. A report is named by its run id, which starts with the run's
    UTC start time: the names are sorted and only the newest reports are read (the run log
    keeps every run; reading them all took 1.5 s at 20,000)."""
    folders = [runs_dir / job] if job else sorted(p for p in runs_dir.glob("*") if p.is_dir())
    if job and not (runs_dir / job).is_dir():
        known = sorted(p.name for p in runs_dir.glob("*") if p.is_dir())
        raise ConfigError.single(f"no runs recorded for job {job!r}" + did_you_mean(job, known), file=str(runs_dir))
    paths = [path for folder in folders for path in folder.glob("*.json")]
    # run ids (a digit first) newest first; other files (the lineage records beside them) last
    paths.sort(key=lambda p: (p.stem[:1].isdigit(), p.stem), reverse=True)
    reports: list[dict[str, Any]] = []
    for path in paths:
        if len(reports) >= limit:
            break
        try:
            report = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(report, dict) and "kind" not in report:  # lineage records live alongside
            reports.append(redact(settle(report, path)))
    return reports


def read_run(runs_dir: Path, run_id: str) -> dict[str, Any]:
    """One report by run id (a unique prefix is enough)."""
    matches = sorted(runs_dir.glob(f"*/{run_id}*.json"))
    if len(matches) != 1:
        what = "no run" if not matches else f"{len(matches)} runs"
        raise ConfigError.single(f"{what} with id {run_id!r} under {runs_dir}", file=str(runs_dir))
    return redact(settle(json.loads(matches[0].read_text(encoding="utf-8")), matches[0]))


def read_report(runs_dir: Path, job: str, run_id: str) -> dict[str, Any] | None:
    """The report of run ``run_id`` of ``job`` (None if the run log does not hold it, or it is unreadable)."""
    path = Path(runs_dir) / job / f"{run_id}.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return redact(data) if isinstance(data, dict) else None
