"""Commands over the Feast feature repository: render/plan/apply it, materialize the online
store, and build point-in-time training sets."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from featurekit.cli import present
from featurekit.cli.options import Env, options, when
from featurekit.cli.present import out
from featurekit.config import load_settings
from featurekit.errors import ConfigError

feast_app = typer.Typer(no_args_is_help=True, help="The Feast feature repository, built from the jobs' `features:` blocks.")


@feast_app.command("render")
def feast_render(ctx: typer.Context, env: Env = "local") -> None:
    """Write feature_repo/feature_store.yaml for an environment (from conf/)."""
    from featurekit.pipeline import features

    project = options(ctx).project()
    path = features.render(project, load_settings(project, env))
    out.print(f"wrote {project.shown(path)} for env {env}")


@feast_app.command("plan")
def feast_plan(ctx: typer.Context, env: Env = "local") -> None:
    """Show what `feast apply` would change in the registry and the online store."""
    from featurekit.pipeline import features

    project = options(ctx).project()
    features.apply(project, load_settings(project, env), plan_only=True)


@feast_app.command("apply")
def feast_apply(ctx: typer.Context, env: Env = "local") -> None:
    """Render feature_store.yaml for the environment and apply the definitions (= feast apply)."""
    from featurekit.pipeline import features

    project = options(ctx).project()
    settings = load_settings(project, env)
    features.apply(project, settings)
    views, services = features.definitions(project, settings)
    present.feast_definitions(settings.feast.project, env, views, services)


def materialize(
    ctx: typer.Context,
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
    opts = options(ctx)
    project = opts.project()
    settings = opts.spark(load_settings(project, env))
    result = run_materialize(project, settings, views=views, start=when(start, "--start"), end=when(end, "--end"),
                             incremental=incremental, verify_only=verify_only, engine=engine)
    present.materialized(result, env, verify_only)


def training_set(
    ctx: typer.Context,
    service: Annotated[str, typer.Option(help="Feature service (each feature view has one of its name).")],
    out_path: Annotated[str, typer.Option("--out", help="Delta table to write (overwritten).")],
    spine: Annotated[Optional[str], typer.Option(help="Entity keys, event timestamp [, labels]: a Delta table, Parquet or CSV with a header.")] = None,
    timestamp: Annotated[str, typer.Option(help="The spine's event timestamp column.")] = "event_timestamp",
    as_of: Annotated[Optional[str], typer.Option(
        "--as-of", help="Read each view's table as it was at this time (Delta time travel): rows written later cannot leak in.")] = None,
    start: Annotated[Optional[str], typer.Option(help="Without --spine: the rows of the service's first view from this time (ISO 8601) ...")] = None,
    end: Annotated[Optional[str], typer.Option(help="... to this one (both included), the other views joined point in time on them.")] = None,
    engine: Annotated[str, typer.Option(help="featurekit (its own point-in-time join) or feast (Feast's Spark retrieval, "
                                             "after `featurekit feast apply`; needs --spine).")] = "featurekit",
    env: Env = "local",
) -> None:
    """Point-in-time correct features for a spine or a time range -> a Delta table, with lineage."""
    from featurekit.pipeline.training import training_set as build

    opts = options(ctx)
    project = opts.project()
    result = build(project, opts.spark(load_settings(project, env)), spine=spine, service=service, out=out_path,
                   timestamp=timestamp, as_of=when(as_of, "--as-of"), start=when(start, "--start"),
                   end=when(end, "--end"), engine=engine)
    present.training_set(result, env)
