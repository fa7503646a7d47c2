"""``join``: join another source on equal key columns, which appear once in the result.

Rows in and out are counted: an inner, semi or anti join can drop rows, a join on a
non-unique key can multiply them, and the run report shows both.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from featurekit.engine.context import BuildContext
from featurekit.spec.models import JoinStep

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

_HOW = {"inner": "inner", "left": "left", "right": "right", "full": "full", "semi": "left_semi", "anti": "left_anti"}


def apply(frame: "DataFrame", step: JoinStep, ctx: BuildContext) -> "DataFrame":
    from pyspark.sql import functions as F

    args = step.join
    counted = ctx.observe(frame, ctx.step_key("in"))  # first: it places a source's open count
    right = ctx.sources[args.source]
    if args.broadcast:
        right = F.broadcast(right)
    return ctx.count_later(counted.join(right, on=list(args.on), how=_HOW[args.how]), ctx.step_key("out"))
