"""``union``: append the rows of another source, matched by name (or by position)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from featurekit.engine.context import BuildContext
from featurekit.spec.models import UnionStep

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


def apply(frame: "DataFrame", step: UnionStep, ctx: BuildContext) -> "DataFrame":
    args = step.union
    other = ctx.sources[args.source]
    if args.by_name:
        return frame.unionByName(other, allowMissingColumns=args.allow_missing)
    return frame.union(other)
