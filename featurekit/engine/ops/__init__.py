"""One module per step op; each exposes ``apply(frame, step, ctx) -> DataFrame``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from featurekit.engine.ops import (
    aggregate,
    cast,
    dedup,
    drop,
    fill_null,
    filter,
    join,
    rename,
    select,
    sql,
    union,
    with_columns,
)

OPS: dict[str, Callable[..., Any]] = {
    "sql": sql.apply,
    "filter": filter.apply,
    "with_columns": with_columns.apply,
    "dedup": dedup.apply,
    "join": join.apply,
    "aggregate": aggregate.apply,
    "select": select.apply,
    "rename": rename.apply,
    "cast": cast.apply,
    "drop": drop.apply,
    "fill_null": fill_null.apply,
    "union": union.apply,
}

# Ops that hand their input to the context's count points first (``observe``/``filter``),
# so an open count (see ``BuildContext``) may reach them; every other op gets it placed.
COUNTS_ITS_INPUT = {"filter", "dedup", "join", "aggregate"}

# Ops whose result is a projection of their input (every row kept, none added), as written;
# ``BuildContext.project`` checks the plan, since a ``select`` may aggregate or explode.
PROJECTIONS = {"with_columns", "select", "rename", "cast", "drop", "fill_null"}
