"""The one place that wires the layers: spec + settings -> Spark plan -> gate -> Delta.

A run has four phases, each timed:

1. ``read``: sources are opened (Delta sources pinned to their current version) and the
   steps are applied, building one plan; nothing is computed yet.
2. ``compute``: the plan runs once; the result is cached and counted, and every row
   count along the way (rows read per source, in/out of each filter, dedup and
   aggregate) is filled by Spark observations during that same pass.
3. ``gate``: the validation gate stands here, between the computed result and the write.
   Until it arrives the result passes through; the place and the counts it needs exist.
4. ``write``: one Delta commit. Everything before it failed -> no table was touched.
"""

from __future__ import annotations

import json
import time
import uuid
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from featurekit import __version__
from featurekit.config import Project, Settings, load_settings
from featurekit.engine.context import BuildContext
from featurekit.engine.jars import ensure_jars, spark_submit
from featurekit.engine.session import get_session, session_conf
from featurekit.engine.sources import MissingTable
from featurekit.engine.transform import apply_steps, read_sources
from featurekit.errors import ConfigError, DataError, FeaturekitError, InfraError, SpecError
from featurekit.sinks.delta import CommitMeta, commit
from featurekit.spec.loader import LoadedJob, load_job
from featurekit.spec.models import step_op

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


@dataclass
class StepCount:
    index: int
    op: str
    rows_in: int | None
    rows_out: int | None
    dropped: int | None
    note: str = ""


@dataclass
class RunResult:
    """What a run did, in numbers; also written as JSON under the run-log folder."""

    run_id: str
    job: str
    fingerprint: str
    env: str
    started_at: str
    status: str = "running"
    sources: list[dict[str, Any]] = field(default_factory=list)
    steps: list[StepCount] = field(default_factory=list)
    rows_out: int | None = None
    output_path: str = ""
    mode: str = ""
    table_version: int | None = None
    commit_operation: str = ""
    commit_metrics: dict[str, Any] = field(default_factory=dict)
    durations: dict[str, float] = field(default_factory=dict)
    error: str = ""
    exit_code: int = 0
    featurekit_version: str = __version__

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, default=str)


def load(project: Project, job: str, env: str = "local") -> tuple[LoadedJob, Settings]:
    """The parsed job and its environment's settings (no JVM)."""
    settings = load_settings(project, env)
    path = project.job_path(job)
    return load_job(path, settings.vars, project.shown(path)), settings


def submit_command(project: Project, job: LoadedJob, settings: Settings) -> list[str]:
    """The exact ``spark-submit`` command that runs ``job`` in ``settings.env``.

    The driver runs this package's ``entrypoint`` with the same arguments as
    ``featurekit run``: both end in :func:`run`.
    """
    import sys

    import featurekit

    entrypoint = Path(featurekit.__file__).parent / "entrypoint.py"
    jars = _jar_paths(settings, fetch=False)
    conf = session_conf(settings, jars)
    command = [str(spark_submit()), "--master", settings.spark.master, "--name", f"{settings.spark.app_name}:{job.name}"]
    if "spark.jars" in conf:
        command += ["--jars", conf.pop("spark.jars")]
    python = sys.executable
    conf.setdefault("spark.pyspark.python", python)
    conf.setdefault("spark.pyspark.driver.python", python)
    for key, value in conf.items():
        command += ["--conf", f"{key}={value}"]
    command += [str(entrypoint), "--project", str(project.root), "run", str(job.path), "--env", settings.env]
    return command


def _jar_paths(settings: Settings, fetch: bool) -> list[Path]:
    from featurekit.engine.jars import DELTA_PACKAGE, cached_jars

    if fetch:
        return ensure_jars(settings.jars_dir)
    cached = cached_jars(settings.jars_dir)
    if cached is None:
        return [settings.jars_dir / f"<run `featurekit setup` to fetch {DELTA_PACKAGE}>"]
    return cached


def session(settings: Settings, app_name: str | None = None) -> "SparkSession":
    """The Spark session for ``settings`` (Delta jars fetched once if not cached yet)."""
    return get_session(settings, _jar_paths(settings, fetch=True), app_name)


@contextmanager
def _phase(result: RunResult, name: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        result.durations[name] = round(time.perf_counter() - start, 3)


def new_run_id() -> str:
    return f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


def run(project: Project, job: LoadedJob, settings: Settings, spark: "SparkSession | None" = None) -> RunResult:
    """Run one job end to end; the result is also written to the run log."""
    result = RunResult(
        run_id=new_run_id(), job=job.name, fingerprint=job.fingerprint, env=settings.env,
        started_at=datetime.now(UTC).isoformat(timespec="seconds"),
        output_path=job.spec.output.path, mode=job.spec.output.mode,
    )
    try:
        _run(project, job, settings, spark, result)
        result.status = "succeeded"
    except FeaturekitError as exc:
        result.status, result.error, result.exit_code = "failed", str(exc), exc.exit_code
        raise
    except Exception as exc:
        error = classify(exc)
        result.status, result.error, result.exit_code = "failed", str(error), error.exit_code
        raise error from exc
    finally:
        write_report(settings, result)
    return result


def _run(project: Project, job: LoadedJob, settings: Settings, spark: "SparkSession | None", result: RunResult) -> None:
    with _phase(result, "session"):
        spark = spark or session(settings, f"{settings.spark.app_name}:{job.name}")
    ctx = BuildContext(spark=spark, prefix=f"fk_{result.run_id.replace('-', '_')}")
    frame = None
    try:
        with _phase(result, "read"):
            try:
                reads = read_sources(ctx, job)
            except MissingTable as exc:
                raise _missing_table(project, job, settings, exc) from exc
            frame = apply_steps(ctx, job)
        with _phase(result, "compute"):
            frame = frame.persist()
            result.rows_out = frame.count()
            counts = ctx.counts()
        result.sources = [
            {"name": r.name, "format": r.format, "path": r.path, "delta_version": r.delta_version,
             "rows_read": (counts.get(f"source.{r.name}") or {}).get("rows")}
            for r in reads
        ]
        result.steps = _step_counts(job, counts)
        with _phase(result, "gate"):
            checked = frame  # the validation gate (pandera checks, quarantine) sits here
        with _phase(result, "write"):
            done = commit(spark, checked, job.spec.output, CommitMeta(job.name, result.run_id, job.fingerprint, settings.env))
        result.table_version, result.commit_operation, result.commit_metrics = done.version, done.operation, done.metrics
        if done.rows_in_commit is not None and done.rows_in_commit != result.rows_out:
            raise DataError(
                f"row accounting failed: computed {result.rows_out} rows but the Delta commit "
                f"(version {done.version}) reports {done.rows_in_commit}"
            )
    finally:
        if frame is not None:
            frame.unpersist()
        ctx.drop_views()


def _step_counts(job: LoadedJob, counts: dict[str, dict[str, int] | None]) -> list[StepCount]:
    out = []
    for index, step in enumerate(job.spec.steps):
        seen_in, seen_out = counts.get(f"step{index}.in"), counts.get(f"step{index}.out")
        if seen_in is None and seen_out is None:
            continue
        rows_in = seen_in["rows"] if seen_in else None
        rows_out = seen_out["rows"] if seen_out else None
        op = step_op(step) or ""
        note = ""
        if op == "aggregate" and seen_in:
            nulls = seen_in.get("null_timestamp", 0)
            note = f"{nulls} row(s) without a timestamp left out" if nulls else ""
            dropped = nulls
        elif op == "join" and rows_in is not None and rows_out is not None and rows_out > rows_in:
            dropped, note = None, f"{rows_out - rows_in} row(s) added: keys matched more than once"
        else:
            dropped = rows_in - rows_out if rows_in is not None and rows_out is not None else None
        out.append(StepCount(index, op, rows_in, rows_out, dropped, note))
    return out


def _missing_table(project: Project, job: LoadedJob, settings: Settings, exc: MissingTable) -> SpecError:
    writer = None
    for path in project.job_files():
        try:
            other = load_job(path, settings.vars, project.shown(path))
        except SpecError:
            continue
        if other.spec.output.path.rstrip("/") == exc.path.rstrip("/"):
            writer = other.name
    hint = f"; run `featurekit run {writer}` first" if writer else "; no job in this project writes it"
    return SpecError([job.positions.problem(("sources", exc.source, "path"), f"no Delta table at {exc.path}{hint}", at_value=True)])


_DATA_CONDITIONS = (
    "MALFORMED_RECORD", "CAST_INVALID_INPUT", "CAST_OVERFLOW", "DIVIDE_BY_ZERO", "ARITHMETIC_OVERFLOW",
    "NUMERIC_VALUE_OUT_OF_RANGE", "USER_RAISED_EXCEPTION", "CANNOT_PARSE", "DATETIME", "INVALID_ARRAY_INDEX",
    "INVALID_INDEX", "INVALID_FRACTION", "CONVERSION_INVALID_INPUT",
)


def _spark_errors(exc: BaseException) -> Iterator[tuple[str, str]]:
    """(condition, message) for the exception and, through Py4J, its Java causes."""
    get = getattr(exc, "getCondition", None)
    if callable(get):
        try:
            yield str(get() or ""), str(exc)
        except Exception:  # a pyspark exception whose condition the JVM cannot name
            pass
    java = getattr(exc, "java_exception", None)
    seen = 0
    while java is not None and seen < 20:
        seen += 1
        condition = ""
        try:
            if java.getClass().getName() != "java.lang.Throwable" and hasattr(java, "getCondition"):
                condition = str(java.getCondition() or "")
        except Exception:
            condition = ""
        try:
            message = str(java.getMessage() or java.getClass().getName())
        except Exception:
            message = ""
        yield condition, message
        try:
            java = java.getCause()
        except Exception:
            java = None


def classify(exc: Exception) -> FeaturekitError:
    """Map an exception from Spark to a featurekit error with the right exit code."""
    from pyspark.errors import (
        AnalysisException,
        ArithmeticException,
        DateTimeException,
        IllegalArgumentException,
        NumberFormatException,
        SparkRuntimeException,
    )

    def first(text: str) -> str:
        return next((line.strip() for line in text.strip().splitlines() if line.strip()), type(exc).__name__)

    causes = list(_spark_errors(exc))
    for condition, message in causes:
        if condition.startswith(_DATA_CONDITIONS):
            return DataError(f"the data broke the job: {first(message)}")
    if isinstance(exc, (ArithmeticException, DateTimeException, NumberFormatException, SparkRuntimeException, IllegalArgumentException)):
        return DataError(f"the data broke the job: {first(str(exc))}")
    if isinstance(exc, AnalysisException) or any(c.startswith(("DELTA_", "UNRESOLVED_", "PATH_NOT_FOUND")) for c, _ in causes):
        message = next((m for c, m in causes if c), str(exc))
        return ConfigError.single(f"Spark refused the job: {first(message)}", file="output")
    detail = next((m for c, m in causes if c), None) or next((m for _, m in reversed(causes) if m), str(exc))
    return InfraError(f"Spark failed: {first(detail)}")


def write_report(settings: Settings, result: RunResult) -> Path | None:
    """Write the run's JSON report to ``<runs>/<job>/<run_id>.json``; never fails the run."""
    folder = settings.runs_dir / result.job
    try:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{result.run_id}.json"
        path.write_text(result.to_json() + "\n", encoding="utf-8")
        return path
    except OSError:
        return None
