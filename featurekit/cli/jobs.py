"""Commands over jobs: check, plan, run, backfill, and look at what the runs wrote."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated, Optional

import typer

from featurekit.cli import present
from featurekit.cli.groups import DEFAULT, DefaultCommandGroup, SpeaksAsGroup
from featurekit.cli.options import Env, options, when
from featurekit.config import load_settings
from featurekit.errors import ConfigError, SpecError

Job = Annotated[str, typer.Argument(help="Job name or path.")]


def validate(
    ctx: typer.Context,
    paths: Annotated[Optional[list[Path]], typer.Argument(help="Job files or folders (default: jobs/).")] = None,
    env: Env = "local",
) -> None:
    """Check job specs without a JVM: every problem in every file, one line each."""
    from featurekit.spec.loader import load_jobs

    project = options(ctx).project()
    settings = load_settings(project, env)
    files: list[Path] = []
    for path in paths or [project.jobs_dir]:
        files += sorted(path.glob("*.y*ml")) if path.is_dir() else [path]
    jobs, problems = load_jobs(files, settings.vars, base=project.root)
    if problems:
        raise SpecError(problems)
    present.valid_jobs(jobs, project.shown)


def plan(ctx: typer.Context, job: Job, env: Env = "local") -> None:
    """Show the resolved job and the spark-submit command that runs it (no Spark started)."""
    from featurekit import pipeline

    project = options(ctx).project()
    loaded, settings = pipeline.load(project, job, env)
    present.plan(loaded, project.shown(loaded.path), env, shlex.join(pipeline.submit_command(project, loaded, settings)))


def run(
    ctx: typer.Context,
    job: Job,
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

    opts = options(ctx)
    opts.quiet_query_context()
    project = opts.project()
    loaded, settings = pipeline.load(project, job, env)
    settings = opts.spark(settings)
    features = loaded.spec.features
    if materialize and (features is None or not features.online):
        raise ConfigError.single(f"--materialize: job {loaded.name!r} has no online features (features: with online: true)",
                                 file=project.shown(loaded.path), field="features")
    present.run(pipeline.run(project, loaded, settings, end=when(end, "--end"), full=full))
    if materialize:
        from featurekit.pipeline.materialize import materialize as run_materialize

        present.materialized(run_materialize(project, settings, views=[loaded.name], incremental=True), env, False)


def backfill(
    ctx: typer.Context,
    job: Annotated[str, typer.Argument(help="Job name or path (a job with incremental:).")],
    start: Annotated[str, typer.Option(help="Range start, exclusive (ISO 8601, UTC if no zone).")],
    end: Annotated[str, typer.Option(help="Range end, inclusive.")],
    batch: Annotated[str, typer.Option(help="Chunk length (a duration: 6h, 1d, 1w); each chunk is one commit.")] = "1d",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the chunks (and those already done); run nothing.")] = False,
    env: Env = "local",
) -> None:
    """Recompute a range of an incremental job in chunks; run again after a crash, it resumes."""
    from featurekit import pipeline
    from featurekit.pipeline.incremental import backfill as run_backfill

    opts = options(ctx)
    opts.quiet_query_context()
    project = opts.project()
    loaded, settings = pipeline.load(project, job, env)
    settings = opts.spark(settings)
    first, last = when(start, "--start"), when(end, "--end")
    with present.backfill_progress(loaded.name, disabled=dry_run) as progress:
        result = run_backfill(project, loaded, settings, first, last, batch,  # type: ignore[arg-type]
                              dry_run=dry_run, progress=progress)
    present.backfill(loaded.name, result)


def show(
    ctx: typer.Context,
    job: Job,
    limit: Annotated[int, typer.Option(help="Rows to show.")] = 5,
    env: Env = "local",
) -> None:
    """Show a job's output table: version, recent commits, row count, first rows (no JVM)."""
    from featurekit import pipeline
    from featurekit.sinks.inspect import inspect_table

    loaded, settings = pipeline.load(options(ctx).project(), job, env)
    present.table_view(inspect_table(loaded.spec.output.path, limit, storage_options=settings.storage_options))


runs_app = typer.Typer(cls=DefaultCommandGroup, help="List recent runs (`runs [JOB]`) or print one report (`runs show RUN_ID`).")


@runs_app.command(DEFAULT, cls=SpeaksAsGroup, hidden=True)
def list_runs(
    ctx: typer.Context,
    job: Annotated[Optional[str], typer.Argument(help="Only this job's runs (default: every job's).")] = None,
    limit: Annotated[int, typer.Option(help="Runs to list.")] = 20,
    env: Env = "local",
) -> None:
    """List recent runs (`runs [JOB]`) or print one report (`runs show RUN_ID`)."""
    from featurekit import pipeline

    runs_dir = load_settings(options(ctx).project(), env).runs_dir
    present.runs(runs_dir, pipeline.list_runs(runs_dir, job, limit))


@runs_app.command("show")
def show_run(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(help="Run id (a unique prefix will do).")],
    env: Env = "local",
    limit: Annotated[int, typer.Option(hidden=True, help="Ignored: `runs show` took it when runs was one command.")] = 20,
) -> None:
    """Print one run's report (JSON)."""
    from featurekit import pipeline

    present.report(pipeline.read_run(load_settings(options(ctx).project(), env).runs_dir, run_id))
