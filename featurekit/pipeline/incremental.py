"""Incremental runs and backfills: which interval a run recomputes, and what it records.

A job with ``incremental:`` keeps its watermark (the end of the last interval it committed)
as a Delta application transaction of its output table (``featurekit/<job>/watermark``, the
version being seconds since the epoch). It is set in the same commit as the interval's rows,
and read through the transaction that commits them: a crash before the commit changes
nothing, and of two runs planned from the same watermark only one can commit.

A backfill cuts a range into chunks, each one incremental commit over exactly its chunk; its
progress is one more application transaction (``featurekit/<job>/backfill/<start>/<end>``),
so the same command, run again after a crash, skips the chunks already committed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from featurekit.config import Project, Settings
from featurekit.engine.transform import interval_rows
from featurekit.errors import ARGUMENTS, ConfigError, Problem, arg
from featurekit.sinks.delta import Latest, Replacement
from featurekit.sinks.transaction import app_versions
from featurekit.spec.intervals import Arrivals, Interval, align_down, iso, backfill_chunks as chunks, between, from_epoch, grain, \
    lookback_start, next_interval, range_problems, to_epoch
from featurekit.spec.loader import LoadedJob

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from featurekit.pipeline.report import RunResult


def watermark_app(job: str) -> str:
    return f"featurekit/{job}/watermark"


def arrivals_app(job: str) -> str:
    return f"featurekit/{job}/arrivals"


def backfill_app(job: str, start: datetime, end: datetime) -> str:
    return f"featurekit/{job}/backfill/{to_epoch(start)}/{to_epoch(end)}"


@dataclass(frozen=True)
class Increment:
    """What one incremental run recomputes and records."""

    interval: Interval
    replacement: Replacement
    kind: str  # incremental | full | backfill
    watermark_before: datetime | None
    watermark_after: datetime

    def report(self) -> dict[str, Any]:
        return {"kind": self.kind, "interval": self.interval.describe(), **self.interval.to_dict(),
                "watermark_before": iso(self.watermark_before), "watermark_after": iso(self.watermark_after)}


@dataclass(frozen=True)
class Chunk:
    """One chunk of a backfill: its interval and the progress mark its commit sets."""

    interval: Interval
    app: str


def plan_increment(spark: "SparkSession", job: LoadedJob, end: datetime | None, full: bool = False,
                   chunk: Chunk | None = None) -> Increment:
    """The interval of this run, from the watermark the output table holds now."""
    spec = job.spec
    assert spec.incremental is not None
    watermark, arrivals = watermark_app(job.name), arrivals_app(job.name)
    apps = [watermark, arrivals] + ([chunk.app] if chunk else [])
    planned = datetime.now(UTC)
    before = app_versions(spark, spec.output.path, apps)
    previous = from_epoch(before[watermark]) if before[watermark] >= 0 else None
    if chunk is not None:
        interval, kind = replace(chunk.interval, untimed=False), "backfill"
    else:
        moment = end or datetime.now(UTC)
        if full:
            start = spec.incremental.start
            interval = between(spec, None if start is None else align_down(start, grain(spec)), align_down(moment, grain(spec)))
            kind = "full"
        else:
            interval, kind = next_interval(spec, previous, moment), "incremental"
        seen = before[arrivals]
        interval = replace(interval, untimed_since=None if full or seen < 0 else from_epoch(seen))
    if interval.start is not None and interval.end <= interval.start:
        raise ConfigError.single(
            f"job {job.name!r}: the run's end {iso(interval.end)} is not after its interval's start {iso(interval.start)} "
            f"(watermark {iso(previous)}); give a later {arg('end')}, or use `featurekit backfill` for an earlier range",
            file=ARGUMENTS, field=arg("end"))
    # a full rebuild sets the watermark where it ends; a run or chunk never moves it back
    after = interval.end if kind == "full" else max(interval.end, previous or interval.end)
    marks = {watermark: to_epoch(after)}
    if chunk is not None:
        marks[chunk.app] = to_epoch(interval.end)
    else:  # files modified from now on are new to the next run (a second's margin for clocks)
        marks[arrivals] = to_epoch(planned) - 1
    predicate = None if kind == "full" else interval_rows(spec.incremental, interval)
    return Increment(interval, Replacement(predicate, marks, before), kind, previous, after)


@dataclass(frozen=True)
class ArrivalPlan:
    """What a ``by: arrival`` run reads and records."""

    arrivals: Arrivals
    latest: Latest
    pinned: dict[str, int]
    note: str = ""

    def report(self) -> dict[str, Any]:
        read = self.arrivals
        return {"kind": "arrival", "interval": "arrived since the last run" if (read.files_since or read.after_version
                                                                                 is not None) else "everything",
                "files_since": iso(read.files_since), "after_version": read.after_version,
                "mark_before": self.latest.expected, "mark_after": self.latest.mark[1], "note": self.note}


def plan_arrivals(spark: "SparkSession", job: LoadedJob, full: bool = False) -> ArrivalPlan:
    """What arrived in the first source since the last run: its files modified after the
    mark the output table holds (seconds since the epoch), or a Delta source's versions
    after it (read from its change data feed)."""
    from featurekit.engine.sources import change_feed_enabled, delta_version
    from featurekit.spec.checks import newest_columns
    from featurekit.spec.models import DeltaSource

    spec = job.spec
    app = arrivals_app(job.name)
    planned = datetime.now(UTC)
    before = app_versions(spark, spec.output.path, [app])[app]
    newest = newest_columns(spec)
    assert not isinstance(newest, str)  # the spec checks refused such a job
    columns, greatest = newest
    source = spec.sources[spec.first_source]
    note, pinned = "", {}
    if isinstance(source, DeltaSource):
        version = delta_version(spark, source.path) if source.version is None else source.version
        if version is None:
            arrivals, mark = Arrivals(), -1  # the source table does not exist yet: the read says so
        else:
            pinned[spec.first_source] = version
            usable = before >= 0 and not full and change_feed_enabled(spark, source.path)
            if before >= 0 and not full and not usable:
                note = (f"source {spec.first_source!r} has no change data feed (delta.enableChangeDataFeed): "
                        "read whole, merged newest-wins")
            arrivals, mark = Arrivals(after_version=before if usable else None), version
    else:  # files modified from now on are new to the next run (a second's margin for clocks)
        arrivals = Arrivals(files_since=from_epoch(before) if before >= 0 and not full else None)
        mark = to_epoch(planned) - 1
    return ArrivalPlan(arrivals, Latest(columns, greatest, (app, mark), before), pinned, note)


@dataclass
class BackfillResult:
    job: str
    start: datetime
    end: datetime
    batch: str
    chunks: list[tuple[datetime, datetime]]
    done_before: int  # chunks an earlier attempt had committed
    runs: list["RunResult"] = field(default_factory=list)

    @property
    def skipped(self) -> list[tuple[datetime, datetime]]:
        return self.chunks[:self.done_before]


def backfill_chunks(job: LoadedJob, start: datetime, end: datetime, batch: str) -> list[tuple[datetime, datetime]]:
    """``(start, end]`` in chunks of ``batch``, each aligned to the job's buckets."""
    if job.spec.incremental is None:
        raise ConfigError.single(f"job {job.name!r} has no incremental: block; a backfill needs one",
                                 file=job.shown_path, field="incremental")
    problems = range_problems(job.spec, start, end, batch)
    if problems:
        raise ConfigError([Problem(ARGUMENTS, None, None, arg(param), message) for param, message in problems])
    return chunks(job.spec, start, end, batch)


def backfill(project: Project, job: LoadedJob, settings: Settings, start: datetime, end: datetime, batch: str = "1d",
             spark: "SparkSession | None" = None, dry_run: bool = False,
             progress: Callable[[int, int, "RunResult | None"], None] | None = None) -> BackfillResult:
    """Run ``(start, end]`` in chunks, each one atomic incremental commit; chunks an earlier
    attempt of the same range committed are skipped (the table remembers its progress)."""
    from featurekit.pipeline.core import run, session

    parts = backfill_chunks(job, start, end, batch)
    lo, hi = parts[0][0], parts[-1][1]
    app = backfill_app(job.name, lo, hi)
    spark = spark or session(settings, f"{settings.spark.app_name}:{job.name}:backfill")
    done = app_versions(spark, job.spec.output.path, [app])[app]
    skip = sum(1 for _, chunk_end in parts if to_epoch(chunk_end) <= done)
    result = BackfillResult(job.name, lo, hi, batch, parts, skip)
    if progress:
        progress(skip, len(parts), None)
    if dry_run:
        return result
    for index, (chunk_lo, chunk_hi) in enumerate(parts[skip:], start=skip):
        # as an incremental run, a chunk also recomputes the lookback before it (not before the
        # backfill's start): a correction in this chunk of a trip in the one before is resolved
        chunk = Chunk(between(job.spec, max(lookback_start(job.spec, chunk_lo), lo), chunk_hi), app)
        result.runs.append(run(project, job, settings, spark, chunk=chunk))
        if progress:
            progress(index + 1, len(parts), result.runs[-1])
    return result
