"""The operations of the embedded Model Registry, over one store.

Plain ``def`` handlers: FastAPI runs them in its thread pool, where the store's calls belong.
Query parameters are taken as strings and checked here, so that a wrong one is a 400 in the
API's words; a resource that is not there is a 404 raised by the store.
"""

# No ``from __future__ import annotations``: FastAPI reads the handlers' annotations, and those
# naming a dependency defined next to the handlers must be objects, not strings.
import difflib
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError

from featurekit.registry.models import (
    ARTIFACT_TYPES,
    ARTIFACT_UPDATE,
    FIELDS,
    KNOWN,
    TAGS,
    ArtifactCreate,
    ArtifactUpsert,
    InferenceServiceCreate,
    InferenceServiceInEnvironment,
    InferenceServiceUpdate,
    ModelArtifactCreate,
    ModelVersionCreate,
    ModelVersionInModel,
    ModelVersionUpdate,
    RegisteredModelCreate,
    RegisteredModelUpdate,
    ServeModelCreate,
    ServingEnvironmentCreate,
    ServingEnvironmentUpdate,
)
from featurekit.registry.resources import (
    ARTIFACT,
    INFERENCE_SERVICE,
    MODEL_VERSION,
    REGISTERED_MODEL,
    SERVE_MODEL,
    SERVING_ENVIRONMENT,
    BadRequest,
    Kind,
    NotFound,
    Unprocessable,
    parse_id,
)
from featurekit.registry.store import ListQuery, RegistryStore
from featurekit.yamlconf.pydantic_errors import body_message

PREFIXES = {"v1alpha3": "/api/model_registry/v1alpha3", "v1": "/api/model_registry/v1"}
# Starlette answered HEAD wherever it answered GET; the routes keep doing so.
READ = ["GET", "HEAD"]
MODEL_ARTIFACT = "model-artifact"


def answer(request: Request, body: dict[str, Any], status: int = 200) -> JSONResponse:
    """A JSON answer; under ``v1alpha3`` it says that ``v1`` succeeds it."""
    response = JSONResponse(body, status_code=status)
    if request.url.path.startswith(PREFIXES["v1alpha3"] + "/"):
        response.headers["Deprecation"] = "true"
        response.headers["Link"] = f'<{PREFIXES["v1"]}>; rel="successor-version"'
    return response


@dataclass(frozen=True)
class Listing:
    """The paging and filtering parameters of every list operation, as given."""

    page_size: str
    filter_query: str
    order_by: str
    sort_order: str
    next_page_token: str

    def query(self, kind: Kind) -> ListQuery:
        if not self.page_size.isdigit() or not 0 < int(self.page_size) < 1_000_000_000:
            raise BadRequest(f"pageSize: expected a positive integer; got {self.page_size!r}")
        return ListQuery(filter_query=self.filter_query, page_size=int(self.page_size), order_by=self.order_by,
                         sort_order=self.sort_order, next_page_token=self.next_page_token,
                         fields=FIELDS[kind.table])


def _listing(page_size: Annotated[str, Query(alias="pageSize")] = "100",
             filter_query: Annotated[str, Query(alias="filterQuery")] = "",
             order_by: Annotated[str, Query(alias="orderBy")] = "ID",
             sort_order: Annotated[str, Query(alias="sortOrder")] = "ASC",
             next_page_token: Annotated[str, Query(alias="nextPageToken")] = "") -> Listing:
    return Listing(page_size, filter_query, order_by, sort_order, next_page_token)


Paging = Annotated[Listing, Depends(_listing)]
Name = Annotated[str | None, Query()]
ExternalId = Annotated[str | None, Query(alias="externalId")]
ArtifactTypeParam = Annotated[str | None, Query(alias="artifactType")]
ParentParam = Annotated[str | None, Query(alias="parentResourceId")]


def _artifact_type(value: str | None) -> str | None:
    if value is not None and value not in ARTIFACT_TYPES:
        close = difflib.get_close_matches(value, ARTIFACT_TYPES, n=1)
        raise BadRequest(f"artifactType: expected one of {', '.join(ARTIFACT_TYPES)}; got {value!r}"
                         + (f" — did you mean {close[0]!r}?" if close else ""))
    return value


def _parent(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return parse_id(value, "resource")
    except NotFound:
        raise BadRequest(f"parentResourceId: expected a positive integer id; got {value!r}") from None


def _given(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(exclude_unset=True, by_alias=True)


def registry_routes(store: RegistryStore) -> APIRouter:
    """Every operation served, relative to an API prefix."""
    router = APIRouter()

    def listed(request: Request, kind: Kind, paging: Listing, **scope: Any) -> JSONResponse:
        page = store.list(kind, paging.query(kind), **scope)
        return answer(request, {"items": page.items, "size": len(page.items), "pageSize": page.page_size,
                                "nextPageToken": page.next_page_token})

    def found(request: Request, kind: Kind, name: str | None, external_id: str | None, parent_id: str | None,
              *, needs_parent: bool = False, **scope: Any) -> JSONResponse:
        parent = _parent(parent_id)
        if name is None and external_id is None:
            raise BadRequest(f"give name{' and parentResourceId' if needs_parent else ''} or externalId "
                             f"to find a {kind.label}")
        if needs_parent and external_id is None and parent is None:
            raise BadRequest(f"name needs parentResourceId: {kind.label} names are unique only within their parent")
        if parent is not None and (kind.parent is not None or kind is ARTIFACT):
            scope["parent" if kind.parent is not None else "linked_to"] = parent
        matches = store.find(kind, name=name, external_id=external_id, **scope)
        if not matches:
            asked = ", ".join(f"{k}={v!r}" for k, v in request.query_params.items())
            raise NotFound(f"no {kind.label} matches {asked}")
        if len(matches) > 1:
            raise BadRequest(f"several {kind.label}s match name {name!r}; add parentResourceId or use externalId")
        return answer(request, matches[0])

    # The resource in the path, as dependencies: FastAPI resolves them before it validates the body,
    # so a resource that is not there is a 404 whatever the body holds (if it is JSON at all).

    def registered_model_in_path(id: str) -> int:
        parent = parse_id(id, REGISTERED_MODEL.label)
        store.get(REGISTERED_MODEL, parent)
        return parent

    def model_version_in_path(id: str) -> int:
        version = parse_id(id, MODEL_VERSION.label)
        store.get(MODEL_VERSION, version)
        return version

    def artifact(id: str) -> dict[str, Any]:
        return store.get(ARTIFACT, id)

    def model_artifact(id: str) -> dict[str, Any]:
        existing = store.get(ARTIFACT, id)
        if existing["artifactType"] != MODEL_ARTIFACT:
            raise NotFound(f"no {MODEL_ARTIFACT} with id {id} (artifact {id} is a {existing['artifactType']})")
        return existing

    # -- registered models

    @router.api_route("/registered_models", methods=READ)
    def list_registered_models(request: Request, paging: Paging) -> JSONResponse:
        return listed(request, REGISTERED_MODEL, paging)

    @router.post("/registered_models")
    def create_registered_model(request: Request, body: RegisteredModelCreate) -> JSONResponse:
        return answer(request, store.create(REGISTERED_MODEL, {"state": "LIVE", **_given(body)}), 201)

    @router.api_route("/registered_models/{id}", methods=READ)
    def get_registered_model(request: Request, id: str) -> JSONResponse:
        return answer(request, store.get(REGISTERED_MODEL, id))

    @router.patch("/registered_models/{id}")
    def update_registered_model(request: Request, id: str, body: RegisteredModelUpdate) -> JSONResponse:
        return answer(request, store.update(REGISTERED_MODEL, id, _given(body)))

    @router.api_route("/registered_models/{id}/versions", methods=READ)
    def list_registered_model_versions(request: Request, id: str, paging: Paging, name: Name = None,
                                       external_id: ExternalId = None) -> JSONResponse:
        parent = parse_id(id, REGISTERED_MODEL.label)
        return listed(request, MODEL_VERSION, paging, parent=parent, name=name, external_id=external_id)

    @router.post("/registered_models/{id}/versions")
    def create_registered_model_version(request: Request, parent: Annotated[int, Depends(registered_model_in_path)],
                                        body: ModelVersionInModel) -> JSONResponse:
        fields = _given(body)
        if fields.pop("registeredModelId", str(parent)) != str(parent):
            raise BadRequest(f"registeredModelId differs from the registered model in the path ({parent})")
        return answer(request, store.create(MODEL_VERSION, {"state": "LIVE", **fields}, parent=parent), 201)

    @router.api_route("/registered_model", methods=READ)
    def find_registered_model(request: Request, name: Name = None, external_id: ExternalId = None,
                              parent_id: ParentParam = None) -> JSONResponse:
        return found(request, REGISTERED_MODEL, name, external_id, parent_id)

    # -- model versions

    @router.api_route("/model_versions", methods=READ)
    def list_model_versions(request: Request, paging: Paging) -> JSONResponse:
        return listed(request, MODEL_VERSION, paging)

    @router.post("/model_versions")
    def create_model_version(request: Request, body: ModelVersionCreate) -> JSONResponse:
        fields = _given(body)
        parent = int(fields.pop("registeredModelId"))
        return answer(request, store.create(MODEL_VERSION, {"state": "LIVE", **fields}, parent=parent), 201)

    @router.api_route("/model_versions/{id}", methods=READ)
    def get_model_version(request: Request, id: str) -> JSONResponse:
        return answer(request, store.get(MODEL_VERSION, id))

    @router.patch("/model_versions/{id}")
    def update_model_version(request: Request, id: str, body: ModelVersionUpdate) -> JSONResponse:
        return answer(request, store.update(MODEL_VERSION, id, _given(body)))

    @router.api_route("/model_version", methods=READ)
    def find_model_version(request: Request, name: Name = None, external_id: ExternalId = None,
                           parent_id: ParentParam = None) -> JSONResponse:
        return found(request, MODEL_VERSION, name, external_id, parent_id, needs_parent=True)

    @router.api_route("/model_versions/{id}/artifacts", methods=READ)
    def list_model_version_artifacts(request: Request, id: str, paging: Paging, name: Name = None,
                                     external_id: ExternalId = None,
                                     artifact_type: ArtifactTypeParam = None) -> JSONResponse:
        version = parse_id(id, MODEL_VERSION.label)
        return listed(request, ARTIFACT, paging, linked_to=version, artifact_type=_artifact_type(artifact_type),
                      name=name, external_id=external_id)

    @router.post("/model_versions/{id}/artifacts")
    def upsert_model_version_artifact(
            request: Request, version: Annotated[int, Depends(model_version_in_path)],
            body: Annotated[ArtifactUpsert, Body(discriminator="artifactType")]) -> JSONResponse:
        """Create an artifact linked to the version, or (with ``id``) link an existing one and update it."""
        fields = _given(body)
        kind = fields.pop("artifactType", None)
        for echoed in ("createTimeSinceEpoch", "lastUpdateTimeSinceEpoch"):
            fields.pop(echoed, None)
        if "id" not in fields:
            created = store.create(ARTIFACT, {"state": "UNKNOWN", **fields}, artifact_type=kind, link_to=version)
            return answer(request, created, 201)
        rid = int(fields.pop("id"))
        existing = store.get(ARTIFACT, rid)
        if kind != existing["artifactType"]:
            raise BadRequest(f"artifact {rid} is a {existing['artifactType']}, not a {kind}")
        if fields.pop("name", existing.get("name")) != existing.get("name"):
            raise BadRequest(f"artifact {rid} is named {existing.get('name')!r}; a name cannot change")
        if fields:
            store.update(ARTIFACT, rid, fields)
        store.link(version, rid)
        return answer(request, store.get(ARTIFACT, rid))

    # -- artifacts (every type) and model artifacts

    def update_artifact(request: Request, existing: dict[str, Any], body: dict[str, Any]) -> JSONResponse:
        id = existing["id"]
        if body.get("artifactType", existing["artifactType"]) != existing["artifactType"]:
            raise BadRequest(f"artifact {id} is a {existing['artifactType']}; artifactType cannot change")
        try:
            model = ARTIFACT_UPDATE.validate_python({"artifactType": existing["artifactType"], **body})
        except ValidationError as exc:
            raise BadRequest(body_message(exc.errors(), KNOWN, TAGS)) from None
        fields = _given(model)
        fields.pop("artifactType")
        return answer(request, store.update(ARTIFACT, id, fields))

    @router.api_route("/artifacts", methods=READ)
    def list_artifacts(request: Request, paging: Paging, artifact_type: ArtifactTypeParam = None) -> JSONResponse:
        return listed(request, ARTIFACT, paging, artifact_type=_artifact_type(artifact_type))

    @router.post("/artifacts")
    def create_artifact(request: Request,
                        body: Annotated[ArtifactCreate, Body(discriminator="artifactType")]) -> JSONResponse:
        fields = _given(body)
        kind = fields.pop("artifactType", None)
        return answer(request, store.create(ARTIFACT, {"state": "UNKNOWN", **fields}, artifact_type=kind), 201)

    @router.api_route("/artifacts/{id}", methods=READ)
    def get_artifact(request: Request, id: str) -> JSONResponse:
        return answer(request, artifact(id))

    @router.patch("/artifacts/{id}")
    def patch_artifact(request: Request, existing: Annotated[dict[str, Any], Depends(artifact)],
                       body: Annotated[dict[str, Any], Body()]) -> JSONResponse:
        return update_artifact(request, existing, body)

    @router.api_route("/artifact", methods=READ)
    def find_artifact(request: Request, name: Name = None, external_id: ExternalId = None,
                      parent_id: ParentParam = None, artifact_type: ArtifactTypeParam = None) -> JSONResponse:
        return found(request, ARTIFACT, name, external_id, parent_id, artifact_type=_artifact_type(artifact_type))

    @router.api_route("/model_artifacts", methods=READ)
    def list_model_artifacts(request: Request, paging: Paging) -> JSONResponse:
        return listed(request, ARTIFACT, paging, artifact_type=MODEL_ARTIFACT)

    @router.post("/model_artifacts")
    def create_model_artifact(request: Request, body: ModelArtifactCreate) -> JSONResponse:  # type: ignore[valid-type]
        fields = _given(body)
        fields.pop("artifactType", None)
        return answer(request, store.create(ARTIFACT, {"state": "UNKNOWN", **fields}, artifact_type=MODEL_ARTIFACT),
                      201)

    @router.api_route("/model_artifacts/{id}", methods=READ)
    def get_model_artifact(request: Request, id: str) -> JSONResponse:
        return answer(request, model_artifact(id))

    @router.patch("/model_artifacts/{id}")
    def patch_model_artifact(request: Request, existing: Annotated[dict[str, Any], Depends(model_artifact)],
                             body: Annotated[dict[str, Any], Body()]) -> JSONResponse:
        return update_artifact(request, existing, body)

    @router.api_route("/model_artifact", methods=READ)
    def find_model_artifact(request: Request, name: Name = None, external_id: ExternalId = None,
                            parent_id: ParentParam = None) -> JSONResponse:
        return found(request, ARTIFACT, name, external_id, parent_id, artifact_type=MODEL_ARTIFACT)

    # -- serving environments, their inference services, and what those serve

    def in_path(kind: Kind) -> Any:
        def resolve(id: str) -> int:
            rid = parse_id(id, kind.label)
            store.get(kind, rid)
            return rid
        return resolve

    # The spec gives these creates no 422: a body naming a resource that is not there is a 400.

    def version_of_model(version_id: str | None, model_id: str) -> None:
        """400 unless ``version_id`` (when given) is a version of registered model ``model_id``."""
        if version_id is None:
            return
        try:
            version = store.get(MODEL_VERSION, version_id)
        except NotFound:
            raise BadRequest(f"modelVersionId {version_id}: no such model version") from None
        if version["registeredModelId"] != model_id:
            raise BadRequest(f"modelVersionId {version_id} is a version of registered model "
                             f"{version['registeredModelId']}, not of registered model {model_id}")

    def create_serving(kind: Kind, fields: dict[str, Any], parent: int | None) -> dict[str, Any]:
        try:
            return store.create(kind, fields, parent=parent)
        except Unprocessable as exc:
            raise BadRequest(exc.message) from None

    def create_inference_service(request: Request, fields: dict[str, Any], environment: int | None) -> JSONResponse:
        version_of_model(fields.get("modelVersionId"), fields["registeredModelId"])
        return answer(request, create_serving(INFERENCE_SERVICE, {"desiredState": "DEPLOYED", **fields}, environment),
                      201)

    @router.api_route("/serving_environments", methods=READ)
    def list_serving_environments(request: Request, paging: Paging) -> JSONResponse:
        return listed(request, SERVING_ENVIRONMENT, paging)

    @router.post("/serving_environments")
    def create_serving_environment(request: Request, body: ServingEnvironmentCreate) -> JSONResponse:
        return answer(request, store.create(SERVING_ENVIRONMENT, _given(body)), 201)

    @router.api_route("/serving_environments/{id}", methods=READ)
    def get_serving_environment(request: Request, id: str) -> JSONResponse:
        return answer(request, store.get(SERVING_ENVIRONMENT, id))

    @router.patch("/serving_environments/{id}")
    def update_serving_environment(request: Request, id: str, body: ServingEnvironmentUpdate) -> JSONResponse:
        return answer(request, store.update(SERVING_ENVIRONMENT, id, _given(body)))

    @router.api_route("/serving_environment", methods=READ)
    def find_serving_environment(request: Request, name: Name = None, external_id: ExternalId = None) -> JSONResponse:
        return found(request, SERVING_ENVIRONMENT, name, external_id, None)

    @router.api_route("/serving_environments/{id}/inference_services", methods=READ)
    def list_environment_inference_services(request: Request, id: str, paging: Paging, name: Name = None,
                                            external_id: ExternalId = None) -> JSONResponse:
        environment = parse_id(id, SERVING_ENVIRONMENT.label)
        return listed(request, INFERENCE_SERVICE, paging, parent=environment, name=name, external_id=external_id)

    @router.post("/serving_environments/{id}/inference_services")
    def create_environment_inference_service(
            request: Request, environment: Annotated[int, Depends(in_path(SERVING_ENVIRONMENT))],
            body: InferenceServiceInEnvironment) -> JSONResponse:
        fields = _given(body)
        if fields.pop("servingEnvironmentId", str(environment)) != str(environment):
            raise BadRequest(f"servingEnvironmentId differs from the serving environment in the path ({environment})")
        return create_inference_service(request, fields, environment)

    @router.api_route("/inference_services", methods=READ)
    def list_inference_services(request: Request, paging: Paging) -> JSONResponse:
        return listed(request, INFERENCE_SERVICE, paging)

    @router.post("/inference_services")
    def create_inference_service_anywhere(request: Request, body: InferenceServiceCreate) -> JSONResponse:
        """201 like every other create (and the official client, which reads only a 201 as the created
        resource), where the vendored spec alone writes 200 for this one."""
        return create_inference_service(request, _given(body), None)

    @router.api_route("/inference_services/{id}", methods=READ)
    def get_inference_service(request: Request, id: str) -> JSONResponse:
        return answer(request, store.get(INFERENCE_SERVICE, id))

    @router.patch("/inference_services/{id}")
    def update_inference_service(request: Request, id: str, body: InferenceServiceUpdate) -> JSONResponse:
        existing = store.get(INFERENCE_SERVICE, id)
        fields = _given(body)
        version_of_model(fields.get("modelVersionId"), existing["registeredModelId"])
        return answer(request, store.update(INFERENCE_SERVICE, id, fields))

    @router.api_route("/inference_service", methods=READ)
    def find_inference_service(request: Request, name: Name = None, external_id: ExternalId = None,
                               parent_id: ParentParam = None) -> JSONResponse:
        return found(request, INFERENCE_SERVICE, name, external_id, parent_id, needs_parent=True)

    @router.api_route("/inference_services/{id}/model", methods=READ)
    def get_inference_service_model(request: Request, id: str) -> JSONResponse:
        return answer(request, store.get(REGISTERED_MODEL, store.get(INFERENCE_SERVICE, id)["registeredModelId"]))

    @router.api_route("/inference_services/{id}/version", methods=READ)
    def get_inference_service_version(request: Request, id: str) -> JSONResponse:
        """The version it names, else (as the spec says) the registered model's latest by creation."""
        service = store.get(INFERENCE_SERVICE, id)
        if "modelVersionId" in service:
            return answer(request, store.get(MODEL_VERSION, service["modelVersionId"]))
        model = int(service["registeredModelId"])
        newest = store.list(MODEL_VERSION, ListQuery(order_by="CREATE_TIME", sort_order="DESC", page_size=1),
                            parent=model)
        if not newest.items:
            raise NotFound(f"inference service {id} names no model version, and its registered model {model} "
                           "has none")
        return answer(request, newest.items[0])

    @router.api_route("/inference_services/{id}/serves", methods=READ)
    def list_inference_service_serves(request: Request, id: str, paging: Paging, name: Name = None,
                                      external_id: ExternalId = None) -> JSONResponse:
        service = parse_id(id, INFERENCE_SERVICE.label)
        return listed(request, SERVE_MODEL, paging, parent=service, name=name, external_id=external_id)

    @router.post("/inference_services/{id}/serves")
    def create_inference_service_serve(request: Request, service: Annotated[int, Depends(in_path(INFERENCE_SERVICE))],
                                       body: ServeModelCreate) -> JSONResponse:
        fields = _given(body)
        version_of_model(fields["modelVersionId"], store.get(INFERENCE_SERVICE, service)["registeredModelId"])
        return answer(request, create_serving(SERVE_MODEL, {"lastKnownState": "UNKNOWN", **fields}, service), 201)

    return router
