"""The embedded Model Registry and the lineage kept in it: serve it, link model versions to
training sets, replay the outbox, show the tree."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from featurekit.cli import present
from featurekit.cli.options import Env, options
from featurekit.cli.present import out
from featurekit.config import load_settings
from featurekit.errors import ConfigError, InfraError

registry_app = typer.Typer(no_args_is_help=True, help="An embedded Kubeflow Model Registry (SQLite) for laptops and CI.")
lineage_app = typer.Typer(no_args_is_help=True,
                          help="Lineage in the Kubeflow Model Registry: link model versions, replay the outbox, show the tree.")


@registry_app.command("serve")
def registry_serve(
    ctx: typer.Context,
    db: Annotated[Optional[Path], typer.Option(help="SQLite file (default: .featurekit/registry.db in the project).")] = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8080,
) -> None:
    """Serve the Model Registry REST API (/api/model_registry/v1 and v1alpha3) from a SQLite file."""
    import uvicorn

    from featurekit.registry import create_registry_app

    path = db if db is not None else options(ctx).project().root / ".featurekit" / "registry.db"
    registry = create_registry_app(path)
    out.print(f"Model Registry API on http://{host}:{port}/api/model_registry/v1 (and /v1alpha3), stored in {path}")
    uvicorn.run(registry, host=host, port=port, log_level="warning", access_log=False)


@lineage_app.command("link")
def lineage_link(
    ctx: typer.Context,
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
    project = options(ctx).project()
    present.linked(lineage.link(project, load_settings(project, env), model, version,
                                training_set=training_set, service=service))


@lineage_app.command("register-model")
def lineage_register_model(
    ctx: typer.Context,
    model: Annotated[str, typer.Option(help="Registered model (created if absent).")],
    version: Annotated[str, typer.Option(help="Model version (created if absent).")],
    uri: Annotated[str, typer.Option(help="Where the trained model is: the predictor's storageUri (s3://, gs://, pvc://...).")],
    model_format: Annotated[str, typer.Option("--format", help="Model format, NAME or NAME:VERSION (KServe's modelFormat, e.g. sklearn:1).")],
    env: Env = "local",
) -> None:
    """Give a model version its model artifact (uri and format), which `render inferenceservice` serves."""
    from featurekit.pipeline import lineage

    name, _, format_version = model_format.partition(":")
    if not name:
        raise ConfigError.single(f"expected NAME or NAME:VERSION; got {model_format!r}", file="command line", field="--format")
    project = options(ctx).project()
    done = lineage.register_model(load_settings(project, env), model, version, uri, name, format_version or None)
    out.print(f"model {done.model['name']} version {done.version['name']} (model version {done.version['id']}): "
              f"{uri} ({model_format})  {done.url}", markup=False)


@lineage_app.command("flush")
def lineage_flush(ctx: typer.Context, env: Env = "local") -> None:
    """Send the lineage records waiting in the outbox (each exactly once)."""
    from featurekit.pipeline import lineage

    project = options(ctx).project()
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
    ctx: typer.Context,
    model: Annotated[Optional[str], typer.Option(help="Registered model (with --version).")] = None,
    version: Annotated[Optional[str], typer.Option(help="Model version.")] = None,
    feature_view: Annotated[Optional[str], typer.Option(help="Instead of a model: a feature view's latest feature sets.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="text, mermaid, dot, or png (needs Graphviz's dot and --out).")] = "text",
    out_file: Annotated[Optional[Path], typer.Option("--out", help="Write to this file instead of the terminal.")] = None,
    env: Env = "local",
) -> None:
    """The lineage tree: model version -> training set -> feature sets -> Delta versions -> job runs -> sources."""
    from featurekit.lineage.tree import FORMATS
    from featurekit.pipeline import lineage

    if fmt not in FORMATS:
        raise ConfigError.single(f"expected one of {', '.join(FORMATS)}; got {fmt!r}", file="command line", field="--format")
    if fmt == "png" and out_file is None:
        raise ConfigError.single("--format png writes a file: give --out FILE", file="command line", field="--out")
    project = options(ctx).project()
    tree = lineage.show(project, load_settings(project, env), model=model, version=version, feature_view=feature_view)
    present.lineage_tree(tree, fmt, out_file)
