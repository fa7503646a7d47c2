"""Delta transactions held open, and commits read back or taken back.

A job's one pass writes its data files with Delta's own writer (``WriteIntoDelta``) inside a
transaction held open, without the final commit (:func:`write_held`, :class:`HeldWrite`): the
files are in no version of the table until :meth:`HeldWrite.commit`, and :meth:`HeldWrite.drop`
deletes them. Each commit carries ``userMetadata`` (:class:`CommitMeta`: job, run id, spec
fingerprint, env); :func:`describe_last_commit` reads a commit back from the table's log,
:func:`undo_commit` takes one back after a failure.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from featurekit.sinks.jvm import Scala

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

JOB_PROPERTY = "featurekit.job"
NO_CHANGE = "NONE (no row new or changed)"


@dataclass(frozen=True)
class CommitMeta:
    """What a featurekit commit says of itself, as the commit's ``userMetadata`` (JSON)."""

    job: str
    run_id: str
    fingerprint: str
    env: str

    rows_digest: str = ""  # a quarantine commit: a digest of every row the run offered (all in the table after it)
    interval: dict[str, Any] | None = None  # an incremental commit: the interval it replaced

    def to_json(self) -> str:
        fields: dict[str, Any] = {"job": self.job, "run_id": self.run_id, "fingerprint": self.fingerprint, "env": self.env}
        if self.rows_digest:
            fields["rows_digest"] = self.rows_digest
        if self.interval:
            fields["interval"] = self.interval
        return json.dumps(fields, sort_keys=True)


@dataclass(frozen=True)
class CommitResult:
    """A Delta commit as its log describes it.

    ``rows_offered``: rows the operation received (a MERGE's source; a write's output);
    ``rows_landed``: rows it inserted or updated. They must be equal — else rows were lost.
    """

    version: int
    operation: str
    created: bool
    rows_offered: int | None
    rows_landed: int | None
    metrics: dict[str, Any] = field(default_factory=dict)
    run_id: str = ""  # the featurekit run that made the commit (from its userMetadata)
    version_before: int | None = None
    marks_before: dict[str, int] = field(default_factory=dict)  # an incremental commit's app versions before it
    kept_newer: int = 0  # a latest-state MERGE: offered rows older than the table's row of their key
    job: str = ""  # the featurekit job that made it (from its userMetadata)


def app_versions(spark: "SparkSession", path: str, apps: list[str]) -> dict[str, int]:
    """The version Delta holds for each application transaction id (-1: none, or no table).
    They live in the table's snapshot, so they outlast the log's clean-up of old commits."""
    scala = Scala(spark)
    txn = scala.delta("DeltaLog").forTable(scala.session, path).startTransaction()
    return {app: int(txn.txnVersion(app)) for app in apps}


def _manual_update(scala: Scala) -> Any:
    """Delta's ``ManualUpdate`` operation (a Scala object: its one instance)."""
    return getattr(scala.jvm.org.apache.spark.sql.delta, "DeltaOperations$ManualUpdate$").__getattr__("MODULE$")


def set_transactions(spark: "SparkSession", marks: dict[str, int]) -> Any:
    import time

    scala = Scala(spark)
    now = int(time.time() * 1000)
    kind = scala.delta("actions.SetTransaction")
    return scala.seq([kind(app, version, scala.some(now)) for app, version in marks.items()])


@dataclass
class HeldWrite:
    """Data files written inside an open Delta transaction, not committed yet."""

    spark: "SparkSession"
    log: Any
    txn: Any
    actions: Any
    operation: Any
    rows: int | None  # Delta's count of the rows in the written files

    def added_paths(self) -> list[str]:
        scala = Scala(self.spark)
        return [a.absolutePath(self.log).toString() for a in scala.to_list(self.actions)
                if a.getClass().getSimpleName() == "AddFile"]

    def add(self, frame: "DataFrame") -> int:
        """Write ``frame`` into the same transaction (more data files for the one commit);
        the rows it added. The commit's metrics then count both writes."""
        scala = Scala(self.spark)
        names = ("numFiles", "numOutputRows", "numOutputBytes")
        before = {name: scala.unwrap(self.txn.getMetric(name)) for name in names}
        # a second write registers fresh metrics under the same names: carry the first's over
        previous = {name: int(metric.value()) for name, metric in before.items() if metric is not None}
        extra = self.txn.writeFiles(frame._jdf)
        added = scala.unwrap(self.txn.getMetric("numOutputRows"))
        rows = int(added.value()) if added is not None else 0
        for name, value in previous.items():
            metric = scala.unwrap(self.txn.getMetric(name))
            if metric is not None and metric.id() != before[name].id():
                metric.add(value)
        self.actions = self.actions.appendedAll(extra)
        if self.rows is not None:
            self.rows += rows
        return rows

    def commit(self) -> int:
        """Commit the transaction (userMetadata travels in the operation); the new version."""
        return int(self.txn.commit(self.actions, self.operation))

    def drop(self) -> None:
        """Delete the written files (never committed, so no reader has seen them)."""
        for path in self.added_paths():
            delete_path(self.spark, path)


def write_held(spark: "SparkSession", log: Any, txn: Any, frame: "DataFrame", meta: CommitMeta, *,
               append: bool, options: dict[str, str], partition_by: list[str], properties: dict[str, str],
               path: str, predicate: str | None = None) -> HeldWrite:
    """Run Delta's own writer (``WriteIntoDelta``) for ``frame`` inside ``txn`` without its
    commit. ``properties`` are set only when the write creates the table; if it fails while
    creating it, the folder it started is removed."""
    scala = Scala(spark)
    save_mode = scala.jvm.org.apache.spark.sql.SaveMode.valueOf("Append" if append else "Overwrite")
    delta_options = scala.delta("DeltaOptions")(scala.map(options), scala.session.sessionState().conf())
    write = scala.delta("commands.WriteIntoDelta")(
        log, save_mode, delta_options, scala.seq(partition_by), scala.map(properties), frame._jdf,
        scala.none(), scala.none(), False,
    )
    creating = txn.readVersion() < 0
    try:
        actions = write.write(txn, scala.session, scala.none(), False)
    except Exception:
        if creating:
            wait_for_tasks(spark)
            remove_partial(path)
        raise
    flag = {name: scala.some(True) if name in options else scala.none()
            for name in ("partitionOverwriteMode", "overwriteSchema", "mergeSchema")}
    operation = scala.delta("DeltaOperations").Write(
        save_mode, scala.some(scala.seq(partition_by)), scala.option(predicate), scala.some(meta.to_json()),
        flag["partitionOverwriteMode"], flag["overwriteSchema"], flag["mergeSchema"], scala.none(), scala.none(),
    )
    metrics = scala.to_dict(scala.unwrap(txn.getOperationMetrics(operation)) or scala.map({}))
    rows = rows_written(metrics)
    return HeldWrite(spark, log, txn, actions, operation, rows)


def undo_commit(spark: "SparkSession", path: str, done: CommitResult) -> None:
    """Take back a commit this run made (the run failed after it)."""
    from delta.tables import DeltaTable

    if done.operation == NO_CHANGE:
        return
    if done.created:
        local = Path(path.removeprefix("file:"))
        if is_local(path):
            shutil.rmtree(local, ignore_errors=True)
        return
    if done.version_before is not None:
        DeltaTable.forPath(spark, path).restoreToVersion(done.version_before)
    if done.marks_before:  # a restore leaves application transactions as they are: set them back
        scala = Scala(spark)
        txn = scala.delta("DeltaLog").forTable(scala.session, path).startTransaction()
        txn.commit(set_transactions(spark, done.marks_before), _manual_update(scala))


def describe_last_commit(spark: "SparkSession", path: str, created: bool = False) -> CommitResult:
    from delta.tables import DeltaTable

    row = DeltaTable.forPath(spark, path).history(1).first()
    metrics = {k: metric_number(v) for k, v in (row["operationMetrics"] or {}).items()}
    try:
        written_by = json.loads(row["userMetadata"] or "{}")
    except ValueError:
        written_by = {}
    written_by = written_by if isinstance(written_by, dict) else {}
    run_id, job = str(written_by.get("run_id", "")), str(written_by.get("job", ""))
    offered = landed = None
    if "numSourceRows" in metrics:  # MERGE
        offered = int(metrics["numSourceRows"])
        landed = int(metrics.get("numTargetRowsInserted", 0)) + int(metrics.get("numTargetRowsUpdated", 0))
    elif "numOutputRows" in metrics:  # a write
        offered = landed = rows_written(metrics)
    return CommitResult(int(row["version"]), str(row["operation"]), created, offered, landed, metrics, run_id, job=job)


def rows_written(metrics: dict[str, Any]) -> int | None:
    """The rows a write added: a replaceWhere over data columns rewrites the files holding
    matching rows, and counts the other rows of those files (copied) among its output."""
    if "numOutputRows" not in metrics:
        return None
    return int(metrics["numOutputRows"]) - int(metrics.get("numCopiedRows", 0))


def metric_number(text: str) -> int | float | str:
    """An operation metric as Delta's log holds it (text) as the number it is."""
    for kind in (int, float):
        try:
            return kind(text)
        except (TypeError, ValueError):
            continue
    return text


def delete_path(spark: "SparkSession", path: str, recursive: bool = False) -> None:
    """Delete a file or folder through Hadoop (local disk and object stores alike)."""
    jvm = spark._jvm  # type: ignore[attr-defined]
    target = jvm.org.apache.hadoop.fs.Path(path)
    target.getFileSystem(spark._jsc.hadoopConfiguration()).delete(target, recursive)  # type: ignore[attr-defined]


def wait_for_tasks(spark: "SparkSession", timeout_s: float = 30.0) -> None:
    """Wait until no Spark task runs: when a job fails, its other tasks are cancelled
    asynchronously and may still be writing files."""
    import time

    tracker = spark.sparkContext._jsc.sc().statusTracker()  # type: ignore[attr-defined]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        running = sum(e.numRunningTasks() for e in tracker.getExecutorInfos())
        if not running and not list(tracker.getActiveStageIds()):
            return
        time.sleep(0.05)


def is_local(path: str) -> bool:
    return "://" not in path or path.startswith("file:")


def remove_partial(path: str, own_files_dropped: bool = False) -> None:
    """A failed first write may leave data files and an empty log; the folder was ours.

    With ``own_files_dropped`` (the write's own files are deleted already) only folders left
    empty are removed: another run creating the same table may have written its files there,
    not committed yet, and they are not ours to delete."""
    local = Path(path.removeprefix("file:"))
    committed = any((local / "_delta_log").glob("*.json"))
    if not is_local(path) or not local.exists() or committed:
        return
    if not own_files_dropped:
        shutil.rmtree(local, ignore_errors=True)
        return
    for folder in sorted((p for p in local.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)) + [local]:
        try:
            folder.rmdir()  # only succeeds on an empty folder
        except OSError:
            pass
