"""The ``featurekit`` command: each command a few lines over the library.

Exit codes: 0 ok, 2 spec or configuration problem, 3 data problem, 1 infrastructure.
Tracebacks only with ``--debug``.
"""

from __future__ import annotations

import os
import shlex
import sys
import traceback
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from featurekit.config import Project, find_project, load_settings
from featurekit.config.project import is_project
from featurekit.errors import ConfigError, FeaturekitError, InfraError, SpecError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Declarative PySpark prep jobs into Delta Lake tables.")
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)
_state = {"debug": False, "project": None}

Env = Annotated[str, typer.Option("--env", "-e", help="Environment: conf/base + conf/<env>.")]


@app.callback()
def _options(
    project: Annotated[Optional[Path], typer.Option(help="Project folder (default: found from the working directory).")] = None,
    debug: Annotated[bool, typer.Option(help="Show tracebacks.")] = False,
) -> None:
    _state["debug"] = debug
    _state["project"] = project


def _project() -> Project:
    explicit = _state["project"]
    if explicit is not None:
        root = Path(explicit).resolve()
        if not is_project(root):
            raise ConfigError.single(f"--project {explicit}: no conf/ and jobs/ folders there", file=str(explicit))
        return Project(root)
    return find_project()


@app.command()
def validate(
    paths: Annotated[Optional[list[Path]], typer.Argument(help="Job files or folders (default: jobs/).")] = None,
    env: Env = "local",
) -> None:
    """Check job specs without a JVM: every problem in every file, one line each."""
    from featurekit.spec.loader import load_jobs

    project = _project()
    settings = load_settings(project, env)
    files: list[Path] = []
    for path in paths or [project.jobs_dir]:
        files += sorted(path.glob("*.y*ml")) if path.is_dir() else [path]
    jobs, problems = load_jobs(files, settings.vars, base=project.root)
    if problems:
        raise SpecError(problems)
    for job in jobs:
        out.print(f"[green]ok[/] {project.shown(job.path)}  ({job.name}, fingerprint {job.fingerprint})")
    out.print(f"{len(jobs)} job(s) valid")


@app.command()
def plan(job: Annotated[str, typer.Argument(help="Job name or path.")], env: Env = "local") -> None:
    """Show the resolved job and the spark-submit command that runs it (no Spark started)."""
    from featurekit import pipeline

    project = _project()
    loaded, settings = pipeline.load(project, job, env)
    spec = loaded.spec
    out.print(f"[bold]{spec.name}[/]  {spec.description}".rstrip())
    out.print(f"file: {project.shown(loaded.path)}   env: {env}   fingerprint: {loaded.fingerprint}")
    table = Table(title="sources", title_justify="left")
    for column in ("name", "format", "path", "options"):
        table.add_column(column)
    for name, source in spec.sources.items():
        table.add_row(name, source.format, source.path, ", ".join(f"{k}={v}" for k, v in source.options.items()))
    out.print(table)
    inc = spec.incremental
    if inc is not None and inc.by == "arrival":
        out.print(f"[bold]incremental[/] by arrival: only what reached {spec.first_source!r} since the last run, "
                  "merged newest-wins")
    elif inc is not None:
        from featurekit.spec.durations import format_duration
        from featurekit.spec.intervals import grain, reach

        out.print(f"[bold]incremental[/] by {inc.time_column}: each run recomputes (watermark - {inc.lookback or '0s'}, "
                  f"end], reading {spec.first_source!r} from {format_duration(int(reach(spec).total_seconds()))} "
                  f"before it; buckets of {format_duration(int(grain(spec).total_seconds()))}")
    out.print("[bold]steps[/]")
    for index, step in enumerate(spec.steps):
        out.print(f"  {index}. {_describe(step)}")
    o = spec.output
    out.print(f"[bold]output[/] {o.path}  mode={o.mode}"
              + (f" keys={','.join(o.keys)}" if o.keys else "")
              + (f" partition_by={','.join(o.partition_by)}" if o.partition_by else ""))
    out.print("[bold]spark-submit[/]")
    out.print(shlex.join(pipeline.submit_command(project, loaded, settings)), markup=False)


def _describe(step: object) -> str:
    from featurekit.spec.models import step_op

    op = step_op(step) or "?"
    value = getattr(step, op)
    text = value if isinstance(value, str) else (
        value.model_dump_json(exclude_defaults=True) if hasattr(value, "model_dump_json") else str(value)
    )
    return f"{op}: {text}"


def _quiet_query_context() -> None:
    """PySpark logs every analysis error it raises, with its Python stack, as a JSON line on
    stderr; featurekit reports the same error in one line at the step of the spec that
    caused it, so that log is kept for ``--debug``."""
    if _state["debug"]:
        return
    import logging

    from pyspark.logger import PySparkLogger

    for name in ("SQLQueryContextLogger", "DataFrameQueryContextLogger"):
        PySparkLogger.getLogger(name).setLevel(logging.CRITICAL)


@app.command()
def run(
    job: Annotated[str, typer.Argument(help="Job name or path.")],
    env: Env = "local",
    materialize: Annotated[bool, typer.Option(
        "--materialize", help="Then materialize the job's feature view incrementally (same Spark session).")] = False,
    end: Annotated[Optional[str], typer.Option(
        help="Incremental jobs: the interval's end (ISO 8601, UTC if no zone; default now, aligned to the buckets). "
             "Also where aggregate.expire stops.")] = None,
    full: Annotated[bool, typer.Option("--full", help="Incremental jobs: rebuild the whole table up to --end.")] = False,
) -> None:
    """Run a job: sources -> steps -> Delta commit, and print what happened."""
    from featurekit import pipeline

    _quiet_query_context()
    project = _project()
    loaded, settings = pipeline.load(project, job, env)
    features = loaded.spec.features
    if materialize and (features is None or not features.online):
        raise ConfigError.single(f"--materialize: job {loaded.name!r} has no online features (features: with online: true)",
                                 file=project.shown(loaded.path), field="features")
    result = pipeline.run(project, loaded, settings, end=_when(end, "--end"), full=full)
    _print_run(result)
    if materialize:
        from featurekit.pipeline.materialize import materialize as run_materialize

        _print_materialized(run_materialize(project, settings, views=[loaded.name], incremental=True), env, False)


def _print_run(result: object) -> None:
    """The run summary: the row arithmetic first, then where the rows went."""
    from featurekit.pipeline import RunResult

    assert isinstance(result, RunResult)
    table = Table(title=f"run {result.run_id}  job {result.job}  ({result.status})", title_justify="left")
    table.add_column("what")
    table.add_column("rows", justify="right")
    table.add_column("detail", overflow="fold")
    inc = result.incremental
    if inc.get("kind") == "arrival":
        since = (f"files modified after {inc['files_since']}" if inc.get("files_since")
                 else f"changes after version {inc['after_version']}" if inc.get("after_version") is not None
                 else "everything (no earlier run)")
        table.add_row("arrived since the last run", "", since + (f"; {inc['note']}" if inc.get("note") else ""))
        if inc.get("kept_newer"):
            table.add_row("  older than the table's", _n(inc["kept_newer"]), "late versions of a key: the newer row stays")
    elif inc:
        table.add_row(f"{inc['kind']} interval", "", f"{inc['interval']}, events read from {inc['read_from'] or 'the start'}; "
                      f"watermark {inc['watermark_before'] or '-'} -> {inc['watermark_after']}")
    for source in result.sources:
        detail = f"{source['format']} {source['path']}"
        if source["delta_version"] is not None:
            detail += f" @ v{source['delta_version']}"
        if source.get("files") is not None:
            detail += f" ({source['files_read']:,} of {source['files']:,} files read)"
        table.add_row(f"read {source['name']}", _n(source["rows_read"]), detail)
        if source.get("rows_malformed"):
            table.add_row(f"  malformed in {source['name']}", _n(source["rows_malformed"]), "quarantined with their raw text")
    for step in result.steps:
        if step.dropped or step.note:
            table.add_row(f"  step {step.index} ({step.op})", _n(step.dropped) if step.dropped else "",
                          step.note or f"dropped: {_n(step.rows_in)} in, {_n(step.rows_out)} out")
    table.add_row("checked by the gate", _n(result.rows_out), "")
    for check in (result.gate or {}).get("checks", []):
        table.add_row(f"  refused: {check['column']} {check['check']}", _n(check["failures"]), check["message"])
    if result.quarantine:
        q = result.quarantine
        table.add_row("quarantined", _n(q.get("rows")), f"{q['path']} v{q['version']}"
                      + (f" ({q['already_quarantined']:,} already there from earlier runs)" if q.get("already_quarantined") else ""))
    table.add_row("written", _n(result.rows_written),
                  f"{result.output_path} v{result.table_version} ({result.commit_operation}, mode {result.mode})")
    out.print(table)
    out.print("durations: " + ", ".join(f"{k} {v:.1f}s" for k, v in result.durations.items()))


def _n(value: Optional[int]) -> str:
    return "-" if value is None else f"{value:,}"


@app.command()
def backfill(
    job: Annotated[str, typer.Argument(help="Job name or path (a job with incremental:).")],
    start: Annotated[str, typer.Option(help="Range start, exclusive (ISO 8601, UTC if no zone).")],
    end: Annotated[str, typer.Option(help="Range end, inclusive.")],
    batch: Annotated[str, typer.Option(help="Chunk length (a duration: 6h, 1d, 1w); each chunk is one commit.")] = "1d",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the chunks (and those already done); run nothing.")] = False,
    env: Env = "local",
) -> None:
    """Recompute a range of an incremental job in chunks; run again after a crash, it resumes."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from featurekit import pipeline
    from featurekit.pipeline.incremental import backfill as run_backfill
    from featurekit.spec.intervals import iso

    _quiet_query_context()
    project = _project()
    loaded, settings = pipeline.load(project, job, env)
    first, last = _when(start, "--start"), _when(end, "--end")
    with Progress(TextColumn("backfill {task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("chunks"),
                  TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(), console=err,
                  disable=dry_run) as bar:
        task = bar.add_task(loaded.name, total=None)

        def progress(done: int, total: int, result: object) -> None:
            if result is None:  # the chunks an earlier attempt committed: done, not timed
                bar.update(task, total=total - done, completed=0)
            else:
                bar.advance(task)

        result = run_backfill(project, loaded, settings, first, last, batch, dry_run=dry_run, progress=progress)  # type: ignore[arg-type]
    table = Table(title=f"backfill {loaded.name} ({result.start:%Y-%m-%d %H:%M}, {result.end:%Y-%m-%d %H:%M}] "
                        f"in {len(result.chunks)} chunk(s) of {result.batch}", title_justify="left")
    for column in ("chunk", "interval", "status", "run id", "written", "v"):
        table.add_column(column, justify="right" if column in ("chunk", "written", "v") else "left")
    runs = {run.incremental.get("end"): run for run in result.runs}
    for index, (lo, hi) in enumerate(result.chunks):
        run = runs.get(iso(hi))
        status = "done before" if index < result.done_before else ("planned" if run is None else "committed")
        table.add_row(str(index + 1), f"({lo:%Y-%m-%d %H:%M}, {hi:%Y-%m-%d %H:%M}]", status,
                      run.run_id if run else "", _n(run.rows_written) if run else "",
                      str(run.table_version) if run else "")
    out.print(table)


@app.command()
def show(
    job: Annotated[str, typer.Argument(help="Job name or path.")],
    limit: Annotated[int, typer.Option(help="Rows to show.")] = 5,
    env: Env = "local",
) -> None:
    """Show a job's output table: version, recent commits, row count, first rows (no JVM)."""
    from featurekit import pipeline
    from featurekit.sinks.inspect import inspect_table

    loaded, settings = pipeline.load(_project(), job, env)
    view = inspect_table(loaded.spec.output.path, limit, storage_options=settings.storage_options)
    out.print(f"[bold]{view.path}[/]  version {view.version}, {view.rows:,} rows, properties {view.properties}")
    commits = Table(title="recent commits", title_justify="left")
    for column in ("version", "operation", "run_id", "fingerprint"):
        commits.add_column(column)
    for commit in view.commits:
        commits.add_row(*(str(commit.get(c, "")) for c in ("version", "operation", "run_id", "fingerprint")))
    out.print(commits)
    rows = Table(title=f"first {len(view.head)} rows (one per column)", title_justify="left")
    rows.add_column("column")
    for index in range(len(view.head)):
        rows.add_column(f"row {index + 1}")
    for column in view.columns:
        rows.add_row(column, *(_cell(row[column]) for row in view.head))
    out.print(rows)


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if hasattr(value, "isoformat"):
        return value.isoformat()  # type: ignore[union-attr]
    return str(value)


@app.command()
def runs(
    what: Annotated[Optional[list[str]], typer.Argument(help="[JOB] to list runs, or: show RUN_ID")] = None,
    limit: Annotated[int, typer.Option(help="Runs to list.")] = 20,
    env: Env = "local",
) -> None:
    """List recent runs (`runs [JOB]`) or print one report (`runs show RUN_ID`)."""
    import json

    from featurekit import pipeline

    runs_dir = load_settings(_project(), env).runs_dir
    args = what or []
    if args[:1] == ["show"]:
        if len(args) != 2:
            raise ConfigError.single("usage: featurekit runs show RUN_ID", file="runs")
        out.print_json(json.dumps(pipeline.read_run(runs_dir, args[1])))
        return
    if len(args) > 1:
        raise ConfigError.single("usage: featurekit runs [JOB] | featurekit runs show RUN_ID", file="runs")
    table = Table(title=f"recent runs in {runs_dir}", title_justify="left")
    reports = pipeline.list_runs(runs_dir, args[0] if args else None, limit)
    intervals = any(report.get("incremental") for report in reports)  # a column only where a run has one
    for column in ("run id", "job", "status", *(["interval"] if intervals else []), "read", "written", "bad", "v"):
        table.add_column(column, no_wrap=True, justify="left" if column in {"run id", "job", "status", "interval"} else "right")
    for report in reports:
        read = sum(s.get("rows_read") or 0 for s in report.get("sources", []))
        malformed = sum(s.get("rows_malformed") or 0 for s in report.get("sources", []))
        status = "ok" if report.get("status") == "succeeded" else f"{report.get('status', '?')} {report.get('exit_code') or ''}".strip()
        version = report.get("table_version")
        interval = [(report.get("incremental") or {}).get("interval", "")] if intervals else []
        table.add_row(report.get("run_id", ""), report.get("job", ""), status, *interval, _n(read),
                      _n(report.get("rows_written")), _n((report.get("rows_quarantined") or 0) + malformed),
                      "" if version is None else str(version))
    out.print(table)


@app.command()
def setup(env: Env = "local") -> None:
    """Fetch the Delta Lake jars (and the env's spark.packages) once into the project's cache.

    The only network step; the job image runs it at build time to bake the jars in.
    """
    import shutil

    from featurekit.engine.jars import ensure_jars, packages_of

    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        raise InfraError("Java is not installed: Spark needs a JDK 17 (e.g. apt-get install openjdk-17-jdk-headless)")
    settings = load_settings(_project(), env)
    packages = packages_of(settings.spark.packages)
    jars = ensure_jars(settings.jars_dir, packages)
    out.print(f"{', '.join(packages)}: {len(jars)} jar(s) in {settings.jars_dir}")


@app.command("generate-demo-data")
def generate_demo_data(
    rows: Annotated[Optional[int], typer.Option(help="Trip rows to generate (default 200,000; with --arrival: the base set's).")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Random seed, same seed same files (default 7; with --arrival: the base set's).")] = None,
    arrival: Annotated[Optional[int], typer.Option(min=1, help="Add day K of newly arrived trips (trips/arrival-K.csv) to the base set.")] = None,
    out_dir: Annotated[Optional[Path], typer.Option("--out", help="Folder (default: the raw_root var).")] = None,
    env: Env = "local",
) -> None:
    """Write a realistic raw data set (trips, driver updates, ~0.5% dirty rows), or a day that arrives after it."""
    from featurekit.demo.arrivals import arrival_path, generate_arrival
    from featurekit.demo.generate import generate_raw

    target = out_dir or Path(load_settings(_project(), env).vars["raw_root"])
    if arrival is not None:
        added = generate_arrival(target, arrival, rows=rows, seed=seed)
        out.print(f"wrote {arrival_path(target, arrival)}: "
                  + ", ".join(f"{k}={v:,}" if isinstance(v, int) else f"{k}={v}" for k, v in added.to_dict().items()))
        return
    summary = generate_raw(target, rows=200_000 if rows is None else rows, seed=7 if seed is None else seed)
    out.print(f"wrote {target}: " + ", ".join(f"{k}={v:,}" for k, v in summary.to_dict().items()))


feast_app = typer.Typer(no_args_is_help=True, help="The Feast feature repository, built from the jobs' `features:` blocks.")
app.add_typer(feast_app, name="feast")

render_app = typer.Typer(no_args_is_help=True, help="Render deployment manifests from the job specs and conf/.")


@render_app.command("sparkapp")
def render_sparkapp(
    job: Annotated[Optional[str], typer.Argument(help="Job name or path (or --all).")] = None,
    all_jobs: Annotated[bool, typer.Option("--all", help="Every job in jobs/.")] = False,
    env: Env = "k8s",
    schedule: Annotated[Optional[str], typer.Option(help="Cron schedule: a ScheduledSparkApplication.")] = None,
    materialize: Annotated[bool, typer.Option(
        "--materialize", help="Runs also materialize the job's online features (featurekit run --materialize).")] = False,
    output: Annotated[Optional[Path], typer.Option(
        "--output", "-o", help="A .yaml file for all manifests, or a folder for one file per job.")] = None,
    backfill_run: Annotated[bool, typer.Option(
        "--backfill", help="One run of featurekit backfill JOB --start --end (an incremental job; never scheduled).")] = False,
    start: Annotated[Optional[str], typer.Option(help="--backfill: range start, exclusive (ISO 8601, UTC if no zone).")] = None,
    end: Annotated[Optional[str], typer.Option(help="--backfill: range end, inclusive.")] = None,
    batch: Annotated[Optional[str], typer.Option(help="--backfill: chunk length, each chunk one commit (default 1d).")] = None,
) -> None:
    """Kubeflow Spark operator manifests (SparkApplication, or scheduled) for jobs in an environment."""
    from featurekit.deploy.sparkapp import Backfill, render_jobs, to_yaml
    from featurekit.spec.loader import load_jobs

    if (job is None) == (not all_jobs):
        raise ConfigError.single("give one job, or --all for every job", file="render sparkapp", field="JOB")
    given = [option for option, value in (("--start", start), ("--end", end), ("--batch", batch)) if value is not None]
    if given and not backfill_run:
        raise ConfigError.single("--start, --end and --batch go with --backfill", file="render sparkapp", field=given[0])
    if backfill_run and all_jobs:
        raise ConfigError.single("a backfill is of one job: give JOB, not --all", file="render sparkapp", field="--all")
    if backfill_run and (start is None or end is None):
        raise ConfigError.single("give the range to recompute: --start and --end", file="render sparkapp", field="--backfill")
    backfill = Backfill(_when(start, "--start"), _when(end, "--end"), batch or "1d") if backfill_run else None  # type: ignore[arg-type]
    project = _project()
    settings = load_settings(project, env)
    files = project.job_files() if all_jobs else [project.job_path(job or "")]
    jobs, problems = load_jobs(files, settings.vars, base=project.root)
    if problems:
        raise SpecError(problems)
    rendered = render_jobs(project, settings, jobs, schedule, materialize=materialize, backfill=backfill)
    for item in rendered:
        for warning in item.warnings:
            err.print(f"[yellow]warning[/] {warning}", markup=True)
    if output is None:
        sys.stdout.write(to_yaml(rendered))
        return
    if output.suffix not in (".yaml", ".yml"):
        output.mkdir(parents=True, exist_ok=True)
        for item in rendered:
            (output / f"{item.name}.yaml").write_text(to_yaml([item]), encoding="utf-8")
        written = [output / f"{item.name}.yaml" for item in rendered]
    else:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(to_yaml(rendered), encoding="utf-8")
        written = [output]
    kind = "ScheduledSparkApplication" if schedule else "SparkApplication"
    err.print(f"wrote {len(rendered)} {kind}(s) for env {env}: {', '.join(str(p) for p in written)}")


app.add_typer(render_app, name="render")


@feast_app.command("render")
def feast_render(env: Env = "local") -> None:
    """Write feature_repo/feature_store.yaml for an environment (from conf/)."""
    from featurekit.pipeline import features

    project = _project()
    path = features.render(project, load_settings(project, env))
    out.print(f"wrote {project.shown(path)} for env {env}")


@feast_app.command("plan")
def feast_plan(env: Env = "local") -> None:
    """Show what `feast apply` would change in the registry and the online store."""
    from featurekit.pipeline import features

    project = _project()
    features.apply(project, load_settings(project, env), plan_only=True)


@feast_app.command("apply")
def feast_apply(env: Env = "local") -> None:
    """Render feature_store.yaml for the environment and apply the definitions (= feast apply)."""
    from featurekit.pipeline import features

    project = _project()
    settings = load_settings(project, env)
    features.apply(project, settings)
    views, services = features.definitions(project, settings)
    table = Table(title=f"feast project {settings.feast.project} (env {env})", title_justify="left")
    for column in ("feature view", "entity", "features", "Delta version", "skipped columns"):
        table.add_column(column, overflow="fold")
    for view in views:
        table.add_row(view.name, f"{view.entity} ({', '.join(view.join_keys)})", str(len(view.features)),
                      str(view.version), ", ".join(f"{k} ({t})" for k, t in view.skipped.items()))
    out.print(table)
    out.print("feature services: " + ", ".join(s.name for s in services))


def _when(value: Optional[str], option: str) -> "Optional[object]":
    from datetime import UTC, datetime

    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ConfigError.single(f"expected an ISO 8601 time like 2026-01-15T00:00:00Z; got {value!r}",
                                 file="command line", field=option) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@app.command()
def materialize(
    views: Annotated[Optional[list[str]], typer.Option("--views", "-v", help="Feature views (default: every online view).")] = None,
    start: Annotated[Optional[str], typer.Option(help="Window start (ISO 8601, UTC if no zone).")] = None,
    end: Annotated[Optional[str], typer.Option(help="Window end (default: now).")] = None,
    incremental: Annotated[bool, typer.Option("--incremental", help=(
        "Only the keys whose rows changed since the Delta version the store holds (the table's change data "
        "feed), and rows after its end; the whole window (end - ttl) when the store holds none."))] = False,
    verify_only: Annotated[bool, typer.Option("--verify-only", help="Write nothing; check the online store against the table.")] = False,
    engine: Annotated[Optional[str], typer.Option(
        help="spark (any store) or arrow (no JVM: delta-rs streams into a plain Redis); default: the env's "
             "feast.materialize_engine.")] = None,
    env: Env = "local",
) -> None:
    """Delta tables -> online store for a window, then verify every key arrived (exit 3 if not)."""
    from featurekit.pipeline.materialize import materialize as run_materialize

    if incremental == (start is not None):
        raise ConfigError.single("give either --start (with --end) or --incremental", file="command line", field="--start")
    project = _project()
    settings = load_settings(project, env)
    result = run_materialize(project, settings, views=views, start=_when(start, "--start"), end=_when(end, "--end"),
                             incremental=incremental, verify_only=verify_only, engine=engine)
    _print_materialized(result, env, verify_only)


def _print_materialized(result: object, env: str, verify_only: bool) -> None:
    from featurekit.pipeline.materialize import MaterializeResult

    assert isinstance(result, MaterializeResult)
    verb = "verified" if verify_only else "materialized"
    table = Table(title=f"{verb} into {result.online_store} (run {result.run_id}, env {env}, engine {result.engine})",
                  title_justify="left")
    numbers = ("rows", "keys", "changed", "written", "verified", "s")
    for column in ("feature view", "Delta version", "keys from", "window", *numbers):
        table.add_column(column, justify="right" if column in numbers else "left")
    for view in result.views:
        window = view.method == "window"
        online = view.online
        # a whole window: its keys holding a value from it; incremental: the keys read back at least as new
        verified = 0 if online is None else online.in_window if window else online.in_window + online.newer
        first = view.delta_version_from
        versions = f"v{first}..v{view.delta_version}" if first is not None and first <= view.delta_version \
            else f"v{view.delta_version}"
        table.add_row(view.view, versions, view.method,
                      f"{view.start:%Y-%m-%d %H:%M} .. {view.end:%Y-%m-%d %H:%M}", _n(view.rows), _n(view.keys),
                      "-" if window else _n(view.changed), "-" if verify_only else _n(view.written), _n(verified),
                      f"{view.seconds:.1f}")
    out.print(table)
    for warning in result.warnings:
        err.print(f"warning: {warning}", markup=False, style="yellow")


@app.command()
def online(
    entities: Annotated[list[str], typer.Argument(help="Entity keys: driver_id=100001 (repeat for more rows).")],
    service: Annotated[Optional[str], typer.Option(help="Feature service (default: all features of --view).")] = None,
    view: Annotated[Optional[str], typer.Option(help="Feature view, when no --service is given.")] = None,
    env: Env = "local",
) -> None:
    """Look up online features for entity keys and print them (one column per entity)."""
    from featurekit.online import lookup

    if (service is None) == (view is None):
        raise ConfigError.single("give --service or --view", file="command line", field="--service")
    rows = lookup(entities, service=service, view=view, env=env, project=_project())
    table = Table(title=f"online features ({service or view}, env {env})", title_justify="left")
    table.add_column("feature")
    for i in range(len(rows)):
        table.add_column(f"#{i + 1}", justify="right")
    for name in rows[0] if rows else []:
        table.add_row(name, *(_cell(row[name]) for row in rows))
    out.print(table)


@app.command()
def serve(
    env: Env = "local",
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 6566,
    workers: Annotated[int, typer.Option(min=1, help="Server processes (one per core is a good start).")] = 1,
) -> None:
    """Serve online features over HTTP in Feast's JSON (POST /get-online-features, GET /health)."""
    import uvicorn

    from featurekit.online import OnlineFeatures
    from featurekit.online.http import create_app

    project = _project()
    client = OnlineFeatures(env, project)   # checks the store and registry before listening
    out.print(f"serving {len(client.layouts)} feature view(s), {len(client.services)} service(s) "
              f"from the {client.reader.kind} online store on http://{host}:{port} ({workers} worker(s))")
    if workers == 1:
        uvicorn.run(create_app(client), host=host, port=port, log_level="warning", access_log=False)
        return
    os.environ["FEATUREKIT_PROJECT"], os.environ["FEATUREKIT_ENV"] = str(project.root), env
    uvicorn.run("featurekit.online.http:app_from_env", factory=True, host=host, port=port, workers=workers,
                log_level="warning", access_log=False)


@app.command("training-set")
def training_set(
    spine: Annotated[str, typer.Option(help="Entity keys, event timestamp [, labels]: a Delta table, Parquet or CSV with a header.")],
    service: Annotated[str, typer.Option(help="Feature service (each feature view has one of its name).")],
    out_path: Annotated[str, typer.Option("--out", help="Delta table to write (overwritten).")],
    timestamp: Annotated[str, typer.Option(help="The spine's event timestamp column.")] = "event_timestamp",
    env: Env = "local",
) -> None:
    """Point-in-time correct features for a spine (Feast on Spark) -> a Delta table, with lineage."""
    from featurekit.pipeline.training import training_set as build

    project = _project()
    result = build(project, load_settings(project, env), spine=spine, service=service, out=out_path, timestamp=timestamp)
    table = Table(title=f"training set {result.service} (run {result.run_id}, env {env})", title_justify="left")
    table.add_column("what")
    table.add_column("detail", overflow="fold")
    table.add_row("spine", f"{result.spine_format} {result.spine}"
                  + (f" @ v{result.spine_version}" if result.spine_version is not None else ""))
    for view, version in result.views.items():
        table.add_row(f"view {view}", f"Delta v{version}")
    table.add_row("rows", f"{result.rows:,}" + (f" ({result.rows_without_timestamp:,} without a timestamp: null features)"
                                                 if result.rows_without_timestamp else ""))
    table.add_row("written", f"{result.out} v{result.out_version} ({len(result.features)} feature(s), "
                  f"{result.seconds:.1f}s)")
    table.add_row("lineage", result.lineage)
    out.print(table)
    for warning in result.warnings:
        err.print(f"warning: {warning}", markup=False, style="yellow")


registry_app = typer.Typer(no_args_is_help=True, help="An embedded Kubeflow Model Registry (SQLite) for laptops and CI.")
app.add_typer(registry_app, name="registry")


@registry_app.command("serve")
def registry_serve(
    db: Annotated[Optional[Path], typer.Option(help="SQLite file (default: .featurekit/registry.db in the project).")] = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8080,
) -> None:
    """Serve the Model Registry REST API (/api/model_registry/v1 and v1alpha3) from a SQLite file."""
    import uvicorn

    from featurekit.lineage.registry_server import create_registry_app

    path = db if db is not None else _project().root / ".featurekit" / "registry.db"
    registry = create_registry_app(path)
    out.print(f"Model Registry API on http://{host}:{port}/api/model_registry/v1 (and /v1alpha3), stored in {path}")
    uvicorn.run(registry, host=host, port=port, log_level="warning", access_log=False)


lineage_app = typer.Typer(no_args_is_help=True,
                          help="Lineage in the Kubeflow Model Registry: link model versions, replay the outbox, show the tree.")
app.add_typer(lineage_app, name="lineage")


@lineage_app.command("link")
def lineage_link(
    model: Annotated[str, typer.Option(help="Registered model (created if absent).")],
    version: Annotated[str, typer.Option(help="Model version (created if absent).")],
    training_set: Annotated[Optional[str], typer.Option(help="Training set: its run id (a unique prefix will do) or artifact id.")] = None,
    service: Annotated[Optional[str], typer.Option(help="Feature service: the latest materialized feature set of each of its views.")] = None,
    env: Env = "local",
) -> None:
    """Attach a training set (or a service's feature sets) to a model version, as DataSet artifacts."""
    from featurekit.pipeline import lineage

    if (training_set is None) == (service is None):
        raise ConfigError.single("give --training-set or --service", file="command line", field="--training-set")
    project = _project()
    result = lineage.link(project, load_settings(project, env), model, version, training_set=training_set, service=service)
    out.print(f"model {result.model['name']} version {result.version['name']} "
              f"(model version {result.version['id']}): {len(result.artifacts)} dataset artifact(s) linked", markup=False)
    for artifact, url in zip(result.artifacts, result.urls):
        out.print(f"  {artifact.get('name') or artifact['id']}  {url}", markup=False)


@lineage_app.command("flush")
def lineage_flush(env: Env = "local") -> None:
    """Send the lineage records waiting in the outbox (each exactly once)."""
    from featurekit.pipeline import lineage

    project = _project()
    settings = load_settings(project, env)
    result = lineage.flush(project, settings)
    out.print(f"sent {len(result.sent)} record(s): {result.created} new in the registry, "
              f"{len(result.sent) - result.created} there already; {result.remaining} waiting in {settings.registry.outbox}",
              markup=False)
    if result.failed:
        raise InfraError(f"{len(result.failed)} record(s) not sent (they stay in the outbox):\n"
                         + "\n".join(f"  {failure}" for failure in result.failed))


@lineage_app.command("show")
def lineage_show(
    model: Annotated[Optional[str], typer.Option(help="Registered model (with --version).")] = None,
    version: Annotated[Optional[str], typer.Option(help="Model version.")] = None,
    feature_view: Annotated[Optional[str], typer.Option(help="Instead of a model: a feature view's latest feature sets.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="text, mermaid, dot, or png (needs Graphviz's dot and --out).")] = "text",
    out_file: Annotated[Optional[Path], typer.Option("--out", help="Write to this file instead of the terminal.")] = None,
    env: Env = "local",
) -> None:
    """The lineage tree: model version -> training set -> feature sets -> Delta versions -> job runs -> sources."""
    from featurekit.lineage.tree import FORMATS, render, rich_tree
    from featurekit.pipeline import lineage

    if fmt not in FORMATS:
        raise ConfigError.single(f"expected one of {', '.join(FORMATS)}; got {fmt!r}", file="command line", field="--format")
    if fmt == "png" and out_file is None:
        raise ConfigError.single("--format png writes a file: give --out FILE", file="command line", field="--out")
    project = _project()
    tree = lineage.show(project, load_settings(project, env), model=model, version=version, feature_view=feature_view)
    if out_file is None:
        if fmt == "text":
            out.print(rich_tree(tree), soft_wrap=False)   # long lines wrap in the tree, not cropped
        else:
            out.print(render(tree, fmt), markup=False)
        return
    drawing = render(tree, fmt)
    if isinstance(drawing, bytes):
        out_file.write_bytes(drawing)
    else:
        out_file.write_text(drawing, encoding="utf-8")
    out.print(f"wrote {out_file} ({fmt})", markup=False)


@app.command()
def api(
    env: Env = "local",
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
) -> None:
    """Serve the read-only metadata API: jobs, runs, feature sets, lineage (OpenAPI docs at /docs)."""
    import uvicorn

    from featurekit.api import create_api

    project = _project()
    settings = load_settings(project, env)
    out.print(f"featurekit metadata API (env {env}) on http://{host}:{port}/api/v1 (docs: http://{host}:{port}/docs)",
              markup=False)
    uvicorn.run(create_api(project, settings), host=host, port=port, log_level="warning", access_log=False)


def main(argv: Optional[list[str]] = None) -> int:
    """Run the CLI; map errors to exit codes; return the code.

    Usage errors are typer's (exit 2); featurekit's own errors carry their exit code.
    """
    try:
        app(args=argv if argv is not None else sys.argv[1:], prog_name="featurekit")
    except SystemExit as exc:  # typer ends every invocation this way, success included
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except SpecError as exc:
        for problem in exc.problems:
            err.print(str(problem), markup=False)
        err.print(f"{len(exc.problems)} problem(s)", style="red")
        return exc.exit_code
    except FeaturekitError as exc:
        err.print(f"error: {exc}", markup=False, style="red")
        if _state["debug"]:
            traceback.print_exc()
        return exc.exit_code
    except Exception as exc:  # an unexpected failure is an infrastructure failure
        err.print(f"error: {type(exc).__name__}: {exc}", markup=False, style="red")
        if _state["debug"]:
            traceback.print_exc()
        else:
            err.print("(run with --debug for the traceback)")
        return 1
    return 0
