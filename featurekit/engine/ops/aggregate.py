"""``aggregate``: trailing-window metrics per key, point-in-time correct.

Buckets are ``every`` long and right-closed: an event at ``ts`` belongs to the bucket
ending at the first multiple of ``every`` (since the epoch, UTC) at or after ``ts``. For
each key and each bucket that has data there is one output row, stamped with the bucket
end, whose metric ``m_W`` is ``m`` over the events with ``end - W < ts <= end``; an event
never reaches a bucket that ends before it.

It runs in two passes that Spark pipelines: partial aggregates per (key, bucket) — count,
sum, min, max; avg as sum and count — then a range window over each key's buckets that
combines the partials of the ``W / every`` buckets ending at ``end``. Rows whose
timestamp is null cannot be placed in time: they are counted and left out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from featurekit.engine.context import BuildContext
from featurekit.spec.durations import parse_duration
from featurekit.spec.models import AggregateStep, parse_metric

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

_BUCKET = "__fk_bucket_us"
_ROWS = "__fk_rows"  # input rows per (key, bucket)
MICROS = 1_000_000


def apply(frame: "DataFrame", step: AggregateStep, ctx: BuildContext) -> "DataFrame":
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    args = step.aggregate
    every = parse_duration(args.every) * MICROS
    ts = F.col(args.timestamp)
    # The rows coming in are counted by the per-bucket counts coming out: no observation
    # over every input row (rows without a timestamp form a null bucket, counted, then dropped).
    counted = ctx.carry(frame, ctx.step_key("in"))

    micros = F.unix_micros(ts.cast("timestamp"))
    bucket = (micros + F.pmod(-micros, F.lit(every))).alias(_BUCKET)
    partials: list["Column"] = [F.count(F.lit(1)).alias(_ROWS)]
    plans: list[tuple[str, str, list[str]]] = []  # (metric, function, partial column names)
    for index, (name, text) in enumerate(args.metrics.items()):
        function, argument = parse_metric(text)
        value = F.lit(1) if argument == "*" else F.expr(argument)
        base = f"__fk_p{index}"
        if function == "avg":
            partials += [F.sum(value).alias(f"{base}_sum"), F.count(value).alias(f"{base}_n")]
            plans.append((name, function, [f"{base}_sum", f"{base}_n"]))
        else:
            aggregate = {"count": F.count, "sum": F.sum, "min": F.min, "max": F.max}[function]
            partials.append(aggregate(value).alias(base))
            plans.append((name, function, [base]))
    # One row per (key, bucket) comes out: counted here, before the windows, so that metrics
    # a later step drops are pruned by Spark (an observation would keep them all alive).
    grouped = ctx.count_later(counted.groupBy(*args.keys, bucket).agg(*partials), ctx.step_key("out"))
    rows, placed = F.col(_ROWS), F.col(_BUCKET).isNotNull()
    ctx.fill(ctx.step_key("in"), grouped, rows=F.sum(rows), null_timestamp=F.sum(F.when(~placed, rows)))
    buckets = ctx.place(ctx.filter(grouped, placed, None, ctx.step_key("out")))

    metrics: list["Column"] = []
    for window_text in args.windows:
        span = parse_duration(window_text) * MICROS
        window = Window.partitionBy(*args.keys).orderBy(_BUCKET).rangeBetween(-(span - every), 0)
        for name, function, columns in plans:
            combined = _partial(function, columns) if span == every else _combine(function, columns, window)
            metrics.append(combined.alias(f"{name}_{window_text}"))
    return buckets.select(
        *args.keys,
        F.timestamp_micros(F.col(_BUCKET)).alias(args.timestamp),
        *metrics,
    )


def _partial(function: str, columns: list[str]) -> "Column":
    """A window as long as the bucket holds the bucket's own partial: no window needed."""
    from pyspark.sql import functions as F

    if function == "avg":
        total, n = (F.col(c) for c in columns)
        return F.when(n > 0, total / n)
    return F.col(columns[0])


def _combine(function: str, columns: list[str], window: object) -> "Column":
    from pyspark.sql import functions as F

    if function == "avg":
        total, n = (F.sum(F.col(c)).over(window) for c in columns)
        return F.when(n > 0, total / n)
    combine = {"count": F.sum, "sum": F.sum, "min": F.min, "max": F.max}[function]
    return combine(F.col(columns[0])).over(window)
