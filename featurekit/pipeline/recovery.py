"""What a run killed on the way left behind, settled by the next run of its job.

Delta's commits are atomic, so a killed run leaves each table at its old or its new version.
One state needs a hand: a run commits its quarantine rows first, then its feature table
(:func:`featurekit.pipeline.core._commit`); killed between the two, the quarantine table holds
rows of a run whose feature commit never happened. The next run of the job (on the same host,
where the run log shows the killed run's process gone, see :mod:`featurekit.pipeline.report`)
takes that quarantine commit back while it is still the table's latest: the killed run then
left nothing anywhere, and the new run quarantines those rows again if its input still holds
them. Once another commit follows it, a later run may have found those rows there and counted
on them (a rerun recognizes rows already quarantined), so they stay. A ``merge`` run killed
before its MERGE also leaves its staging folder in the table (``_fk_staging/<run id>``): removed.
A run killed while it created a table leaves data files in a folder without a commit, which a
run would refuse as "not a Delta table": with no other run of the job running, the folder is
removed (on local disk; on an object store the files stay, unreferenced, and the run refuses
the path until they are deleted).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from featurekit.pipeline.report import INTERRUPTED, RUNNING, RunResult, close_run, open_runs, update_report
from featurekit.sinks.delta import drop_staging
from featurekit.sinks.transaction import is_local, remove_partial
from featurekit.sinks.quarantine import QuarantineCommit, undo_quarantine
from featurekit.spec.loader import LoadedJob

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

# commits looked at, newest first, for those a killed run made (runs of other jobs do not commit
# to these tables; a killed run is found by the next run of its job)
HISTORY = 50


@dataclass(frozen=True)
class Found:
    """The commits of one run in a table's recent history."""

    versions: list[int]
    latest: int | None  # the table's latest version (None: no table)


def interrupted_runs(runs_dir: Path, job: str) -> list[dict[str, Any]]:
    """The reports of ``job``'s runs whose process ended before they did (marked so now)."""
    return [r for r in open_runs(runs_dir, job) if r.get("status") == INTERRUPTED]


def recover(spark: "SparkSession", job: LoadedJob, runs_dir: Path, killed: list[dict[str, Any]],
            result: RunResult) -> None:
    """Settle each interrupted run of ``job``: record what it committed, take back a quarantine
    commit it left without its feature commit, and close it in the run log. Never fails the
    run: what cannot be settled now stays open for the next one."""
    alone = not [r for r in open_runs(runs_dir, job.name)
                 if r.get("status") == RUNNING and r.get("run_id") != result.run_id]
    for report in killed:
        run_id = str(report.get("run_id", ""))
        try:
            outcome = _settle(spark, job, run_id, alone)
        except Exception as exc:  # a conflict with a concurrent run, an unreadable table: next time
            result.recovered.append({"run_id": run_id, "error": str(exc).splitlines()[0][:300]})
            continue
        update_report(runs_dir, job.name, run_id, recovered_by=result.run_id, **outcome)
        result.recovered.append({"run_id": run_id, **outcome})
        close_run(runs_dir, job.name, run_id)


def _settle(spark: "SparkSession", job: LoadedJob, run_id: str, alone: bool) -> dict[str, Any]:
    outcome: dict[str, Any] = {}
    for path in (job.spec.output.path, job.spec.quarantine_path):
        if alone and _uncommitted(path):  # the killed run was creating it (no other run is)
            remove_partial(path)
            outcome.setdefault("uncommitted_folders_removed", []).append(path)
    drop_staging(spark, job.spec.output.path, run_id)
    table = _commits_of(spark, job.spec.output.path, run_id)
    outcome["table_version"] = table.versions[0] if table.versions else None
    quarantine = _commits_of(spark, job.spec.quarantine_path, run_id)
    if not quarantine.versions:
        return outcome
    version = quarantine.versions[0]
    if table.versions:
        outcome["quarantine"] = {"version": version, "kept": "its feature commit was made"}
    elif version != quarantine.latest:
        outcome["quarantine"] = {"version": version, "kept": "later commits follow it; a later run may count on its rows"}
    else:
        undo_quarantine(spark, QuarantineCommit(job.spec.quarantine_path, version == 0, version - 1 if version else None,
                                                version, 0), run_id)
        outcome["quarantine"] = {"version": version, "taken_back": True}
    return outcome


def _uncommitted(path: str) -> bool:
    """A local folder holding files but no Delta commit."""
    local = Path(path.removeprefix("file:"))
    return is_local(path) and local.is_dir() and not any((local / "_delta_log").glob("*.json")) \
        and any(p.name != "_delta_log" for p in local.iterdir())


def _commits_of(spark: "SparkSession", path: str, run_id: str) -> Found:
    """The versions ``run_id`` committed to the table at ``path`` (newest first) among its recent
    commits, read from the commits' ``userMetadata``."""
    from delta.tables import DeltaTable

    if not DeltaTable.isDeltaTable(spark, path):
        return Found([], None)
    history = DeltaTable.forPath(spark, path).history(HISTORY).select("version", "userMetadata").collect()
    versions = [int(row["version"]) for row in history if _run_of(row["userMetadata"]) == run_id]
    return Found(versions, int(history[0]["version"]) if history else None)


def _run_of(user_metadata: str | None) -> str:
    try:
        written_by = json.loads(user_metadata or "{}")
    except ValueError:
        return ""
    return str(written_by.get("run_id", "")) if isinstance(written_by, dict) else ""
