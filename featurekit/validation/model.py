"""A pandera ``DataFrameModel`` (pyspark API) as the declaration of a job's contract.

``validate.schema_model: jobs.schemas:DriverHourlyStats`` names a class importable from the
project folder. Its columns' dtypes, nullability and ``Field(...)`` checks of the built-in
kinds become the same row-level rules a YAML ``validate`` block gives; any other check (a
custom column or dataframe check) cannot be evaluated per row, so pandera runs it on the
whole result and a failure fails the run, with the check's name in the report.
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from featurekit.errors import SpecError
from featurekit.spec.validate import ChecksSpec, ColumnRule, Length, Range

_COMPARISONS = {
    "equal_to": ("eq", "value"),
    "not_equal_to": ("ne", "value"),
    "greater_than": ("gt", "min_value"),
    "greater_than_or_equal_to": ("ge", "min_value"),
    "less_than": ("lt", "max_value"),
    "less_than_or_equal_to": ("le", "max_value"),
}


@dataclass
class ModelContract:
    """What a DataFrameModel contributes: per-column rules and the checks left to pandera."""

    columns: dict[str, ColumnRule] = field(default_factory=dict)
    unique: list[str] = field(default_factory=list)  # the model's Config.unique
    opaque_schema: Any = None  # a pandera DataFrameSchema holding only the non-row-level checks
    opaque_names: list[str] = field(default_factory=list)


def load_model(reference: str, project_root: Path) -> Any:
    """Import ``module:Class`` with the project folder first on the import path."""
    module_name, _, class_name = reference.partition(":")
    root = str(project_root)
    added = root not in sys.path
    if added:
        sys.path.insert(0, root)
    try:
        module = importlib.import_module(module_name)
        return getattr(module, class_name)
    except (ImportError, AttributeError) as exc:
        raise SpecError.single(f"validate.schema_model {reference!r}: cannot import it ({exc})") from exc
    finally:
        if added:
            sys.path.remove(root)


def contract_of(model: Any) -> ModelContract:
    """Translate a pandera pyspark DataFrameModel into row-level rules plus the rest."""
    import pandera.pyspark as pa

    schema = model.to_schema()
    contract = ModelContract()
    opaque_columns: dict[str, Any] = {}
    for name, column in schema.columns.items():
        checks: dict[str, Any] = {}
        rest = []
        for check in column.checks:
            translated = _translate(check.name, check.statistics or {})
            if translated is None:
                rest.append(check)
                contract.opaque_names.append(f"{name}:{check.name}")
            else:
                for key, value in translated.items():
                    checks.setdefault(key, value)
        dtype = getattr(getattr(column, "dtype", None), "type", None)
        contract.columns[name] = ColumnRule(
            type=dtype.simpleString() if dtype is not None else None,
            nullable=bool(column.nullable),
            required=bool(getattr(column, "required", True)),
            checks=ChecksSpec(**checks),
        )
        if rest:
            opaque_columns[name] = pa.Column(checks=rest, nullable=True, required=False)
    unique = getattr(schema, "unique", None)
    contract.unique = [unique] if isinstance(unique, str) else list(unique or [])
    contract.opaque_names += [check.name for check in schema.checks]
    if opaque_columns or schema.checks:
        contract.opaque_schema = pa.DataFrameSchema(columns=opaque_columns, checks=list(schema.checks))
    # Config.unique is row-level here (gate's unique rule), not left to pandera
    return contract


def _translate(name: str, stats: dict[str, Any]) -> dict[str, Any] | None:
    if name in _COMPARISONS:
        key, stat = _COMPARISONS[name]
        return {key: stats[stat]}
    if name == "in_range":
        out: dict[str, Any] = {}
        low, high = stats.get("min_value"), stats.get("max_value")
        if stats.get("include_min", True) and stats.get("include_max", True):
            return {"in_range": Range(min=low, max=high)}
        out["ge" if stats.get("include_min", True) else "gt"] = low
        out["le" if stats.get("include_max", True) else "lt"] = high
        return out
    if name == "isin":
        return {"isin": list(stats["allowed_values"])}
    if name == "notin":
        return {"notin": list(stats["forbidden_values"])}
    if name == "str_matches":
        return {"str_matches": str(stats["pattern"])}
    if name == "str_startswith":
        return {"str_startswith": str(stats["string"])}
    if name == "str_length":
        exact = stats.get("exact_value")
        low = exact if exact is not None else stats.get("min_value")
        high = exact if exact is not None else stats.get("max_value")
        return {"str_length": Length(min=low, max=high)}
    return None


def merged_columns(declared: dict[str, ColumnRule], contract: ModelContract | None) -> dict[str, ColumnRule]:
    """YAML rules and model rules together; where both name a column, both apply."""
    if contract is None:
        return dict(declared)
    out = dict(contract.columns)
    for name, rule in declared.items():
        if name not in out:
            out[name] = rule
            continue
        model_rule = out[name]
        checks = {**model_rule.checks.declared(), **rule.checks.declared()}
        out[name] = ColumnRule(
            type=rule.type or model_rule.type,
            nullable=rule.nullable and model_rule.nullable,
            required=rule.required or model_rule.required,
            checks=ChecksSpec(**checks),
        )
    return out
