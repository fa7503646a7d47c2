"""The ``validate:`` block of a job: the contract every output row must meet.

Row-level checks (nullable, eq ... str_length, unique) are compiled to one Spark pass that
gives each row its list of failures; bad rows go to the quarantine table with their reasons.
Schema-level checks (type, presence) and dataframe-level ones (row_count) fail the run.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Union

from pydantic import AfterValidator, BeforeValidator, Field, model_validator

from featurekit.spec.types import ColumnType, Name, Strict

Scalar = Union[bool, int, float, str]


def _regex(text: str) -> str:
    try:
        re.compile(text)
    except re.error as exc:
        raise ValueError(f"expected a regular expression; {exc}") from exc
    return text


def _model_reference(text: str) -> str:
    if not re.match(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$", text):
        raise ValueError(f"expected 'module:Class' (e.g. jobs.schemas:DriverHourlyStats); got {text!r}")
    return text


def _pair(value: Any) -> Any:
    """``[lo, hi]`` is short for ``{min: lo, max: hi}``."""
    if isinstance(value, list):
        if len(value) != 2:
            raise ValueError(f"expected [min, max]; got {value!r}")
        return {"min": value[0], "max": value[1]}
    return value


class Range(Strict):
    """Inclusive bounds; either may be omitted."""

    min: Scalar | None = None
    max: Scalar | None = None

    @model_validator(mode="after")
    def _ordered(self) -> "Range":
        if self.min is None and self.max is None:
            raise ValueError("expected at least one of min, max")
        low, high = self.min, self.max
        numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high))
        if low is not None and high is not None and (numbers or type(low) is type(high)) and low > high:  # type: ignore[operator]
            raise ValueError(f"min {low!r} is greater than max {high!r}")
        return self


class Length(Strict):
    min: Annotated[int, Field(ge=0)] | None = None
    max: Annotated[int, Field(ge=0)] | None = None

    @model_validator(mode="after")
    def _ordered(self) -> "Length":
        if self.min is None and self.max is None:
            raise ValueError("expected at least one of min, max")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is greater than max {self.max}")
        return self


class ChecksSpec(Strict):
    """pandera's built-in checks, by their pandera names; each row either passes or fails."""

    eq: Scalar | None = None
    ne: Scalar | None = None
    gt: Scalar | None = None
    ge: Scalar | None = None
    lt: Scalar | None = None
    le: Scalar | None = None
    in_range: Annotated[Range, BeforeValidator(_pair)] | None = None
    isin: Annotated[list[Scalar], Field(min_length=1)] | None = None
    notin: Annotated[list[Scalar], Field(min_length=1)] | None = None
    str_matches: Annotated[str, AfterValidator(_regex)] | None = None
    str_startswith: str | None = None
    str_length: Annotated[Length, BeforeValidator(_pair)] | None = None
    unique: bool = False

    def declared(self) -> dict[str, Any]:
        """The checks that are set, in declaration order of the model."""
        return {k: v for k, v in self if v is not None and v is not False}


class ColumnRule(Strict):
    """What one output column must look like."""

    type: ColumnType | None = None
    nullable: bool = True
    required: bool = True
    checks: ChecksSpec = Field(default_factory=ChecksSpec)


def _unique(value: Any) -> Any:
    return {"keys": value} if isinstance(value, list) else value


class UniqueSpec(Strict):
    """Rows repeating ``keys``: the first by ``order_by`` is kept, the others are bad rows.

    Without ``order_by`` a hash of the other columns orders the rows, so the choice is
    deterministic.
    """

    keys: Annotated[list[Name], Field(min_length=1)]
    order_by: Annotated[list[Name], BeforeValidator(lambda v: [v] if isinstance(v, str) else v)] = Field(default_factory=list)
    keep: Literal["first", "last"] = "first"


class RowCount(Strict):
    min: Annotated[int, Field(ge=0)] | None = None
    max: Annotated[int, Field(ge=0)] | None = None

    @model_validator(mode="after")
    def _ordered(self) -> "RowCount":
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is greater than max {self.max}")
        return self


class ValidateSpec(Strict):
    """The validation gate between a job's steps and its Delta commit."""

    policy: Literal["strict", "quarantine"] = "quarantine"
    max_bad_fraction: Annotated[float, Field(ge=0, le=1)] = 0.01
    columns: dict[Name, ColumnRule] = Field(default_factory=dict)
    unique: Annotated[UniqueSpec, BeforeValidator(_unique)] | None = None
    row_count: RowCount | None = None
    schema_model: Annotated[str, AfterValidator(_model_reference)] | None = None
    quarantine_path: str | None = None
