"""The validation gate between a job's steps and its Delta commit.

The row-level rules run in the job's one pass (:mod:`featurekit.validation.plan`): one boolean
column per rule, the good rows filtered on their way to the Delta writer, the bad rows (and
those held back for a uniqueness rule, :mod:`featurekit.validation.unique`) gathered by a Spark
observation. The failures per rule and the examples are counted from those gathered rows
afterwards, in one small job, so the gate costs no pass over the data of its own and nothing
large is cached. The verdict is taken after the data files are written and before they are
committed. pandera does what it is good at, on the schema: dtypes and column presence
(``SCHEMA_ONLY`` depth, no data read), plus any check that cannot be made row-level (run on the
written rows; a failure fails the run with the check's name).

:class:`Gate` is what a run drives, in this order: :meth:`~Gate.check_schema` (before the
pass); :meth:`~Gate.apply`, :meth:`~Gate.observed` and :meth:`~Gate.good_rows` (building the
pass); :meth:`~Gate.check` (after it: the verdict); then :meth:`~Gate.released` and
:meth:`~Gate.quarantine` (what goes into the commits) and :meth:`~Gate.report`.
"""

from __future__ import annotations

import datetime as dt
import decimal
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from featurekit.spec.sqlcheck import quote
from featurekit.spec.validate import ColumnRule, ValidateSpec
from featurekit.validation.model import ModelContract, merged_columns
from featurekit.validation.plan import GatePlan, any_sql, plan_checks

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame
    from pyspark.sql.types import StructType

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
    unique: list[dict[str, Any]] = field(default_factory=list)  # how each uniqueness rule was checked
    rows_released: int = 0  # rows held back for a uniqueness rule, cleared after the pass (written, not bad)

    @property
    def bad_fraction(self) -> float:
        """Bad rows (refused by the checks or unparsable at the source) among all of them."""
        total = self.rows_checked + self.rows_malformed
        return (self.rows_bad + self.rows_malformed) / total if total else 0.0


def effective_spec(spec: ValidateSpec | None) -> ValidateSpec:
    return spec if spec is not None else ValidateSpec()


class Gate:
    """The validation gate of one run over one result.

    ``contract`` is the job's pandera model, if it names one; ``rescan`` builds the result's
    plan again without observations, for the pre-pass of held-back uniqueness (without it
    every uniqueness rule ranks with a window).
    """

    def __init__(self, spec: ValidateSpec | None, contract: ModelContract | None = None,
                 rescan: Callable[[], "DataFrame"] | None = None) -> None:
        self.spec = effective_spec(spec)
        self.contract = contract
        self.columns = merged_columns(self.spec.columns, contract)
        self.result: GateResult | None = None
        self._rescan = rescan
        self._plan: GatePlan | None = None
        self._resolved: "DataFrame | None" = None

    def check_schema(self, frame: "DataFrame") -> "GateResult | None":
        """The refusal of ``frame``'s schema by pandera (dtypes, presence; no data is read),
        or None when it fits."""
        errors = schema_errors(frame, self.columns)
        if not errors:
            return None
        self.result = GateResult(policy=self.spec.policy, max_bad_fraction=self.spec.max_bad_fraction,
                                 schema_errors=errors)
        decide(self.result, self.spec)
        return self.result

    def apply(self, frame: "DataFrame") -> "DataFrame":
        """``frame`` with the checks' columns: one boolean per rule, and the row itself where
        it is gathered. Every row is kept (the checks add columns and drop none)."""
        self._plan = plan_checks(frame, self.spec, self.contract, self._rescan)
        return self._plan.frame

    def observed(self) -> dict[str, "Column"]:
        """What the run's observation of the applied result gathers for the gate (empty when
        there is no rule to check; see :meth:`GatePlan.observed`)."""
        return self._planned().observed()

    @property
    def gathered_schema(self) -> "StructType":
        """The schema of the rows gathered under ``BAD_ROWS``."""
        return self._planned().gathered_schema

    def good_rows(self, frame: "DataFrame") -> "DataFrame":
        """The rows the pass writes, from ``frame``: the applied result as placed in the run's plan."""
        return self._planned().good_rows(frame)

    def check(self, counts: dict[str, int] | None, gathered: "DataFrame | None", rows_malformed: int,
              written: Callable[[], "DataFrame"]) -> "GateResult":
        """The verdict after the pass, from its observation: ``counts`` (the rows it saw) and
        the ``gathered`` rows; ``rows_malformed`` source records did not parse; ``written``
        gives the rows written, for the model's checks that are not row-level."""
        plan = self._planned()
        # few rows, the driver's copy, read four times (counts and examples, the late write,
        # the quarantine rows, their digest): on one partition, which satisfies the ranking
        # window and the counts without a shuffle; checkpointed when they are ranked
        resolved = plan.resolve(gathered.coalesce(1)) if gathered is not None else None
        if resolved is not None and plan.held:
            resolved = resolved.localCheckpoint()
        self._resolved = resolved
        result = summarize(counts, plan, resolved, self.spec)
        result.rows_malformed = rows_malformed
        decide(result, self.spec)
        contract = self.contract
        if not result.failed_because and contract is not None and contract.opaque_schema is not None:
            opaque = run_opaque_checks(written(), contract)
            if opaque:
                result.schema_errors += opaque
                result.failed_because = f"{len(opaque)} check(s) that are not row-level failed"
        self.result = result
        return result

    def released(self) -> "DataFrame | None":
        """Rows held back for a uniqueness rule that pass every rule: they go into the same
        commit, after the pass (None: none was held)."""
        if self._resolved is None or not self._planned().held:
            return None
        return self._planned().cleared(self._resolved)

    def quarantine(self) -> "DataFrame | None":
        """The refused rows with ``_fk_errors`` (None: none)."""
        if self._resolved is None or self.result is None or not self.result.rows_bad:
            return None
        return self._planned().refused(self._resolved)

    def report(self) -> dict[str, Any]:
        """The verdict as the run report holds it."""
        return asdict(self.result) if self.result is not None else {}

    def _planned(self) -> GatePlan:
        if self._plan is None:
            raise RuntimeError("the gate has no plan yet: apply() it to the result first")
        return self._plan


def schema_errors(frame: "DataFrame", columns: dict[str, ColumnRule]) -> list[str]:
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
    bad = any_sql(r.flag for r in plan.rules)
    aggregates = [f"count(CASE WHEN {bad} THEN 1 END) AS bad",
                  f"count(CASE WHEN ({any_sql(h.column for h in plan.held)}) AND NOT ({bad}) THEN 1 END) AS released"]
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
