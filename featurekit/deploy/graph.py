"""The order jobs must run in: a job that reads another job's Delta output runs after it.

The edges come from the specs alone: a source with ``format: delta`` whose path is another
job's ``output.path`` (after variables are filled, so ``${lake_root}/trips`` and the path it
names are the same table). Jobs with no path between them are independent and may run at the
same time. Two jobs writing one table, or jobs that wait on each other, cannot be ordered:
those are problems of the specs, each reported at the line that causes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from featurekit.errors import Problem, SpecError
from featurekit.spec.loader import LoadedJob


@dataclass(frozen=True)
class JobGraph:
    """Jobs in an order that runs every job after those it reads (ties broken by name), and
    for each job the jobs it reads directly."""

    order: tuple[str, ...]
    upstream: dict[str, tuple[str, ...]]

    def downstream(self, job: str) -> tuple[str, ...]:
        """The jobs that read ``job``'s output directly."""
        return tuple(name for name in self.order if job in self.upstream[name])


def table_key(path: str) -> str:
    """A table's path as compared between jobs: without a trailing '/' or a ``file://`` scheme."""
    key = path.strip()
    if key.startswith("file://"):
        key = key[len("file://"):]
    elif key.startswith("file:"):
        key = key[len("file:"):]
    return key.rstrip("/") or "/"


def job_graph(jobs: Sequence[LoadedJob]) -> JobGraph:
    """The dependency graph of ``jobs``, or a :class:`SpecError` with every problem in it."""
    problems: list[Problem] = []
    writers: dict[str, LoadedJob] = {}
    for job in sorted(jobs, key=lambda j: j.name):
        key = table_key(job.spec.output.path)
        first = writers.setdefault(key, job)
        if first is not job:
            problems.append(job.positions.problem(
                ("output", "path"), f"job {first.name!r} ({first.shown_path}) writes this table too; "
                                    "one table has one writing job, or their order is unknown"))
    upstream: dict[str, tuple[str, ...]] = {}
    for job in jobs:
        reads = {writers[table_key(source.path)].name
                 for source in job.spec.sources.values()
                 if source.format == "delta" and table_key(source.path) in writers}
        reads.discard(job.name)  # a job reading its own table waits on nobody
        upstream[job.name] = tuple(sorted(reads))
    order = _ordered(upstream)
    if len(order) < len(upstream):
        problems += _cycle_problems(jobs, upstream, set(order))
    if problems:
        raise SpecError(problems)
    return JobGraph(tuple(order), upstream)


def _ordered(upstream: dict[str, tuple[str, ...]]) -> list[str]:
    """Kahn's algorithm, taking the first name in sort order among the jobs that are ready, so
    the same specs always give the same order; the jobs on a cycle are left out."""
    waiting = {name: set(reads) for name, reads in upstream.items()}
    order: list[str] = []
    ready = sorted(name for name, reads in waiting.items() if not reads)
    while ready:
        name = ready.pop(0)
        order.append(name)
        for other, reads in waiting.items():
            if name in reads:
                reads.discard(name)
                if not reads:
                    ready.append(other)
        ready.sort()
        waiting.pop(name)
    return order


def _cycle_problems(jobs: Sequence[LoadedJob], upstream: dict[str, tuple[str, ...]], done: set[str]) -> list[Problem]:
    """One problem per job on a cycle, at the source that reads the next job of the cycle."""
    by_name = {job.name: job for job in jobs}
    stuck = sorted(name for name in upstream if name not in done)
    problems = []
    for name in stuck:
        job = by_name[name]
        for source_name, source in job.spec.sources.items():
            if source.format != "delta":
                continue
            writer = next((other for other in stuck if other != name
                           and table_key(by_name[other].spec.output.path) == table_key(source.path)), None)
            if writer is not None:
                problems.append(job.positions.problem(
                    ("sources", source_name, "path"),
                    f"reads the output of job {writer!r}, which waits on this job: the jobs "
                    f"{', '.join(stuck)} wait on each other, so none can run first"))
    return problems
