"""``featurekit registry serve``: an embedded Kubeflow Model Registry for laptops and CI.

It speaks the part of the Model Registry REST API (OpenAPI spec ``v1alpha3``, vendored in
``tests/contracts/``) that featurekit and the official ``model-registry`` client use, under both
``/api/model_registry/v1alpha3`` and ``/api/model_registry/v1``: registered models, their
versions, artifacts of every type (model, doc, dataset, metric, parameter), the many-to-many
link of artifacts to model versions, the singular "find" endpoints (``GET /registered_model``,
``/model_version``, ``/artifact``, ``/model_artifact``), ``filterQuery`` equality, paging and
ordering. Bodies are checked with pydantic (unknown fields are refused with a close match);
errors are the spec's ``{"code", "message"}`` with 400/404/409/422. Nothing can be deleted:
resources are archived through ``state``. Storage is SQLite (:mod:`registry_store`).

Not served: experiments and experiment runs, serving environments, inference services, serve
models, authentication (a bearer token is accepted and ignored).
"""

from __future__ import annotations

import difflib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, create_model
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from featurekit.lineage.registry_store import (
    ARTIFACT,
    MODEL_VERSION,
    REGISTERED_MODEL,
    BadRequest,
    Kind,
    ListQuery,
    NotFound,
    RegistryError,
    RegistryStore,
    parse_id,
)

PREFIXES = {"v1alpha3": "/api/model_registry/v1alpha3", "v1": "/api/model_registry/v1"}
_ID = r"^[1-9][0-9]{0,8}$"


# -- request bodies (the spec's *Create / *Update schemas) --------------------------------------

class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class MetadataIntValue(_Strict):
    metadataType: Literal["MetadataIntValue"]
    int_value: str = Field(pattern=r"^-?([1-9][0-9]{0,8}|0)$", description="a 32-bit integer, as a string")


class MetadataDoubleValue(_Strict):
    metadataType: Literal["MetadataDoubleValue"]
    double_value: float


class MetadataStringValue(_Strict):
    metadataType: Literal["MetadataStringValue"]
    string_value: str


class MetadataBoolValue(_Strict):
    metadataType: Literal["MetadataBoolValue"]
    bool_value: bool


class MetadataStructValue(_Strict):
    metadataType: Literal["MetadataStructValue"]
    struct_value: str


class MetadataProtoValue(_Strict):
    metadataType: Literal["MetadataProtoValue"]
    type: str
    proto_value: str


MetadataValue = Annotated[
    Union[MetadataIntValue, MetadataDoubleValue, MetadataStringValue, MetadataBoolValue, MetadataStructValue,
          MetadataProtoValue],
    Field(discriminator="metadataType"),
]


class _Resource(_Strict):
    customProperties: dict[str, MetadataValue] | None = None
    description: str | None = None
    externalId: str | None = None


class RegisteredModelUpdate(_Resource):
    readme: str | None = None
    maturity: str | None = None
    language: list[str] | None = None
    tasks: list[str] | None = None
    provider: str | None = None
    logo: str | None = None
    license: str | None = None
    licenseLink: str | None = None
    libraryName: str | None = None
    owner: str | None = None
    state: Literal["LIVE", "ARCHIVED"] | None = None


class RegisteredModelCreate(RegisteredModelUpdate):
    name: str = Field(min_length=1)


class ModelVersionUpdate(_Resource):
    state: Literal["LIVE", "ARCHIVED"] | None = None
    author: str | None = None


class ModelVersionCreate(ModelVersionUpdate):
    name: str = Field(min_length=1)
    registeredModelId: str = Field(pattern=_ID)


class ModelVersionInModel(ModelVersionUpdate):
    """``POST /registered_models/{id}/versions``: the parent comes from the path."""

    name: str = Field(min_length=1)
    registeredModelId: str | None = Field(default=None, pattern=_ID)


ArtifactState = Literal["UNKNOWN", "PENDING", "LIVE", "MARKED_FOR_DELETION", "DELETED", "ABANDONED", "REFERENCE"]


class ModelArtifactUpdate(_Resource):
    artifactType: Literal["model-artifact"] = "model-artifact"
    modelFormatName: str | None = None
    modelFormatVersion: str | None = None
    storageKey: str | None = None
    storagePath: str | None = None
    serviceAccountName: str | None = None
    modelSourceKind: str | None = None
    modelSourceClass: str | None = None
    modelSourceGroup: str | None = None
    modelSourceId: str | None = None
    modelSourceName: str | None = None
    uri: str | None = None
    state: ArtifactState | None = None


class DocArtifactUpdate(_Resource):
    artifactType: Literal["doc-artifact"] = "doc-artifact"
    uri: str | None = None
    state: ArtifactState | None = None


class DataSetUpdate(_Resource):
    artifactType: Literal["dataset-artifact"] = "dataset-artifact"
    digest: str | None = None
    sourceType: str | None = None
    source: str | None = None
    schema_: str | None = Field(default=None, alias="schema")
    profile: str | None = None
    uri: str | None = None
    state: ArtifactState | None = None


class MetricUpdate(_Resource):
    artifactType: Literal["metric"] = "metric"
    value: float | None = None
    timestamp: str | None = Field(default=None, pattern=r"^-?[0-9]+$")
    step: int | None = None
    state: ArtifactState | None = None


class ParameterUpdate(_Resource):
    artifactType: Literal["parameter"] = "parameter"
    value: str | None = None
    parameterType: Literal["string", "number", "boolean", "object"] | None = None
    state: ArtifactState | None = None


_UPDATES: dict[str, type[_Resource]] = {
    "model-artifact": ModelArtifactUpdate, "doc-artifact": DocArtifactUpdate, "dataset-artifact": DataSetUpdate,
    "metric": MetricUpdate, "parameter": ParameterUpdate,
}
ARTIFACT_TYPES = tuple(_UPDATES)
# *Create adds the name; the body of POST /model_versions/{id}/artifacts (the full Artifact schema)
# may also carry the id of an existing artifact to link, and echo the read-only times.
_CREATES = {t: create_model(m.__name__.replace("Update", "Create"), __base__=m,
                            name=(str | None, Field(default=None, min_length=1))) for t, m in _UPDATES.items()}
_UPSERTS = {t: create_model(m.__name__.replace("Create", "Upsert"), __base__=m,
                            id=(str | None, Field(default=None, pattern=_ID)),
                            createTimeSinceEpoch=(str | None, None), lastUpdateTimeSinceEpoch=(str | None, None))
            for t, m in _CREATES.items()}


def _union(models: Mapping[str, type[BaseModel]]) -> TypeAdapter[Any]:
    members = tuple(models.values())
    return TypeAdapter(Annotated[Union[members], Field(discriminator="artifactType")])  # type: ignore[arg-type,valid-type]


ARTIFACT_CREATE, ARTIFACT_UPDATE, ARTIFACT_UPSERT = _union(_CREATES), _union(_UPDATES), _union(_UPSERTS)


def _fields(*models: type[BaseModel]) -> frozenset[str]:
    """A kind's own properties, for filterQuery (everything else is a custom property)."""
    names = {f.alias or n for m in models for n, f in m.model_fields.items()}
    return frozenset(names - {"customProperties", "name", "externalId", "artifactType", "registeredModelId"})


FIELDS = {
    REGISTERED_MODEL.table: _fields(RegisteredModelCreate),
    MODEL_VERSION.table: _fields(ModelVersionCreate),
    ARTIFACT.table: _fields(*_CREATES.values()),
}
_BODIES: tuple[type[BaseModel], ...] = (RegisteredModelCreate, ModelVersionCreate, *_UPSERTS.values())
_KNOWN = sorted({f.alias or n for m in _BODIES for n, f in m.model_fields.items()})
_TAGS = set(ARTIFACT_TYPES) | {m.__name__ for m in (MetadataIntValue, MetadataDoubleValue, MetadataStringValue,
                                                      MetadataBoolValue, MetadataStructValue, MetadataProtoValue)}


def _describe(exc: ValidationError) -> str:
    """One line per problem: ``field.path: what is wrong`` (unknown fields with a close match)."""
    lines = []
    for error in exc.errors():
        path = [str(p) for p in error["loc"] if str(p) not in _TAGS and not str(p).startswith("function-")]
        where = ".".join(path) or "body"
        if error["type"] == "extra_forbidden":
            close = difflib.get_close_matches(path[-1], _KNOWN, n=1)
            lines.append(f"{where}: unknown field" + (f" — did you mean {close[0]!r}?" if close else ""))
        elif path and path[-1] == "int_value" and error["type"] in ("string_type", "string_pattern_mismatch"):
            lines.append(f"{where}: expected a string holding a 32-bit integer, like \"42\"; got "
                         f"{error['input']!r} (larger numbers: MetadataDoubleValue or MetadataStringValue)")
        elif error["type"] in ("union_tag_invalid", "union_tag_not_found"):
            tag = str((error.get("ctx") or {}).get("discriminator", "")).strip("'")
            choices = ARTIFACT_TYPES if tag == "artifactType" else sorted(_TAGS - set(ARTIFACT_TYPES))
            got = error["input"].get(tag) if isinstance(error["input"], dict) else None
            field = tag if where == "body" else f"{where}.{tag}"
            expected = ", ".join(map(repr, choices))
            lines.append(f"{field}: required, one of {expected}" if got is None
                         else f"{field}: expected one of {expected}; got {got!r}")
        else:
            lines.append(f"{where}: {error['msg']}")
    return "; ".join(dict.fromkeys(lines))


# -- HTTP ---------------------------------------------------------------------------------------

def _error(request: Request, status: int, message: str) -> Response:
    return _json(request, {"code": str(status), "message": message}, status)


def _json(request: Request, body: dict[str, Any], status: int = 200) -> Response:
    response = JSONResponse(body, status_code=status)
    if request.url.path.startswith(PREFIXES["v1alpha3"] + "/"):
        response.headers["Deprecation"] = "true"
        response.headers["Link"] = f'<{PREFIXES["v1"]}>; rel="successor-version"'
    return response


async def _json_object(request: Request) -> dict[str, Any]:
    try:
        data = json.loads(await request.body())
    except ValueError as exc:
        raise BadRequest(f"the request body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BadRequest(f"the request body must be a JSON object; got {type(data).__name__}")
    return data


async def _body(request: Request, adapter: TypeAdapter[Any] | type[BaseModel],
                defaults: dict[str, Any] | None = None) -> BaseModel:
    """The body validated by ``adapter`` (after ``defaults`` for absent keys); BadRequest says why not."""
    data = {**(defaults or {}), **await _json_object(request)}
    try:
        if isinstance(adapter, TypeAdapter):
            return adapter.validate_python(data)  # type: ignore[no-any-return]
        return adapter.model_validate(data)
    except ValidationError as exc:
        raise BadRequest(_describe(exc)) from None


def _given(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(exclude_unset=True, by_alias=True)


def _query(request: Request, kind: Kind) -> ListQuery:
    params = request.query_params
    size = params.get("pageSize", "100")
    if not size.isdigit() or not 0 < int(size) < 1_000_000_000:
        raise BadRequest(f"pageSize: expected a positive integer; got {size!r}")
    return ListQuery(filter_query=params.get("filterQuery", ""), page_size=int(size),
                     order_by=params.get("orderBy", "ID"), sort_order=params.get("sortOrder", "ASC"),
                     next_page_token=params.get("nextPageToken", ""), fields=FIELDS[kind.table])


def _artifact_type(request: Request) -> str | None:
    value = request.query_params.get("artifactType")
    if value is not None and value not in ARTIFACT_TYPES:
        close = difflib.get_close_matches(value, ARTIFACT_TYPES, n=1)
        raise BadRequest(f"artifactType: expected one of {', '.join(ARTIFACT_TYPES)}; got {value!r}"
                         + (f" — did you mean {close[0]!r}?" if close else ""))
    return value


def _parent(request: Request) -> int | None:
    value = request.query_params.get("parentResourceId")
    if value is None:
        return None
    try:
        return parse_id(value, "resource")
    except NotFound:
        raise BadRequest(f"parentResourceId: expected a positive integer id; got {value!r}") from None


class _Api:
    """The handlers, over one store; every store call runs in the thread pool."""

    def __init__(self, store: RegistryStore) -> None:
        self.store = store

    async def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await run_in_threadpool(fn, *args, **kwargs)

    async def _list(self, request: Request, kind: Kind, **scope: Any) -> Response:
        page = await self._call(self.store.list, kind, _query(request, kind), **scope)
        return _json(request, {"items": page.items, "size": len(page.items), "pageSize": page.page_size,
                               "nextPageToken": page.next_page_token})

    async def _find(self, request: Request, kind: Kind, *, needs_parent: bool = False, **scope: Any) -> Response:
        name, external_id = request.query_params.get("name"), request.query_params.get("externalId")
        parent = _parent(request)
        if name is None and external_id is None:
            raise BadRequest(f"give name{' and parentResourceId' if needs_parent else ''} or externalId "
                             f"to find a {kind.label}")
        if needs_parent and external_id is None and parent is None:
            raise BadRequest(f"name needs parentResourceId: {kind.label} names are unique only within their parent")
        if parent is not None and kind is not REGISTERED_MODEL:
            scope["parent" if kind is MODEL_VERSION else "linked_to"] = parent
        found = await self._call(self.store.find, kind, name=name, external_id=external_id, **scope)
        if not found:
            asked = ", ".join(f"{k}={v!r}" for k, v in request.query_params.items())
            raise NotFound(f"no {kind.label} matches {asked}")
        if len(found) > 1:
            raise BadRequest(f"several {kind.label}s match name {name!r}; add parentResourceId or use externalId")
        return _json(request, found[0])

    # registered models

    async def registered_models(self, request: Request) -> Response:
        if request.method == "GET":
            return await self._list(request, REGISTERED_MODEL)
        model = await _body(request, RegisteredModelCreate)
        fields = {"state": "LIVE", **_given(model)}
        return _json(request, await self._call(self.store.create, REGISTERED_MODEL, fields), 201)

    async def registered_model(self, request: Request) -> Response:
        rid = request.path_params["id"]
        if request.method == "GET":
            return _json(request, await self._call(self.store.get, REGISTERED_MODEL, rid))
        model = await _body(request, RegisteredModelUpdate)
        return _json(request, await self._call(self.store.update, REGISTERED_MODEL, rid, _given(model)))

    async def find_registered_model(self, request: Request) -> Response:
        return await self._find(request, REGISTERED_MODEL)

    async def registered_model_versions(self, request: Request) -> Response:
        parent = parse_id(request.path_params["id"], REGISTERED_MODEL.label)
        if request.method == "GET":
            return await self._list(request, MODEL_VERSION, parent=parent, name=request.query_params.get("name"),
                                    external_id=request.query_params.get("externalId"))
        await self._call(self.store.get, REGISTERED_MODEL, parent)
        fields = _given(await _body(request, ModelVersionInModel))
        if fields.pop("registeredModelId", str(parent)) != str(parent):
            raise BadRequest(f"registeredModelId differs from the registered model in the path ({parent})")
        return _json(request, await self._call(self.store.create, MODEL_VERSION, {"state": "LIVE", **fields},
                                               parent=parent), 201)

    # model versions

    async def model_versions(self, request: Request) -> Response:
        if request.method == "GET":
            return await self._list(request, MODEL_VERSION)
        fields = _given(await _body(request, ModelVersionCreate))
        parent = int(fields.pop("registeredModelId"))
        return _json(request, await self._call(self.store.create, MODEL_VERSION, {"state": "LIVE", **fields},
                                               parent=parent), 201)

    async def model_version(self, request: Request) -> Response:
        rid = request.path_params["id"]
        if request.method == "GET":
            return _json(request, await self._call(self.store.get, MODEL_VERSION, rid))
        model = await _body(request, ModelVersionUpdate)
        return _json(request, await self._call(self.store.update, MODEL_VERSION, rid, _given(model)))

    async def find_model_version(self, request: Request) -> Response:
        return await self._find(request, MODEL_VERSION, needs_parent=True)

    async def model_version_artifacts(self, request: Request) -> Response:
        version = parse_id(request.path_params["id"], MODEL_VERSION.label)
        if request.method == "GET":
            return await self._list(request, ARTIFACT, linked_to=version, artifact_type=_artifact_type(request),
                                    name=request.query_params.get("name"),
                                    external_id=request.query_params.get("externalId"))
        await self._call(self.store.get, MODEL_VERSION, version)
        fields = _given(await _body(request, ARTIFACT_UPSERT))
        kind = fields.pop("artifactType", None)
        for echoed in ("createTimeSinceEpoch", "lastUpdateTimeSinceEpoch"):
            fields.pop(echoed, None)
        if "id" not in fields:
            created = await self._call(self.store.create, ARTIFACT, {"state": "UNKNOWN", **fields},
                                       artifact_type=kind, link_to=version)
            return _json(request, created, 201)
        rid = int(fields.pop("id"))
        existing = await self._call(self.store.get, ARTIFACT, rid)
        if kind != existing["artifactType"]:
            raise BadRequest(f"artifact {rid} is a {existing['artifactType']}, not a {kind}")
        if fields.pop("name", existing.get("name")) != existing.get("name"):
            raise BadRequest(f"artifact {rid} is named {existing.get('name')!r}; a name cannot change")
        if fields:
            await self._call(self.store.update, ARTIFACT, rid, fields)
        await self._call(self.store.link, version, rid)
        return _json(request, await self._call(self.store.get, ARTIFACT, rid))

    # artifacts (every type) and model artifacts

    async def artifacts(self, request: Request, only: str | None = None) -> Response:
        if request.method == "GET":
            return await self._list(request, ARTIFACT, artifact_type=only or _artifact_type(request))
        adapter = _CREATES[only] if only else ARTIFACT_CREATE
        fields = _given(await _body(request, adapter))
        kind = fields.pop("artifactType", only)
        return _json(request, await self._call(self.store.create, ARTIFACT, {"state": "UNKNOWN", **fields},
                                               artifact_type=kind), 201)

    async def artifact(self, request: Request, only: str | None = None) -> Response:
        rid = request.path_params["id"]
        existing = await self._call(self.store.get, ARTIFACT, rid)
        if only and existing["artifactType"] != only:
            raise NotFound(f"no {only} with id {rid} (artifact {rid} is a {existing['artifactType']})")
        if request.method == "GET":
            return _json(request, existing)
        if (await _json_object(request)).get("artifactType", existing["artifactType"]) != existing["artifactType"]:
            raise BadRequest(f"artifact {rid} is a {existing['artifactType']}; artifactType cannot change")
        fields = _given(await _body(request, ARTIFACT_UPDATE, defaults={"artifactType": existing["artifactType"]}))
        fields.pop("artifactType")
        return _json(request, await self._call(self.store.update, ARTIFACT, rid, fields))

    async def find_artifact(self, request: Request, only: str | None = None) -> Response:
        kind = _artifact_type(request) if only is None else only
        return await self._find(request, ARTIFACT, artifact_type=kind)

    async def model_artifacts(self, request: Request) -> Response:
        return await self.artifacts(request, only="model-artifact")

    async def model_artifact(self, request: Request) -> Response:
        return await self.artifact(request, only="model-artifact")

    async def find_model_artifact(self, request: Request) -> Response:
        return await self.find_artifact(request, only="model-artifact")

    def routes(self) -> list[BaseRoute]:
        read, write, edit = ["GET"], ["GET", "POST"], ["GET", "PATCH"]
        table: list[tuple[str, Callable[[Request], Awaitable[Response]], list[str]]] = [
            ("/registered_models", self.registered_models, write),
            ("/registered_models/{id}", self.registered_model, edit),
            ("/registered_models/{id}/versions", self.registered_model_versions, write),
            ("/registered_model", self.find_registered_model, read),
            ("/model_versions", self.model_versions, write),
            ("/model_versions/{id}", self.model_version, edit),
            ("/model_versions/{id}/artifacts", self.model_version_artifacts, write),
            ("/model_version", self.find_model_version, read),
            ("/artifacts", self.artifacts, write),
            ("/artifacts/{id}", self.artifact, edit),
            ("/artifact", self.find_artifact, read),
            ("/model_artifacts", self.model_artifacts, write),
            ("/model_artifacts/{id}", self.model_artifact, edit),
            ("/model_artifact", self.find_model_artifact, read),
        ]
        return [Route(path, endpoint, methods=methods) for path, endpoint, methods in table]


def create_registry_app(db_path: str | Path) -> Starlette:
    """The registry over the SQLite file ``db_path`` (created with its folder when missing)."""
    store = RegistryStore(db_path)
    api = _Api(store)

    async def registry_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RegistryError)
        return _error(request, exc.status, exc.message)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 405:
            allowed = (exc.headers or {}).get("Allow", "")
            message = (f"{request.method} is not supported on {request.url.path}"
                       + (f" (allowed: {allowed})" if allowed else "")
                       + ("; nothing is deleted in the Model Registry: archive through state"
                          if request.method == "DELETE" else ""))
        elif exc.status_code == 404:
            message = f"no such endpoint: {request.method} {request.url.path}"
        else:
            message = str(exc.detail)
        return _error(request, exc.status_code, message)

    async def server_error(request: Request, exc: Exception) -> Response:
        return _error(request, 500, f"internal error: {type(exc).__name__}: {exc}")

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        yield
        store.close()

    routes = api.routes()
    app = Starlette(routes=[Mount(prefix, routes=routes) for prefix in PREFIXES.values()], lifespan=lifespan,
                    exception_handlers={RegistryError: registry_error, HTTPException: http_error,
                                        Exception: server_error})
    app.state.store = store
    return app
