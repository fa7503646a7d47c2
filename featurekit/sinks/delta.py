"""The Delta commit of a job's result, in one of four modes.

- ``overwrite``: the table becomes the result (schema included).
- ``append``: the result's rows are added.
- ``merge``: upsert on ``keys`` (null-safe equality); only rows that are new or changed
  reach the MERGE, so a rerun on the same input rewrites no file and makes no new version.
- ``replace_partitions``: the partitions present in the result are replaced, others kept.

Each commit carries ``userMetadata`` (JSON: job, run id, spec fingerprint, env); a table
created by featurekit gets the ``featurekit.job`` property in the same first commit.

Writing and committing are two steps (:func:`prepare`, then :meth:`PreparedCommit.commit`):
the job's one pass writes the data files inside a Delta transaction held open (Delta's own
``WriteIntoDelta`` without its final commit, see :mod:`featurekit.sinks.transaction`), the
gate decides, and only then is the transaction committed — or its files deleted. Nothing is
visible to a reader before the commit, so a refused or failed run leaves the table at its
previous version.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from featurekit.errors import Conflict, DataError, OutputError
from featurekit.sinks.jvm import Scala
from featurekit.sinks.transaction import (
    JOB_PROPERTY,
    NO_CHANGE,
    CommitMeta,
    CommitResult,
    HeldWrite,
    app_versions,
    delete_path,
    describe_last_commit,
    is_local,
    metric_number,
    remove_partial,
    rows_written,
    set_transactions,
    write_held,
)
from featurekit.spec.models import OutputSpec
from featurekit.spec.sqlcheck import quote

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import StructType

_USER_METADATA = "spark.databricks.delta.commitInfo.userMetadata"
# A MERGE's staged rows up to this size (their Parquet files) are broadcast to find those the
# table holds unchanged; a larger source is compared with the table by EXCEPT ALL (both
# shuffled). Spark's own default broadcast limit, on the same estimate: rows decoded from well
# compressed files take many times their size on the driver.
PROBE_MAX_BYTES = 10 * 1024 * 1024


def counts_rows(out: OutputSpec) -> bool:
    """Whether :func:`prepare` counts the rows of the commit as it writes them (Delta's count
    of the rows in the data files). A ``merge`` does not: into an existing table its rows are
    staged for the MERGE, which counts them only when it runs, so the caller counts them on
    their way to :func:`prepare`."""
    return out.mode != "merge"


class ConcurrentRun(Conflict):
    """Another run moved a watermark this run planned from; nothing of this run was written."""

    def __init__(self, message: str, details: list[str]) -> None:
        super().__init__("; ".join([message, *details]))


@dataclass(frozen=True)
class Replacement:
    """An incremental commit: the table's rows matching ``predicate`` (SQL; None: every row)
    are replaced by the run's rows, and Delta application transactions ``marks`` (app id ->
    version: a watermark, a backfill's progress) are set in the same commit. ``expected``
    holds the versions the run was planned from: if another run moved one meanwhile, this
    one fails before it writes, or Delta's conflict check fails its commit."""

    predicate: str | None
    marks: dict[str, int]
    expected: dict[str, int]


@dataclass(frozen=True)
class Latest:
    """A latest-state commit (``by: arrival``): the run's rows are merged on the keys, and a
    row the table holds is replaced only by a newer version: greater in ``columns`` (compared
    in order, a null oldest), or smaller with ``greatest`` False. ``mark`` (app id, version)
    is set in the same commit; ``expected`` is the version the run was planned from."""

    columns: list[str]
    greatest: bool
    mark: tuple[str, int]
    expected: int

    def newer(self) -> str:
        """SQL: the merge source's row ``s`` is newer than the table's ``t``."""
        condition = "FALSE"
        for column in reversed(self.columns):
            s, t = f"s.{quote(column)}", f"t.{quote(column)}"
            beats = f"{s} {'>' if self.greatest else '<'} {t} OR ({s} IS NOT NULL AND {t} IS NULL)"
            condition = f"({beats} OR ({s} <=> {t} AND {condition}))"
        return condition


def _target(spark: "SparkSession", out: OutputSpec, job: str) -> tuple[Any, Any, bool]:
    """(Delta log, open transaction, whether the table exists); refuses a folder that is not
    Delta and a table that another job writes. One snapshot serves every check."""
    scala = Scala(spark)
    log = scala.delta("DeltaLog").forTable(scala.session, out.path)
    txn = log.startTransaction()
    if txn.readVersion() >= 0:
        owner = scala.unwrap(txn.metadata().configuration().get(JOB_PROPERTY))
        if owner and owner != job:
            raise OutputError("path", f"{out.path} belongs to job {owner!r}; two jobs cannot write one table")
        return log, txn, True
    local = Path(out.path.removeprefix("file:"))
    # A Delta writer makes ``_delta_log`` as it writes its first files: with it, another run is
    # creating the table (its commit or this one's wins, the other one conflicts)
    if is_local(out.path) and local.exists() and not (local / "_delta_log").exists() and any(local.iterdir()):
        raise OutputError("path", f"{out.path} exists and is not a Delta table; refusing to write into it")
    return log, txn, False


@dataclass
class PreparedCommit:
    """A commit whose data files are written but not yet committed.

    The gate decides between :meth:`prepare` and :meth:`commit`: until the commit, no reader
    of the table sees any of the files (they are not in the Delta log), and :meth:`abandon`
    deletes them. ``rows`` is Delta's own count of the rows in the written files (None for a
    MERGE, which counts its rows when it runs).
    """

    spark: "SparkSession"
    out: OutputSpec
    meta: CommitMeta
    created: bool
    version_before: int | None
    rows: int | None
    schema: "StructType"
    _held: HeldWrite | None = None
    _staging: str | None = None
    replacement: Replacement | None = None
    latest: Latest | None = None
    keys_unique: bool = False  # the steps guarantee one row per merge key: no check needed

    def data(self) -> "DataFrame":
        """The rows that the commit would add (for checks that need the data itself)."""
        if self._staging is not None:
            return self.spark.read.parquet(self._staging)
        assert self._held is not None
        paths = self._held.added_paths()
        reader = self.spark.read.schema(self.schema).option("basePath", self.out.path)
        if not paths:
            return self.spark.createDataFrame([], self.schema)
        return reader.parquet(*paths)  # partition values come from the files' folders

    def add(self, frame: "DataFrame") -> None:
        """Add rows to this commit: rows the gate held back during the pass and cleared after it."""
        if self._staging is not None:
            frame.write.mode("append").parquet(self._staging)
            return
        assert self._held is not None
        if self._held.add(frame.select(*self.schema.fieldNames())) and self.out.mode == "merge" \
                and not self.keys_unique:
            check_unique_keys(self.data(), self.out.keys)  # as :func:`prepare` did before these rows
        self.rows = self._held.rows

    def commit(self) -> CommitResult:
        """Make the commit (one Delta version) and describe it."""
        if self._staging is not None:
            return self._merge_staged()
        assert self._held is not None
        scala = Scala(self.spark)
        version = self._held.commit()
        info = self._held.txn.commitInfo()
        metrics = {k: metric_number(v) for k, v in scala.to_dict(scala.unwrap(info.operationMetrics()) or scala.map({})).items()}
        landed = rows_written(metrics)
        marks = self.replacement.expected if self.replacement is not None else {}
        return CommitResult(version, str(info.operation()), self.created, landed, landed, metrics,
                            self.meta.run_id, self.version_before, marks)

    def abandon(self) -> None:
        """Delete the written files; the table stays as it was (or absent, if this run made it)."""
        if self._staging is not None:
            _drop_staging(self.spark, self._staging)
            return
        if self._held is not None:
            self._held.drop()
        if self.created:
            remove_partial(self.out.path, own_files_dropped=self._held is not None)

    def _merge_staged(self) -> CommitResult:
        staged = self.spark.read.parquet(self._staging)
        try:
            if not self.keys_unique:
                check_unique_keys(staged, self.out.keys)
            latest = self.latest
            if latest is not None:
                now = app_versions(self.spark, self.out.path, [latest.mark[0]])[latest.mark[0]]
                if now != latest.expected:
                    raise _moved(self.meta, self.out, {latest.mark[0]: (now, latest.expected)})
            with _user_metadata(self.spark, self.meta), _transaction_mark(self.spark, latest):
                _merge(self.spark, staged, self.out, latest.newer() if latest else None)
            done = describe_last_commit(self.spark, self.out.path)
        finally:
            _drop_staging(self.spark, self._staging)
        if done.run_id != self.meta.run_id:  # nothing new or changed: Delta made no commit
            return CommitResult(done.version, NO_CHANGE, False, 0, 0, {}, self.meta.run_id, self.version_before)
        if latest is not None and done.rows_offered is not None and done.rows_landed is not None:
            # rows older than the table's version of their key were offered and rightly left out
            done = replace(done, kept_newer=done.rows_offered - done.rows_landed)
        return replace(done, version_before=self.version_before)


def prepare(spark: "SparkSession", frame: "DataFrame", out: OutputSpec, meta: CommitMeta,
            replacement: Replacement | None = None, latest: Latest | None = None,
            keys_unique: bool = False) -> PreparedCommit:
    """Compute ``frame`` and write its data files for one commit to ``out.path``, without
    committing: this is the job's one pass over its data. Nothing is visible until
    :meth:`PreparedCommit.commit`.

    ``merge`` into an existing table writes the rows to a staging folder inside the table
    (``_fk_staging/<run id>``, hidden from Delta); the MERGE reads them at commit time.
    With a ``replacement`` (an incremental run) the rows replace those of its interval
    instead (Delta's replaceWhere: files holding such rows are rewritten without them), and
    the application transactions go into the same commit. They are read through the open
    transaction, so Delta's conflict check fails this commit if another one sets them first.

    A merge's keys are checked unique by reading the written rows back, unless the caller
    knows the steps guarantee it (``keys_unique``, see :mod:`featurekit.spec.keys`).
    """
    log, txn, exists = _target(spark, out, meta.job)
    before = int(txn.readVersion()) if exists else None
    if exists and out.mode in {"append", "merge", "replace_partitions"} and \
            (replacement is None or replacement.predicate is not None):
        check_schema(_table_schema(txn), frame, out)
    if replacement is not None:
        moved = {app: (int(txn.txnVersion(app)), version) for app, version in replacement.expected.items()}
        moved = {app: pair for app, pair in moved.items() if pair[0] != pair[1]}
        if moved:
            raise _moved(meta, out, moved)
    elif exists and out.mode == "merge":
        staging = f"{out.path.rstrip('/')}/_fk_staging/{meta.run_id}"
        try:
            frame.write.parquet(staging)
        except Exception:
            _drop_staging(spark, staging)
            raise
        return PreparedCommit(spark, out, meta, False, before, None, frame.schema, _staging=staging, latest=latest,
                              keys_unique=keys_unique)
    # A frame straight from spark.sql() keeps its unresolved SQL as its logical plan, where
    # Spark's observation manager would not find the observations inside the views it uses.
    frame = frame.alias("__fk_result")
    options: dict[str, str] = {}
    predicate = replacement.predicate if replacement is not None else None
    if predicate is not None:
        options["replaceWhere"] = predicate
    elif out.mode == "overwrite" or replacement is not None:  # a full rebuild may change the schema
        options["overwriteSchema"] = "true"
    elif out.mode == "replace_partitions" and out.partition_by:
        options["partitionOverwriteMode"] = "dynamic"
    properties = {JOB_PROPERTY: meta.job, "delta.enableChangeDataFeed": "true", **out.properties} if not exists else {}
    held = write_held(spark, log, txn, frame, meta, append=out.mode == "append" and replacement is None,
                      options=options, partition_by=out.partition_by, properties=properties, path=out.path,
                      predicate=predicate)
    marks = replacement.marks if replacement is not None else dict([latest.mark]) if latest is not None else {}
    if marks:
        held.actions = held.actions.appendedAll(set_transactions(spark, marks))
    prepared = PreparedCommit(spark, out, meta, not exists, before, held.rows, frame.schema, held,
                              replacement=replacement, keys_unique=keys_unique)
    if out.mode == "merge" and not keys_unique:  # rows written straight into the table need unique keys too
        try:
            check_unique_keys(prepared.data(), out.keys)
        except Exception:
            prepared.abandon()
            raise
    return prepared


def _moved(meta: CommitMeta, out: OutputSpec, moved: dict[str, tuple[int, int]]) -> ConcurrentRun:
    return ConcurrentRun(f"another run of job {meta.job!r} committed to {out.path} while this one was planned; "
                         "nothing of this run was written — run it again",
                         [f"{app}: planned from {planned}, now {now}" for app, (now, planned) in moved.items()])


@contextmanager
def _transaction_mark(spark: "SparkSession", latest: Latest | None) -> Iterator[None]:
    """Delta's idempotent-DML settings: the MERGE's commit sets the application transaction."""
    if latest is None:
        yield
        return
    names = ("spark.databricks.delta.write.txnAppId", "spark.databricks.delta.write.txnVersion")
    spark.conf.set(names[0], latest.mark[0])
    spark.conf.set(names[1], str(latest.mark[1]))
    try:
        yield
    finally:
        for name in names:
            spark.conf.unset(name)


@contextmanager
def _user_metadata(spark: "SparkSession", meta: CommitMeta) -> Iterator[None]:
    previous = spark.conf.get(_USER_METADATA, None)
    spark.conf.set(_USER_METADATA, meta.to_json())
    try:
        yield
    finally:
        if previous is None:
            spark.conf.unset(_USER_METADATA)
        else:
            spark.conf.set(_USER_METADATA, previous)


def _table_schema(txn: Any) -> "StructType":
    from pyspark.sql.types import StructType

    return StructType.fromJson(json.loads(txn.metadata().schemaString()))


def _drop_staging(spark: "SparkSession", staging: str) -> None:
    """Delete a run's staging folder, and ``_fk_staging`` itself once no run uses it."""
    delete_path(spark, staging, recursive=True)
    jvm = spark._jvm  # type: ignore[attr-defined]
    parent = jvm.org.apache.hadoop.fs.Path(staging).getParent()
    fs = parent.getFileSystem(spark._jsc.hadoopConfiguration())  # type: ignore[attr-defined]
    if fs.exists(parent) and not list(fs.listStatus(parent)):
        fs.delete(parent, False)


def drop_staging(spark: "SparkSession", path: str, run_id: str) -> None:
    """Delete the staging folder run ``run_id`` kept in the table at ``path``, if any: a run
    killed between its pass and its MERGE leaves it (Delta ignores it; it only takes room)."""
    _drop_staging(spark, f"{path.rstrip('/')}/_fk_staging/{run_id}")


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


def check_schema(schema: "StructType", frame: "DataFrame", out: OutputSpec) -> None:
    """The result must fit the existing table (only ``overwrite`` may change the schema)."""
    table = {f.name.lower(): f for f in schema.fields}
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
        raise OutputError("path", f"the result does not fit the table at {out.path} ({'; '.join(problems)}); "
                          f"mode {out.mode!r} keeps the table's schema — use mode 'overwrite' to replace it")


def _merge(spark: "SparkSession", frame: "DataFrame", out: OutputSpec, newer: str | None = None) -> None:
    """Upsert ``frame`` on the keys; with ``newer`` (SQL over ``s`` and ``t``) a matched row is
    replaced only where the condition holds."""
    from delta.tables import DeltaTable
    from pyspark.sql.types import MapType

    on = " AND ".join(f"t.{quote(k)} <=> s.{quote(k)}" for k in out.keys)
    comparable = not any(isinstance(f.dataType, MapType) for f in frame.schema.fields)
    # Only rows that are new or differ from the table reach the MERGE: a rerun on the same
    # input then rewrites no file (and Delta makes no commit).
    source = _new_or_changed(spark, frame, out.path) if comparable else frame
    (
        DeltaTable.forPath(spark, out.path).alias("t")
        .merge(source.alias("s"), on)
        .whenMatchedUpdateAll(newer)
        .whenNotMatchedInsertAll()
        .execute()
    )


def _new_or_changed(spark: "SparkSession", frame: "DataFrame", path: str,
                    probe_max_bytes: int = PROBE_MAX_BYTES) -> "DataFrame":
    """The rows of ``frame`` that the table at ``path`` does not hold as they are (every
    column equal, nulls included); ``frame`` is unique by the merge keys, the table too.

    A run's rows are usually few beside the table: broadcast, they are probed by one scan of
    the table, which keeps the rows found unchanged; those, broadcast too, are taken out of
    ``frame``. Nothing is shuffled. EXCEPT ALL shuffles the whole table by all its columns (a
    cost that grows with the table, not with the run); above ``probe_max_bytes`` it is still
    what compares them."""
    from pyspark.sql import functions as F

    current = spark.read.format("delta").load(path).select(*(F.col(quote(c)) for c in frame.columns))
    size = frame._jdf.queryExecution().optimizedPlan().stats().sizeInBytes()  # py4j: an int
    if int(str(size)) > probe_max_bytes:
        return frame.exceptAll(current)
    same = F.expr(" AND ".join(f"c.{quote(c)} <=> f.{quote(c)}" for c in frame.columns))
    unchanged = current.alias("c").join(F.broadcast(frame.alias("f")), same, "left_semi")
    return frame.alias("f").join(F.broadcast(unchanged.alias("c")), same, "left_anti")
