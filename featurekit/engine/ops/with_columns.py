"""``with_columns``: add or replace columns from SQL expressions (in one projection)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from featurekit.engine.context import BuildContext
from featurekit.spec.models import WithColumnsStep

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


def apply(frame: "DataFrame", step: WithColumnsStep, ctx: BuildContext) -> "DataFrame":
    from pyspark.sql import functions as F

    return frame.withColumns({name: F.expr(text) for name, text in step.with_columns.items()})
