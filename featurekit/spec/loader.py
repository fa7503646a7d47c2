"""Load job specs: YAML -> variables filled -> pydantic -> cross-checks, all problems at once."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from featurekit.errors import Problem, SpecError
from featurekit.spec.checks import check_job
from featurekit.spec.models import JobSpec
from featurekit.yamlconf.positions import Positions, load_yaml_file
from featurekit.yamlconf.pydantic_errors import problems_from
from featurekit.yamlconf.variables import resolve

# Documentation fields: changing them does not change what a job computes.
_NOT_FINGERPRINTED = ("description", "owner")


@dataclass(frozen=True)
class LoadedJob:
    """A valid job spec with where it came from and its fingerprint."""

    spec: JobSpec
    path: Path
    shown_path: str
    positions: Positions
    fingerprint: str
    raw: dict[str, Any]

    @property
    def name(self) -> str:
        return self.spec.name


def fingerprint(raw: Mapping[str, Any]) -> str:
    """A short, stable hash of what the job computes, before variables are filled.

    The same job has the same fingerprint in every environment; key order, comments and
    the documentation fields do not count.
    """
    body = {k: v for k, v in raw.items() if k not in _NOT_FINGERPRINTED}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def parse_job(path: Path, variables: Mapping[str, str], shown_as: str | None = None) -> tuple[LoadedJob | None, list[Problem]]:
    """Parse one job file; return the job (None if it has problems) and every problem."""
    shown = shown_as or str(path)
    raw, positions, problems = load_yaml_file(path, shown)
    if problems:
        return None, problems
    if raw is None:
        return None, [Problem(shown, 1, 1, "", "the file is empty; expected a mapping of job keys (name, sources, steps, output)")]
    if not isinstance(raw, dict):
        return None, [Problem(shown, 1, 1, "", f"expected a mapping of job keys (name, sources, steps, output); got {_kind(raw)}")]
    resolved, problems = resolve(raw, variables, positions)
    try:
        spec = JobSpec.model_validate(resolved)
    except ValidationError as exc:
        return None, problems + problems_from(exc, JobSpec, resolved, positions)
    problems += check_job(spec, positions, path, resolved)
    if problems:
        return None, problems
    return LoadedJob(spec, path, shown, positions, fingerprint(raw), raw), []


def _kind(value: Any) -> str:
    return {"list": "a list", "str": "a string", "int": "a number", "float": "a number", "bool": "true/false"}.get(
        type(value).__name__, type(value).__name__)


def load_job(path: Path, variables: Mapping[str, str], shown_as: str | None = None) -> LoadedJob:
    """Parse one job file or raise :class:`SpecError` with all of its problems."""
    job, problems = parse_job(path, variables, shown_as)
    if job is None:
        raise SpecError(problems)
    return job


def load_jobs(paths: Iterable[Path], variables: Mapping[str, str], base: Path | None = None) -> tuple[list[LoadedJob], list[Problem]]:
    """Parse many job files; names are shown relative to ``base`` when given."""
    jobs: list[LoadedJob] = []
    problems: list[Problem] = []
    for path in paths:
        shown = _shown(path, base)
        job, found = parse_job(path, variables, shown)
        problems += found
        if job is not None:
            jobs.append(job)
    return jobs, problems


def _shown(path: Path, base: Path | None) -> str:
    if base is not None:
        try:
            return str(path.resolve().relative_to(base.resolve()))
        except ValueError:
            pass
    return str(path)
