"""Row-level checks compiled to Spark SQL: each rule is a condition that is TRUE when a row
FAILS it, so all rules of a job are evaluated together, in one pass, per row.

Pure Python (SQL text, no JVM), so the compilation is unit-tested without Spark. As in
pandera, value checks ignore nulls; ``nullable: false`` is the rule about nulls.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from featurekit.spec.sqlcheck import literal, quote
from featurekit.spec.validate import ColumnRule, Length, Range, ValidateSpec


@dataclass(frozen=True)
class RowRule:
    """One row-level check on one column (``column`` is ``a,b`` for a multi-column unique)."""

    check: str
    column: str
    failure_sql: str
    message: str
    flag: str = ""  # the boolean column the gate computes for this rule


def _shown(value: Any) -> str:
    return repr(value)


def _range(col: str, bounds: Range | Length, length: bool = False) -> tuple[str, str]:
    subject = f"length({col})" if length else col
    parts, words = [], []
    if bounds.min is not None:
        parts.append(f"{subject} >= {literal(bounds.min)}")
        words.append(f">= {bounds.min!r}")
    if bounds.max is not None:
        parts.append(f"{subject} <= {literal(bounds.max)}")
        words.append(f"<= {bounds.max!r}")
    return " AND ".join(parts), " and ".join(words)


def column_rules(name: str, rule: ColumnRule) -> list[RowRule]:
    """The row-level rules of one column, in a fixed order."""
    col = quote(name)
    rules: list[RowRule] = []
    if not rule.nullable:
        rules.append(RowRule("nullable", name, f"{col} IS NULL", "is null"))
    comparisons = {"eq": "=", "ne": "!=", "gt": ">", "ge": ">=", "lt": "<", "le": "<="}
    for check, value in rule.checks.declared().items():
        if check in comparisons:
            ok, message = f"{col} {comparisons[check]} {literal(value)}", f"must be {comparisons[check]} {_shown(value)}"
        elif check == "in_range":
            ok, words = _range(col, value)
            message = f"must be {words}"
        elif check == "isin":
            ok = f"{col} IN ({', '.join(literal(v) for v in value)})"
            message = f"must be one of {', '.join(_shown(v) for v in value)}"
        elif check == "notin":
            ok = f"{col} NOT IN ({', '.join(literal(v) for v in value)})"
            message = f"must not be one of {', '.join(_shown(v) for v in value)}"
        elif check == "str_matches":
            ok, message = f"regexp_like({col}, {literal('^(?:' + value + ')')})", f"must match {value!r} (from the start)"
        elif check == "str_startswith":
            ok, message = f"startswith({col}, {literal(value)})", f"must start with {value!r}"
        elif check == "str_length":
            ok, words = _range(col, value, length=True)
            message = f"length must be {words}"
        elif check == "unique":
            continue  # a window over the whole result, see unique_rules
        else:  # pragma: no cover - ChecksSpec has no other field
            raise ValueError(check)
        # value checks pass on nulls (pandera's convention); NOT over a null stays null -> coalesce
        rules.append(RowRule(check, name, f"{col} IS NOT NULL AND NOT coalesce({ok}, FALSE)", message))
    return rules


def compile_rules(spec: ValidateSpec) -> list[RowRule]:
    """Every per-row rule of the ``validate`` block (unique rules come from the gate)."""
    return rules_for(spec.columns)


def unique_keys(spec: ValidateSpec) -> list[tuple[str, list[str]]]:
    """(check column label, key columns) for every uniqueness rule, the table-level one first."""
    keys: list[tuple[str, list[str]]] = []
    if spec.unique is not None:
        keys.append((",".join(spec.unique.keys), list(spec.unique.keys)))
    for name, rule in spec.columns.items():
        if rule.checks.unique:
            keys.append((name, [name]))
    return keys


def rules_for(columns: dict[str, ColumnRule]) -> list[RowRule]:
    """The row-level rules of every column (uniqueness aside: the gate plans it)."""
    rules: list[RowRule] = []
    for name, rule in columns.items():
        rules += column_rules(name, rule)
    return rules
