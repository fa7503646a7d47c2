"""Two runs of one job at once: Delta's write conflict as one line, and when to run again.

Delta commits optimistically: a commit whose reads another writer's commit invalidated is
refused (``ConcurrentAppendException``, ``ConcurrentDeleteReadException``,
``MetadataChangedException``, ``ProtocolChangedException``...) before anything of it reaches
the table's log. :func:`conflict_of` turns that refusal — or featurekit's own
:class:`~featurekit.sinks.delta.ConcurrentRun`, when another run moved a watermark this run
planned from — into a :class:`~featurekit.errors.Conflict` that names the version the other
writer committed, read from the table's history.

:func:`retry_reason` decides whether the run may simply run again: an overwrite, a merge, a
partition or interval replace on the same input give the same table however often they
commit; an append adds its rows again, so it repeats only when the table's history shows no
commit of this run (the refused commit is then known not to have landed).
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from featurekit.errors import Conflict, FeaturekitError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

# Delta's error conditions of a commit that lost against another writer's
CONDITIONS = ("DELTA_CONCURRENT", "DELTA_METADATA_CHANGED", "DELTA_PROTOCOL_CHANGED")
_COMMITTED_AT = re.compile(r"delta\.`([^`]+)` committed at version (\d+)")
_LOG_GONE = re.compile(r"_delta_log(/\S*)? does not exist")
_CLASS = re.compile(r"(io\.delta\.exceptions\.\w+|\w+(?:Concurrent|Changed)\w*Exception)")

# Test hook: a process with this variable set pauses once, before its commits, until the folder
# it names holds a file ``go`` (it first writes ``paused-<pid>`` there). Tests use it to make two
# real processes race deterministically; nothing else sets it.
PAUSE_ENV = "FEATUREKIT_TEST_PAUSE_BEFORE_COMMIT"
_paused = False


def pause_for_test() -> None:
    """Honour :data:`PAUSE_ENV` (once per process): the point between a run's read of its
    tables and its commits, where another run can be made to commit first."""
    global _paused
    folder = os.environ.get(PAUSE_ENV)
    if not folder or _paused:
        return
    _paused = True
    place = Path(folder)
    (place / f"paused-{os.getpid()}").write_text("")
    deadline = time.monotonic() + 600
    while not (place / "go").exists() and time.monotonic() < deadline:
        time.sleep(0.05)


def _causes(exc: BaseException) -> list[tuple[str, str]]:
    from featurekit.pipeline.spark_errors import _spark_errors

    return list(_spark_errors(exc))


def is_conflict(exc: BaseException) -> bool:
    """Whether ``exc`` is Delta's refusal of a commit that lost against another writer's."""
    if isinstance(exc, Conflict):
        return True
    if isinstance(exc, FeaturekitError):
        return False
    for condition, message in _causes(exc):
        head = message.lstrip()
        if condition.startswith(CONDITIONS) or head.startswith(tuple(f"[{c}" for c in CONDITIONS)):
            return True
        if _CLASS.search(head.split("\n", 1)[0] or "") and "concurrent" in head.lower():
            return True
        if _LOG_GONE.search(head):  # read while another run was creating the table: its log not there yet
            return True
    return False


def _condition(exc: BaseException) -> str:
    """Delta's name for the conflict (its error condition, else its exception class)."""
    for condition, message in _causes(exc):
        if condition.startswith(CONDITIONS):
            return condition
        head = message.lstrip()
        if head.startswith("[") and "]" in head:
            return head[1:].split("]", 1)[0]
    found = _CLASS.search(str(exc))
    return found.group(1).rsplit(".", 1)[-1] if found else type(exc).__name__


def _commit_info(spark: "SparkSession", path: str, version: int) -> dict[str, Any]:
    """``userMetadata`` of commit ``version`` of the table (empty where it has none)."""
    from delta.tables import DeltaTable

    try:
        row = DeltaTable.forPath(spark, path).history().where(f"version = {int(version)}").first()
        meta = json.loads((row["userMetadata"] if row is not None else None) or "{}")
    except Exception:  # a history that cannot be read: the message says less, the run still fails cleanly
        return {}
    return meta if isinstance(meta, dict) else {}


def _latest_other(spark: "SparkSession", path: str, run_id: str) -> int | None:
    """The table's latest version that another run committed (None: none found)."""
    from delta.tables import DeltaTable

    try:
        rows = DeltaTable.forPath(spark, path).history(20).select("version", "userMetadata").collect()
    except Exception:
        return None
    for row in sorted(rows, key=lambda r: -r["version"]):
        if f'"run_id": "{run_id}"' not in (row["userMetadata"] or ""):
            return int(row["version"])
    return None


def committed_by(spark: "SparkSession", path: str, run_id: str) -> int | None:
    """The version of the table that run ``run_id`` committed, if any (from its history)."""
    from delta.tables import DeltaTable

    try:
        rows = DeltaTable.forPath(spark, path).history().select("version", "userMetadata").collect()
    except Exception:
        return None
    for row in rows:
        try:
            meta = json.loads(row["userMetadata"] or "{}")
        except ValueError:
            continue
        if isinstance(meta, dict) and meta.get("run_id") == run_id:
            return int(row["version"])
    return None


def conflict_of(spark: "SparkSession", exc: BaseException, job: str, run_id: str, tables: list[str]) -> Conflict:
    """``exc`` (a conflict, see :func:`is_conflict`) as one line naming the version the other
    writer committed: Delta's message names it, else it is the latest commit of another run.
    ``tables``: the tables the run writes, the job's output first."""
    text = "\n".join(m for _, m in _causes(exc)) or str(exc)
    found = _COMMITTED_AT.search(text)
    path, version = tables[0], None
    if found:
        named = found.group(1).removeprefix("file:").rstrip("/")
        path = next((p for p in tables if p.removeprefix("file:").rstrip("/") == named), path)
        version = int(found.group(2))
    if version is None:
        version = _latest_other(spark, path, run_id)
    writer = _commit_info(spark, path, version) if version is not None else {}
    other = str(writer.get("job") or "")
    who = f"another run of {job}" if other == job else f"job {other}" if other else "another writer"
    what = f"version {version} of {path}" if version is not None else path
    while_ = "while this one ran" if other == job else f"while this run of {job} ran"
    return Conflict(f"{who} committed {what} {while_} ({_condition(exc)}); nothing of this run was committed",
                    path=path, version=version)


def retry_reason(spark: "SparkSession", mode: str, incremental: bool, path: str, run_id: str) -> str | None:
    """Why running again after a conflict gives the table it would have had (None: it would not).

    An overwrite, merge, partition replace and an incremental interval replace are idempotent on
    their input. An append is repeated only when no commit of this run is in the table's history."""
    if committed_by(spark, path, run_id) is not None:
        return None  # a commit of this run landed after all: running again would do it twice
    if incremental:
        return "an incremental run replaces its interval: repeated, it plans again from the table's watermark"
    if mode == "append":
        return "no commit of this run is in the table's history, so its append is made once"
    return f"mode {mode!r} gives the same table however often it commits"
