"""The Delta commit of a job's result, in one of four modes.

- ``overwrite``: the table becomes the result (schema included).
- ``append``: the result's rows are added.
- ``merge``: upsert on ``keys`` (null-safe equality); only rows that are new or changed
  reach the MERGE, so a rerun on the same input rewrites no file and makes no new version.
- ``replace_partitions``: the partitions present in the result are replaced, others kept.

Each commit carries ``userMetadata`` (JSON: job, run id, spec fingerprint, env); a table
created by featurekit gets the ``featurekit.job`` property in the same first commit.
Delta's atomic commit means a failed write leaves the table at its previous version.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from featurekit.errors import ConfigError, DataError
from featurekit.spec.models import OutputSpec

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

JOB_PROPERTY = "featurekit.job"
NO_CHANGE = "NONE (no row new or changed)"
_USER_METADATA = "spark.databricks.delta.commitInfo.userMetadata"


@dataclass(frozen=True)
class CommitMeta:
    job: str
    run_id: str
    fingerprint: str
    env: str

    def to_json(self) -> str:
        return json.dumps({"job": self.job, "run_id": self.run_id, "fingerprint": self.fingerprint, "env": self.env}, sort_keys=True)


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


def _quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _is_local(path: str) -> bool:
    return "://" not in path or path.startswith("file:")


def check_target(spark: "SparkSession", out: OutputSpec, job: str) -> bool:
    """Whether the table exists; refuse a folder that is not Delta or another job's table."""
    from delta.tables import DeltaTable

    if DeltaTable.isDeltaTable(spark, out.path):
        owner = (
            DeltaTable.forPath(spark, out.path).detail().select("properties").first()["properties"] or {}
        ).get(JOB_PROPERTY)
        if owner and owner != job:
            raise ConfigError.single(f"{out.path} belongs to job {owner!r}; two jobs cannot write one table",
                                     file="output", field="path")
        return True
    local = Path(out.path.removeprefix("file:"))
    if _is_local(out.path) and local.exists() and any(local.iterdir()):
        raise ConfigError.single(f"{out.path} exists and is not a Delta table; refusing to write into it",
                                 file="output", field="path")
    return False


def commit(spark: "SparkSession", frame: "DataFrame", out: OutputSpec, meta: CommitMeta) -> CommitResult:
    """Write ``frame`` to ``out.path`` as one Delta commit and describe that commit."""
    exists = check_target(spark, out, meta.job)
    before = describe_last_commit(spark, out.path).version if exists else None
    if out.mode == "merge":
        check_unique_keys(frame, out.keys)
    if exists and out.mode in {"append", "merge", "replace_partitions"}:
        check_schema(spark, frame, out)
    previous = spark.conf.get(_USER_METADATA, None)
    spark.conf.set(_USER_METADATA, meta.to_json())
    try:
        if not exists:
            _create(frame, out, meta)
        elif out.mode == "merge":
            _merge(spark, frame, out)
        else:
            writer = frame.write.format("delta").mode("append" if out.mode == "append" else "overwrite")
            if out.mode == "overwrite":
                writer = writer.option("overwriteSchema", "true")
            if out.mode == "replace_partitions":
                writer = writer.option("partitionOverwriteMode", "dynamic")
            if out.partition_by:
                writer = writer.partitionBy(*out.partition_by)
            writer.save(out.path)
    except Exception:
        if not exists:
            remove_partial(out.path)
        raise
    finally:
        if previous is None:
            spark.conf.unset(_USER_METADATA)
        else:
            spark.conf.set(_USER_METADATA, previous)
    done = describe_last_commit(spark, out.path, created=not exists)
    if done.run_id != meta.run_id:  # a MERGE with nothing new or changed commits nothing
        return CommitResult(done.version, NO_CHANGE, False, 0, 0, {}, meta.run_id, before)
    return replace(done, version_before=before)


def undo_commit(spark: "SparkSession", path: str, done: CommitResult) -> None:
    """Take back a commit this run made (the run failed after it)."""
    from delta.tables import DeltaTable

    if done.operation == NO_CHANGE:
        return
    if done.created:
        local = Path(path.removeprefix("file:"))
        if _is_local(path):
            shutil.rmtree(local, ignore_errors=True)
        return
    if done.version_before is not None:
        DeltaTable.forPath(spark, path).restoreToVersion(done.version_before)


def _create(frame: "DataFrame", out: OutputSpec, meta: CommitMeta) -> None:
    writer = frame.writeTo(f"delta.{_quote(out.path)}").using("delta").tableProperty(JOB_PROPERTY, meta.job)
    for key, value in out.properties.items():
        writer = writer.tableProperty(key, value)
    if out.partition_by:
        from pyspark.sql import functions as F

        writer = writer.partitionedBy(*(F.col(c) for c in out.partition_by))
    writer.create()


def check_unique_keys(frame: "DataFrame", keys: list[str]) -> None:
    """A merge source must have one row per key, or the upsert is ambiguous."""
    from pyspark.sql import functions as F

    duplicates = frame.groupBy(*keys).count().filter(F.col("count") > 1)
    examples = duplicates.limit(5).collect()
    if examples:
        total = duplicates.count()
        raise DataError(
            f"merge keys ({', '.join(keys)}) are not unique in the result: {total} key(s) repeat; "
            "add a dedup step on these keys",
            [", ".join(f"{k}={_text(row[k])}" for k in keys) + f" appears {row['count']} times" for row in examples],
        )


def _text(value: object) -> str:
    return "null" if value is None else repr(value.isoformat() if hasattr(value, "isoformat") else value)  # type: ignore[union-attr]


def check_schema(spark: "SparkSession", frame: "DataFrame", out: OutputSpec) -> None:
    """The result must fit the existing table (only ``overwrite`` may change the schema)."""
    table = {f.name.lower(): f for f in spark.read.format("delta").load(out.path).schema.fields}
    result = {f.name.lower(): f for f in frame.schema.fields}
    problems = []
    extra = [result[n].name for n in result if n not in table]
    missing = [table[n].name for n in table if n not in result]
    if extra:
        problems.append(f"new column(s) {', '.join(extra)}")
    if missing:
        problems.append(f"missing column(s) {', '.join(missing)}")
    for name in result.keys() & table.keys():
        if result[name].dataType != table[name].dataType:
            problems.append(
                f"column {result[name].name} is {result[name].dataType.simpleString()} "
                f"but the table has {table[name].dataType.simpleString()}"
            )
    if problems:
        raise ConfigError.single(
            f"the result does not fit the table at {out.path} ({'; '.join(problems)}); mode {out.mode!r} keeps "
            "the table's schema — use mode 'overwrite' to replace it",
            file="output", field="path",
        )


def _merge(spark: "SparkSession", frame: "DataFrame", out: OutputSpec) -> None:
    from delta.tables import DeltaTable
    from pyspark.sql.types import MapType

    on = " AND ".join(f"t.{_quote(k)} <=> s.{_quote(k)}" for k in out.keys)
    comparable = not any(isinstance(f.dataType, MapType) for f in frame.schema.fields)
    source = frame
    if comparable:
        # Only rows that are new or differ from the table reach the MERGE: a rerun on the
        # same input then rewrites no file (it still commits, recording the run).
        current = spark.read.format("delta").load(out.path).select(*frame.columns)
        source = frame.exceptAll(current)
    (
        DeltaTable.forPath(spark, out.path).alias("t")
        .merge(source.alias("s"), on)
        .whenMatchedUpdateAll()
        .whenNotMatchedInsertAll()
        .execute()
    )


def remove_partial(path: str) -> None:
    """A failed first write may leave data files and an empty log; the folder was ours."""
    local = Path(path.removeprefix("file:"))
    committed = any((local / "_delta_log").glob("*.json"))
    if _is_local(path) and local.exists() and not committed:
        shutil.rmtree(local, ignore_errors=True)


def describe_last_commit(spark: "SparkSession", path: str, created: bool = False) -> CommitResult:
    from delta.tables import DeltaTable

    row = DeltaTable.forPath(spark, path).history(1).first()
    metrics = {k: _number(v) for k, v in (row["operationMetrics"] or {}).items()}
    try:
        run_id = json.loads(row["userMetadata"] or "{}").get("run_id", "")
    except ValueError:
        run_id = ""
    offered = landed = None
    if "numSourceRows" in metrics:  # MERGE
        offered = int(metrics["numSourceRows"])
        landed = int(metrics.get("numTargetRowsInserted", 0)) + int(metrics.get("numTargetRowsUpdated", 0))
    elif "numOutputRows" in metrics:  # a write
        offered = landed = int(metrics["numOutputRows"])
    return CommitResult(int(row["version"]), str(row["operation"]), created, offered, landed, metrics, run_id)


def _number(text: str) -> int | float | str:
    for kind in (int, float):
        try:
            return kind(text)
        except (TypeError, ValueError):
            continue
    return text
