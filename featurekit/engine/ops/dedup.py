"""``dedup``: one row per key, the latest (or first) by ``order_by``; drops are counted.

Ties on ``order_by`` are broken arbitrarily, as in any top-1 per group; add a column to
``order_by`` to make the choice deterministic.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from featurekit.engine.context import BuildContext
from featurekit.spec.models import DedupStep

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

_RANK = "__fk_rank"


def apply(frame: "DataFrame", step: DedupStep, ctx: BuildContext) -> "DataFrame":
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    args = step.dedup
    counted = ctx.observe(frame, ctx.step_key("in"))
    if args.order_by is None:
        kept = counted.dropDuplicates(args.keys)
    else:
        ordering = [
            F.col(c).desc_nulls_last() if args.keep == "last" else F.col(c).asc_nulls_last() for c in args.order_by
        ]
        window = Window.partitionBy(*args.keys).orderBy(*ordering)
        ranked = counted.withColumn(_RANK, F.row_number().over(window))
        kept = ranked.filter(F.col(_RANK) == 1).drop(_RANK)
    return ctx.count_later(kept, ctx.step_key("out"))
