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

With ``expire`` a key also gets a row at each bucket end where a window's value changes
because events leave it (a bucket with data plus each window), up to the run's end: the
latest row of a key that went quiet then carries its windows as of the run.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from featurekit.engine.context import BuildContext
from featurekit.spec.durations import parse_duration
from featurekit.spec.models import AggregateArgs, AggregateStep, parse_metric
from featurekit.spec.sqlcheck import quote

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

_BUCKET = "__fk_bucket_us"
_ROWS = "__fk_rows"  # input rows per (key, bucket)
_SHIFT = "__fk_shift"  # how far an expiry row lies after its bucket (0: the bucket itself)
MICROS = 1_000_000


def apply(frame: "DataFrame", step: AggregateStep, ctx: BuildContext) -> "DataFrame":
    # The expressions are Spark SQL text, parsed by the JVM in one call per DataFrame call:
    # as Column objects, each function would be a round trip from Python (about a hundred here).
    from pyspark.sql import functions as F

    args = step.aggregate
    every = parse_duration(args.every) * MICROS
    keys = [quote(k) for k in args.keys]
    bucket = quote(_BUCKET)
    # The rows coming in are counted by the per-bucket counts coming out: no observation
    # over every input row (rows without a timestamp form a null bucket, counted, then dropped).
    counted = ctx.carry(frame, ctx.step_key("in"))

    micros = f"unix_micros(CAST({quote(args.timestamp)} AS TIMESTAMP))"
    # Metrics share their partials: count(*) is the row count, avg(x) is sum(x) and count(x)
    partials = {"count(1)": _ROWS}  # partial aggregate (SQL) -> its column
    plans: list[tuple[str, str, list[str]]] = []  # (metric, function, partial columns)
    for name, text in args.metrics.items():
        function, argument = parse_metric(text)
        value = "1" if argument == "*" else f"({argument}\n)"  # the user's SQL; a -- comment ends at the newline
        needed = [f"sum({value})", f"count({value})"] if function == "avg" else [f"{function}({value})"]
        plans.append((name, function, [partials.setdefault(sql, f"__fk_p{len(partials)}") for sql in needed]))
    # One row per (key, bucket) comes out: counted here, before the windows, so that metrics
    # a later step drops are pruned by Spark (an observation would keep them all alive).
    grouped = counted.groupBy(*(F.col(k) for k in args.keys), F.expr(f"{micros} + pmod(-{micros}, {every}L) AS {bucket}"))
    # with expiry rows the step's output is counted after they join (see _with_expiry)
    out_key = ctx.step_key("buckets" if args.expire else "out")
    grouped = ctx.count_later(grouped.agg(*(F.expr(f"{sql} AS {column}") for sql, column in partials.items())),
                              out_key)
    ctx.fill(ctx.step_key("in"), grouped, rows=F.expr(f"sum({_ROWS})"),
             null_timestamp=F.expr(f"sum(CASE WHEN {bucket} IS NULL THEN {_ROWS} END)"))
    buckets = ctx.place(ctx.filter(grouped, F.expr(f"{bucket} IS NOT NULL"), None, out_key))
    if args.expire or any(parse_duration(w) * MICROS != every for w in args.windows):
        # The partials leave their shuffle by (key, bucket) for one by key: the expiry rows'
        # grouping and the windows need nothing more, where each would shuffle again.
        buckets = buckets.repartition(*(F.col(k) for k in args.keys))
    if args.expire:
        buckets = _with_expiry(buckets, args, partials, every, ctx)

    # Each partial combined over each window once, then the metrics from those: Spark would
    # compute a window function as often as the metrics name it (an average names its count
    # twice), and a range window re-aggregates its whole frame for every output row.
    windowed: dict[str, str] = {}  # window function (SQL) -> its column
    metrics = []
    for window_text in args.windows:
        span = parse_duration(window_text) * MICROS
        window = (f"OVER (PARTITION BY {', '.join(keys)} ORDER BY {bucket} "
                  f"RANGE BETWEEN {span - every}L PRECEDING AND CURRENT ROW)")
        for name, function, columns in plans:
            if span != every:  # a window as long as the bucket is the bucket's own partial
                combine = "sum" if function in ("count", "sum", "avg") else function
                columns = [windowed.setdefault(f"{combine}({c}) {window}", f"__fk_w{len(windowed)}") for c in columns]
            metrics.append(f"{_metric(function, columns)} AS {quote(f'{name}_{window_text}')}")
    combined = buckets.selectExpr("*", *(f"{sql} AS {column}" for sql, column in windowed.items())) if windowed else buckets
    return combined.selectExpr(*keys, f"timestamp_micros({bucket}) AS {quote(args.timestamp)}", *metrics)


def _with_expiry(buckets: "DataFrame", args: AggregateArgs, partials: dict[str, str], every: int,
                 ctx: BuildContext) -> "DataFrame":
    """The buckets with data, plus a bucket without data at each end ``b + W`` (a bucket ``b``
    with data, a window ``W``) up to the run's end: there the window's value changes because
    ``b``'s events leave it. Empty partials (counts 0, the rest null) make the windows give
    0 for counts and null for sum, avg, min and max of a window left without events. A bucket
    named by several such ends, or that has data itself, is one row: the partials of each
    (key, bucket) are combined once more.

    Each bucket row is exploded into itself and its ends rather than unioned with a frame
    derived from it: a union would compute everything before the buckets twice (the source
    read, the steps, the partial aggregates), once for each side."""
    from pyspark.sql import functions as F

    end = ctx.run_end or datetime.now(UTC)
    end_us = int(end.timestamp()) * MICROS
    end_us -= end_us % every  # the last whole bucket
    keys = [quote(k) for k in args.keys]
    bucket = quote(_BUCKET)
    shift = quote(_SHIFT)
    spans = sorted({parse_duration(w) * MICROS for w in args.windows})
    types = dict(buckets.dtypes)
    own = f"{shift} = 0"
    values = [f"CASE WHEN {own} THEN {column} ELSE CAST({'0' if sql.startswith('count(') else 'NULL'} "
              f"AS {types[column]}) END AS {column}" for sql, column in partials.items()]
    shifts = ", ".join(f"{span}L" for span in [0, *spans])
    exploded = (buckets.selectExpr("*", f"explode(array({shifts})) AS {shift}")
                .where(f"{own} OR {bucket} + {shift} <= {end_us}L")
                .selectExpr(*keys, f"{bucket} + {shift} AS {bucket}", *values))
    combined = exploded.groupBy(*(F.col(k) for k in args.keys), F.col(_BUCKET)).agg(
        *(F.expr(f"{_combine(sql)}({column}) AS {column}") for sql, column in partials.items()))
    return ctx.place(ctx.count_later(combined, ctx.step_key("out")))


def _combine(partial: str) -> str:
    """How partial aggregates of one kind combine: counts and sums add up, min and max stay."""
    function = partial.split("(", 1)[0]
    return "sum" if function in ("count", "sum") else function


def _metric(function: str, columns: list[str]) -> str:
    """A metric from its partials (or their windowed combinations): an average is their
    sum over their count; any other metric is its one column."""
    if function == "avg":
        total, n = columns
        return f"CASE WHEN {n} > 0 THEN {total} / {n} END"
    return columns[0]
