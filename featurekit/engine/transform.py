"""Apply a job's steps to its sources, building one Spark plan (nothing runs yet)."""

from __future__ import annotations

import functools
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from featurekit.engine.context import BuildContext
from featurekit.engine.ops import COUNTS_ITS_INPUT, OPS, PROJECTIONS
from featurekit.engine.sources import RAW, SourceRead, read_source
from featurekit.errors import SpecError
from featurekit.spec.intervals import Interval
from featurekit.spec.loader import LoadedJob
from featurekit.spec.models import IncrementalSpec, step_op
from featurekit.spec.sqlcheck import quote

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


MALFORMED_ROWS = "_malformed_rows"
PARSED = "__fk_parsed"  # a hash of the columns that did parse: tells identical raw lines apart, and needs them all
MALFORMED_SCHEMA = f"`{RAW}` string, `{PARSED}` string"


def read_sources(ctx: BuildContext, job: LoadedJob) -> list[SourceRead]:
    """Read every source, count its rows as they are read, and name it as a view.

    Records that do not parse (CSV/JSON) are split off here: the source's observation counts
    them and gathers their raw text for the quarantine (``MALFORMED_ROWS``, read with
    ``ctx.collected``); the steps see only records that parsed. The first source is read
    last, and its count is left open: the filters that open the steps are counted by it.
    """
    from pyspark.sql import functions as F

    reads = {}
    first = job.spec.first_source
    for name in sorted(job.spec.sources, key=lambda n: n == first):
        arrived = ctx.arrivals if name == first else None
        frame, read = read_source(ctx.spark, name, job.spec.sources[name], ctx.pinned.get(name),
                                  arrived.after_version if arrived else None)
        if arrived is not None and arrived.files_since is not None:  # only the files that arrived since
            whole, frame = frame, frame.filter(f"_metadata.file_modification_time > {_ts(arrived.files_since)}")
            read = replace(read, files=scanned_files(frame, whole))
        if name == first and ctx.interval is not None and job.spec.incremental is not None:
            # only the events the interval needs are read (and counted): files, partitions and
            # row groups outside it are skipped where the format allows; a row without a time
            # goes on to the steps, which count or quarantine it
            whole, frame = frame, frame.filter(read_range(job.spec.incremental, ctx.interval))
            read = replace(read, files=scanned_files(frame, whole))
        if read.captures_malformed:
            raw = F.col(RAW)
            # A record is malformed if ANY declared column fails to parse, but Spark parses
            # only the columns a query needs, and checks a record's field count only when it
            # needs them all. The gathered record's hash of the parsed columns needs every
            # one, so each record is parsed whole; it is computed for malformed records only.
            parsed = F.xxhash64(*(F.col(c) for c in frame.columns if c != RAW))
            record = F.struct(raw.alias(RAW), parsed.cast("string").alias(PARSED))
            frame = ctx.count_later(frame, f"source.{name}", malformed=F.count(F.when(raw.isNotNull(), F.lit(1))),
                                    **{MALFORMED_ROWS: F.collect_list(F.when(raw.isNotNull(), record))})
            ctx.malformed.append(name)
            frame = ctx.filter(frame, raw.isNull(), None, None, then=lambda f: f.drop(RAW))
        else:
            frame = ctx.count_later(frame, f"source.{name}")
        ctx.sources[name] = frame
        if name == first:  # named now, as read, for a step's subquery; again once its count is placed
            ctx.register_view(name, frame)
        ctx.when_placed(frame, functools.partial(_named, ctx, name))
        if name != first:
            ctx.place(frame)
        reads[name] = read
    return [reads[name] for name in job.spec.sources]


def scanned_files(frame: "DataFrame", whole: "DataFrame") -> tuple[int, int] | None:
    """(files the scan of ``frame`` reads, files of ``whole``, its source) where the format
    prunes files before reading (partition values, Delta's statistics): an interval's pruning."""
    node, scans = frame._jdf.queryExecution().executedPlan(), []
    stack = [node]
    while stack:
        node = stack.pop()
        if node.getClass().getSimpleName() == "FileSourceScanExec":
            scans.append(node)
        children = node.children().iterator()
        while children.hasNext():
            stack.append(children.next())
    if len(scans) != 1:
        return None
    return int(scans[0].selectedPartitions().totalNumberOfFiles()), len(whole.inputFiles())


def _ts(moment: "datetime") -> str:
    return f"TIMESTAMP '{moment.astimezone(UTC).strftime('%Y-%m-%d %H:%M:%S.%f')}+00:00'"


def read_range(incremental: IncrementalSpec, interval: Interval) -> str:
    """The SQL condition on the first source of an incremental run: its time in
    ``(read_from, end]``, or no time at all and a file that arrived since the last run (its
    steps count or quarantine such rows, once); with a date partition column, the partitions too."""
    time = quote(incremental.time_column)
    bounds = [f"{time} <= {_ts(interval.end)}"]
    if interval.read_from is not None:
        bounds.insert(0, f"{time} > {_ts(interval.read_from)}")
    condition = f"({' AND '.join(bounds)})"
    if interval.untimed:  # two conjuncts, so a reader that skips files by statistics can use the first
        condition = f"({time} IS NULL OR {condition})"
        if interval.untimed_since is not None:
            condition += f" AND ({time} IS NOT NULL OR _metadata.file_modification_time > {_ts(interval.untimed_since)})"
    if incremental.partition_column:
        day = f"CAST({quote(incremental.partition_column)} AS DATE)"
        days = [f"{day} <= DATE '{interval.end.astimezone(UTC):%Y-%m-%d}'"]
        if interval.read_from is not None:
            days.insert(0, f"{day} >= DATE '{interval.read_from.astimezone(UTC):%Y-%m-%d}'")
        condition += f" AND ({day} IS NULL OR ({' AND '.join(days)}))"
    return condition


def interval_rows(incremental: IncrementalSpec, interval: Interval) -> str:
    """The SQL condition on output rows that belong to the interval: ``start < time <= end``."""
    time = quote(incremental.time_column)
    bounds = [f"{time} <= {_ts(interval.end)}"]
    if interval.start is not None:
        bounds.insert(0, f"{time} > {_ts(interval.start)}")
    return " AND ".join(bounds)


def _named(ctx: BuildContext, name: str, frame: "DataFrame") -> None:
    """Source ``name`` is ``frame`` (its observation in place): for later steps and SQL."""
    ctx.sources[name] = frame
    ctx.register_view(name, frame)


def apply_steps(ctx: BuildContext, job: LoadedJob, place: bool = True) -> "DataFrame":
    """The running frame after every step; a step Spark cannot analyse is a spec error
    located at that step. With ``place=False`` a count still open after the last step stays
    open (the caller projects the frame further, or places it)."""
    from pyspark.errors import AnalysisException
    from pyspark.sql import functions as F

    steps = job.spec.steps
    frame = ctx.sources[job.spec.first_source]
    for index, step in enumerate(steps):
        op = step_op(step) or ""
        ctx.step = index
        ctx.sources_read_later = any(_reads_a_source(later, job.spec.first_source) for later in steps[index + 1:])
        try:
            if op in PROJECTIONS:
                build = functools.partial(OPS[op], step=step, ctx=ctx)
                frame = ctx.project(frame, build, counted_as=(ctx.step_key("in"), ctx.step_key("out")))
                continue
            if op not in COUNTS_ITS_INPUT:
                frame = ctx.place(frame)
            frame = OPS[op](frame, step, ctx)
        except AnalysisException as exc:
            message = _first_line(exc)
            raise SpecError([job.positions.problem(("steps", index, op), f"Spark cannot apply this step: {message}")]) from exc
    ctx.sources_read_later = False
    if ctx.interval is not None and job.spec.incremental is not None:
        # rows of the windows' lead-in (before the interval) and expiry rows past it belong to
        # other intervals; counted as a step of their own after the job's steps
        ctx.step = len(steps)
        condition = F.expr(interval_rows(job.spec.incremental, ctx.interval))
        frame = ctx.filter(frame, condition, ctx.step_key("in"), ctx.step_key("out"))
    return ctx.place(frame) if place else frame


def _reads_a_source(step: Any, first: str) -> bool:
    """Whether ``step`` may read the first source by name, not through the running frame."""
    op = step_op(step)
    if op == "sql":
        return True
    args = getattr(step, op or "", None)
    return op in ("join", "union") and getattr(args, "source", None) == first


def _first_line(exc: Exception) -> str:
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__
