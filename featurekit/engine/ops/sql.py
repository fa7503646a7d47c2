"""``sql``: the running frame becomes the result of a SELECT over the sources and ``input``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from featurekit.engine.context import BuildContext
from featurekit.spec.models import SqlStep

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

INPUT_VIEW = "input"


def apply(frame: "DataFrame", step: SqlStep, ctx: BuildContext) -> "DataFrame":
    ctx.register_view(INPUT_VIEW, frame)
    return ctx.spark.sql(step.sql)
