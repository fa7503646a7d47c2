"""The job spec as pydantic models: the contract users write in ``jobs/*.yaml``.

YAML keys equal field names. Every model forbids unknown keys. A step is a mapping with a
single key naming its op (``- filter: "fare >= 0"``); the op models below each carry one
field of that name, so pydantic's error locations read like the YAML.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Union

from pydantic import AfterValidator, BaseModel, BeforeValidator, Discriminator, Field, Tag

from featurekit.spec.validate import ValidateSpec
from featurekit.spec.types import (
    ColumnType,
    Duration,
    Instant,
    Name,
    NonEmptyStr,
    Strict,
    job_name,
    table_version,
)
from featurekit.yamlconf.values import OptionValue


# --------------------------------------------------------------------------- sources


class _SourceBase(Strict):
    path: NonEmptyStr
    options: dict[str, OptionValue] = Field(default_factory=dict)


class CsvSource(_SourceBase):
    """CSV files (a file or a folder); ``schema`` pins column types (else all strings)."""

    format: Literal["csv"]
    schema_: dict[Name, ColumnType] | None = Field(default=None, alias="schema")


class JsonSource(_SourceBase):
    """JSON Lines files; ``schema`` pins column types (else inferred)."""

    format: Literal["json"]
    schema_: dict[Name, ColumnType] | None = Field(default=None, alias="schema")


class ParquetSource(_SourceBase):
    """Parquet files; ``schema`` optionally names the columns to expect."""

    format: Literal["parquet"]
    schema_: dict[Name, ColumnType] | None = Field(default=None, alias="schema")


class DeltaSource(_SourceBase):
    """A Delta table; the version read is pinned at the start of the run and reported."""

    format: Literal["delta"]
    version: Annotated[int, AfterValidator(table_version)] | None = None


SourceSpec = Annotated[
    Union[CsvSource, JsonSource, ParquetSource, DeltaSource], Field(discriminator="format")
]


# --------------------------------------------------------------------------- steps


class SqlStep(Strict):
    """Replace the running frame by a SELECT/WITH query over the sources and ``input``."""

    sql: NonEmptyStr


class FilterStep(Strict):
    """Keep rows where the SQL condition holds; the rows it drops are counted."""

    filter: NonEmptyStr


class WithColumnsStep(Strict):
    """Add or replace columns, each from a SQL expression."""

    with_columns: Annotated[dict[Name, NonEmptyStr], Field(min_length=1)]


def _as_list(value: Any) -> Any:
    """``order_by: event_ts`` is short for ``order_by: [event_ts]``."""
    return [value] if isinstance(value, str) else value


class DedupArgs(Strict):
    keys: Annotated[list[Name], Field(min_length=1)]
    order_by: Annotated[list[Name], Field(min_length=1), BeforeValidator(_as_list)] | None = None
    keep: Literal["last", "first"] = "last"


class DedupStep(Strict):
    """One row per key: the latest by ``order_by`` (``keep: first`` for the earliest); drops counted."""

    dedup: DedupArgs


class JoinArgs(Strict):
    source: Name
    on: Annotated[list[Name], Field(min_length=1)]
    how: Literal["inner", "left", "right", "full", "semi", "anti"] = "inner"
    broadcast: bool = False


class JoinStep(Strict):
    """Join another source on equal key columns (kept once in the result)."""

    join: JoinArgs


class AggregateArgs(Strict):
    keys: Annotated[list[Name], Field(min_length=1)]
    timestamp: Name
    every: Duration
    windows: Annotated[list[Duration], Field(min_length=1)]
    metrics: Annotated[dict[Name, NonEmptyStr], Field(min_length=1)]
    # also a row at each bucket end where a window's value changes because events leave it
    expire: bool = False


class AggregateStep(Strict):
    """Trailing-window metrics per key, one row per key and ``every`` bucket that has data."""

    aggregate: AggregateArgs


class SelectStep(Strict):
    """Keep these columns, in this order (``expr AS name`` is allowed)."""

    select: Annotated[list[NonEmptyStr], Field(min_length=1)]


class RenameStep(Strict):
    """Rename columns: ``{old: new}``."""

    rename: Annotated[dict[Name, Name], Field(min_length=1)]


class CastStep(Strict):
    """Change column types: ``{column: type}`` (a failed cast fails the run under ANSI SQL)."""

    cast: Annotated[dict[Name, ColumnType], Field(min_length=1)]


class DropStep(Strict):
    """Remove columns."""

    drop: Annotated[list[Name], Field(min_length=1)]


def _scalar(value: Any) -> Any:
    if isinstance(value, (bool, int, float, str)):
        return value
    raise ValueError(f"expected true/false, a number or a string; got {value!r}")


class FillNullStep(Strict):
    """Replace nulls in the named columns by a literal value."""

    fill_null: Annotated[dict[Name, Annotated[Any, AfterValidator(_scalar)]], Field(min_length=1)]


class UnionArgs(Strict):
    source: Name
    by_name: bool = True
    allow_missing: bool = False


class UnionStep(Strict):
    """Append the rows of another source (matched by column name unless ``by_name: false``)."""

    union: UnionArgs


STEP_MODELS: dict[str, type[Strict]] = {
    "sql": SqlStep,
    "filter": FilterStep,
    "with_columns": WithColumnsStep,
    "dedup": DedupStep,
    "join": JoinStep,
    "aggregate": AggregateStep,
    "select": SelectStep,
    "rename": RenameStep,
    "cast": CastStep,
    "drop": DropStep,
    "fill_null": FillNullStep,
    "union": UnionStep,
}


def step_op(value: Any) -> str | None:
    """The op name of a raw or parsed step: its single key."""
    if isinstance(value, BaseModel):
        return next(iter(type(value).model_fields))
    if isinstance(value, dict) and len(value) == 1:
        return str(next(iter(value)))
    return None


StepSpec = Annotated[
    Union[tuple(Annotated[model, Tag(op)] for op, model in STEP_MODELS.items())],  # type: ignore[misc]
    Discriminator(step_op),
]


# --------------------------------------------------------------------------- output


class OutputSpec(Strict):
    """Where and how the result is committed as a Delta table."""

    path: NonEmptyStr
    mode: Literal["overwrite", "append", "merge", "replace_partitions"] = "overwrite"
    keys: list[Name] = Field(default_factory=list)
    partition_by: list[Name] = Field(default_factory=list)
    properties: dict[str, OptionValue] = Field(default_factory=dict)


class FeaturesSpec(Strict):
    """How the output table is served as features (used by the Feast integration)."""

    entity: Name
    join_keys: Annotated[list[Name], Field(min_length=1)]
    timestamp: Name
    ttl: Duration
    online: bool = True
    tags: dict[str, OptionValue] = Field(default_factory=dict)
    description: str = ""
    # More Feast FeatureServices: name -> views ("job") or single features ("job:feature").
    # Every job with features also gets a service named after it with all of its features.
    services: dict[Name, Annotated[list[NonEmptyStr], Field(min_length=1)]] = Field(default_factory=dict)


class IncrementalSpec(Strict):
    """How a run takes only what is new.

    ``by: event_time`` (the default): a run recomputes an interval of event time,
    ``(watermark - lookback, end]``. ``time_column`` is a timestamp column of the first source
    that the output carries too (an aggregate's bucket end); each output row depends only on
    events at most the longest window before it, so the sources are read from the interval's
    start minus that window.

    ``by: arrival``, for latest-state tables (a ``dedup`` on the merge keys): a run reads only
    what arrived in the first source since the last run (new files; a Delta source's new
    versions) and merges it so that per key the row newest by the dedup's ``order_by`` wins.
    """

    by: Literal["event_time", "arrival"] = "event_time"
    time_column: Name | None = None
    lookback: Duration | None = None
    start: Instant | None = None
    # a Hive-style partition column of the first source holding the date of time_column:
    # the read keeps only the partitions the interval needs
    partition_column: Name | None = None


class JobSpec(Strict):
    """A prep job: sources -> ordered steps -> validation gate -> a Delta output (-> features)."""

    name: Annotated[str, AfterValidator(job_name)]
    description: str = ""
    owner: str = ""
    sources: Annotated[dict[Name, SourceSpec], Field(min_length=1)]
    steps: list[StepSpec] = Field(default_factory=list)
    validation: ValidateSpec | None = Field(default=None, alias="validate")
    incremental: IncrementalSpec | None = None
    output: OutputSpec
    features: FeaturesSpec | None = None

    @property
    def first_source(self) -> str:
        """The running frame starts as the first declared source."""
        return next(iter(self.sources))

    @property
    def quarantine_path(self) -> str:
        """Where bad rows go: ``validate.quarantine_path`` or ``<output.path>_quarantine``."""
        declared = self.validation.quarantine_path if self.validation else None
        return declared or self.output.path.rstrip("/") + "_quarantine"


# --------------------------------------------------------------------------- metrics

AGGREGATE_FUNCTIONS = ("count", "sum", "avg", "mean", "min", "max")
_CALL = re.compile(r"^\s*([A-Za-z_]+)\s*\((.*)\)\s*$", re.DOTALL)


def parse_metric(text: str) -> tuple[str, str]:
    """``"sum(fare * 2)"`` -> ``("sum", "fare * 2")``; ValueError if not one decomposable call.

    Trailing windows are computed from per-bucket partial aggregates, so a metric must be
    one call of a function whose partials combine: count, sum, avg/mean, min, max.
    """
    match = _CALL.match(text)
    expected = (
        "expected one aggregate call: count(*), count(x), sum(x), avg(x), min(x) or max(x)"
    )
    if not match or not _balanced(match.group(2)):
        raise ValueError(f"{expected}; got {text!r}")
    function, argument = match.group(1).lower(), match.group(2).strip()
    if function not in AGGREGATE_FUNCTIONS:
        raise ValueError(f"{expected}; got {function}(...)")
    if re.match(r"(?i)^distinct\b", argument):
        raise ValueError(f"{function}(DISTINCT ...) cannot be combined across buckets; {expected}")
    if argument == "*" and function != "count":
        raise ValueError(f"{function}(*) is not an aggregate; {expected}")
    if not argument:
        raise ValueError(f"{expected}; got {text!r}")
    return ("avg" if function == "mean" else function), argument


def _balanced(text: str) -> bool:
    """True when parentheses outside string literals balance and never go negative."""
    depth, quote = 0, ""
    for char in text:
        if quote:
            if char == quote:
                quote = ""
        elif char in "'\"`":
            quote = char
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth < 0:
                return False
    return depth == 0 and not quote
