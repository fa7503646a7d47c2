"""Apply a job's steps to its sources, building one Spark plan (nothing runs yet)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from featurekit.engine.context import BuildContext
from featurekit.engine.ops import OPS
from featurekit.engine.sources import RAW, SourceRead, read_source
from featurekit.errors import SpecError
from featurekit.spec.loader import LoadedJob
from featurekit.spec.models import step_op

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


MALFORMED_ROWS = "_malformed_rows"
PARSED = "__fk_parsed"  # a hash of the columns that did parse: tells identical raw lines apart
MALFORMED_SCHEMA = f"`{RAW}` string, `{PARSED}` string"


def read_sources(ctx: BuildContext, job: LoadedJob) -> list[SourceRead]:
    """Read every source, count its rows as they are read, and name it as a view.

    Records that do not parse (CSV/JSON) are split off here: the source's observation counts
    them and gathers their raw text for the quarantine (``MALFORMED_ROWS``, read with
    ``ctx.collected``); the steps see only records that parsed.
    """
    from pyspark.sql import functions as F

    reads = []
    for name, source in job.spec.sources.items():
        frame, read = read_source(ctx.spark, name, source, ctx.pinned.get(name))
        if read.captures_malformed:
            raw = F.col(RAW)
            # Spark parses only the columns a query needs; a record is malformed if ANY
            # declared column fails to parse, so the count must need them all.
            every = F.xxhash64(*(F.col(c) for c in frame.columns if c != RAW))
            record = F.struct(raw.alias(RAW), every.cast("string").alias(PARSED))
            frame = ctx.observe(frame, f"source.{name}", malformed=F.count_if(raw.isNotNull()),
                                _all_columns=F.max(every),  # an aggregate the optimizer cannot fold
                                **{MALFORMED_ROWS: F.collect_list(F.when(raw.isNotNull(), record))})
            ctx.malformed.append(name)
            frame = frame.filter(raw.isNull()).drop(RAW)
            ctx.counted_as(frame, f"source.{name}", minus="malformed")
        else:
            frame = ctx.observe(frame, f"source.{name}")
        ctx.sources[name] = frame
        ctx.register_view(name, frame)
        reads.append(read)
    return reads


def apply_steps(ctx: BuildContext, job: LoadedJob) -> "DataFrame":
    """The running frame after every step; a step Spark cannot analyse is a spec error
    located at that step."""
    from pyspark.errors import AnalysisException

    frame = ctx.sources[job.spec.first_source]
    for index, step in enumerate(job.spec.steps):
        op = step_op(step) or ""
        ctx.step = index
        try:
            frame = OPS[op](frame, step, ctx)
        except AnalysisException as exc:
            message = _first_line(exc)
            raise SpecError([job.positions.problem(("steps", index, op), f"Spark cannot apply this step: {message}")]) from exc
    return frame


def _first_line(exc: Exception) -> str:
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__
