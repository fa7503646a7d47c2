"""``filter``: keep rows where the condition is true; rows in and out are counted."""

from __future__ import annotations

from typing import TYPE_CHECKING

from featurekit.engine.context import BuildContext
from featurekit.spec.models import FilterStep

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


def apply(frame: "DataFrame", step: FilterStep, ctx: BuildContext) -> "DataFrame":
    from pyspark.sql import functions as F

    # A null condition drops the row, as in SQL's WHERE: it is counted with the drops.
    return ctx.filter(frame, F.expr(step.filter), ctx.step_key("in"), ctx.step_key("out"))
