"""``cast``: change column types; under ANSI SQL a value that does not fit fails the run."""

from __future__ import annotations

from typing import TYPE_CHECKING

from featurekit.engine.context import BuildContext
from featurekit.spec.models import CastStep

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


def apply(frame: "DataFrame", step: CastStep, ctx: BuildContext) -> "DataFrame":
    from pyspark.sql import functions as F

    return frame.withColumns({name: F.col(name).cast(kind) for name, kind in step.cast.items()})
