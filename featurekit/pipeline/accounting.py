"""Row accounting: every row read is written, quarantined or counted by a declared step.

The counts come from Spark observations filled by the one pass that computes and writes the
result (the gate's counts included) and from Delta's own metrics of the written files and of
the commits; this module only does the arithmetic and refuses a run where it does not add up.
"""

from __future__ import annotations

from typing import Any

from featurekit.errors import DataError
from featurekit.pipeline.report import RunResult, StepCount
from featurekit.sinks.transaction import NO_CHANGE
from featurekit.spec.loader import LoadedJob
from featurekit.spec.models import step_op

# Ops that neither add nor remove rows: what goes in comes out (a ``select`` holding a
# generator or an aggregate is counted in and out instead, see ``BuildContext.project``).
ROW_PRESERVING = {"with_columns", "select", "rename", "cast", "drop", "fill_null"}

Counts = dict[str, dict[str, int] | None]


# An incremental run's own filter after the job's steps: the rows of its interval go on.
INTERVAL = "interval"


def _ops(job: LoadedJob, counts: Counts) -> list[tuple[int, str]]:
    """(index, op) of each step, and of the interval filter where the run had one."""
    ops = [(index, step_op(step) or "") for index, step in enumerate(job.spec.steps)]
    last = len(job.spec.steps)
    if f"step{last}.in" in counts:
        ops.append((last, INTERVAL))
    return ops


def step_counts(job: LoadedJob, counts: Counts) -> list[StepCount]:
    out = []
    for index, op in _ops(job, counts):
        seen_in, seen_out = counts.get(f"step{index}.in"), counts.get(f"step{index}.out")
        if seen_in is None and seen_out is None:
            continue
        rows_in = seen_in["rows"] if seen_in else None
        rows_out = seen_out["rows"] if seen_out else None
        note = ""
        if op == "aggregate" and seen_in:
            nulls = seen_in.get("null_timestamp", 0)
            notes = [f"{nulls} row(s) without a timestamp left out"] if nulls else []
            buckets = counts.get(f"step{index}.buckets")
            if buckets and rows_out is not None:
                notes.append(f"{rows_out - buckets['rows']} expiry row(s) where windows empty")
            note = "; ".join(notes)
            dropped: int | None = nulls
        elif op == INTERVAL:
            dropped = rows_in - rows_out if rows_in is not None and rows_out is not None else None
            note = "outside the run's interval (the windows' lead-in, or no time): other runs' rows" if dropped else ""
        elif op == "join" and rows_in is not None and rows_out is not None and rows_out > rows_in:
            dropped, note = None, f"{rows_out - rows_in} row(s) added: keys matched more than once"
        elif op in ROW_PRESERVING and rows_in is not None and rows_out is not None:
            what = "a generator made more" if rows_out > rows_in else "an aggregate made fewer"
            dropped, note = None, f"{rows_in} row(s) in, {rows_out} out: {what}"
        else:
            dropped = rows_in - rows_out if rows_in is not None and rows_out is not None else None
        out.append(StepCount(index, op, rows_in, rows_out, dropped, note))
    return out


def source_counts(reads: list[Any], counts: Counts) -> list[dict[str, Any]]:
    out = []
    for read in reads:
        seen = counts.get(f"source.{read.name}") or {}
        rows, malformed = seen.get("rows"), seen.get("malformed", 0)
        out.append({
            "name": read.name, "format": read.format, "path": read.path, "delta_version": read.delta_version,
            "rows_read": rows, "rows_malformed": malformed,
            "rows_parsed": None if rows is None else rows - (malformed or 0),
            **({"files_read": read.files[0], "files": read.files[1]} if read.files else {}),
        })
    return out


def check(job: LoadedJob, result: RunResult, counts: Counts, rows_in_files: int | None = None) -> None:
    """Fail the run (exit 3) where the counts do not add up.

    - each source: rows read = rows parsed + malformed rows quarantined;
    - along the steps from the first source: the rows entering each counted step equal the
      rows the previous counted step passed on (through steps that keep rows as they are),
      and rows out = rows in - rows dropped;
    - the gate: rows entering = the steps' last count (when the chain is unbroken) =
      good rows + bad rows;
    - the data files written for the commit hold exactly the good rows (Delta's own count,
      ``rows_in_files``; None for a MERGE, checked at its commit).
    """
    problems = []
    first = job.spec.first_source
    expected = next((s["rows_parsed"] for s in result.sources if s["name"] == first), None)
    for index, op in _ops(job, counts):
        seen_in, seen_out = counts.get(f"step{index}.in"), counts.get(f"step{index}.out")
        if seen_in is not None:
            if expected is not None and seen_in["rows"] != expected:
                problems.append(f"step {index} ({op}) received {seen_in['rows']} rows; the step before passed on {expected}")
            expected = seen_in["rows"]
        if seen_out is not None:
            expected = seen_out["rows"]
        elif op not in ROW_PRESERVING:
            expected = None
    gate = result.gate
    if expected is not None and result.rows_out is not None and expected != result.rows_out:
        problems.append(f"the gate received {result.rows_out} rows; the steps passed on {expected}")
    if gate and gate.get("rows_good", 0) + gate.get("rows_bad", 0) != gate.get("rows_checked"):
        problems.append(f"gate: {gate['rows_checked']} rows checked != {gate['rows_good']} good + {gate['rows_bad']} bad")
    if gate and rows_in_files is not None and rows_in_files != gate.get("rows_good"):
        problems.append(f"the data files written hold {rows_in_files} rows; the gate passed {gate.get('rows_good')}")
    if problems:
        raise DataError("row accounting does not add up", problems)


def check_commits(result: RunResult, done: Any, quarantine_offered: int | None, quarantine_expected: int) -> None:
    """After the commits: Delta's own counts must equal what the gate decided.

    A write must hold every good row; a MERGE receives only the rows that are new or
    changed (at most the good rows) and must insert or update each of them.
    """
    problems = []
    offered, landed = done.rows_offered, done.rows_landed
    if offered is not None and landed is not None and offered != landed + done.kept_newer:
        problems.append(f"the Delta commit (v{done.version}) received {offered} rows but stored {landed}")
    upsert = done.operation in {"MERGE", NO_CHANGE}
    if not upsert and landed is not None and result.rows_written is not None and landed != result.rows_written:
        problems.append(f"the Delta commit holds {landed} rows; the gate passed {result.rows_written}")
    if upsert and offered is not None and result.rows_written is not None and offered > result.rows_written:
        problems.append(f"the MERGE received {offered} rows; the gate passed only {result.rows_written}")
    if quarantine_offered is not None and quarantine_offered != quarantine_expected:
        problems.append(f"{quarantine_offered} rows reached the quarantine; {quarantine_expected} were refused")
    if problems:
        raise DataError("row accounting does not add up", problems)
