"""The Model Registry contract for the tests: the vendored OpenAPI spec, a recorder that checks
every exchange with a server against it, and a uvicorn server in a thread.

``/v1`` paths are validated as their ``/v1alpha3`` twins (same bodies). Used by
``test_registry_server.py`` (the embedded server itself) and ``test_lineage.py`` (what
featurekit's client sends and gets).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest
import uvicorn
from openapi_core import OpenAPI
from openapi_core.templating.paths.exceptions import OperationNotFound, PathNotFound
from openapi_core.testing import MockRequest, MockResponse
from openapi_schema_validator import OAS30Validator
from ruamel.yaml import YAML

from tests.conftest import _free_port

SPEC = Path(__file__).resolve().parents[1] / "contracts" / "model-registry-v1alpha3.yaml"
ALPHA, V1 = "/api/model_registry/v1alpha3", "/api/model_registry/v1"
# Resources of the spec the embedded registry does not serve: it answers 404 with an Error body.
UNSERVED = ("experiment",)
# Where the spec parts from the servers and the official client that implement it, the status the
# spec writes for the one that is answered: every create answers 201, and the client reads only a
# 201 as the created resource, but the spec writes 200 for POST /inference_services.
SPEC_STATUS = {("POST", "/inference_services", 201): 200}


@dataclass
class Exchange:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    status: int = 0
    response_headers: dict[str, str] = field(default_factory=dict)
    response: bytes = b""

    def json(self) -> Any:
        return json.loads(self.response)


class Contract:
    """The vendored spec. ``/v1`` paths are validated as their ``/v1alpha3`` twins (same bodies)."""

    def __init__(self) -> None:
        document = YAML(typ="safe").load(SPEC.read_text())
        self.api = OpenAPI.from_dict(document)
        self.error_schema = OAS30Validator(document["components"]["schemas"]["Error"])

    def _request(self, method: str, path: str, query: str, headers: dict[str, str], body: bytes) -> MockRequest:
        return MockRequest("http://localhost:8080", method, path.replace(V1 + "/", ALPHA + "/", 1),
                           args=dict(parse_qsl(query)), headers=headers, data=body or None,
                           content_type=headers.get("content-type", "application/json"))

    def request_problems(self, method: str, path: str, query: str, headers: dict[str, str], body: bytes) -> list[str]:
        errors = list(self.api.iter_request_errors(self._request(method, path, query, headers, body)))
        return [f"{method} {path}?{query} request: {_reason(e)}" for e in errors]

    def response_problems(self, exchange: Exchange) -> list[str]:
        where = f"{exchange.method} {exchange.path}?{exchange.query} -> {exchange.status}"
        resource = exchange.path.removeprefix(ALPHA).removeprefix(V1).split("/")[1:2]
        if exchange.status == 405 or (resource and resource[0].startswith(UNSERVED)):
            return self.error_body_problems(where, exchange)
        request = self._request(exchange.method, exchange.path, exchange.query, {}, b"")
        relative = exchange.path.removeprefix(ALPHA).removeprefix(V1)
        status = SPEC_STATUS.get((exchange.method, relative, exchange.status), exchange.status)
        response = MockResponse(exchange.response, status_code=status,
                                headers=exchange.response_headers,
                                content_type=exchange.response_headers.get("content-type", ""))
        try:
            errors = list(self.api.iter_response_errors(request, response))
        except (PathNotFound, OperationNotFound):
            return self.error_body_problems(where, exchange)
        if errors and isinstance(errors[0], (PathNotFound, OperationNotFound)):
            return self.error_body_problems(where, exchange)
        return [f"{where}: {_reason(e)}" for e in errors]

    def error_body_problems(self, where: str, exchange: Exchange) -> list[str]:
        """Outside the spec's operations (a DELETE, an unserved path) the answer is an error with an Error body."""
        if exchange.status < 400:
            return [f"{where}: answered {exchange.status} outside the spec's operations"]
        return [f"{where}: {e.message}" for e in self.error_schema.iter_errors(exchange.json())]


def _reason(error: Exception) -> str:
    causes = [error]
    while causes[-1].__cause__ is not None:
        causes.append(causes[-1].__cause__)  # type: ignore[arg-type]
    return " <- ".join(dict.fromkeys(str(c)[:400] for c in causes))


class Recorder:
    """ASGI middleware: keeps every exchange and checks each response before it is sent (and
    with ``check_requests`` each request too: for servers that only featurekit talks to)."""

    def __init__(self, app: Any, contract: Contract, check_requests: bool = False) -> None:
        self.app, self.contract, self.check_requests = app, contract, check_requests
        self.exchanges: list[Exchange] = []
        self.problems: list[str] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        exchange = Exchange(scope["method"], scope["path"], scope["query_string"].decode(), headers, b"")
        start: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def receive_and_keep() -> Any:
            message = await receive()
            if message["type"] == "http.request":
                exchange.body += message.get("body", b"")
            return message

        async def check_then_send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
                return
            if message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if message.get("more_body"):
                    return
                exchange.status = start["status"]
                exchange.response_headers = {k.decode().lower(): v.decode() for k, v in start["headers"]}
                exchange.response = b"".join(chunks)
                self.exchanges.append(exchange)
                if self.check_requests:
                    self.problems += self.contract.request_problems(
                        exchange.method, exchange.path, exchange.query, exchange.headers, exchange.body)
                self.problems += self.contract.response_problems(exchange)
                await send(start)
                await send({"type": "http.response.body", "body": exchange.response})
                return
            await send(message)

        await self.app(scope, receive_and_keep, check_then_send)


def serve(app: Any, port: int | None = None) -> tuple[uvicorn.Server, threading.Thread, int]:
    port = port or _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            pytest.fail(f"the registry server did not start on 127.0.0.1:{port}")
        time.sleep(0.02)
    return server, thread, port
