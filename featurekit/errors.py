"""Typed errors, each carrying the exit code the CLI maps it to.

2 = the spec or the configuration is wrong (the user fixes a file),
3 = the data is wrong (the user fixes or quarantines data),
1 = infrastructure failed (Java, Spark, the network, the disk).

The library speaks in its own terms: a wrong argument is a :class:`UsageError` naming the
parameter (``NotFound`` when it names nothing that exists), a write the output spec cannot
make is an :class:`OutputError` naming the spec's key. Each face maps them: the CLI to its
flags and exit codes, the REST API to HTTP statuses.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

# Where a problem with the arguments of a call is reported (the ``file`` of its Problem).
ARGUMENTS = "command line"

# Renders a parameter of a library call in a face's terms (the CLI: its flag).
Namer = Callable[[str], str]

_MARK = "\x1f"   # a control character: no file name, value or message holds one
_ARG = re.compile(f"{_MARK}([A-Za-z_][A-Za-z0-9_]*){_MARK}")
# The face driving this process: what it writes (a run report's error) speaks as it does.
_FACE: ContextVar[Namer] = ContextVar("featurekit_face", default=str)


def arg(name: str) -> str:
    """The parameter ``name`` of a library call, named inside a message or a Problem: each face
    renders it in its own terms (the CLI as ``--name``, the REST API as its parameter); outside
    a face (:func:`face`) it reads ``name``. The library never spells a face's flags."""
    return f"{_MARK}{name}{_MARK}"


def named(text: str, namer: Namer | None = None) -> str:
    """``text`` with each :func:`arg` rendered by ``namer`` (default: the face's, see :func:`face`)."""
    if _MARK not in text:
        return text
    chosen = namer or _FACE.get()
    return _ARG.sub(lambda found: chosen(found.group(1)), text)


@contextmanager
def face(namer: Namer) -> Iterator[None]:
    """Within: messages name parameters as ``namer`` does (the CLI: as its flags), so that what
    the library writes for the user who typed them (a failed run's report) reads as they typed."""
    token = _FACE.set(namer)
    try:
        yield
    finally:
        _FACE.reset(token)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a file, located as precisely as the file allows."""

    file: str
    line: int | None
    col: int | None
    field: str
    message: str

    def named(self, namer: Namer) -> "Problem":
        """This problem with its parameters (:func:`arg`) rendered by ``namer``."""
        return Problem(named(self.file, namer), self.line, self.col, named(self.field, namer),
                       named(self.message, namer))

    def __str__(self) -> str:
        where = named(self.file)
        if self.line is not None:
            where += f":{self.line}"
            if self.col is not None:
                where += f":{self.col}"
        field = named(self.field)
        prefix = f"{where} {field}: " if field else f"{where}: "
        return prefix + named(self.message)


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

    def named(self, namer: Namer) -> list[Problem]:
        """The problems with their parameters rendered by ``namer``, in the order a face shows them."""
        return SpecError([p.named(namer) for p in self.problems]).problems


class ConfigError(SpecError):
    """Problems in conf/ or the project layout (same exit code as a spec problem)."""

    @classmethod
    def single(cls, message: str, file: str = "conf", field: str = "") -> "ConfigError":
        return cls([Problem(file=file, line=None, col=None, field=field, message=message)])


class UsageError(ConfigError):
    """An argument of a library call is missing, malformed, or contradicts another one.

    ``param`` is the call's parameter name (``training_set``), never a face's spelling of it
    (``--training-set``); ``message`` names other parameters with :func:`arg`. ``where`` is the
    call as the problem's file (the command line, unless the call names itself).
    """

    def __init__(self, param: str, message: str, *, where: str = ARGUMENTS) -> None:
        self.param = param
        super().__init__([Problem(where, None, None, arg(param), message)])

    def text(self, namer: Namer = str) -> str:
        """The message alone, its parameters rendered by ``namer``."""
        return named(self.problems[0].message, namer)


class NotFound(UsageError):
    """An argument names a ``kind`` of thing (a model, a version, a feature service, a training
    set, an environment) with no ``name`` among those that exist; ``message`` says where it was
    looked for, with a did-you-mean hint where one is close."""

    def __init__(self, kind: str, name: str, message: str, *, param: str | None = None,
                 where: str = ARGUMENTS) -> None:
        self.kind, self.name = kind, name
        super().__init__(param or kind, message, where=where)


class OutputError(ConfigError):
    """What a job's output spec asks does not fit what is there (a table another job owns, a
    folder that is not a Delta table, a schema the mode cannot change): ``field`` names the key of
    the output spec at fault. A sink knows no file; the pipeline, which knows the job's, places the
    problem there (:meth:`located`) as the spec checks do."""

    def __init__(self, field: str, message: str) -> None:
        self.field, self.message = field, message
        super().__init__([Problem("output", None, None, field, message)])

    def located(self, place: Callable[[tuple[str, ...], str], Problem]) -> ConfigError:
        """The same problem at the position ``place`` gives ``("output", field)`` in the job's file."""
        return ConfigError([place(("output", self.field), self.message)])


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


class Conflict(InfraError):
    """Another writer committed to a table this run writes, between this run's read of it and
    its commit: Delta refused this run's commit, so nothing of it was committed. Not a problem
    with the user's files (exit 1): the same command can simply run again.

    ``version`` is the table's version that the other writer committed (None where it cannot
    be told), ``path`` the table."""

    def __init__(self, message: str, *, path: str = "", version: int | None = None) -> None:
        self.path, self.version = path, version
        super().__init__(message)
