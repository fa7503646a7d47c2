"""``drop``: remove columns (a missing one is an error, not silently ignored)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from featurekit.engine.context import BuildContext
from featurekit.spec.models import DropStep

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


def apply(frame: "DataFrame", step: DropStep, ctx: BuildContext) -> "DataFrame":
    present = {c.lower() for c in frame.columns}
    missing = [name for name in step.drop if name.lower() not in present]
    if missing:
        from pyspark.errors import AnalysisException

        raise AnalysisException(f"cannot drop missing column(s) {', '.join(missing)}; columns: {', '.join(frame.columns)}")
    return frame.drop(*step.drop)
