"""``select``: keep these columns in this order (entries may be ``expr AS name``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from featurekit.engine.context import BuildContext
from featurekit.spec.models import SelectStep

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


def apply(frame: "DataFrame", step: SelectStep, ctx: BuildContext) -> "DataFrame":
    return frame.selectExpr(*step.select)
