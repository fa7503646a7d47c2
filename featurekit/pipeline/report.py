"""Run reports: what a run did, in numbers, as JSON under the run-log folder; and reading
them back for ``featurekit runs``.

A report never holds a secret (:mod:`featurekit.redaction`): it is masked when written (an error
message may carry a URL with its password) and again when read, for reports written before.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
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

    def to_json(self) -> str:
        """The report as written to the run log, secrets masked."""
        return json.dumps(redact(asdict(self)), indent=2, default=str)


def write_report(runs_dir: Path, result: RunResult) -> Path | None:
    """Write the run's JSON report to ``<runs>/<job>/<run_id>.json``; never fails the run."""
    folder = runs_dir / result.job
    try:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{result.run_id}.json"
        result.report_path = str(path)
        path.write_text(result.to_json() + "\n", encoding="utf-8")
        return path
    except OSError:
        return None


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
            reports.append(redact(report))
    return reports


def read_run(runs_dir: Path, run_id: str) -> dict[str, Any]:
    """One report by run id (a unique prefix is enough)."""
    matches = sorted(runs_dir.glob(f"*/{run_id}*.json"))
    if len(matches) != 1:
        what = "no run" if not matches else f"{len(matches)} runs"
        raise ConfigError.single(f"{what} with id {run_id!r} under {runs_dir}", file=str(runs_dir))
    return redact(json.loads(matches[0].read_text(encoding="utf-8")))


def read_report(runs_dir: Path, job: str, run_id: str) -> dict[str, Any] | None:
    """The report of run ``run_id`` of ``job`` (None if the run log does not hold it, or it is unreadable)."""
    path = Path(runs_dir) / job / f"{run_id}.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return redact(data) if isinstance(data, dict) else None
