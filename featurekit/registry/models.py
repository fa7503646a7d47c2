"""The request bodies of the embedded Model Registry: the spec's ``*Create`` / ``*Update`` schemas.

Strict pydantic models: unknown fields are refused (with a close match), numbers are not taken
for strings. ``FIELDS`` are each kind's own properties (``filterQuery`` treats any other name as
a custom property); ``KNOWN`` and ``TAGS`` are the words a body problem is explained with.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, TypeAdapter, create_model
from pydantic_core import PydanticCustomError

from featurekit.registry.resources import (
    ARTIFACT,
    INFERENCE_SERVICE,
    MODEL_VERSION,
    REGISTERED_MODEL,
    SERVE_MODEL,
    SERVING_ENVIRONMENT,
)

_ID = r"^[1-9][0-9]{0,8}$"
_INT32 = re.compile(r"-?([1-9][0-9]{0,8}|0)")


def _int32_string(value: Any) -> str:
    """The API writes a 32-bit integer as a string; say so plainly when a client sends a number."""
    if isinstance(value, str) and _INT32.fullmatch(value):
        return value
    raise PydanticCustomError(
        "int32_string", 'expected a string holding a 32-bit integer, like "42"; got {got} '
                        "(larger numbers: MetadataDoubleValue or MetadataStringValue)", {"got": repr(value)})


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class MetadataIntValue(_Strict):
    metadataType: Literal["MetadataIntValue"]
    int_value: Annotated[str, PlainValidator(_int32_string)]


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


class ServingEnvironmentUpdate(_Resource):
    pass


class ServingEnvironmentCreate(ServingEnvironmentUpdate):
    name: str = Field(min_length=1)


class InferenceServiceUpdate(_Resource):
    modelVersionId: str | None = Field(default=None, pattern=_ID)
    runtime: str | None = None
    desiredState: Literal["DEPLOYED", "UNDEPLOYED"] | None = None


class InferenceServiceCreate(InferenceServiceUpdate):
    name: str | None = Field(default=None, min_length=1)
    registeredModelId: str = Field(pattern=_ID)
    servingEnvironmentId: str = Field(pattern=_ID)


class InferenceServiceInEnvironment(InferenceServiceUpdate):
    """``POST /serving_environments/{id}/inference_services``: the parent comes from the path."""

    name: str | None = Field(default=None, min_length=1)
    registeredModelId: str = Field(pattern=_ID)
    servingEnvironmentId: str | None = Field(default=None, pattern=_ID)


class ServeModelUpdate(_Resource):
    lastKnownState: Literal["UNKNOWN", "NEW", "RUNNING", "COMPLETE", "FAILED", "CACHED", "CANCELED"] | None = None


class ServeModelCreate(ServeModelUpdate):
    name: str | None = Field(default=None, min_length=1)
    modelVersionId: str = Field(pattern=_ID)


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


def _union(models: Mapping[str, type[BaseModel]]) -> Any:
    """The artifact types as one union, told apart by ``artifactType`` (the discriminator goes with it)."""
    return Union[tuple(models.values())]  # type: ignore[valid-type]


ArtifactCreate, ArtifactUpdate, ArtifactUpsert = _union(_CREATES), _union(_UPDATES), _union(_UPSERTS)
ModelArtifactCreate = _CREATES["model-artifact"]
ARTIFACT_UPDATE: TypeAdapter[Any] = TypeAdapter(Annotated[ArtifactUpdate, Field(discriminator="artifactType")])  # type: ignore[arg-type]


def _fields(*models: type[BaseModel]) -> frozenset[str]:
    """A kind's own properties, for filterQuery (everything else is a custom property)."""
    names = {f.alias or n for m in models for n, f in m.model_fields.items()}
    return frozenset(names - {"customProperties", "name", "externalId", "artifactType", "registeredModelId"})


FIELDS = {
    REGISTERED_MODEL.table: _fields(RegisteredModelCreate),
    MODEL_VERSION.table: _fields(ModelVersionCreate),
    ARTIFACT.table: _fields(*_CREATES.values()),
    SERVING_ENVIRONMENT.table: _fields(ServingEnvironmentCreate),
    INFERENCE_SERVICE.table: _fields(InferenceServiceCreate),
    SERVE_MODEL.table: _fields(ServeModelCreate),
}
_BODIES: tuple[type[BaseModel], ...] = (RegisteredModelCreate, ModelVersionCreate, *_UPSERTS.values(),
                                        ServingEnvironmentCreate, InferenceServiceCreate, ServeModelCreate)
# The words a body problem is explained with: every field name, and each union's choices by its tag.
KNOWN = sorted({f.alias or n for m in _BODIES for n, f in m.model_fields.items()})
TAGS: dict[str, tuple[str, ...]] = {
    "artifactType": ARTIFACT_TYPES,
    "metadataType": tuple(sorted(m.__name__ for m in (MetadataIntValue, MetadataDoubleValue, MetadataStringValue,
                                                       MetadataBoolValue, MetadataStructValue, MetadataProtoValue))),
}
