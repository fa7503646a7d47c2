"""The quarantine table: every row the gate refused, and every source record that did not
parse, with the reasons — appended, never lost.

Columns: the output's columns, then ``_fk_errors`` (array of check, column, message),
``_fk_source`` (the source a malformed record came from; null for rows the checks refused),
``_fk_raw`` (that record's raw text), ``_fk_row_hash``, ``_fk_run_id`` and
``_fk_quarantined_at``. A run appends only the rows whose (source, row hash) the table does
not hold yet: the hash covers the row's content and its occurrence number among identical
rows, so rerunning a job on the same input quarantines nothing twice, and ``_fk_run_id`` names
the run that first saw a row. A commit records a digest of every row its run offered; a rerun
offering exactly those rows, while that commit is still the table's latest, is known to find
them all there without reading the table.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from featurekit.sinks.jvm import Scala
from featurekit.sinks.transaction import JOB_PROPERTY, CommitMeta, remove_partial, write_held
from featurekit.spec.sqlcheck import literal, quote

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import DataType, StructType

SOURCE, RAW, HASH, RUN_ID, AT = "_fk_source", "_fk_raw", "_fk_row_hash", "_fk_run_id", "_fk_quarantined_at"
ERRORS = "_fk_errors"
_PARSED = "__fk_parsed"
PARSE_FAILURE = "the record does not parse with the source's schema"


@dataclass(frozen=True)
class QuarantineCommit:
    path: str
    created: bool
    version_before: int | None
    version: int | None  # None: no table (nothing was ever quarantined there)
    inserted: int      # rows new to the table (the rest were quarantined by an earlier run)
    recognized: bool = False  # a rerun recognized by the latest commit's digest (the table was not read)


def quarantine_rows(bad: "DataFrame | None", malformed: dict[str, "DataFrame"], output: "StructType", run_id: str) -> "DataFrame | None":
    """The rows to quarantine in the table's layout (plus ``__fk_parsed``, which
    :func:`append_quarantine` reads and drops), or None when there are none.

    ``bad``: the gate's refused rows (the output's columns plus ``_fk_errors``);
    ``malformed``: per source, the records that did not parse (``_fk_raw`` and
    ``__fk_parsed``, a hash of what did parse, which tells identical lines apart).
    """
    # SQL text: the JVM parses each projection in one call (as Column objects, every
    # function and cast would be a round trip from Python)
    parts = []
    if bad is not None:
        parts.append(bad.selectExpr("*", *(f"CAST(NULL AS STRING) AS {c}" for c in (SOURCE, RAW, _PARSED))))
    for name, frame in malformed.items():
        reason = f"array(named_struct('check', 'parse', 'column', {literal(name)}, 'message', {literal(PARSE_FAILURE)}))"
        parts.append(frame.selectExpr(
            *(f"CAST(NULL AS {type_sql(f.dataType)}) AS {quote(f.name)}" for f in output.fields),
            f"{reason} AS {ERRORS}", f"{literal(name)} AS {SOURCE}", RAW, f"CAST({_PARSED} AS STRING) AS {_PARSED}",
        ))
    if not parts:
        return None
    rows = parts[0]
    for part in parts[1:]:
        rows = rows.unionByName(part)
    rows = rows.coalesce(1)  # few rows, held by the driver: one partition, so the window needs no shuffle
    columns = ", ".join(quote(f.name) for f in output.fields)
    content = f"CASE WHEN {RAW} IS NOT NULL THEN concat_ws('|', {RAW}, {_PARSED}) ELSE to_json(struct({columns})) END"
    occurrence = f"row_number() OVER (PARTITION BY {SOURCE}, {content} ORDER BY 1)"
    return rows.selectExpr(  # one projection: each DataFrame call costs the driver an analysis
        "*",
        f"sha2(concat_ws('|', {content}, CAST({occurrence} AS STRING)), 256) AS {HASH}",
        f"{literal(run_id)} AS {RUN_ID}",
        f"current_timestamp() AS {AT}",
    )


def type_sql(kind: "DataType") -> str:
    """``kind`` as Spark SQL writes a type (nested field names quoted)."""
    from pyspark.sql.types import ArrayType, MapType, StructType

    if isinstance(kind, StructType):
        return "STRUCT<" + ", ".join(f"{quote(f.name)}: {type_sql(f.dataType)}" for f in kind.fields) + ">"
    if isinstance(kind, ArrayType):
        return f"ARRAY<{type_sql(kind.elementType)}>"
    if isinstance(kind, MapType):
        return f"MAP<{type_sql(kind.keyType)}, {type_sql(kind.valueType)}>"
    return kind.simpleString()


def append_quarantine(spark: "SparkSession", rows: "DataFrame", path: str, meta: CommitMeta) -> QuarantineCommit:
    """Add the ``rows`` not quarantined yet to the table at ``path`` in one commit (created if
    absent); no commit when every row is already there.

    The rows are the few a run refused (already on the driver); they are compared with the
    table's row hashes read in the same Delta transaction, so a concurrent run that adds rows
    makes this commit fail instead of duplicating them.
    """
    from pyspark.sql import functions as F

    digest = _digest(rows)
    rows = rows.drop(_PARSED)
    scala = Scala(spark)
    log = scala.delta("DeltaLog").forTable(scala.session, path)
    txn = log.startTransaction()
    exists = txn.readVersion() >= 0
    before = int(txn.readVersion()) if exists else None
    if exists and _latest_digest(spark, path, before) == digest:  # a rerun: every row is there already
        return QuarantineCommit(path, False, before, before, 0, recognized=True)
    # Few rows, read again by the anti-join and the write: computed once. (Not before the
    # digest: a rerun needs only that, and the hashes' multiset is the same either way.)
    rows = rows.localCheckpoint()
    meta = replace(meta, rows_digest=digest)
    new = rows
    if exists:
        txn.readWholeTable()  # so that a concurrent append makes this commit fail
        new = rows.join(_seen(spark, path, rows), rows[SOURCE].eqNullSafe(F.col("__s")) & (rows[HASH] == F.col("__h")),
                        "left_anti")
    properties = {JOB_PROPERTY: meta.job, "featurekit.quarantine": "true"} if not exists else {}
    held = write_held(spark, log, txn, new, meta, append=True, options={"mergeSchema": "true"},
                      partition_by=[], properties=properties, path=path)
    inserted = held.rows or 0
    if inserted == 0:  # every row was quarantined by an earlier run: no commit
        held.drop()
        if not exists:
            remove_partial(path, own_files_dropped=True)
        return QuarantineCommit(path, False, before, before, 0)
    version = held.commit()
    return QuarantineCommit(path, not exists, before, version, inserted)


def _seen(spark: "SparkSession", path: str, rows: "DataFrame") -> "DataFrame":
    """(``__s``, ``__h``) of the table's rows that ``rows`` offer again, broadcast.

    The table grows with every run and ``rows`` are few: its scan probes their (source,
    hash) pairs, broadcast, and keeps the matches, so no side is shuffled. Joined as a whole,
    Spark would sort-merge it, shuffling every hash the table holds (5M quarantined rows:
    12-19 s per run)."""
    from pyspark.sql import functions as F

    table = spark.read.format("delta").load(path).select(F.col(SOURCE).alias("__s"), F.col(HASH).alias("__h"))
    offered = F.broadcast(rows.select(F.col(SOURCE).alias("__os"), F.col(HASH).alias("__oh")))
    found = table.join(offered, table["__s"].eqNullSafe(offered["__os"]) & (table["__h"] == offered["__oh"]), "left_semi")
    return F.broadcast(found)


DIGEST_VERSION = "xx1"  # digests recorded before it (sha2 of the row hashes) are simply not recognized


def _digest(rows: "DataFrame") -> str:
    """One hash of the rows offered, as a multiset: the sorted 64-bit hashes of what
    each row's ``_fk_row_hash`` covers (source, raw record, parsed columns, the output's
    columns), not those row hashes themselves — they need a window over identical rows,
    to_json and sha2 per row, which a rerun recognized by its digest never reads."""
    skipped = {ERRORS, HASH, RUN_ID, AT}
    # Spark does not hash maps: those columns are hashed as their JSON
    covered = ", ".join(f"to_json(struct({quote(f.name)}))" if "map<" in f.dataType.simpleString() else quote(f.name)
                        for f in rows.schema.fields if f.name not in skipped)
    hashes = f"sort_array(collect_list(CAST(xxhash64({covered}) AS STRING)))"
    found = rows.selectExpr(f"sha2(concat_ws(',', {hashes}), 256) AS digest").first()
    return f"{DIGEST_VERSION}:{found['digest']}" if found else ""


def _latest_digest(spark: "SparkSession", path: str, version: int | None) -> str | None:
    """The rows digest recorded by commit ``version`` of the table (its latest, read by the
    open transaction), from that commit's ``commitInfo`` in the Delta log."""
    if version is None:
        return None
    jvm = spark._jvm  # type: ignore[attr-defined]
    commit = jvm.org.apache.hadoop.fs.Path(f"{path.rstrip('/')}/_delta_log/{version:020d}.json")
    fs = commit.getFileSystem(spark._jsc.hadoopConfiguration())  # type: ignore[attr-defined]
    if not fs.exists(commit):
        return None
    stream = fs.open(commit)
    try:
        text = jvm.org.apache.commons.io.IOUtils.toString(stream, "UTF-8")
    finally:
        stream.close()
    for line in text.splitlines():
        try:
            info = json.loads(line).get("commitInfo")
            if info is not None:
                return json.loads(info.get("userMetadata") or "{}").get("rows_digest")
        except (ValueError, AttributeError):
            return None
    return None


def undo_quarantine(spark: "SparkSession", commit: QuarantineCommit, run_id: str) -> None:
    """Take back this run's quarantine commit because the feature commit failed: the table
    back to its version before, or, where another run has committed to it since, a delete of
    the rows this run added (theirs stay)."""
    from delta.tables import DeltaTable
    from pyspark.sql import functions as F

    if commit.version == commit.version_before:
        return  # this run made no quarantine commit
    latest = DeltaTable.forPath(spark, commit.path).history(1).select("version").first()
    if latest is not None and int(latest["version"]) != commit.version:
        DeltaTable.forPath(spark, commit.path).delete(F.col(RUN_ID) == F.lit(run_id))
        return
    if commit.created:
        local = Path(commit.path.removeprefix("file:"))
        if "://" not in commit.path or commit.path.startswith("file:"):
            shutil.rmtree(local, ignore_errors=True)
        return
    if commit.version_before is not None:
        DeltaTable.forPath(spark, commit.path).restoreToVersion(commit.version_before)
