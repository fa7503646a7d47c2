"""A small client of the Kubeflow Model Registry REST API (httpx), for what lineage needs.

- The API version is found once per client and kept for its life: ``/api/model_registry/v1``
  if the server answers there, else ``/api/model_registry/v1alpha3`` when ``/v1`` is answered
  404, 405 or 501 (a Kubeflow Model Registry of the v0.3 line has no ``/v1``: Go's router answers
  it with a plain-text 404; a proxy in front may say 405 or 501); the bodies are the same.
- Connection failures, timeouts and 5xx answers are retried ``retries`` times with exponential
  backoff; if the registry still cannot be reached the error is :class:`RegistryUnavailable`
  (the lineage store then queues the record in its outbox). A 4xx answer is
  :class:`RegistryRefused` with the registry's own message; a body that is not what the API
  promises is :class:`RegistryBadResponse`. All three are ``InfraError`` (exit code 1) with one
  readable line, never a traceback.
- 401 and 403 are :class:`RegistryAuthError`, a ``ConfigError`` (exit code 2: the user fixes the
  token, as when ``registry.token_env`` names a variable that is not set): it names the
  environment variable the bearer token is read from, and says whether one was sent.
- Creating is idempotent through ``externalId`` (unique across the registry): a create answered
  409 is followed by a find, so a retry after a lost answer never makes a second resource.
- ``customProperties`` are tagged values (:func:`tagged`, :func:`untagged`); numbers that may
  outgrow 32 bits (counts, versions) are sent as strings by the callers.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx

from featurekit.config import Settings
from featurekit.errors import ConfigError, InfraError, NotFound, Problem
from featurekit.redaction import redact, redact_text

PREFIXES = ("/api/model_registry/v1", "/api/model_registry/v1alpha3")
# Answers to the probe of ``/v1`` meaning "no such API version here": try the next prefix.
_NOT_THIS_VERSION = frozenset({404, 405, 501})
_AUTH_STATUS = frozenset({401, 403})
DATASET = "dataset-artifact"
MODEL = "model-artifact"
_INT32 = (-(2**31), 2**31 - 1)
_RETRIED_STATUS = frozenset({500, 502, 503, 504})


class RegistryError(InfraError):
    """The Model Registry could not do what was asked."""


class RegistryUnavailable(RegistryError):
    """Not reachable, too slow, or answering 5xx, after every retry."""


class RegistryRefused(RegistryError):
    """A 4xx answer: the request is wrong (or not allowed); retrying would not help."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class RegistryBadResponse(RegistryError):
    """An answer that is not the API's (not JSON, or not the expected shape)."""


class RegistryAuthError(ConfigError):
    """A 401 or 403: the bearer token (from the environment variable ``token_env``) is missing,
    wrong, expired or not allowed. A configuration problem of the environment, not of the
    registry: the same exit code as a ``registry.token_env`` naming a variable that is not set."""

    def __init__(self, message: str, status: int, token_env: str) -> None:
        self.message, self.status, self.token_env = message, status, token_env
        super().__init__([Problem(file="conf", line=None, col=None, field="registry.token_env", message=message)])


def tagged(values: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Plain values -> the API's tagged ``customProperties`` (``None`` values are left out).

    ``str`` -> MetadataStringValue, ``bool`` -> MetadataBoolValue, ``float`` -> MetadataDoubleValue,
    ``int`` -> MetadataIntValue when it fits 32 bits (as the API's string), else a string;
    lists and mappings -> their JSON text in a MetadataStringValue.
    """
    out: dict[str, dict[str, Any]] = {}
    for key, value in values.items():
        if value is None:
            continue
        if isinstance(value, bool):
            out[key] = {"metadataType": "MetadataBoolValue", "bool_value": value}
        elif isinstance(value, int):
            if _INT32[0] <= value <= _INT32[1]:
                out[key] = {"metadataType": "MetadataIntValue", "int_value": str(value)}
            else:
                out[key] = {"metadataType": "MetadataStringValue", "string_value": str(value)}
        elif isinstance(value, float):
            out[key] = {"metadataType": "MetadataDoubleValue", "double_value": value}
        elif isinstance(value, (list, dict)):
            out[key] = {"metadataType": "MetadataStringValue", "string_value": json.dumps(value, sort_keys=True)}
        else:
            out[key] = {"metadataType": "MetadataStringValue", "string_value": str(value)}
    return out


def untagged(properties: dict[str, Any] | None) -> dict[str, Any]:
    """Tagged ``customProperties`` -> plain values (int_value back to int; others as sent)."""
    plain: dict[str, Any] = {}
    for key, value in (properties or {}).items():
        if not isinstance(value, dict):
            continue
        kind = value.get("metadataType")
        if kind == "MetadataIntValue":
            try:
                plain[key] = int(value.get("int_value", ""))
            except ValueError:
                plain[key] = value.get("int_value")
        elif kind == "MetadataDoubleValue":
            plain[key] = value.get("double_value")
        elif kind == "MetadataBoolValue":
            plain[key] = value.get("bool_value")
        elif kind == "MetadataStructValue":
            plain[key] = value.get("struct_value")
        else:
            plain[key] = value.get("string_value")
    return plain


class RegistryClient:
    """The Model Registry at ``url`` (its root; the API prefix is found on first use)."""

    def __init__(self, url: str, *, token: str | None = None, token_env: str = "", timeout_s: float = 5.0,
                 retries: int = 3, backoff_s: float = 0.5, transport: httpx.BaseTransport | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        """``token_env``: the environment variable ``token`` was read from (named, never the token,
        when the registry refuses it)."""
        self.url = url.rstrip("/")
        self.token_env, self._has_token = token_env, bool(token)
        self.retries, self.backoff_s, self._sleep = retries, backoff_s, sleep
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout_s, transport=transport)
        self._prefix: str | None = None

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "RegistryClient":
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- HTTP ------------------------------------------------------------------------------

    @property
    def prefix(self) -> str:
        """``/api/model_registry/v1`` or, on a server without it, ``.../v1alpha3`` (asked once)."""
        if self._prefix is None:
            said = []
            for prefix in PREFIXES:
                response = self._send("GET", f"{prefix}/registered_models", params={"pageSize": "1"})
                if response.status_code == 200:
                    self._json(response, "GET", f"{prefix}/registered_models")
                    self._prefix = prefix
                    break
                if response.status_code not in _NOT_THIS_VERSION:
                    self._raise(response, "GET", f"{prefix}/registered_models")
                said.append(str(response.status_code))
            else:
                raise RegistryRefused(f"no Model Registry API at {self.url}: GET {' and '.join(PREFIXES)}"
                                      f"/registered_models answered {' and '.join(said)} (is the URL the "
                                      "registry's root?)", int(said[-1]))
        return self._prefix

    def api_url(self, path: str) -> str:
        """The full URL of an API path (e.g. ``/artifacts/7``), for people to follow."""
        return redact_text(f"{self.url}{self.prefix}{path}")

    def _send(self, method: str, path: str, *, params: dict[str, str] | None = None,
              body: dict[str, Any] | None = None) -> httpx.Response:
        """One request, retried on connection errors, timeouts and 5xx; the last answer."""
        failure = ""
        sent = None if body is None else redact(body, by_key=False)
        for attempt in range(self.retries + 1):
            if attempt:
                self._sleep(self.backoff_s * 2 ** (attempt - 1))
            try:
                response = self._http.request(method, path, params=params, json=sent)
            except (httpx.TransportError, httpx.TimeoutException) as exc:
                failure = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                continue
            if response.status_code not in _RETRIED_STATUS:
                return response
            failure = f"HTTP {response.status_code}: {_snippet(response.text)}"
        tries = f"{self.retries + 1} attempt{'s' if self.retries else ''}"
        raise RegistryUnavailable(f"the Model Registry at {self.url} is unavailable ({method} {path}, {tries}): {failure}")

    def _raise(self, response: httpx.Response, method: str, path: str) -> None:
        try:
            data = response.json()
            message = data.get("message") if isinstance(data, dict) else None
        except ValueError:
            message = None
        said = message or _snippet(response.text) or response.reason_phrase
        refused = f"the Model Registry at {self.url} refused {method} {path}: {response.status_code} {said}"
        if response.status_code in _AUTH_STATUS:
            raise RegistryAuthError(f"{refused}; {self._token_hint()}", response.status_code, self.token_env)
        raise RegistryRefused(refused, response.status_code)

    def _token_hint(self) -> str:
        if not self.token_env:
            return "no bearer token was sent (give one in an environment variable named by registry.token_env)"
        if not self._has_token:
            return (f"no bearer token was sent: featurekit reads it from the environment variable "
                    f"{self.token_env}, which is not set")
        return (f"the bearer token featurekit sent, from the environment variable {self.token_env}, was "
                "refused (expired, or without access to the registry?)")

    def _json(self, response: httpx.Response, method: str, path: str) -> dict[str, Any]:
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise RegistryBadResponse(f"the Model Registry at {self.url} answered {method} {path} with "
                                      f"{response.status_code} and a body that is not a JSON object: "
                                      f"{_snippet(response.text) or '(empty)'}")
        return data

    def request(self, method: str, path: str, *, params: dict[str, str] | None = None,
                body: dict[str, Any] | None = None, missing_ok: bool = False) -> dict[str, Any] | None:
        """``method`` on the API ``path`` (below the prefix): the JSON object answered; None for a
        404 when ``missing_ok``; the errors of the module doc otherwise."""
        full = f"{self.prefix}{path}"
        response = self._send(method, full, params=params, body=body)
        if response.status_code == 404 and missing_ok:
            return None
        if response.status_code >= 400:
            self._raise(response, method, full)
        return self._json(response, method, full)

    def _resource(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        found = self.request(method, path, **kwargs)
        assert found is not None
        if not isinstance(found.get("id"), str):
            raise RegistryBadResponse(f"the Model Registry at {self.url} answered {method} {self.prefix}{path} "
                                      f"without a resource id: {_snippet(json.dumps(found))}")
        return found

    # -- resources -------------------------------------------------------------------------

    def registered_models(self) -> list[dict[str, Any]]:
        """Every registered model, oldest first."""
        return list(self._pages("/registered_models", {"orderBy": "CREATE_TIME", "sortOrder": "ASC"}))

    def model_versions(self) -> list[dict[str, Any]]:
        """Every version of every registered model (``registeredModelId`` names its model), oldest first."""
        return list(self._pages("/model_versions", {"orderBy": "CREATE_TIME", "sortOrder": "ASC"}))

    def find_registered_model(self, name: str) -> dict[str, Any] | None:
        return self.request("GET", "/registered_model", params={"name": name}, missing_ok=True)

    def registered_model(self, name: str, **fields: Any) -> dict[str, Any]:
        """The registered model ``name``, created with ``fields`` if absent."""
        found = self.find_registered_model(name)
        if found is not None:
            return found
        return self._create_or(lambda: self.find_registered_model(name), "/registered_models", {"name": name, **fields})

    def find_model_version(self, model_id: str, name: str) -> dict[str, Any] | None:
        return self.request("GET", "/model_version", params={"name": name, "parentResourceId": model_id},
                            missing_ok=True)

    def model_version(self, model_id: str, name: str, **fields: Any) -> dict[str, Any]:
        """Version ``name`` of the registered model ``model_id``, created with ``fields`` if absent."""
        found = self.find_model_version(model_id, name)
        if found is not None:
            return found
        return self._create_or(lambda: self.find_model_version(model_id, name), "/model_versions",
                               {"name": name, "registeredModelId": model_id, **fields})

    def set_version_properties(self, version: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
        """PATCH the model version ``version`` (as found) with ``values`` added to its customProperties
        (nothing is sent when it has them already). The properties it has are sent with them: a
        PATCH may replace the whole map (the embedded registry's does)."""
        had = version.get("customProperties") or {}
        if all(untagged(had).get(key) == value for key, value in values.items() if value is not None):
            return version
        return self._resource("PATCH", f"/model_versions/{version['id']}",
                              body={"customProperties": {**had, **tagged(values)}})

    def get_artifact(self, artifact_id: str) -> dict[str, Any] | None:
        return self.request("GET", f"/artifacts/{artifact_id}", missing_ok=True)

    def find_artifact(self, external_id: str) -> dict[str, Any] | None:
        return self.request("GET", "/artifact", params={"externalId": external_id}, missing_ok=True)

    def artifact(self, body: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """Create the artifact ``body`` (which has an ``externalId``) or find the one that has it:
        (the artifact, whether this call created it)."""
        external_id = body["externalId"]
        response = self._send("POST", f"{self.prefix}/artifacts", body=body)
        if response.status_code == 409:
            found = self.find_artifact(external_id)
            if found is None:
                self._raise(response, "POST", f"{self.prefix}/artifacts")
            assert found is not None
            return found, False
        if response.status_code >= 400:
            self._raise(response, "POST", f"{self.prefix}/artifacts")
        created = self._json(response, "POST", f"{self.prefix}/artifacts")
        if not isinstance(created.get("id"), str):
            raise RegistryBadResponse(f"the Model Registry at {self.url} created an artifact without an id: "
                                      f"{_snippet(response.text)}")
        return created, True

    def link(self, version_id: str, artifact_id: str, artifact_type: str = DATASET) -> dict[str, Any]:
        """Attach the existing artifact to the model version (many-to-many; linking twice is a no-op)."""
        return self._resource("POST", f"/model_versions/{version_id}/artifacts",
                              body={"artifactType": artifact_type, "id": artifact_id})

    def version_model_artifact(self, version_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """The version's model artifact set to ``body`` (uri, model format...): the one it has is
        updated in place, else one is created under it."""
        existing = self.version_artifacts(version_id, MODEL)
        if existing:
            # an artifact's name cannot change (the update body has none)
            changes = {k: v for k, v in body.items() if k != "name"}
            return self._resource("PATCH", f"/model_artifacts/{existing[0]['id']}", body=changes)
        return self._resource("POST", f"/model_versions/{version_id}/artifacts", body={"artifactType": MODEL, **body})

    def version_artifacts(self, version_id: str, artifact_type: str | None = None) -> list[dict[str, Any]]:
        params = {"artifactType": artifact_type} if artifact_type else {}
        return list(self._pages(f"/model_versions/{version_id}/artifacts", params))

    def artifacts(self, filter_query: str, *, artifact_type: str | None = DATASET, newest_first: bool = True,
                  limit: int | None = None) -> list[dict[str, Any]]:
        """Artifacts matching ``filter_query`` (the API's SQL-like filter), newest first by default."""
        params = {"filterQuery": filter_query, "orderBy": "CREATE_TIME", "sortOrder": "DESC" if newest_first else "ASC"}
        if artifact_type:
            params["artifactType"] = artifact_type
        found: list[dict[str, Any]] = []
        for item in self._pages("/artifacts", params, page_size=min(limit or 100, 100)):
            found.append(item)
            if limit is not None and len(found) >= limit:
                break
        return found

    # -- serving: where a model version is deployed ------------------------------------------

    def find_serving_environment(self, name: str) -> dict[str, Any] | None:
        return self.request("GET", "/serving_environment", params={"name": name}, missing_ok=True)

    def serving_environment(self, name: str, **fields: Any) -> dict[str, Any]:
        """The serving environment ``name`` (a Kubernetes namespace, as KServe's controllers name
        them), created with ``fields`` if absent."""
        found = self.find_serving_environment(name)
        if found is not None:
            return found
        return self._create_or(lambda: self.find_serving_environment(name), "/serving_environments",
                               {"name": name, **fields})

    def find_inference_service(self, environment_id: str, name: str) -> dict[str, Any] | None:
        return self.request("GET", "/inference_service", params={"name": name, "parentResourceId": environment_id},
                            missing_ok=True)

    def inference_service(self, environment_id: str, name: str, registered_model_id: str,
                          **fields: Any) -> tuple[dict[str, Any], bool]:
        """The inference service ``name`` of the serving environment, created with ``fields`` or,
        when it exists, updated to them: (the resource, whether this call created it). Its
        registered model cannot change (the API has no field for it): the caller checks."""
        found = self.find_inference_service(environment_id, name)
        if found is None:
            body = {"name": name, "servingEnvironmentId": environment_id, "registeredModelId": registered_model_id,
                    **fields}
            response = self._send("POST", f"{self.prefix}/inference_services", body=body)
            if response.status_code != 409:  # 409: created meanwhile (a retry, a concurrent render)
                return self._created(response, "/inference_services"), True
            found = self.find_inference_service(environment_id, name)
            if found is None:
                self._raise(response, "POST", f"{self.prefix}/inference_services")
        assert found is not None
        return self._resource("PATCH", f"/inference_services/{found['id']}", body=fields), False

    def inference_services(self, filter_query: str = "") -> list[dict[str, Any]]:
        """Inference services matching ``filter_query`` (e.g. ``modelVersionId = "7"``), oldest first."""
        return list(self._pages("/inference_services", {"filterQuery": filter_query} if filter_query else {}))

    def serves(self, inference_service_id: str) -> list[dict[str, Any]]:
        """The serve models (serving actions) of an inference service, oldest first."""
        return list(self._pages(f"/inference_services/{inference_service_id}/serves", {}))

    def serve_model(self, inference_service_id: str, model_version_id: str, **fields: Any) -> tuple[dict[str, Any], bool]:
        """The serve model of ``model_version_id`` in the inference service, created with ``fields``
        if it has none: (the resource, whether this call created it)."""
        for serve in self.serves(inference_service_id):
            if serve.get("modelVersionId") == model_version_id:
                return serve, False
        return self._resource("POST", f"/inference_services/{inference_service_id}/serves",
                              body={"modelVersionId": model_version_id, **fields}), True

    def _pages(self, path: str, params: dict[str, str], page_size: int = 100) -> Iterator[dict[str, Any]]:
        token = ""
        while True:
            query = {**params, "pageSize": str(page_size), **({"nextPageToken": token} if token else {})}
            page = self.request("GET", path, params=query)
            assert page is not None
            items = page.get("items")
            if not isinstance(items, list):
                raise RegistryBadResponse(f"the Model Registry at {self.url} answered GET {self.prefix}{path} "
                                          f"without a list of items: {_snippet(json.dumps(page))}")
            yield from items
            token = page.get("nextPageToken") or ""
            if not token or not items:
                return

    def _create_or(self, find: Callable[[], dict[str, Any] | None], path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST ``body`` to ``path``; if it already exists (409: a concurrent or retried create), find it."""
        response = self._send("POST", f"{self.prefix}{path}", body=body)
        if response.status_code == 409:
            found = find()
            if found is not None:
                return found
        return self._created(response, path)

    def _created(self, response: httpx.Response, path: str) -> dict[str, Any]:
        """The resource a POST to ``path`` answered with; the errors of the module doc otherwise."""
        if response.status_code >= 400:
            self._raise(response, "POST", f"{self.prefix}{path}")
        created = self._json(response, "POST", f"{self.prefix}{path}")
        if not isinstance(created.get("id"), str):
            raise RegistryBadResponse(f"the Model Registry at {self.url} created a resource without an id "
                                      f"(POST {self.prefix}{path}): {_snippet(response.text)}")
        return created


def existing_version(client: RegistryClient, model: str, version: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The registered model ``model`` and its version ``version``; NotFound (exit 2) naming the
    missing one (``--model`` / ``--version``)."""
    registered = client.find_registered_model(model)
    if registered is None:
        raise NotFound("registered model", model, f"no registered model {model!r} in the Model Registry at "
                       f"{client.url}", param="model")
    found = client.find_model_version(registered["id"], version)
    if found is None:
        raise NotFound("model version", version, f"registered model {model!r} has no version {version!r} in the "
                       f"Model Registry at {client.url}", param="version")
    return registered, found


def registry_client(settings: Settings) -> RegistryClient:
    """A client of the environment's registry (``FEATUREKIT_REGISTRY_URL`` wins over conf), with the
    bearer token of ``registry.token_env`` (required then), else of ``FEATUREKIT_REGISTRY_TOKEN`` if set.
    Here rather than in the pipeline's lineage wiring so that serving reaches it without the batch side."""
    conf = settings.registry
    token = os.environ.get(conf.token_variable) or None
    if conf.token_env and not token:
        raise ConfigError.single(f"registry.token_env names the environment variable {conf.token_env}, "
                                 "which is not set (or empty)", file="conf", field="registry.token_env")
    return RegistryClient(conf.effective_url, token=token, token_env=conf.token_variable, timeout_s=conf.timeout_s,
                          retries=conf.retries, backoff_s=conf.backoff_s)


def _snippet(text: str, limit: int = 160) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit] + "…"
