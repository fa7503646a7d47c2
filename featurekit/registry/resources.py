"""The resources of the embedded Model Registry (their kinds and ids) and the errors it answers with.

Each error carries the HTTP status the server answers it with, in the Model Registry API's
``{"code", "message"}`` body.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Reference:
    """A column holding the id of another resource; ``field`` is its property in the API (None
    when the API does not show it, as a serve model's inference service, given by the path)."""

    field: str | None
    column: str
    target: "Kind"


@dataclass(frozen=True)
class Kind:
    """A resource kind: its table, its name in messages, the parent its names are unique within
    (None: unique in the registry, or not at all without ``unique_names``), and the other
    resources it refers to."""

    table: str
    label: str
    parent: Reference | None = None
    references: tuple[Reference, ...] = ()
    unique_names: bool = True

    def all_references(self) -> tuple[Reference, ...]:
        """The parent first, then the other references."""
        return ((self.parent,) if self.parent is not None else ()) + self.references


REGISTERED_MODEL = Kind("registered_models", "registered model")
MODEL_VERSION = Kind("model_versions", "model version",
                     parent=Reference("registeredModelId", "registered_model_id", REGISTERED_MODEL))
ARTIFACT = Kind("artifacts", "artifact", unique_names=False)
SERVING_ENVIRONMENT = Kind("serving_environments", "serving environment")
INFERENCE_SERVICE = Kind("inference_services", "inference service",
                         parent=Reference("servingEnvironmentId", "serving_environment_id", SERVING_ENVIRONMENT),
                         references=(Reference("registeredModelId", "registered_model_id", REGISTERED_MODEL),
                                     Reference("modelVersionId", "model_version_id", MODEL_VERSION)))
SERVE_MODEL = Kind("serve_models", "serve model",
                   parent=Reference(None, "inference_service_id", INFERENCE_SERVICE),
                   references=(Reference("modelVersionId", "model_version_id", MODEL_VERSION),))
KINDS = (REGISTERED_MODEL, MODEL_VERSION, ARTIFACT, SERVING_ENVIRONMENT, INFERENCE_SERVICE, SERVE_MODEL)


class RegistryError(Exception):
    """A request the registry refuses; ``status`` is the HTTP status that says why."""

    status = 400

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


class BadRequest(RegistryError):
    status = 400


class NotFound(RegistryError):
    status = 404


class Conflict(RegistryError):
    status = 409


class Unprocessable(RegistryError):
    status = 422


def parse_id(value: str | int | None, label: str) -> int:
    """A resource id as the API writes it (a string of 1-9 digits); NotFound when it can't be one."""
    text = str(value)
    if not re.fullmatch(r"[1-9][0-9]{0,8}", text):
        raise NotFound(f"no {label} with id {text!r} (ids are positive integers)")
    return int(text)
