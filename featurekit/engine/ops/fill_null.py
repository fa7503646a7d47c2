"""``fill_null``: replace nulls in the named columns by a literal value."""

from __future__ import annotations

from typing import TYPE_CHECKING

from featurekit.engine.context import BuildContext
from featurekit.spec.models import FillNullStep

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


def apply(frame: "DataFrame", step: FillNullStep, ctx: BuildContext) -> "DataFrame":
    from pyspark.errors import AnalysisException
    from pyspark.sql import functions as F

    types = {f.name.lower(): f.dataType for f in frame.schema.fields}
    missing = [name for name in step.fill_null if name.lower() not in types]
    if missing:
        raise AnalysisException(f"cannot fill missing column(s) {', '.join(missing)}; columns: {', '.join(frame.columns)}")
    return frame.withColumns({
        name: F.coalesce(F.col(name), F.lit(value).cast(types[name.lower()]))
        for name, value in step.fill_null.items()
    })
