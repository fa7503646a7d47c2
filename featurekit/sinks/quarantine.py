"""The quarantine table: every row the gate refused, and every source record that did not
parse, with the reasons — appended, never lost.

Columns: the output's columns, then ``_fk_errors`` (array of check, column, message),
``_fk_source`` (the source a malformed record came from; null for rows the checks refused),
``_fk_raw`` (that record's raw text), ``_fk_row_hash``, ``_fk_run_id`` and
``_fk_quarantined_at``. Rows are added with a MERGE on (source, row hash): the hash covers
the row's content and its occurrence number among identical rows, so rerunning a job on the
same input quarantines nothing twice, and ``_fk_run_id`` names the run that first saw a row.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from featurekit.sinks.delta import JOB_PROPERTY, CommitMeta, remove_partial, describe_last_commit

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import StructType

SOURCE, RAW, HASH, RUN_ID, AT = "_fk_source", "_fk_raw", "_fk_row_hash", "_fk_run_id", "_fk_quarantined_at"
ERRORS = "_fk_errors"
_PARSED = "__fk_parsed"
_USER_METADATA = "spark.databricks.delta.commitInfo.userMetadata"
_AUTO_MERGE = "spark.databricks.delta.schema.autoMerge.enabled"


@dataclass(frozen=True)
class QuarantineCommit:
    path: str
    created: bool
    version_before: int | None
    version: int
    rows: int | None   # rows offered this run (None: no commit was made, so Delta did not count them)
    inserted: int      # rows new to the table (the rest were quarantined by an earlier run)


def quarantine_rows(bad: "DataFrame | None", malformed: dict[str, "DataFrame"], output: "StructType", run_id: str) -> "DataFrame | None":
    """The rows to quarantine in the table's layout, or None when there are none."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    parts = []
    if bad is not None:
        parts.append(bad.withColumn(SOURCE, F.lit(None).cast("string")).withColumn(RAW, F.lit(None).cast("string"))
                     .withColumn(_PARSED, F.lit(None).cast("string")))
    for name, frame in malformed.items():
        reason = F.array(F.struct(F.lit("parse").alias("check"), F.lit(name).alias("column"),
                                  F.lit("the record does not parse with the source's schema").alias("message")))
        # Spark refuses a CSV/JSON query that needs nothing but the corrupt-record column;
        # hashing what did parse keeps every column needed (and tells identical lines apart).
        parsed = F.xxhash64(*(F.col(c) for c in frame.columns if c != RAW)).cast("string")
        parts.append(frame.select(
            *(F.lit(None).cast(f.dataType).alias(f.name) for f in output.fields),
            reason.alias(ERRORS), F.lit(name).alias(SOURCE), F.col(RAW).alias(RAW), parsed.alias(_PARSED),
        ))
    if not parts:
        return None
    rows = parts[0]
    for part in parts[1:]:
        rows = rows.unionByName(part)
    content = F.when(F.col(RAW).isNotNull(), F.concat_ws("|", F.col(RAW), F.col(_PARSED))).otherwise(
        F.to_json(F.struct(*(F.col(f.name) for f in output.fields))))
    occurrence = F.row_number().over(Window.partitionBy(F.col(SOURCE), content).orderBy(F.lit(1)))
    return (
        rows.withColumn(HASH, F.sha2(F.concat_ws("|", content, occurrence.cast("string")), 256))
        .drop(_PARSED)
        .withColumn(RUN_ID, F.lit(run_id))
        .withColumn(AT, F.current_timestamp())
    )


def append_quarantine(spark: "SparkSession", rows: "DataFrame", path: str, meta: CommitMeta) -> QuarantineCommit:
    """Add ``rows`` to the quarantine table at ``path`` in one commit (created if absent)."""
    from delta.tables import DeltaTable

    exists = DeltaTable.isDeltaTable(spark, path)
    before = describe_last_commit(spark, path).version if exists else None
    saved = {key: spark.conf.get(key, None) for key in (_USER_METADATA, _AUTO_MERGE)}
    spark.conf.set(_USER_METADATA, meta.to_json())
    spark.conf.set(_AUTO_MERGE, "true")  # the output may have gained columns since the last run
    try:
        if not exists:
            try:
                (rows.writeTo(f"delta.`{path}`").using("delta")
                 .tableProperty(JOB_PROPERTY, meta.job).tableProperty("featurekit.quarantine", "true").create())
            except Exception:
                remove_partial(path)
                raise
        else:
            (DeltaTable.forPath(spark, path).alias("t")
             .merge(rows.alias("s"), f"t.{SOURCE} <=> s.{SOURCE} AND t.{HASH} = s.{HASH}")
             .whenNotMatchedInsertAll().execute())
    finally:
        for key, value in saved.items():
            if value is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, value)
    done = describe_last_commit(spark, path, created=not exists)
    if done.run_id != meta.run_id:  # every row was already there: Delta made no commit
        return QuarantineCommit(path, False, before, done.version, None, 0)
    return QuarantineCommit(path, not exists, before, done.version, int(done.rows_offered or 0), int(done.rows_landed or 0))


def undo_quarantine(spark: "SparkSession", commit: QuarantineCommit) -> None:
    """Take back this run's quarantine commit because the feature commit failed."""
    from delta.tables import DeltaTable

    if commit.version == commit.version_before:
        return  # this run made no quarantine commit
    if commit.created:
        local = Path(commit.path.removeprefix("file:"))
        if "://" not in commit.path or commit.path.startswith("file:"):
            shutil.rmtree(local, ignore_errors=True)
        return
    if commit.version_before is not None:
        DeltaTable.forPath(spark, commit.path).restoreToVersion(commit.version_before)
