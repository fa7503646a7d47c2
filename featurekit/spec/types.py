"""The small shared types of the spec models: names, durations, column types, times."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from featurekit.spec.durations import parse_duration
from featurekit.spec.names import IDENTIFIER, JOB_NAME, check_column_type


def _duration(text: str) -> str:
    parse_duration(text)
    return text


def _identifier(text: str) -> str:
    if not IDENTIFIER.match(text):
        raise ValueError(f"expected a name of letters, digits and '_' (not starting with a digit); got {text!r}")
    return text


def job_name(text: str) -> str:
    if not JOB_NAME.match(text):
        raise ValueError(f"expected lower_snake_case (letters, digits, '_'); got {text!r}")
    return text


def table_version(value: int) -> int:
    if value < 0:
        raise ValueError(f"expected a table version (0 or more); got {value}")
    return value


def _instant(value: Any) -> datetime:
    """An ISO 8601 time (``2026-01-01T00:00:00Z``); without a zone it is UTC."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(f"expected an ISO 8601 time like '2026-01-01T00:00:00Z'; got {value!r}") from None
    if not isinstance(value, datetime):
        raise ValueError(f"expected an ISO 8601 time like '2026-01-01T00:00:00Z'; got {value!r}")
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


Duration = Annotated[str, AfterValidator(_duration)]
Name = Annotated[str, AfterValidator(_identifier)]
ColumnType = Annotated[str, AfterValidator(check_column_type)]
NonEmptyStr = Annotated[str, Field(min_length=1)]
Instant = Annotated[datetime, BeforeValidator(_instant)]


class Strict(BaseModel):
    """Base of every spec model: unknown keys are errors; parsed specs are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
