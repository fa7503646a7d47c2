"""What the web faces share: ``featurekit api`` and ``featurekit registry serve`` on FastAPI.

An error is answered as a JSON body of one readable line, in each API's own shape (``{"detail"}``
for the metadata API, ``{"code", "message"}`` for the Model Registry). A request body that does
not validate is explained by :mod:`featurekit.yamlconf.pydantic_errors`, never as FastAPI's list
of raw validation errors; a body that is not a JSON object at all is said so first. No answer
holds a secret (:mod:`featurekit.redaction`): error bodies always go through it, and the metadata
API answers every route with :class:`RedactedJSONResponse`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from featurekit.redaction import redact


class RedactedJSONResponse(JSONResponse):
    """A JSON answer with every secret masked (:func:`featurekit.redaction.redact`)."""

    def render(self, content: Any) -> bytes:
        return super().render(redact(content))


def error_response(body: dict[str, Any], status: int, headers: Mapping[str, str] | None = None) -> JSONResponse:
    """An error answer: ``body`` as JSON with ``status`` (and ``headers``)."""
    return RedactedJSONResponse(body, status_code=status, headers=dict(headers) if headers else None)


async def body_not_an_object(request: Request) -> str | None:
    """Why the request's body is not a JSON object, or None when it is one.

    Read from the raw bytes, whatever the content-type says, so an empty body, bad JSON, bad
    UTF-8 and a JSON list all get a sentence of their own.
    """
    try:
        data = json.loads(await request.body())
    except ValueError as exc:
        return f"the request body is not JSON: {exc}"
    if not isinstance(data, dict):
        return f"the request body must be a JSON object; got {type(data).__name__}"
    return None


def body_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    """The errors of a request's body, located in the body (FastAPI prefixes ``body``)."""
    return [{**error, "loc": tuple(error["loc"])[1:]} for error in exc.errors() if tuple(error["loc"])[:1] == ("body",)]


def parameter_errors(exc: RequestValidationError) -> list[str]:
    """``name: what is wrong`` for each query, path or header parameter that does not validate."""
    return [f"{'.'.join(map(str, tuple(error['loc'])[1:]))}: {error['msg']}"
            for error in exc.errors() if tuple(error["loc"])[:1] != ("body",)]
