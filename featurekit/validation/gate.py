"""The validation gate between a job's steps and its Delta commit.

Every row-level rule is a SQL condition, TRUE when a row fails it; the gate adds one
boolean column per rule to the result and filters the good rows on their way to the Delta
writer. A Spark observation on the same pass counts the rows and gathers the bad rows
themselves (few: ``max_bad_fraction`` bounds them); the failures per rule and the examples
are counted from those gathered rows afterwards, in one small job, so the gate costs no pass
over the data of its own and nothing large is cached. The verdict is taken after the data
files are written and before they are committed. pandera does what it is good at, on the schema:
dtypes and column presence (``SCHEMA_ONLY`` depth, no data read), plus any check that cannot
be made row-level (run on the written rows; a failure fails the run with the check's name).

``unique`` is checked in one of two ways. Where the result's plan is cheap to read again
(no shuffle, deterministic, columnar or in-memory sources), a pre-pass reads only the key
columns and finds the key hashes that occur more than once; the rows carrying one are held
back from the write, gathered with the bad rows, and ranked exactly among themselves after
the pass; the first of each key is then written into the same open transaction. Otherwise
(or when many rows share repeated keys) a ``row_number`` window over the keys ranks every
row in the pass; where the plan already shuffles on those keys that window is nearly free.
"""

from __future__ import annotations

import datetime as dt
import decimal
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Callable

from featurekit.spec.sqlcheck import literal, quote
from featurekit.spec.validate import ColumnRule, ValidateSpec
from featurekit.validation.model import ModelContract, merged_columns
from featurekit.validation.rules import RowRule, column_rules

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame
    from pyspark.sql.types import StructType

ERRORS = "_fk_errors"
FLAG = "__fk_fail"
BAD_ROWS = "_bad_rows"  # the observation field that gathers the bad rows
ERROR_TYPE = "array<struct<check:string,column:string,message:string>>"
EXAMPLES = 5
HELD = "__fk_held"  # marks the rows a uniqueness rule holds back until after the pass
GATHER = "__fk_gather"  # the row itself where it is bad or held, else null: what the observation gathers

# Held-back uniqueness: above this many rows sharing repeated keys, the window ranks instead
# (held rows travel to the driver with the bad rows).
HELD_ROWS_MAX = 200_000
# The pre-pass sorts the key hashes on the driver (8 bytes a row) when Spark estimates the
# plan's input at most this size; above it, Spark aggregates them.
DRIVER_HASHES_MAX_BYTES = 512 * 1024 * 1024
# Plan nodes that shuffle, sort or limit: a plan holding one is not read twice.
_WIDE = {"Aggregate", "Window", "WindowGroupLimit", "Join", "Sort", "Repartition", "RepartitionByExpression",
         "RebalancePartitions", "Deduplicate", "Distinct", "Expand", "GlobalLimit", "LocalLimit", "Tail",
         "Intersect", "Except", "Offset", "Sample"}
_IN_MEMORY = {"LocalRelation", "Range", "OneRowRelation"}
_COLUMNAR = {"ParquetFileFormat", "DeltaParquetFileFormat", "OrcFileFormat"}


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
    unique: list[dict[str, Any]] = field(default_factory=list)  # how each uniqueness rule was checked
    rows_released: int = 0  # rows held back for a uniqueness rule, cleared after the pass (written, not bad)

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


@dataclass
class HeldBack:
    """A uniqueness rule checked through its repeated keys (see the module's docstring)."""

    rule: int  # index of the rule in ``GatePlan.rules``
    column: str  # the boolean column marking the rows held back
    keys: list[str]
    ordering: list["Column"]


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

    def good_rows(self) -> "DataFrame":
        """The rows written by the pass: none that fails a rule or is held back; no flags."""
        if not self.rules:
            return self.frame
        return self.frame.filter(~self.gathered()).drop(*self.markers, GATHER)

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

    return F.expr(_any_sql(names))


def _any_sql(names: Any) -> str:
    return " OR ".join(["FALSE", *(quote(name) for name in names)])


def gate_frame(frame: "DataFrame", spec: ValidateSpec | None, contract: ModelContract | None,
               rescan: Callable[[], "DataFrame"] | None = None) -> GatePlan:
    """The gate's plan for ``frame``. ``rescan`` builds the same plan without observations
    (for the pre-pass of held-back uniqueness); without it every uniqueness rule ranks with
    a window."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    spec = effective_spec(spec)
    columns = merged_columns(spec.columns, contract)
    present = {c.lower() for c in frame.columns}
    rules = [r for r in rules_for(columns) if r.column.lower() in present]
    helpers, held, unique = [], [], []
    model_unique = contract.unique if contract is not None else None
    uniques = _unique_rules(spec, columns, frame.columns, model_unique)
    why_not, observed = _not_rescannable(frame) if uniques and rescan is not None else ("no pre-pass offered", True)
    plain = None
    if uniques and why_not is None and rescan is not None:
        plain = rescan() if observed else frame  # a plan without observations is read as it is
    # one pre-pass reads the keys of every uniqueness rule
    repeats = _repeated_hashes(plain, [keys for _, keys, _, _ in uniques]) if plain is not None else None
    for index, (rule, keys, order, keep) in enumerate(uniques):
        usable = [c for c in order if _orderable(frame, c)]
        if rule_declares_order(spec, keys):
            ordering = [F.col(c).asc_nulls_last() if keep == "first" else F.col(c).desc_nulls_last() for c in usable]
        else:  # no order declared: one cheap deterministic key (a hash of the other columns)
            ordering = [F.xxhash64(*(F.col(c) for c in usable))] if usable else [F.lit(1)]
        method: dict[str, Any] = {"keys": rule.column}
        repeated = repeats[index] if repeats is not None else None
        if repeated is not None and repeated[1] <= HELD_ROWS_MAX:
            hashes, rows = repeated
            marker = f"{HELD}{index}"
            frame = frame.withColumn(marker, _hash_in(keys, hashes))
            held.append(HeldBack(len(rules), marker, keys, ordering))
            rules.append(RowRule(rule.check, rule.column, "FALSE", rule.message))
            method.update(method="repeated keys, held back", repeated_keys=len(hashes), rows_held=rows)
        else:
            helper = f"__fk_unique{index}"
            frame = frame.withColumn(helper, F.row_number().over(Window.partitionBy(*keys).orderBy(*ordering)))
            helpers.append(helper)
            rules.append(RowRule(rule.check, rule.column, f"{quote(helper)} > 1", rule.message))
            why = why_not if repeated is None else f"{repeated[1]:,} rows share repeated keys (> {HELD_ROWS_MAX:,})"
            method.update(method="window", why=why)
        unique.append(method)
    rules = [replace(rule, flag=f"{FLAG}{index}") for index, rule in enumerate(rules)]
    if rules:
        frame = frame.withColumns({r.flag: F.expr(f"coalesce({r.failure_sql}, FALSE)") for r in rules})
    frame = frame.drop(*helpers) if helpers else frame
    plan = GatePlan(frame, rules, held, unique)
    if rules:
        plan.frame = frame.withColumn(GATHER, F.when(plan.gathered(), F.struct(*(F.col(c) for c in frame.columns))))
    return plan


def _not_rescannable(frame: "DataFrame") -> tuple[str | None, bool]:
    """Why reading ``frame``'s plan a second time (for its keys) would cost much (None if
    it would not), and whether the plan holds observations (a second read would fill them)."""
    converters = frame.sparkSession._jvm.scala.jdk.javaapi.CollectionConverters  # type: ignore[attr-defined]
    plan = frame._jdf.queryExecution().optimizedPlan()
    if not plan.deterministic():
        return "the plan is not deterministic", True
    stack, observed = [plan], False
    while stack:
        node = stack.pop()
        name = node.nodeName()
        if name in _WIDE:
            return f"the plan has a {name} (a shuffle, sort or limit)", True
        observed = observed or name == "CollectMetrics"
        children = list(converters.asJava(node.children()))
        if not children and name not in _IN_MEMORY:
            kind = _file_format(node)
            if kind not in _COLUMNAR:
                return f"a source is read by {kind or name} (reading it twice costs a full parse)", True
        stack.extend(children)
    return None, observed


def _file_format(node: Any) -> str | None:
    try:
        return str(node.relation().fileFormat().getClass().getSimpleName())
    except Exception:  # not a file relation
        return None


def _repeated_hashes(plain: "DataFrame", key_sets: list[list[str]]) -> list[tuple[list[int], int]]:
    """For each set of keys: the xxhash64 values that occur more than once, and the rows
    carrying them.

    A superset of the repeated keys (a hash collision only holds back one more row). One
    pass reads only the key columns; the hashes are sorted on the driver (pyarrow + numpy)
    unless Spark estimates the input above ``DRIVER_HASHES_MAX_BYTES``.
    """
    from pyspark.sql import functions as F

    hashes = plain.select(*(F.xxhash64(*(F.col(k) for k in keys)).alias(f"h{i}") for i, keys in enumerate(key_sets)))
    if _estimated_bytes(plain) > DRIVER_HASHES_MAX_BYTES:
        out = []
        for i in range(len(key_sets)):
            found = hashes.groupBy(f"h{i}").count().filter(F.col("count") > 1).collect()
            out.append(([int(r[f"h{i}"]) for r in found], sum(int(r["count"]) for r in found)))
        return out
    import numpy as np

    table = hashes.toArrow()
    out = []
    for i in range(len(key_sets)):
        # a batch's hashes (never null) are read in place; ChunkedArray.to_numpy copied them slowly
        chunks = [chunk.to_numpy() for chunk in table.column(f"h{i}").chunks]
        values = np.sort(np.concatenate(chunks) if chunks else np.empty(0, dtype=np.int64))
        again = values[1:][values[1:] == values[:-1]]
        repeated = np.unique(again)
        out.append(([int(h) for h in repeated], int(len(again) + len(repeated))))
    return out


def _hash_in(keys: list[str], hashes: list[int]) -> "Column":
    """TRUE for a row whose key hash is one of ``hashes`` (one SQL expression: Spark turns a
    long IN list into a hash-set lookup)."""
    from pyspark.sql import functions as F

    if not hashes:
        return F.lit(False)
    return F.expr(f"xxhash64({', '.join(quote(k) for k in keys)}) IN ({', '.join(map(str, hashes))})")


def _estimated_bytes(frame: "DataFrame") -> int:
    try:
        size = frame._jdf.queryExecution().optimizedPlan().stats().sizeInBytes()
    except Exception:  # no estimate: assume the input is large
        return DRIVER_HASHES_MAX_BYTES + 1
    return int(size if isinstance(size, int) else size.toString())  # py4j converts a BigInt it can


def rule_declares_order(spec: ValidateSpec, keys: list[str]) -> bool:
    return spec.unique is not None and spec.unique.keys == keys and bool(spec.unique.order_by)


def _orderable(frame: "DataFrame", column: str) -> bool:
    from pyspark.sql.types import ArrayType, MapType, StructType

    kind = next((f.dataType for f in frame.schema.fields if f.name == column), None)
    return kind is not None and not isinstance(kind, (MapType, ArrayType, StructType))


def failing(rules: list[RowRule]) -> "Column":
    """TRUE for a row that fails any rule."""
    return _any(rule.flag for rule in rules)


def summarize(counts: dict[str, int] | None, plan: GatePlan, resolved: "DataFrame | None",
              spec: ValidateSpec | None) -> GateResult:
    """The gate's verdict material: the rows it saw (the observation), then, in one Spark
    job over the gathered rows, the failures per rule, the bad rows and the examples."""
    spec = effective_spec(spec)
    result = GateResult(policy=spec.policy, max_bad_fraction=spec.max_bad_fraction, unique=plan.unique)
    result.rows_checked = int((counts or {}).get("rows", 0))
    result.rows_good = result.rows_checked
    if resolved is None or not plan.rules:
        return result
    # SQL text: one py4j call for the lot (Column objects cost a few calls each)
    markers = set(plan.markers)
    shown = f"struct({', '.join(quote(c) for c in resolved.columns if c not in markers)})"
    bad = _any_sql(r.flag for r in plan.rules)
    aggregates = [f"count(CASE WHEN {bad} THEN 1 END) AS bad",
                  f"count(CASE WHEN ({_any_sql(h.column for h in plan.held)}) AND NOT ({bad}) THEN 1 END) AS released"]
    for index, rule in enumerate(plan.rules):
        aggregates.append(f"count(CASE WHEN {quote(rule.flag)} THEN 1 END) AS n{index}")
        aggregates.append(f"slice(collect_list(CASE WHEN {quote(rule.flag)} THEN {shown} END), 1, {EXAMPLES}) AS e{index}")
    found = resolved.selectExpr(*aggregates).first()
    result.rows_bad = int(found["bad"]) if found else 0
    result.rows_released = int(found["released"]) if found else 0
    result.rows_good = result.rows_checked - result.rows_bad
    for index, rule in enumerate(plan.rules):
        failures = int(found[f"n{index}"]) if found else 0
        if failures:
            examples = [_plain_row(r.asDict(recursive=True)) for r in found[f"e{index}"]]
            result.checks.append(CheckResult(rule.check, rule.column, rule.message, failures, examples))
    result.checks.sort(key=lambda c: -c.failures)
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
