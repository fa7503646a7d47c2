"""Typed errors, each carrying the exit code the CLI maps it to.

2 = the spec or the configuration is wrong (the user fixes a file),
3 = the data is wrong (the user fixes or quarantines data),
1 = infrastructure failed (Java, Spark, the network, the disk).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a file, located as precisely as the file allows."""

    file: str
    line: int | None
    col: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.col is not None:
                where += f":{self.col}"
        prefix = f"{where} {self.field}: " if self.field else f"{where}: "
        return prefix + self.message


class FeaturekitError(Exception):
    """Base class: every error featurekit raises on purpose."""

    exit_code = 1


class SpecError(FeaturekitError):
    """One or more problems in job specs; all of them, not just the first."""

    exit_code = 2

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems, key=lambda p: (p.file, p.line or 0, p.col or 0, p.field))
        super().__init__("\n".join(str(p) for p in self.problems))

    @classmethod
    def single(cls, message: str, file: str = "spec", field: str = "") -> "SpecError":
        return cls([Problem(file=file, line=None, col=None, field=field, message=message)])


class ConfigError(SpecError):
    """Problems in conf/ or the project layout (same exit code as a spec problem)."""

    @classmethod
    def single(cls, message: str, file: str = "conf", field: str = "") -> "ConfigError":
        return cls([Problem(file=file, line=None, col=None, field=field, message=message)])



class DataError(FeaturekitError):
    """The data broke a promise (e.g. duplicate merge keys); the tables are untouched."""

    exit_code = 3

    def __init__(self, message: str, details: list[str] | None = None) -> None:
        self.message = message
        self.details = details or []
        super().__init__(message)

    def __str__(self) -> str:
        return "\n".join([self.message, *(f"  {d}" for d in self.details)])


class InfraError(FeaturekitError):
    """Something outside the user's files failed: Java, Spark, storage, the network."""

    exit_code = 1
