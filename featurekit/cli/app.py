"""The ``featurekit`` command: its options, the table of its commands, and the one place that
turns an error into an exit code."""

from __future__ import annotations

import sys
import traceback
from pathlib import Path
from typing import Annotated, Optional

import typer

from featurekit.cli import data, deploy, feast, jobs, lineage, serving
from featurekit.cli.options import Options
from featurekit.cli.present import err, flag, flagged
from featurekit.errors import FeaturekitError, SpecError, face
from featurekit.redaction import redact_logs

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Declarative PySpark prep jobs into Delta Lake tables.")


@app.callback()
def _options(
    ctx: typer.Context,
    project: Annotated[Optional[Path], typer.Option(help="Project folder (default: found from the working directory).")] = None,
    debug: Annotated[bool, typer.Option(help="Show tracebacks.")] = False,
) -> None:
    given = ctx.ensure_object(Options)
    given.project_dir, given.debug = project, debug


# In the order `featurekit --help` lists them.
for command, name in (
    (jobs.validate, None), (jobs.plan, None), (jobs.run, None), (jobs.backfill, None), (jobs.show, None),
    (data.setup, None), (data.generate_demo_data, "generate-demo-data"),
    (feast.materialize, None), (serving.online, None), (serving.serve, None),
    (feast.training_set, "training-set"), (serving.api, None), (serving.ui, None), (serving.transformer, None),
):
    app.command(name)(command)
app.add_typer(jobs.runs_app, name="runs")
app.add_typer(feast.feast_app, name="feast")
app.add_typer(deploy.render_app, name="render")
app.add_typer(deploy.pipeline_app, name="pipeline")
app.add_typer(lineage.registry_app, name="registry")
app.add_typer(lineage.lineage_app, name="lineage")


def main(argv: Optional[list[str]] = None) -> int:
    """Run the CLI; map errors to exit codes; return the code.

    Exit codes: 0 ok, 2 spec or configuration problem, 3 data problem, 1 infrastructure.
    Usage errors are typer's (exit 2); featurekit's own errors carry their exit code.
    Tracebacks only with ``--debug``. Nothing printed or logged holds a secret: the consoles and
    every log record of the process mask them (:mod:`featurekit.redaction`).
    """
    redact_logs()
    given = Options()
    try:
        with face(flag):
            app(args=argv if argv is not None else sys.argv[1:], prog_name="featurekit", obj=given)
    except SystemExit as exc:  # typer ends every invocation this way, success included
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except SpecError as exc:   # the library names parameters; the CLI shows them as its flags
        for problem in exc.named(flag):
            err.print(str(problem), markup=False)
        err.print(f"{len(exc.problems)} problem(s)", style="red")
        return exc.exit_code
    except FeaturekitError as exc:
        err.print(f"error: {flagged(str(exc))}{_spark_log()}", markup=False, style="red")
        if given.debug:
            err.print(traceback.format_exc(), markup=False, end="")
        return exc.exit_code
    except Exception as exc:  # an unexpected failure is an infrastructure failure
        err.print(f"error: {type(exc).__name__}: {exc}{_spark_log()}", markup=False, style="red")
        if given.debug:
            err.print(traceback.format_exc(), markup=False, end="")
        else:
            err.print("(run with --debug for the traceback)")
        return 1
    return 0


def _spark_log() -> str:
    """Where Spark's warnings and errors of this failed command are, if it ran Spark and Spark
    logged any: named at the end of the error's line, as that line is all stderr shows."""
    if "featurekit.pipeline" not in sys.modules:  # no Spark ran (e.g. validate): import nothing
        return ""
    from featurekit.pipeline import spark_log

    log = spark_log()
    if log is None:
        return ""
    try:
        shown = log.resolve().relative_to(Path.cwd())
    except ValueError:
        shown = log
    return f" (Spark's log: {shown})"
