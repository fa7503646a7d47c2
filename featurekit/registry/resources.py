"""The resources of the embedded Model Registry (their kinds and ids) and the errors it answers with.

Each error carries the HTTP status the server answers it with, in the Model Registry API's
``{"code", "message"}`` body.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Kind:
    """A resource kind: its table, its name in messages, and its parent column if any."""

    table: str
    label: str
    parent: str | None = None


REGISTERED_MODEL = Kind("registered_models", "registered model")
MODEL_VERSION = Kind("model_versions", "model version", parent="registered_model_id")
ARTIFACT = Kind("artifacts", "artifact")


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
