"""The FastAPI app of ``featurekit registry serve``: the operations of :mod:`routes` under both API
prefixes, and every refusal answered as the API's ``{"code", "message"}``.

FastAPI's own answers are replaced where they would differ from the Model Registry API: a body
that does not validate is a 400 explained in one line (not a 422 with a list), an unknown path a
404 and a method not served a 405, each with an Error body. There are no documentation routes
(``/docs``, ``/openapi.json``): the vendored spec is the API's description, and the server
answers nothing outside it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.responses import Response

from featurekit.registry.models import KNOWN, TAGS
from featurekit.registry.resources import RegistryError
from featurekit.registry.routes import PREFIXES, answer, registry_routes
from featurekit.registry.store import RegistryStore
from featurekit.web import body_errors, body_not_an_object, parameter_errors
from featurekit.yamlconf.pydantic_errors import body_message

_Asgi = Callable[[MutableMapping[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]],
                 Awaitable[None]]


def _error(request: Request, status: int, message: str) -> Response:
    return answer(request, {"code": str(status), "message": message}, status)


class _JsonBodies:
    """Bodies are JSON whatever their content-type says (``curl -d`` labels them as a form), as the
    registry always read them: FastAPI parses a body as JSON only when it is labelled so."""

    def __init__(self, app: _Asgi) -> None:
        self.app = app

    async def __call__(self, scope: MutableMapping[str, Any], receive: Callable[[], Awaitable[Any]],
                       send: Callable[[Any], Awaitable[None]]) -> None:
        if scope["type"] == "http":
            headers = [(k, v) for k, v in scope["headers"] if k != b"content-type"]
            scope = {**scope, "headers": [*headers, (b"content-type", b"application/json")]}
        await self.app(scope, receive, send)


def _allowed(routes: APIRouter, path: str) -> list[str]:
    """The methods served on ``path`` (under any prefix)."""
    methods: set[str] = set()
    for prefix in PREFIXES.values():
        if path.startswith(prefix + "/"):
            for route in routes.routes:
                if isinstance(route, APIRoute) and route.path_regex.match(path.removeprefix(prefix)):
                    methods |= route.methods or set()
    return sorted(methods)


def create_registry_app(db_path: str | Path) -> FastAPI:
    """The registry over the SQLite file ``db_path`` (created with its folder when missing)."""
    store = RegistryStore(db_path)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        store.close()

    app = FastAPI(title="featurekit embedded Model Registry", docs_url=None, redoc_url=None, openapi_url=None,
                  lifespan=lifespan)
    routes = registry_routes(store)
    for prefix in PREFIXES.values():
        app.include_router(routes, prefix=prefix)
    app.add_middleware(_JsonBodies)  # type: ignore[arg-type]
    app.state.store = store

    @app.exception_handler(RegistryError)
    async def registry_error(request: Request, exc: RegistryError) -> Response:
        return _error(request, exc.status, exc.message)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        message = "; ".join(parameter_errors(exc))
        if not message:
            message = await body_not_an_object(request) or body_message(body_errors(exc), KNOWN, TAGS)
        return _error(request, 400, message)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        if exc.status_code == 405:
            allowed = ", ".join(_allowed(routes, request.url.path))
            message = (f"{request.method} is not supported on {request.url.path}"
                       + (f" (allowed: {allowed})" if allowed else "")
                       + ("; nothing is deleted in the Model Registry: archive through state"
                          if request.method == "DELETE" else ""))
        elif exc.status_code == 404:
            message = f"no such endpoint: {request.method} {request.url.path}"
        elif exc.status_code == 400:  # a body FastAPI could not decode (e.g. not UTF-8)
            message = await body_not_an_object(request) or str(exc.detail)
        else:
            message = str(exc.detail)
        return _error(request, exc.status_code, message)

    @app.exception_handler(Exception)
    async def server_error(request: Request, exc: Exception) -> Response:
        return _error(request, 500, f"internal error: {type(exc).__name__}: {exc}")

    return app


__all__ = ["create_registry_app"]
