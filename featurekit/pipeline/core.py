"""The one place that wires the layers: spec + settings -> Spark plan -> gate -> Delta.

A run has these phases, each timed:

1. ``read``: sources are opened (Delta sources pinned to their current version, malformed
   CSV/JSON records split off) and the steps are applied, building one plan.
2. ``compute``: the one pass. The plan runs once with the gate's per-row checks in it; the
   good rows are written as Delta data files inside an open transaction, not committed.
   Spark observations on the same pass fill every count (rows read, in/out of each counted
   step, bad rows and failures per check) and gather the bad rows and unparsable records.
3. ``gate``: policy, bad fraction, row count, pandera's schema verdict; the accounting must
   add up, including Delta's count of the rows in the written files. A refusal fails the
   run here: the written files are deleted and nothing was committed anywhere.
4. ``write``: the quarantine commit, then the feature table commit (Delta, atomic); if the
   second fails the first is taken back, so both tables stay at their previous versions.

The run's report is written as it starts (``running``) and as it ends. A run killed between
its two commits leaves a quarantine commit without its feature commit: the next run of the job
finds the killed run in the run log and takes that commit back (:mod:`featurekit.pipeline.recovery`).
"""

from __future__ import annotations

import json
import random
import time
import uuid
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from featurekit.config import Project, Settings, load_settings
from featurekit.engine.context import BuildContext
from featurekit.engine.jars import ensure_jars, spark_submit
from featurekit.engine.session import get_session, session_conf, spark_log, under_spark_submit
from featurekit.engine.sources import MissingTable
from featurekit.engine.transform import MALFORMED_ROWS, MALFORMED_SCHEMA, apply_steps, read_sources
from featurekit.errors import Conflict, ConfigError, DataError, FeaturekitError, OutputError, SpecError, arg
from featurekit.pipeline import accounting
from featurekit.pipeline.accounting import source_counts, step_counts
from featurekit.pipeline.conflicts import conflict_of, is_conflict, pause_for_test, retry_reason
from featurekit.pipeline.incremental import Chunk, plan_arrivals, plan_increment, watermark_app
from featurekit.pipeline.phases import reached
from featurekit.pipeline.recovery import interrupted_runs, recover
from featurekit.pipeline.report import RunResult, this_process, write_report
from featurekit.pipeline.spark_errors import classify
from featurekit.sinks.delta import ConcurrentRun, PreparedCommit, counts_rows, prepare
from featurekit.sinks.quarantine import append_quarantine, quarantine_rows, undo_quarantine
from featurekit.sinks.transaction import CommitMeta, app_versions, describe_last_commit, undo_commit
from featurekit.spec.intervals import from_epoch
from featurekit.spec.keys import merge_keys_unique
from featurekit.spec.loader import LoadedJob, load_job
from featurekit.validation.gate import Gate, GateResult
from featurekit.validation.model import contract_of, load_model
from featurekit.validation.plan import BAD_ROWS

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


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
    from featurekit.engine.jars import cached_jars, packages_of

    packages = packages_of(settings.spark.packages)
    if fetch:
        return ensure_jars(settings.jars_dir, packages)
    cached = cached_jars(settings.jars_dir, packages)
    if cached is None:
        return [settings.jars_dir / f"<run `featurekit setup --env {settings.env}` to fetch {','.join(packages)}>"]
    return cached


def session(settings: Settings, app_name: str | None = None, log_name: str | None = None) -> "SparkSession":
    """The Spark session for ``settings`` (jars fetched once if not cached yet).

    Under spark-submit (locally, or in a pod the Spark operator started) the JVM already has
    its jars and configuration: nothing is fetched, the running session is checked and used.
    Spark's log goes to ``<paths.logs>/<log_name>.log`` (:func:`spark_log` once it holds lines).
    """
    jars = [] if under_spark_submit() else _jar_paths(settings, fetch=True)
    return get_session(settings, jars, app_name, log_name)


@contextmanager
def _phase(result: RunResult, name: str) -> Iterator[None]:
    start = time.perf_counter()
    reached(name)
    try:
        yield
    finally:
        result.durations[name] = round(time.perf_counter() - start, 3)


def new_run_id() -> str:
    return f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


def run(project: Project, job: LoadedJob, settings: Settings, spark: "SparkSession | None" = None, *,
        end: datetime | None = None, full: bool = False, chunk: "Chunk | None" = None) -> RunResult:
    """Run one job end to end; the result is also written to the run log.

    A job with ``incremental:`` recomputes one interval of event time, up to ``end`` (default:
    now): from its watermark minus the lookback, or everything with ``full``, or a backfill's
    ``chunk``. ``end`` also bounds ``aggregate.expire`` in any job.

    When another writer commits to a table of the run between its read and its commit, Delta
    refuses the commit and nothing of this run lands; where repeating is safe the run runs
    again (same run id, up to ``concurrency.retries`` times), else it fails with a
    :class:`~featurekit.errors.Conflict` naming the version the other writer committed. The
    report lists each conflict (:mod:`featurekit.pipeline.conflicts`)."""
    if job.spec.incremental is None and (full or chunk is not None):
        raise ConfigError.single(f"job {job.name!r} has no incremental: block; {arg('full')} and backfills need one",
                                 file=job.shown_path, field="incremental")
    run_id, started = new_run_id(), datetime.now(UTC).isoformat(timespec="seconds")
    conflicts: list[dict[str, Any]] = []
    owner, killed = this_process(), interrupted_runs(settings.runs_dir, job.name)
    while True:
        result = RunResult(
            run_id=run_id, job=job.name, fingerprint=job.fingerprint, env=settings.env, started_at=started,
            output_path=job.spec.output.path, mode=job.spec.output.mode, conflicts=conflicts, owner=owner,
        )
        write_report(settings.runs_dir, result)  # "running": a run killed on the way is found by its owner's absence
        try:
            _run(project, job, settings, spark, result, end, full, chunk, killed)
            result.status = "succeeded"
        except Exception as exc:
            error = _conflict(spark, job, result, exc, settings.concurrency.retries) if is_conflict(exc) else None
            if error is not None and result.conflicts[-1]["retried"]:
                killed = []  # the first attempt settled them
                time.sleep(random.uniform(0.2, 1.0))  # two losers of one race do not run again in step
                continue
            if error is None:
                error = exc if isinstance(exc, FeaturekitError) else classify(exc)
            result.status, result.error, result.exit_code = "failed", str(error), error.exit_code
            write_report(settings.runs_dir, result)
            if error is exc:
                raise
            raise error from exc
        except BaseException:  # interrupted: the report says how far the run got
            write_report(settings.runs_dir, result)
            raise
        write_report(settings.runs_dir, result)
        return result


def _conflict(spark: "SparkSession | None", job: LoadedJob, result: RunResult, exc: Exception,
              retries: int) -> Conflict:
    """Another writer committed first (see :mod:`featurekit.pipeline.conflicts`): the error
    naming its version, recorded in ``result.conflicts`` with whether this run runs again."""
    from pyspark.sql import SparkSession

    out = job.spec.output
    spark = spark or SparkSession.getActiveSession()
    if spark is None:  # the session never started: no table was read
        error = exc if isinstance(exc, Conflict) else Conflict(str(classify(exc)), path=out.path)
        result.conflicts.append({"error": str(error), "retried": False})
        return error
    tables = [out.path] + ([job.spec.quarantine_path] if job.spec.quarantine_path else [])
    error = conflict_of(spark, exc, job.name, result.run_id, tables)
    why = retry_reason(spark, out.mode, job.spec.incremental is not None, out.path, result.run_id)
    if why is None:
        why_not = "a commit of this run is in the table's history: running again could commit it twice"
    elif _interval_done(spark, job, result):
        why, why_not = None, ("the watermark the other run left is at or past this run's end: its commit replaced "
                              "this run's interval, and planned again this run would have none")
    elif len(result.conflicts) >= retries:
        why, why_not = None, f"{retries} retr{'y' if retries == 1 else 'ies'} used (concurrency.retries)"
    record: dict[str, Any] = {"attempt": len(result.conflicts) + 1, "version": error.version, "path": error.path,
                              "error": str(error), "retried": why is not None}
    record["why"] = why if why is not None else why_not
    result.conflicts.append(record)
    return error


def _interval_done(spark: "SparkSession", job: LoadedJob, result: RunResult) -> bool:
    """Whether an incremental run (not a backfill chunk) lost to one whose watermark reached its end."""
    planned = result.incremental or {}
    if planned.get("kind") != "incremental" or not planned.get("end"):
        return False
    try:
        mark = app_versions(spark, job.spec.output.path, [watermark_app(job.name)])[watermark_app(job.name)]
    except Exception:  # the table cannot be read now: let the next attempt find out
        return False
    return mark >= 0 and from_epoch(mark) >= datetime.fromisoformat(planned["end"])


class GateFailed(DataError):
    """The validation gate refused the result; nothing was written anywhere."""

    def __init__(self, gate: GateResult, result: RunResult) -> None:
        lines = []
        for error in gate.schema_errors:
            lines.append(f"schema: {error}")
        for check in gate.checks[:8]:
            lines.append(f"{check.failures:>8,}  {check.column}: {check.check} — {check.message}")
            for example in check.examples[:2]:
                lines.append("          e.g. " + json.dumps(example, default=str)[:160])
        if len(gate.checks) > 8:
            lines.append(f"          ... {len(gate.checks) - 8} more check(s) in the report")
        lines.append(f"report: {settings_report_hint(result)}")
        super().__init__(f"validation gate failed: {gate.failed_because}; nothing was written", lines)


def settings_report_hint(result: RunResult) -> str:
    return f"featurekit runs show {result.run_id}"


def _run(project: Project, job: LoadedJob, settings: Settings, spark: "SparkSession | None", result: RunResult,
         end: datetime | None, full: bool, chunk: "Chunk | None", killed: list[dict[str, Any]]) -> None:
    spec = job.spec
    with _phase(result, "session"):
        spark = spark or session(settings, f"{settings.spark.app_name}:{job.name}", log_name=result.run_id)
    if killed:  # before this run reads the tables: what killed runs left is settled first
        recover(spark, job, settings.runs_dir, killed, result)
    ctx = BuildContext(spark=spark, prefix=f"fk_{result.run_id.replace('-', '_')}", run_end=end)
    increment = arrived = None
    if spec.incremental is not None and spec.incremental.by == "arrival":
        if chunk is not None:
            raise ConfigError.single(f"job {job.name!r} is incremental by arrival: it has no event-time range to "
                                     "backfill; `featurekit run` reads what arrived", file=job.shown_path, field="incremental")
        arrived = plan_arrivals(spark, job, full)
        ctx.arrivals = arrived.arrivals
        ctx.pinned.update(arrived.pinned)
        result.incremental = arrived.report()
    elif spec.incremental is not None:
        increment = plan_increment(spark, job, end, full, chunk)
        ctx.interval, ctx.run_end = increment.interval, increment.interval.end
        result.incremental = increment.report()
    meta = CommitMeta(job.name, result.run_id, job.fingerprint, settings.env,
                      interval=increment.report() if increment else None)
    prepared: PreparedCommit | None = None
    try:
        with _phase(result, "read"):
            try:
                reads = read_sources(ctx, job)
            except MissingTable as exc:
                raise _missing_table(project, job, settings, exc) from exc
            except ConfigError as exc:  # a source's problem, at its place in the job's file
                raise _at_sources(job, exc) from exc
            result.warnings += [warning for read in reads for warning in read.warnings]
            frame = apply_steps(ctx, job, place=False)  # the gate's projection may take its open count
            contract = None
            if spec.validation is not None and spec.validation.schema_model:
                contract = contract_of(load_model(spec.validation.schema_model, project.root))
        gate = Gate(spec.validation, contract, rescan=lambda: _rebuilt(ctx, job, reads))
        refused = gate.check_schema(frame)  # pandera, SCHEMA_ONLY: no data is read
        if refused is not None:
            result.gate = gate.report()
            raise GateFailed(refused, result)
        with _phase(result, "compute"):  # the one pass: steps, checks, counts, data files
            # the checks add columns to every row and drop none: the steps' open count joins the gate's
            gated = ctx.project(frame, gate.apply, keeps_rows=True)
            observed = gate.observed()  # nothing without a rule to check
            if observed or not counts_rows(spec.output):  # else Delta's count of the written rows serves
                gated = ctx.observe(gated, "gate", **observed)
            try:
                prepared = prepare(spark, gate.good_rows(ctx.place(gated)), spec.output, meta,
                                   increment.replacement if increment else None, arrived.latest if arrived else None,
                                   keys_unique=merge_keys_unique(spec))
            except OutputError as exc:   # point at the job's output spec, as the spec checks do
                raise exc.located(job.positions.problem) from exc
            counts = ctx.counts()
            if "gate" not in counts:
                counts["gate"] = {"rows": prepared.rows} if prepared.rows is not None else None
        result.sources = source_counts(reads, counts)
        result.steps = step_counts(job, counts)
        with _phase(result, "gate"):
            gathered = ctx.collected("gate", BAD_ROWS, gate.gathered_schema) if observed else None
            verdict = gate.check(counts.get("gate"), gathered, sum(s["rows_malformed"] or 0 for s in result.sources),
                                 written=prepared.data)
            released = gate.released()
            if released is not None:  # held rows that pass: into the same commit
                prepared.add(released)
        result.rows_out = verdict.rows_checked
        result.gate = gate.report()
        result.rows_written, result.rows_quarantined = verdict.rows_good, verdict.rows_bad
        accounting.check(job, result, counts, prepared.rows)
        if verdict.failed_because:
            result.rows_written = result.rows_quarantined = 0
            raise GateFailed(verdict, result)
        with _phase(result, "write"):
            _commit(spark, job, ctx, result, meta, prepared, gate.quarantine())
            prepared = None
    finally:
        if prepared is not None:  # refused or failed before the commit: drop the written files
            prepared.abandon()
        ctx.drop_views()


def _rebuilt(ctx: BuildContext, job: LoadedJob, reads: list[Any]) -> "DataFrame":
    """The job's plan built again without observations, on the same Delta versions: what a
    pre-pass of the gate reads (counting it would count the rows twice)."""
    pinned = {r.name: r.delta_version for r in reads if r.delta_version is not None}
    plain = BuildContext(spark=ctx.spark, prefix=f"{ctx.prefix}_plain", counting=False, pinned=pinned,
                         interval=ctx.interval, run_end=ctx.run_end, arrivals=ctx.arrivals)
    read_sources(plain, job)
    frame = apply_steps(plain, job)
    ctx.views.extend(v for v in plain.views if v not in ctx.views)
    return frame


def _commit(spark: "SparkSession", job: LoadedJob, ctx: BuildContext, result: RunResult, meta: CommitMeta,
            prepared: PreparedCommit, bad: Any) -> None:
    """Quarantine first, then the feature table; if the second fails, take the first back."""
    pause_for_test()
    malformed_rows = {s["name"]: s["rows_malformed"] for s in result.sources}
    frames = {}
    for name in ctx.malformed:
        if malformed_rows.get(name):
            rows = ctx.collected(f"source.{name}", MALFORMED_ROWS, _malformed_schema())
            if rows is not None:
                frames[name] = rows
    expected = (result.rows_quarantined or 0) + sum(malformed_rows.get(n, 0) or 0 for n in frames)
    rows = quarantine_rows(bad, frames, prepared.schema, result.run_id)
    held = None
    if rows is not None:
        reached("commit quarantine")
        held = append_quarantine(spark, rows, job.spec.quarantine_path, meta)
        result.quarantine = {"path": held.path, "version": held.version, "rows": expected,
                             "inserted": held.inserted, "already_quarantined": expected - held.inserted,
                             "found_by": "the last commit's digest" if held.recognized else "row hashes"}
    done = None
    try:
        reached("commit table")  # after the quarantine commit: a kill here leaves it alone
        done = prepared.commit()
        reached("committed")
        # the gate's gathered rows include those held back and then written, not quarantined
        offered = sum(ctx.gathered.values()) - (result.gate or {}).get("rows_released", 0) if held else None
        accounting.check_commits(result, done, offered, expected)
    except Exception as exc:
        if done is None:
            prepared.abandon()
        else:  # committed, then refused by the accounting: take it back
            undo_commit(spark, job.spec.output.path, done)
        if held is not None and _lost_a_race(exc) and describe_last_commit(spark, job.spec.output.path).job == job.name:
            # another run of this job committed first, over the same source records: it may have
            # found these quarantine rows there already and counted on them, so they stay
            result.quarantine["kept"] = "another run of the job committed first"
        elif held is not None:
            undo_quarantine(spark, held, result.run_id)
            result.quarantine["undone"] = True
        raise
    result.table_version, result.commit_operation, result.commit_metrics = done.version, done.operation, done.metrics
    if done.kept_newer:
        result.incremental["kept_newer"] = done.kept_newer


def _lost_a_race(exc: Exception) -> bool:
    """Whether the feature commit failed because another run committed to the table first."""
    return isinstance(exc, ConcurrentRun) or is_conflict(exc)


def _malformed_schema() -> Any:
    from pyspark.sql.types import _parse_datatype_string

    return _parse_datatype_string(MALFORMED_SCHEMA)


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





def _at_sources(job: LoadedJob, exc: ConfigError) -> ConfigError:
    """``exc`` with each problem the sources raised (file ``sources``, field ``name.key...``)
    placed at that key of the job's file."""
    problems = [job.positions.problem(("sources", *p.field.split(".")), p.message, at_value=True)
                if p.file == "sources" and p.field else p for p in exc.problems]
    return ConfigError(problems)
