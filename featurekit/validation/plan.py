"""The gate's plan: the result with one boolean column per row-level rule.

Every row-level rule is a SQL condition, TRUE when a row fails it; the plan adds one boolean
column per rule to the result, and the good rows are filtered on their way to the Delta
writer. The row itself, where it is bad or held back for a uniqueness rule, goes into one more
column that a Spark observation on the same pass gathers (few rows: ``max_bad_fraction`` and
``HELD_ROWS_MAX`` bound them); after the pass the held rows are ranked (:meth:`GatePlan.resolve`),
and the gathered rows give the quarantine rows and the rows released into the commit.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Callable

from featurekit.spec.sqlcheck import literal, quote
from featurekit.spec.validate import ValidateSpec
from featurekit.validation.model import ModelContract, merged_columns
from featurekit.validation.rules import RowRule, rules_for
from featurekit.validation.unique import HeldBack, unique_checks

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame
    from pyspark.sql.types import StructType

ERRORS = "_fk_errors"
FLAG = "__fk_fail"
BAD_ROWS = "_bad_rows"  # the observation field that gathers the bad rows
ERROR_TYPE = "array<struct<check:string,column:string,message:string>>"
GATHER = "__fk_gather"  # the row itself where it is bad or held, else null: what the observation gathers


@dataclass
class GatePlan:
    """The result with one boolean column per rule (TRUE: the row fails it), the rules, and
    the rows held back for uniqueness rules checked after the pass."""

    frame: "DataFrame"
    rules: list[RowRule]
    held: list[HeldBack] = field(default_factory=list)
    unique: list[dict[str, Any]] = field(default_factory=list)

    @property
    def markers(self) -> list[str]:
        return [r.flag for r in self.rules] + [h.column for h in self.held]

    def gathered(self) -> "Column":
        """TRUE for a row that goes to the driver: bad, or held back."""
        return _any(self.markers)

    @property
    def gathered_schema(self) -> "StructType":
        """The schema of a gathered row: the result's columns and the markers."""
        from pyspark.sql.types import StructType

        return StructType([f for f in self.frame.schema.fields if f.name != GATHER])

    def observed(self) -> dict[str, "Column"]:
        """What the gate's observation gathers during the one pass: the bad and held rows
        (few: ``max_bad_fraction`` and ``HELD_ROWS_MAX`` bound them), with their flags.
        Everything else (failures per rule, examples) is counted from those rows after it.
        The row is built in the projection before it (generated code), so the observation,
        which Spark does not compile, only appends a column that is null for most rows."""
        from pyspark.sql import functions as F

        return {BAD_ROWS: F.collect_list(F.col(GATHER))} if self.rules else {}

    def good_rows(self, frame: "DataFrame") -> "DataFrame":
        """The rows of ``frame`` (this plan's result, as placed in the run's plan) written by
        the pass: none that fails a rule or is held back; no flags."""
        if not self.rules:
            return frame
        return frame.filter(~self.gathered()).drop(*self.markers, GATHER)

    def resolve(self, gathered: "DataFrame") -> "DataFrame":
        """The gathered rows with each held-back rule's flag set: a held row fails when an
        earlier row (by the rule's order) has its key. Every row sharing a key with another
        one was held (its key hash repeats), so ranking the held rows ranks them all."""
        from pyspark.sql import Window
        from pyspark.sql import functions as F

        for held in self.held:
            rank = F.row_number().over(Window.partitionBy(*held.keys).orderBy(*held.ordering))
            gathered = gathered.withColumn(self.rules[held.rule].flag, F.col(held.column) & (rank > 1))
        return gathered

    def cleared(self, resolved: "DataFrame") -> "DataFrame":
        """Held rows that pass every rule: written into the same commit after the pass."""
        held = _any(h.column for h in self.held)
        return resolved.filter(held & ~failing(self.rules)).drop(*self.markers).coalesce(1)

    def refused(self, resolved: "DataFrame") -> "DataFrame":
        """The bad rows, with ``_fk_errors`` (check, column, message of each rule broken)."""
        from pyspark.sql import functions as F

        items = ", ".join(
            f"CASE WHEN {quote(r.flag)} THEN named_struct('check', {literal(r.check)}, "
            f"'column', {literal(r.column)}, 'message', {literal(r.message)}) END"
            for r in self.rules
        )
        errors = F.expr(f"CAST(filter(array({items}), e -> e IS NOT NULL) AS {ERROR_TYPE})")
        bad = resolved.filter(failing(self.rules))
        return bad.withColumn(ERRORS, errors).drop(*self.markers)


def _any(names: Any) -> "Column":
    """TRUE where any of the boolean columns ``names`` is (one expression, one py4j call)."""
    from pyspark.sql import functions as F

    return F.expr(any_sql(names))


def any_sql(names: Any) -> str:
    """SQL: TRUE where any of the boolean columns ``names`` is."""
    return " OR ".join(["FALSE", *(quote(name) for name in names)])


def failing(rules: list[RowRule]) -> "Column":
    """TRUE for a row that fails any rule."""
    return _any(rule.flag for rule in rules)


def plan_checks(frame: "DataFrame", spec: ValidateSpec, contract: ModelContract | None,
                rescan: Callable[[], "DataFrame"] | None = None) -> GatePlan:
    """The gate's plan for ``frame``. ``rescan`` builds the same plan without observations
    (for the pre-pass of held-back uniqueness); without it every uniqueness rule ranks with
    a window."""
    from pyspark.sql import functions as F

    columns = merged_columns(spec.columns, contract)
    present = {c.lower() for c in frame.columns}
    rules = [r for r in rules_for(columns) if r.column.lower() in present]
    model_unique = contract.unique if contract is not None else None
    unique = unique_checks(frame, spec, columns, model_unique, rescan, first_rule=len(rules))
    frame, rules = unique.frame, rules + unique.rules
    rules = [replace(rule, flag=f"{FLAG}{index}") for index, rule in enumerate(rules)]
    if rules:
        frame = frame.withColumns({r.flag: F.expr(f"coalesce({r.failure_sql}, FALSE)") for r in rules})
    frame = frame.drop(*unique.helpers) if unique.helpers else frame
    plan = GatePlan(frame, rules, unique.held, unique.methods)
    if rules:
        plan.frame = frame.withColumn(GATHER, F.when(plan.gathered(), F.struct(*(F.col(c) for c in frame.columns))))
    return plan
