"""Commands that answer requests: online lookups, the online feature server, the KServe transformer,
the metadata API, the web catalog."""

from __future__ import annotations

import os
from typing import Annotated, Optional

import typer

from featurekit.cli import present
from featurekit.cli.options import Env, options
from featurekit.cli.present import out
from featurekit.config import load_settings
from featurekit.errors import ConfigError

Host = Annotated[str, typer.Option(help="Address to listen on.")]


def online(
    ctx: typer.Context,
    entities: Annotated[list[str], typer.Argument(help="Entity keys: driver_id=100001 (repeat for more rows).")],
    service: Annotated[Optional[str], typer.Option(help="Feature service (default: all features of --view).")] = None,
    view: Annotated[Optional[str], typer.Option(help="Feature view, when no --service is given.")] = None,
    env: Env = "local",
) -> None:
    """Look up online features for entity keys and print them (one column per entity)."""
    from featurekit.online import lookup

    if (service is None) == (view is None):
        raise ConfigError.single("give --service or --view", file="command line", field="--service")
    rows = lookup(entities, service=service, view=view, env=env, project=options(ctx).project())
    present.online_features(rows, f"online features ({service or view}, env {env})")


def serve(
    ctx: typer.Context,
    env: Env = "local",
    host: Host = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 6566,
    workers: Annotated[int, typer.Option(min=1, help="Server processes (one per core is a good start).")] = 1,
) -> None:
    """Serve online features over HTTP in Feast's JSON (POST /get-online-features, GET /health)."""
    import uvicorn

    from featurekit.online import OnlineFeatures
    from featurekit.online.http import create_app

    project = options(ctx).project()
    client = OnlineFeatures(env, project)   # checks the store and registry before listening
    out.print(f"serving {len(client.layouts)} feature view(s), {len(client.services)} service(s) "
              f"from the {client.reader.kind} online store on http://{host}:{port} ({workers} worker(s))")
    if workers == 1:
        uvicorn.run(create_app(client), host=host, port=port, log_level="warning", access_log=False)
        return
    os.environ["FEATUREKIT_PROJECT"], os.environ["FEATUREKIT_ENV"] = str(project.root), env
    uvicorn.run("featurekit.online.http:app_from_env", factory=True, host=host, port=port, workers=workers,
                log_level="warning", access_log=False)


def transformer(
    ctx: typer.Context,
    model: Annotated[str, typer.Option(help="Registered model in the Model Registry.")],
    version: Annotated[str, typer.Option(help="Its version: the features linked to it are looked up.")],
    env: Env = "local",
    model_name: Annotated[Optional[str], typer.Option("--model_name", help="Name served under /v1/models/<name> "
                                                      "and asked of the predictor (default: --model).")] = None,
    predictor_host: Annotated[str, typer.Option("--predictor_host", help="The predictor's host[:port].")] = "localhost:8081",
    http_port: Annotated[int, typer.Option("--http_port", help="Port (on every address, as KServe serves).")] = 8080,
    workers: Annotated[int, typer.Option("--workers", min=1, help="Server processes.")] = 1,
    protocol: Annotated[str, typer.Option("--protocol", "--predictor_protocol",
                                          help="The predictor's protocol, which requests speak too: v1 or v2.")] = "v1",
) -> None:
    """A KServe transformer: adds the online features linked to a model version to each request (V1
    instances, or V2 input tensors), then forwards it to the predictor. Takes the arguments KServe appends."""
    from featurekit.online.kserve_model import PROTOCOLS, ServerArgs, serve
    from featurekit.online.transformer import enricher_for

    if protocol not in PROTOCOLS:
        raise ConfigError.single(f"expected one of {', '.join(PROTOCOLS)}; got {protocol!r}", file="command line",
                                 field="--protocol")
    project = options(ctx).project()
    enricher = enricher_for(project, load_settings(project, env), model, version, protocol)
    name = model_name or model
    endpoint = f"/v1/models/{name}:predict" if protocol == "v1" else f"/v2/models/{name}/infer"
    out.print(f"transformer for {model} version {version}: {enricher.linked.describe()}; predictor "
              f"{predictor_host} ({protocol}), http://0.0.0.0:{http_port}{endpoint}", markup=False)
    serve(enricher, ServerArgs(name, predictor_host, http_port, workers, protocol))


def api(
    ctx: typer.Context,
    env: Env = "local",
    host: Host = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
) -> None:
    """Serve the read-only metadata API: jobs, runs, feature sets, lineage (OpenAPI docs at /docs)."""
    import uvicorn

    from featurekit.api import create_api

    project = options(ctx).project()
    settings = load_settings(project, env)
    out.print(f"featurekit metadata API (env {env}) on http://{host}:{port}/api/v1 (docs: http://{host}:{port}/docs)",
              markup=False)
    uvicorn.run(create_api(project, settings), host=host, port=port, log_level="warning", access_log=False)


def ui(
    ctx: typer.Context,
    env: Env = "local",
    host: Host = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8888,
) -> None:
    """Serve the read-only web catalog: search, feature views, jobs and runs, in the browser (no JavaScript)."""
    import uvicorn

    from featurekit.ui import create_ui

    project = options(ctx).project()
    settings = load_settings(project, env)
    out.print(f"featurekit ui (env {env}) on http://{host}:{port}/", markup=False)
    uvicorn.run(create_ui(project, settings, warm=True), host=host, port=port, log_level="warning", access_log=False)
