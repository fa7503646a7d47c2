"""The floor of one HTTP hop: a Starlette app that forwards a V1 predict request to the predictor
and its answer back, with nothing in between. ``benchmarks/online.py --transformer`` runs it
beside ``featurekit transformer``: what the transformer costs above this is its own.

Made as fast as a hop gets in Python without leaving ASGI: uvicorn on uvloop and httptools, one
aiohttp session kept open (keep-alive, no per-request DNS or TLS), the body passed as bytes,
never parsed, no logging.

With ``--project``, ``--model`` and ``--version`` it is the hand-written transformer: the same
hop doing the transformer's work without KServe. The features linked to the model version are
read as ``featurekit transformer`` reads them (``enricher_for``: the Model Registry of the env's
settings, ``FEATUREKIT_REGISTRY_URL`` wins), and each request is parsed, enriched by the same
``Enricher.enrich_v1`` on the same online store and forwarded; the predictor's answer goes back
as bytes, unparsed.

    python benchmarks/bare_proxy.py --port 8090 --predictor 127.0.0.1:8081
    python benchmarks/bare_proxy.py --port 8091 --predictor 127.0.0.1:8081 \\
        --project PROJECT --model bench-model --version 1
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

Enrich = Callable[[Any], Any]


def create_app(predictor: str, enrich: Enrich | None = None) -> Starlette:
    """The proxy in front of the predictor at ``predictor`` (host:port); with ``enrich``, each
    request's JSON goes through it on the way (a ``BadRequest`` answers 400 with its reason)."""
    refused: tuple[type[Exception], ...] = (orjson.JSONDecodeError,)
    if enrich is not None:
        from featurekit.online.transformer import BadRequest

        refused += (BadRequest,)
    base = f"http://{predictor}"
    session: dict[str, aiohttp.ClientSession] = {}

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=None)
        async with aiohttp.ClientSession(connector=connector, skip_auto_headers=("User-Agent",)) as client:
            session["client"] = client
            yield

    async def predict(request: Request) -> Response:
        body = await request.body()
        if enrich is not None:
            try:
                body = orjson.dumps(enrich(orjson.loads(body)))
            except refused as exc:
                return Response(orjson.dumps({"error": str(exc)}), status_code=400, media_type="application/json")
        async with session["client"].post(f"{base}{request.url.path}", data=body,
                                          headers={"content-type": "application/json"}) as answer:
            content = await answer.read()
            return Response(content, status_code=answer.status, media_type="application/json")

    return Starlette(routes=[Route("/v1/models/{name}:predict", predict, methods=["POST"])], lifespan=lifespan)


def enricher(project_root: str, env: str, model: str, version: str) -> Enrich:
    """``enrich_v1`` of the enricher ``featurekit transformer --model model --version version`` serves."""
    from pathlib import Path

    from featurekit.config import Project, load_settings
    from featurekit.online.transformer import enricher_for

    project = Project(Path(project_root))
    return enricher_for(project, load_settings(project, env), model, version).enrich_v1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--predictor", required=True, help="host:port of the predictor")
    parser.add_argument("--project", help="featurekit project root: enrich as the transformer does")
    parser.add_argument("--env", default="local")
    parser.add_argument("--model", help="registered model whose linked features are added (with --project)")
    parser.add_argument("--version", help="its version (with --project)")
    args = parser.parse_args()
    if args.project and not (args.model and args.version):
        parser.error("--project needs --model and --version")
    enrich = enricher(args.project, args.env, args.model, args.version) if args.project else None
    uvicorn.run(create_app(args.predictor, enrich), host="127.0.0.1", port=args.port, loop="uvloop",
                http="httptools", log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
