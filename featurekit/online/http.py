"""``featurekit serve``: online features over HTTP, in Feast's request/response JSON.

``POST /get-online-features`` takes Feast's body (``entities``: join key -> values, and
``features`` or ``feature_service``) and returns Feast's column-oriented response
(``metadata.feature_names[i]`` <-> ``results[i]`` with ``values``, ``statuses``,
``event_timestamps``), so Feast's HTTP clients work unchanged. ``GET /health`` answers 200.
Unknown features, views, services or join keys are a 404 with the reason; a malformed body a
422; neither is a 500. ``full_feature_names`` is not supported (400).
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from featurekit.online.client import OnlineFeatures, UnknownFeature


class OnlineRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    entities: dict[str, list[Any]]
    feature_service: str | None = None
    features: list[str] = []
    full_feature_names: bool = False


def create_app(client: OnlineFeatures) -> Starlette:
    """The HTTP app over one :class:`OnlineFeatures` client."""

    async def health(_: Request) -> Response:
        return Response(status_code=200)

    async def get_online_features(request: Request) -> Response:
        try:
            body = OnlineRequest.model_validate(json.loads(await request.body()))
        except (ValueError, ValidationError) as exc:
            return JSONResponse({"detail": f"malformed request: {str(exc).splitlines()[0]}"}, status_code=422)
        if body.full_feature_names:
            return JSONResponse({"detail": "full_feature_names is not supported"}, status_code=400)
        try:
            result = client.response(body.entities, features=body.features or None, service=body.feature_service)
        except UnknownFeature as exc:
            return JSONResponse({"detail": exc.problems[0].message}, status_code=404)
        except (TypeError, ValueError) as exc:  # e.g. a join key value of the wrong type
            return JSONResponse({"detail": f"bad entity value: {exc}"}, status_code=422)
        return Response(json.dumps(result, separators=(",", ":")), media_type="application/json")

    return Starlette(routes=[
        Route("/health", health, methods=["GET"]),
        Route("/get-online-features", get_online_features, methods=["POST"]),
    ])


def app_from_env() -> Starlette:
    """For ``featurekit serve --workers N``: each worker process builds its app from the
    project (``FEATUREKIT_PROJECT``, else the working directory) and ``FEATUREKIT_ENV``."""
    import os

    from featurekit.config import find_project

    return create_app(OnlineFeatures(os.environ.get("FEATUREKIT_ENV") or "local", find_project()))
