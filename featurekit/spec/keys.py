"""Which columns a job's steps make unique, read from the spec alone.

A ``merge`` output needs one row per key. The sink checks this by reading back what it wrote,
which costs a pass over the written rows. When the steps themselves guarantee it (the last
``dedup`` or ``aggregate`` groups by a subset of the merge keys, and no later step can repeat
or change those columns), the check can be left out: it could not fail.

The analysis is conservative: any step it cannot follow (``sql``, ``join``, ``union``, a
``cast`` or ``fill_null`` of a key column, an expression that redefines one) ends the proof.
The validation gate and an incremental run's interval only remove rows, which keeps it.
"""

from __future__ import annotations

import re
from typing import Any

from featurekit.spec.models import (
    AggregateStep,
    CastStep,
    DedupStep,
    DropStep,
    FillNullStep,
    FilterStep,
    JobSpec,
    RenameStep,
    SelectStep,
    WithColumnsStep,
)

_ALIAS = re.compile(r"\bAS\s+`?(\w+)`?\s*$", re.IGNORECASE)


def unique_columns(steps: list[Any]) -> set[str] | None:
    """The (lower-cased) columns the output is unique on after ``steps``, or None when the
    steps guarantee no such set."""
    unique: set[str] | None = None
    for step in steps:
        if isinstance(step, DedupStep):
            unique = {k.lower() for k in step.dedup.keys}
        elif isinstance(step, AggregateStep):
            args = step.aggregate
            unique = {k.lower() for k in args.keys} | {args.timestamp.lower()}
        elif unique is None or isinstance(step, FilterStep):
            continue
        elif isinstance(step, RenameStep):
            renamed = {old.lower(): new.lower() for old, new in step.rename.items()}
            if unique & (set(renamed.values()) - set(renamed)):
                unique = None  # a column renamed onto a key's name
            else:
                unique = {renamed.get(c, c) for c in unique}
        elif isinstance(step, SelectStep):
            unique = unique if all(_kept_by_select(c, step.select) for c in unique) else None
        elif isinstance(step, WithColumnsStep):
            unique = None if unique & {c.lower() for c in step.with_columns} else unique
        elif isinstance(step, (CastStep, FillNullStep)):
            touched = step.cast if isinstance(step, CastStep) else step.fill_null
            unique = None if unique & {c.lower() for c in touched} else unique
        elif isinstance(step, DropStep):
            unique = None if unique & {c.lower() for c in step.drop} else unique
        else:  # sql, join, union: rows may repeat or change in ways the spec does not show
            unique = None
    return unique


def _kept_by_select(column: str, items: list[str]) -> bool:
    """A select keeps ``column`` as it was: named plainly (or by ``*``), and no item defines
    another column of that name."""
    plain = {item.strip().strip("`").lower() for item in items}
    aliased = {m.group(1).lower() for item in items if (m := _ALIAS.search(item.strip()))}
    return (column in plain or "*" in plain) and column not in aliased


def merge_keys_unique(spec: JobSpec) -> bool:
    """Whether the steps alone guarantee one row per merge key of ``spec.output``."""
    if spec.output.mode != "merge" or not spec.output.keys:
        return False
    unique = unique_columns(spec.steps)
    return unique is not None and unique <= {k.lower() for k in spec.output.keys}
