"""``rename``: rename columns, ``{old: new}``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from featurekit.engine.context import BuildContext
from featurekit.spec.models import RenameStep

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


def apply(frame: "DataFrame", step: RenameStep, ctx: BuildContext) -> "DataFrame":
    missing = [old for old in step.rename if old.lower() not in {c.lower() for c in frame.columns}]
    if missing:
        from pyspark.errors import AnalysisException

        raise AnalysisException(f"cannot rename missing column(s) {', '.join(missing)}; columns: {', '.join(frame.columns)}")
    return frame.withColumnsRenamed(dict(step.rename))
