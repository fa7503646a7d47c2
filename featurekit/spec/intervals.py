"""The event-time interval an incremental run recomputes, and the arithmetic behind it.

A job with ``incremental:`` replaces the output rows whose time lies in ``(start, end]``. An
output row at time ``t`` depends on the events in ``(t - reach, t]``, where ``reach`` is the
sum of the longest window of each ``aggregate`` step (0 for a job without one): the first
source is read from ``start - reach``. Bounds are aligned to the job's ``grain`` (the longest
``every``), so every bucket an interval touches is whole.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from featurekit.errors import arg
from featurekit.spec.durations import format_duration, parse_duration
from featurekit.spec.models import AggregateStep, JobSpec

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Interval:
    """Output rows with ``start < time <= end`` are recomputed; events with
    ``read_from < time <= end`` are read. ``start``/``read_from`` None: from the beginning."""

    start: datetime | None
    end: datetime
    read_from: datetime | None
    # rows without a time belong to no interval: a run takes those of files that arrived after
    # ``untimed_since`` (None: all of them; ``untimed`` False: none, as a backfill's chunks)
    untimed_since: datetime | None = None
    untimed: bool = True

    def describe(self) -> str:
        return f"({iso(self.start) if self.start else '-inf'}, {iso(self.end)}]"

    def to_dict(self) -> dict[str, str | None]:
        return {"start": iso(self.start), "end": iso(self.end), "read_from": iso(self.read_from)}


@dataclass(frozen=True)
class Arrivals:
    """What a ``by: arrival`` run reads of its first source: the files modified after
    ``files_since`` (None: every file), or a Delta source's changes after version
    ``after_version`` up to the version the run pins (None: the whole version)."""

    files_since: datetime | None = None
    after_version: int | None = None


def iso(moment: datetime | None) -> str | None:
    """``2026-01-15T00:00:00Z``: a moment as reports, errors and manifests show it (UTC)."""
    if moment is None:
        return None
    moment = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    return moment.isoformat().replace("+00:00", "Z")


def reach(spec: JobSpec) -> timedelta:
    """How far back from an output row's time its inputs may lie."""
    seconds = sum(max(parse_duration(w) for w in s.aggregate.windows) for s in spec.steps if isinstance(s, AggregateStep))
    return timedelta(seconds=seconds)


def grain(spec: JobSpec) -> timedelta:
    """The bucket length interval bounds align to (1 s for a job without an aggregate)."""
    everys = [parse_duration(s.aggregate.every) for s in spec.steps if isinstance(s, AggregateStep)]
    return timedelta(seconds=max(everys, default=1))


def align_down(moment: datetime, step: timedelta) -> datetime:
    """``moment`` rounded down to a multiple of ``step`` since the epoch (UTC)."""
    moment = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    return moment - (moment - EPOCH) % step


def to_epoch(moment: datetime) -> int:
    """Whole seconds since the epoch (a watermark as Delta stores it)."""
    return int((moment - EPOCH).total_seconds())


def from_epoch(seconds: int) -> datetime:
    return EPOCH + timedelta(seconds=seconds)


def lookback_start(spec: JobSpec, moment: datetime) -> datetime:
    """``moment`` minus the spec's lookback, aligned to the grain: where a run from it starts."""
    assert spec.incremental is not None
    lookback = timedelta(seconds=parse_duration(spec.incremental.lookback)) if spec.incremental.lookback else timedelta(0)
    return align_down(moment - lookback, grain(spec))


def next_interval(spec: JobSpec, watermark: datetime | None, end: datetime) -> Interval:
    """The interval of an incremental run: from ``watermark - lookback`` (or the spec's
    ``start``, or the beginning) to ``end``, aligned to the grain."""
    assert spec.incremental is not None
    step = grain(spec)
    end = align_down(end, step)
    start: datetime | None
    if watermark is not None:
        start = lookback_start(spec, watermark)
        if spec.incremental.start is not None:
            start = max(start, align_down(spec.incremental.start, step))
    else:
        start = align_down(spec.incremental.start, step) if spec.incremental.start is not None else None
    return between(spec, start, end)


def between(spec: JobSpec, start: datetime | None, end: datetime) -> Interval:
    """``(start, end]`` with the read range its windows need (bounds already aligned)."""
    return Interval(start, end, None if start is None else start - reach(spec))


def _shown(span: timedelta) -> str:
    return format_duration(int(span.total_seconds()))


def range_problems(spec: JobSpec, start: datetime, end: datetime, batch: str) -> list[tuple[str, str]]:
    """(parameter, message) for each reason a backfill of ``(start, end]`` in ``batch`` chunks
    cannot run: the chunk length and the range, both on the job's buckets."""
    problems = []
    step = grain(spec)
    try:
        size = timedelta(seconds=parse_duration(batch))
    except ValueError as exc:
        problems.append(("batch", str(exc)))
    else:
        if size % step:
            problems.append(("batch", f"{arg('batch')} {batch} must be a whole multiple of the job's bucket "
                                      f"({_shown(step)})"))
    if align_down(end, step) <= align_down(start, step):
        problems.append(("end", f"{arg('end')} {iso(end)} must be after {arg('start')} {iso(start)} "
                                f"(aligned to {_shown(step)})"))
    return problems


def backfill_chunks(spec: JobSpec, start: datetime, end: datetime, batch: str) -> list[tuple[datetime, datetime]]:
    """``(start, end]`` on the job's buckets, in chunks of ``batch`` (see :func:`range_problems`)."""
    step = grain(spec)
    return chunks(align_down(start, step), align_down(end, step), timedelta(seconds=parse_duration(batch)))


def chunks(start: datetime, end: datetime, batch: timedelta) -> list[tuple[datetime, datetime]]:
    """``(start, end]`` cut into consecutive ``(lo, hi]`` of ``batch`` (the last may be shorter)."""
    out = []
    lo = start
    while lo < end:
        hi = min(lo + batch, end)
        out.append((lo, hi))
        lo = hi
    return out
