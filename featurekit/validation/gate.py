"""The validation gate between a job's steps and its Delta commit.

Every row-level rule is a SQL condition, TRUE when a row fails it; the gate adds one
boolean column per rule to the result and filters the good rows on their way to the Delta
writer. A Spark observation on the same pass counts rows, bad rows and failures per rule,
and gathers the bad rows themselves (few: ``max_bad_fraction`` bounds them), so the gate
costs no pass of its own and nothing is cached. The verdict is taken after the data files
are written and before they are committed. pandera does what it is good at, on the schema:
dtypes and column presence (``SCHEMA_ONLY`` depth, no data read), plus any check that cannot
be made row-level (run on the written rows; a failure fails the run with the check's name).
"""

from __future__ import annotations

import datetime as dt
import decimal
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from featurekit.spec.validate import ColumnRule, ValidateSpec
from featurekit.validation.model import ModelContract, merged_columns
from featurekit.validation.rules import RowRule, column_rules, literal, quote

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

ERRORS = "_fk_errors"
FLAG = "__fk_fail"
BAD_ROWS = "_bad_rows"  # the observation field that gathers the bad rows
ERROR_TYPE = "array<struct<check:string,column:string,message:string>>"
EXAMPLES = 5


@dataclass
class CheckResult:
    check: str
    column: str
    message: str
    failures: int
    examples: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class GateResult:
    """What the gate found; ``failed_because`` is empty when the rows may be committed."""

    policy: str
    max_bad_fraction: float
    rows_checked: int = 0
    rows_good: int = 0
    rows_bad: int = 0
    rows_malformed: int = 0  # source records that did not parse (quarantined too)
    checks: list[CheckResult] = field(default_factory=list)
    schema_errors: list[str] = field(default_factory=list)
    failed_because: str = ""

    @property
    def bad_fraction(self) -> float:
        """Bad rows (refused by the checks or unparsable at the source) among all of them."""
        total = self.rows_checked + self.rows_malformed
        return (self.rows_bad + self.rows_malformed) / total if total else 0.0


def effective_spec(spec: ValidateSpec | None) -> ValidateSpec:
    return spec if spec is not None else ValidateSpec()


def rules_for(columns: dict[str, ColumnRule]) -> list[RowRule]:
    rules: list[RowRule] = []
    for name, rule in columns.items():
        rules += column_rules(name, rule)
    return rules


def _unique_rules(spec: ValidateSpec, columns: dict[str, ColumnRule], frame_columns: list[str],
                  model_unique: list[str] | None = None) -> list[tuple[RowRule, list[str], list[str], str]]:
    """(rule, keys, order columns, keep) for each uniqueness rule; the rule's SQL is filled later.

    Without a declared ``order_by`` the other columns decide, through one hash of them.
    """
    out = []
    if model_unique and (spec.unique is None or [k.lower() for k in spec.unique.keys] != [k.lower() for k in model_unique]):
        keys = list(model_unique)
        label = ",".join(keys)
        order = [c for c in frame_columns if c not in keys]
        out.append((RowRule("unique", label, "", f"({label}) repeats an earlier row"), keys, order, "first"))
    if spec.unique is not None:
        keys = list(spec.unique.keys)
        order = list(spec.unique.order_by) or [c for c in frame_columns if c not in keys]
        label = ",".join(keys)
        message = f"({label}) repeats an earlier row"
        out.append((RowRule("unique", label, "", message), keys, order, spec.unique.keep))
    for name, rule in columns.items():
        if rule.checks.unique:
            order = [c for c in frame_columns if c != name]
            out.append((RowRule("unique", name, "", "repeats an earlier row"), [name], order, "first"))
    return out


def check_schema(frame: "DataFrame", columns: dict[str, ColumnRule]) -> list[str]:
    """pandera's schema-level verdict (dtype, presence) on the result; no data is read."""
    import pandera.pyspark as pa
    from pandera.config import ValidationDepth, config_context
    from pyspark.sql.types import _parse_datatype_string

    present = {f.name for f in frame.schema.fields}
    schema_columns = {}
    for name, rule in columns.items():
        dtype = _parse_datatype_string(rule.type) if rule.type else None
        schema_columns[name] = pa.Column(dtype, nullable=True, required=rule.required)
    if not schema_columns:
        return []
    with config_context(validation_depth=ValidationDepth.SCHEMA_ONLY):
        checked = pa.DataFrameSchema(schema_columns).validate(frame)
    errors = []
    for group in (checked.pandera.errors or {}).values():
        for kind, items in group.items():
            for item in items:
                errors.append(f"{item.get('column', '?')}: {item.get('error', kind)}")
    # columns a rule needs but the schema check skipped (required: false and absent)
    for name, rule in columns.items():
        if name not in present and rule.required and not any(e.startswith(f"{name}:") for e in errors):
            errors.append(f"{name}: column is missing")
    return errors


def gate_frame(frame: "DataFrame", spec: ValidateSpec | None, contract: ModelContract | None) -> tuple["DataFrame", list[RowRule]]:
    """The result with one boolean column per rule (TRUE: the row fails it), and the rules."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    spec = effective_spec(spec)
    columns = merged_columns(spec.columns, contract)
    present = {c.lower() for c in frame.columns}
    rules = [r for r in rules_for(columns) if r.column.lower() in present]
    helpers = []
    model_unique = contract.unique if contract is not None else None
    for index, (rule, keys, order, keep) in enumerate(_unique_rules(spec, columns, frame.columns, model_unique)):
        helper = f"__fk_unique{index}"
        usable = [c for c in order if _orderable(frame, c)]
        if rule_declares_order(spec, keys):
            ordering = [F.col(c).asc_nulls_last() if keep == "first" else F.col(c).desc_nulls_last() for c in usable]
        else:  # no order declared: one cheap deterministic key (a hash of the other columns)
            ordering = [F.xxhash64(*(F.col(c) for c in usable))] if usable else [F.lit(1)]
        window = Window.partitionBy(*keys).orderBy(*ordering)
        frame = frame.withColumn(helper, F.row_number().over(window))
        helpers.append(helper)
        rules.append(RowRule(rule.check, rule.column, f"{quote(helper)} > 1", rule.message))
    rules = [replace(rule, flag=f"{FLAG}{index}") for index, rule in enumerate(rules)]
    if rules:
        frame = frame.withColumns({r.flag: F.expr(f"coalesce({r.failure_sql}, FALSE)") for r in rules})
    return (frame.drop(*helpers) if helpers else frame), rules


def rule_declares_order(spec: ValidateSpec, keys: list[str]) -> bool:
    return spec.unique is not None and spec.unique.keys == keys and bool(spec.unique.order_by)


def _orderable(frame: "DataFrame", column: str) -> bool:
    from pyspark.sql.types import ArrayType, MapType, StructType

    kind = next((f.dataType for f in frame.schema.fields if f.name == column), None)
    return kind is not None and not isinstance(kind, (MapType, ArrayType, StructType))


def failing(rules: list[RowRule]) -> "Column":
    """TRUE for a row that fails any rule."""
    from pyspark.sql import functions as F

    condition = F.lit(False)
    for rule in rules:
        condition = condition | F.col(rule.flag)
    return condition


def observed(gated: "DataFrame", rules: list[RowRule]) -> dict[str, "Column"]:
    """What the gate's observation gathers during the one pass: the bad rows (with their
    flags; few by design, as ``max_bad_fraction`` bounds them) and a count per rule."""
    from pyspark.sql import functions as F

    if not rules:
        return {}
    bad = failing(rules)
    return {
        "bad": F.count_if(bad),
        **{f"r{i}": F.count_if(F.col(r.flag)) for i, r in enumerate(rules)},
        BAD_ROWS: F.collect_list(F.when(bad, F.struct(*(F.col(c) for c in gated.columns)))),
    }


def good_rows(gated: "DataFrame", rules: list[RowRule]) -> "DataFrame":
    """The rows that pass every rule, without the flags."""
    if not rules:
        return gated
    return gated.filter(~failing(rules)).drop(*(r.flag for r in rules))


def with_reasons(bad: "DataFrame", rules: list[RowRule]) -> "DataFrame":
    """The bad rows with ``_fk_errors`` (check, column, message of each rule broken), no flags."""
    from pyspark.sql import functions as F

    items = ", ".join(
        f"CASE WHEN {quote(r.flag)} THEN named_struct('check', {literal(r.check)}, "
        f"'column', {literal(r.column)}, 'message', {literal(r.message)}) END"
        for r in rules
    )
    errors = F.expr(f"CAST(filter(array({items}), e -> e IS NOT NULL) AS {ERROR_TYPE})")
    return bad.withColumn(ERRORS, errors).drop(*(r.flag for r in rules))


def summarize(counts: dict[str, int] | None, rules: list[RowRule], bad: "DataFrame | None",
              spec: ValidateSpec | None) -> GateResult:
    """The gate's verdict material from the observation: counts per rule, examples."""
    from pyspark.sql import functions as F

    spec = effective_spec(spec)
    result = GateResult(policy=spec.policy, max_bad_fraction=spec.max_bad_fraction)
    counts = counts or {}
    result.rows_checked = int(counts.get("rows", 0))
    result.rows_bad = int(counts.get("bad", 0))
    result.rows_good = result.rows_checked - result.rows_bad
    for index, rule in enumerate(rules):
        failures = int(counts.get(f"r{index}", 0))
        if failures:
            result.checks.append(CheckResult(rule.check, rule.column, rule.message, failures))
    result.checks.sort(key=lambda c: -c.failures)
    if bad is not None and result.checks:
        flag_of = {(r.check, r.column): r.flag for r in rules}
        flags = [r.flag for r in rules]
        for check in result.checks:
            shown = bad.filter(F.col(flag_of[(check.check, check.column)])).drop(*flags)
            check.examples = [_plain_row(r.asDict(recursive=True)) for r in shown.limit(EXAMPLES).collect()]
    return result


def decide(result: GateResult, spec: ValidateSpec | None) -> None:
    """Set ``failed_because`` when the policy, the bad fraction or the row count says stop."""
    spec = effective_spec(spec)
    bad = result.rows_bad + result.rows_malformed
    what = f"{result.rows_bad} row(s) break the checks" + (
        f", {result.rows_malformed} source record(s) do not parse" if result.rows_malformed else "")
    if result.schema_errors:
        result.failed_because = "the result does not match the declared schema"
    elif spec.policy == "strict" and bad:
        result.failed_because = f"policy strict: {what}"
    elif bad and result.bad_fraction > spec.max_bad_fraction:
        result.failed_because = (
            f"{what} ({result.bad_fraction:.2%} of {result.rows_checked + result.rows_malformed}); "
            f"max_bad_fraction is {spec.max_bad_fraction:.2%}"
        )
    elif spec.row_count is not None:
        low, high = spec.row_count.min, spec.row_count.max
        if low is not None and result.rows_good < low:
            result.failed_because = f"row_count: {result.rows_good} good row(s); at least {low} required"
        elif high is not None and result.rows_good > high:
            result.failed_because = f"row_count: {result.rows_good} good row(s); at most {high} allowed"


def run_opaque_checks(good: "DataFrame", contract: ModelContract | None) -> list[str]:
    """Checks of a DataFrameModel that are not row-level, run by pandera on the good rows."""
    if contract is None or contract.opaque_schema is None:
        return []
    from pandera.config import ValidationDepth, config_context

    with config_context(validation_depth=ValidationDepth.SCHEMA_AND_DATA):
        checked = contract.opaque_schema.validate(good)
    failed = []
    for group in (checked.pandera.errors or {}).values():
        for items in group.values():
            for item in items:
                column = item.get("column")
                where = f"column {column}" if column and column != "None" and column != contract.opaque_schema.name else "the result"
                check = str(item.get("check") or "?")
                failed.append(f"check {check} failed on {where}")
    return failed


def _plain_row(row: dict[str, Any]) -> dict[str, Any]:
    """A row as JSON-safe values for the run report."""
    out = {}
    for key, value in row.items():
        if isinstance(value, (dt.datetime, dt.date)):
            out[key] = value.isoformat()
        elif isinstance(value, decimal.Decimal):
            out[key] = str(value)
        elif isinstance(value, (bytes, bytearray)):
            out[key] = value.hex()
        else:
            out[key] = value
    return out
