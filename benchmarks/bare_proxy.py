"""The floor of one HTTP hop: a Starlette app that forwards a V1 predict request to the predictor
and its answer back, with nothing in between. ``benchmarks/online.py --transformer`` runs it
beside ``featurekit transformer``: what the transformer costs above this is its own.

Made as fast as a hop gets in Python without leaving ASGI: uvicorn on uvloop and httptools, one
aiohttp session kept open (keep-alive, no per-request DNS or TLS), the body passed as bytes,
never parsed, no logging.

    python benchmarks/bare_proxy.py --port 8090 --predictor 127.0.0.1:8081
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


def create_app(predictor: str) -> Starlette:
    """The proxy in front of the predictor at ``predictor`` (host:port)."""
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
        async with session["client"].post(f"{base}{request.url.path}", data=body,
                                          headers={"content-type": "application/json"}) as answer:
            content = await answer.read()
            return Response(content, status_code=answer.status, media_type="application/json")

    return Starlette(routes=[Route("/v1/models/{name}:predict", predict, methods=["POST"])], lifespan=lifespan)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--predictor", required=True, help="host:port of the predictor")
    args = parser.parse_args()
    uvicorn.run(create_app(args.predictor), host="127.0.0.1", port=args.port, loop="uvloop", http="httptools",
                log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
