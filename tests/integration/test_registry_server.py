"""The embedded Model Registry (``featurekit registry serve``) over real HTTP, against the spec.

One server per module (uvicorn in a thread on a free loopback port, SQLite in a temp folder).
Every response it sends is validated against the vendored OpenAPI spec
(``tests/contracts/model-registry-v1alpha3.yaml``, with ``/v1`` paths checked as their
``/v1alpha3`` twins) by a recorder wrapped around the app; every request the featurekit-side
client (``registry.http``) sends is validated before it leaves. Tests of bad input use
``registry.raw``, whose requests are not checked (their responses still are). No Spark.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from featurekit.registry import create_registry_app
from tests.integration.registry_helpers import ALPHA, V1, Contract, Recorder
from tests.integration.registry_helpers import serve as _serve

pytestmark = pytest.mark.registry

T = TypeVar("T")


@dataclass
class Registry:
    url: str
    http: httpx.Client      # what featurekit sends: requests checked against the spec
    raw: httpx.Client       # deliberately bad requests
    recorder: Recorder
    port: int


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    contract = Contract()
    recorder = Recorder(create_registry_app(tmp_path_factory.mktemp("registry") / "registry.db"), contract)
    server, thread, port = _serve(recorder)
    url = f"http://127.0.0.1:{port}"

    def check_request(request: httpx.Request) -> None:
        request.read()
        problems = contract.request_problems(request.method, request.url.path, request.url.query.decode(),
                                             {k.lower(): v for k, v in request.headers.items()}, request.content)
        assert not problems, "\n".join(problems)

    def check_response(response: httpx.Response) -> None:
        problems, recorder.problems[:] = list(recorder.problems), []
        assert not problems, "\n".join(problems)

    auth = {"Authorization": "Bearer featurekit-test"}  # the spec asks for one; the embedded server ignores it
    http = httpx.Client(base_url=url, headers=auth, timeout=10,
                        event_hooks={"request": [check_request], "response": [check_response]})
    raw = httpx.Client(base_url=url, headers=auth, timeout=10, event_hooks={"response": [check_response]})
    try:
        yield Registry(url, http, raw, recorder, port)
    finally:
        http.close()
        raw.close()
        server.should_exit = True
        thread.join(timeout=10)
    assert not recorder.problems, "\n".join(recorder.problems)


def _dataset(name: str, **extra: Any) -> dict[str, Any]:
    """A DataSet artifact as featurekit records a training set."""
    return {"artifactType": "dataset-artifact", "name": name, "uri": f"file:///lake/{name}", "sourceType": "delta",
            "customProperties": {"delta_version": {"metadataType": "MetadataIntValue", "int_value": "3"},
                                 "rows": {"metadataType": "MetadataDoubleValue", "double_value": 1.2e10},
                                 "job": {"metadataType": "MetadataStringValue", "string_value": name}},
            **extra}


def _model_and_version(http: httpx.Client, prefix: str, name: str, version: str = "1") -> tuple[dict, dict]:
    model = http.post(f"{prefix}/registered_models", json={"name": name, "owner": "featurekit"})
    assert model.status_code == 201, model.text
    created = http.post(f"{prefix}/model_versions",
                        json={"name": version, "registeredModelId": model.json()["id"], "author": "ci"})
    assert created.status_code == 201, created.text
    return model.json(), created.json()


# -- contract tests ------------------------------------------------------------------------------

@pytest.mark.parametrize("prefix", [ALPHA, V1])
def test_models_versions_and_artifacts_round_trip(registry: Registry, prefix: str) -> None:
    http, tag = registry.http, prefix.rsplit("/", 1)[1]
    model = http.post(f"{prefix}/registered_models", json={
        "name": f"eta-{tag}", "externalId": f"model:eta-{tag}", "description": "minutes to arrival",
        "customProperties": {"team": {"metadataType": "MetadataStringValue", "string_value": "dispatch"}}})
    assert model.status_code == 201
    rm = model.json()
    assert rm["name"] == f"eta-{tag}" and rm["state"] == "LIVE" and rm["id"].isdigit()
    assert int(rm["createTimeSinceEpoch"]) == int(rm["lastUpdateTimeSinceEpoch"]) > 1_700_000_000_000
    assert (model.headers.get("Deprecation") == "true") == (prefix == ALPHA)

    assert http.get(f"{prefix}/registered_models/{rm['id']}").json() == rm
    assert http.get(f"{prefix}/registered_model", params={"name": f"eta-{tag}"}).json()["id"] == rm["id"]
    assert http.get(f"{prefix}/registered_model", params={"externalId": f"model:eta-{tag}"}).json()["id"] == rm["id"]

    v1 = http.post(f"{prefix}/registered_models/{rm['id']}/versions",
                   json={"name": "1", "author": "ci", "registeredModelId": rm["id"]})
    v2 = http.post(f"{prefix}/model_versions", json={"name": "2", "registeredModelId": rm["id"]})
    assert (v1.status_code, v2.status_code) == (201, 201)
    assert v1.json()["registeredModelId"] == v2.json()["registeredModelId"] == rm["id"]
    versions = http.get(f"{prefix}/registered_models/{rm['id']}/versions").json()
    assert [v["name"] for v in versions["items"]] == ["1", "2"] and versions["size"] == 2
    found = http.get(f"{prefix}/model_version", params={"name": "2", "parentResourceId": rm["id"]}).json()
    assert found["id"] == v2.json()["id"]

    dataset = http.post(f"{prefix}/model_versions/{v1.json()['id']}/artifacts",
                        json=_dataset(f"trips-{tag}", externalId=f"dataset:trips-{tag}", digest="sha256:ab"))
    assert dataset.status_code == 201
    ds = dataset.json()
    assert ds["artifactType"] == "dataset-artifact" and ds["digest"] == "sha256:ab"
    assert ds["customProperties"]["delta_version"] == {"metadataType": "MetadataIntValue", "int_value": "3"}
    assert http.get(f"{prefix}/artifacts/{ds['id']}").json() == ds
    assert http.get(f"{prefix}/artifact", params={"externalId": f"dataset:trips-{tag}"}).json() == ds
    listed = http.get(f"{prefix}/model_versions/{v1.json()['id']}/artifacts").json()
    assert [a["id"] for a in listed["items"]] == [ds["id"]]

    # PATCH changes what it is given, keeps the rest, and moves lastUpdateTimeSinceEpoch
    time.sleep(0.002)
    patched = http.patch(f"{prefix}/registered_models/{rm['id']}", json={"state": "ARCHIVED"}).json()
    assert patched["state"] == "ARCHIVED" and patched["description"] == "minutes to arrival"
    assert int(patched["lastUpdateTimeSinceEpoch"]) > int(rm["lastUpdateTimeSinceEpoch"])
    assert patched["createTimeSinceEpoch"] == rm["createTimeSinceEpoch"]
    assert http.patch(f"{prefix}/model_versions/{v2.json()['id']}", json={"author": "bob"}).json()["author"] == "bob"
    # null is not a value in the spec (nothing is nullable): a client's null clears the field
    cleared = registry.raw.patch(f"{prefix}/registered_models/{rm['id']}", json={"description": None}).json()
    assert "description" not in cleared and cleared["state"] == "ARCHIVED"
    assert http.patch(f"{prefix}/artifacts/{ds['id']}",
                      json={"artifactType": "dataset-artifact", "state": "LIVE"}).json()["state"] == "LIVE"


def test_external_id_is_the_idempotency_key(registry: Registry) -> None:
    """featurekit retries create-or-find: a second create is 409, the find returns the first."""
    http = registry.http
    first = http.post(f"{V1}/artifacts", json=_dataset("features-run-7", externalId="featurekit:run-7:trips"))
    again = http.post(f"{V1}/artifacts", json=_dataset("features-run-7", externalId="featurekit:run-7:trips"))
    assert (first.status_code, again.status_code) == (201, 409)
    assert again.json() == {"code": "409", "message": "externalId 'featurekit:run-7:trips' is already used by "
                                                      f"artifact {first.json()['id']}"}
    assert http.get(f"{V1}/artifact", params={"externalId": "featurekit:run-7:trips"}).json()["id"] == first.json()["id"]
    only = http.get(f"{V1}/artifacts", params={"filterQuery": 'externalId = "featurekit:run-7:trips"'}).json()
    assert only["size"] == 1
    # unique across kinds, as the spec says ("among all resources")
    taken = http.post(f"{V1}/registered_models", json={"name": "other", "externalId": "featurekit:run-7:trips"})
    assert taken.status_code == 409
    # names: registered models unique, versions unique within their model
    _model_and_version(http, V1, "dup-model")
    assert http.post(f"{V1}/registered_models", json={"name": "dup-model"}).json()["code"] == "409"
    model_id = http.get(f"{V1}/registered_model", params={"name": "dup-model"}).json()["id"]
    twice = http.post(f"{V1}/model_versions", json={"name": "1", "registeredModelId": model_id})
    assert twice.status_code == 409 and "already has a version named '1'" in twice.json()["message"]


def test_a_dataset_artifact_links_to_two_model_versions(registry: Registry) -> None:
    http = registry.http
    _, first = _model_and_version(http, V1, "link-a")
    _, second = _model_and_version(http, ALPHA, "link-b")
    dataset = http.post(f"{V1}/artifacts", json=_dataset("shared-training-set", externalId="shared-ts")).json()
    link = {"artifactType": "dataset-artifact", "id": dataset["id"]}
    assert http.post(f"{V1}/model_versions/{first['id']}/artifacts", json=link).status_code == 200
    assert http.post(f"{ALPHA}/model_versions/{second['id']}/artifacts", json=link).status_code == 200
    assert http.post(f"{V1}/model_versions/{first['id']}/artifacts", json=link).status_code == 200  # no duplicate
    for version in (first, second):
        items = http.get(f"{V1}/model_versions/{version['id']}/artifacts").json()["items"]
        assert [a["id"] for a in items] == [dataset["id"]]
    assert http.get(f"{V1}/artifacts", params={"filterQuery": 'name = "shared-training-set"'}).json()["size"] == 1
    # linking with a new property value updates the artifact (upsert), still one artifact
    upsert = {**link, "description": "trips 2026-01"}
    assert http.post(f"{V1}/model_versions/{second['id']}/artifacts", json=upsert).json()["description"] == "trips 2026-01"
    wrong = registry.raw.post(f"{V1}/model_versions/{first['id']}/artifacts",
                              json={"artifactType": "model-artifact", "id": dataset["id"]})
    assert wrong.status_code == 400 and wrong.json()["message"] == (
        f"artifact {dataset['id']} is a dataset-artifact, not a model-artifact")


def test_paging_through_25_artifacts(registry: Registry) -> None:
    http = registry.http
    _, version = _model_and_version(http, V1, "paged")
    created = [http.post(f"{V1}/model_versions/{version['id']}/artifacts",
                         json=_dataset(f"part-{i:02d}", externalId=f"paged:{i}")).json()["id"] for i in range(25)]
    for url, params in [(f"{V1}/model_versions/{version['id']}/artifacts", {}),
                        (f"{ALPHA}/artifacts", {"filterQuery": 'externalId != "x" AND sourceType = "delta"',
                                                "artifactType": "dataset-artifact"})]:
        seen, sizes, token = [], [], ""
        while True:
            page = http.get(url, params={**params, "pageSize": "10", "orderBy": "ID",
                                         **({"nextPageToken": token} if token else {})}).json()
            sizes.append(page["size"])
            assert page["pageSize"] == 10
            seen += [a["id"] for a in page["items"] if a["id"] in created]
            token = page["nextPageToken"]
            if not token:
                break
        assert seen == created
        if not params:
            assert sizes == [10, 10, 5]
    newest_first = http.get(f"{V1}/model_versions/{version['id']}/artifacts",
                            params={"pageSize": "3", "orderBy": "CREATE_TIME", "sortOrder": "DESC"}).json()
    assert [a["id"] for a in newest_first["items"]] == created[::-1][:3]
    second = http.get(f"{V1}/model_versions/{version['id']}/artifacts",
                      params={"pageSize": "3", "orderBy": "CREATE_TIME", "sortOrder": "DESC",
                              "nextPageToken": newest_first["nextPageToken"]}).json()
    assert [a["id"] for a in second["items"]] == created[::-1][3:6]
    # a token only works for the query it came from
    misused = registry.raw.get(f"{V1}/artifacts", params={"nextPageToken": newest_first["nextPageToken"]})
    assert misused.status_code == 400 and "belongs to another query" in misused.json()["message"]
    forged = registry.raw.get(f"{V1}/artifacts", params={"nextPageToken": "not-a-token"})
    assert forged.status_code == 400 and "was not issued by this registry" in forged.json()["message"]


def test_filter_query_on_name_external_id_and_properties(registry: Registry) -> None:
    http = registry.http
    ids = {}
    for name, version, job in [("fq-a", "3", "trips"), ("fq-b", "3", "drivers"), ("fq-c", "4", "trips")]:
        body = _dataset(name, externalId=f"fq:{name}")
        body["customProperties"]["delta_version"]["int_value"] = version
        body["customProperties"]["job"]["string_value"] = job
        ids[name] = http.post(f"{V1}/artifacts", json=body).json()["id"]

    def names(query: str) -> list[str]:
        found = http.get(f"{V1}/artifacts", params={"filterQuery": query}).json()["items"]
        return sorted(a["name"] for a in found if a["name"].startswith("fq-"))

    assert names('name = "fq-b"') == ["fq-b"]
    assert names("externalId = 'fq:fq-c'") == ["fq-c"]
    assert names('job = "trips"') == ["fq-a", "fq-c"]
    assert names('job.string_value = "trips" AND delta_version.int_value = 3') == ["fq-a"]
    assert names('delta_version = 4 and name != "x"') == ["fq-c"]
    assert names('`job` = "drivers" AND artifactType = "dataset-artifact"') == ["fq-b"]
    assert names(f'id = {ids["fq-a"]}') == ["fq-a"]
    assert names('job.int_value = 3') == []
    refused = registry.raw.get(f"{V1}/artifacts", params={"filterQuery": 'name = "fq-a" OR name = "fq-b"'})
    assert refused.status_code == 400
    assert refused.json()["message"] == ("filterQuery 'name = \"fq-a\" OR name = \"fq-b\"': 'OR' is not supported "
                                         "(supported here: property = value terms (also !=) joined by AND)")
    typo = registry.raw.get(f"{V1}/artifacts", params={"filterQuery": "job.string_valu = 'x'"})
    assert typo.status_code == 400 and typo.json()["message"] == (
        "filterQuery: 'string_valu' is not a value type — did you mean 'string_value'? "
        "(quote a property name with dots in backticks: `a.b`)")


def test_unknown_resources_are_404_with_an_error_body(registry: Registry) -> None:
    http = registry.http
    for path, message in [
        (f"{V1}/registered_models/999999", "no registered model with id 999999"),
        (f"{ALPHA}/model_versions/999999", "no model version with id 999999"),
        (f"{V1}/artifacts/999999", "no artifact with id 999999"),
        (f"{V1}/model_versions/999999/artifacts", "no model version with id 999999"),
        (f"{ALPHA}/registered_models/999999/versions", "no registered model with id 999999"),
        (f"{V1}/model_artifacts/999999", "no artifact with id 999999"),
    ]:
        got = http.get(path)
        assert (got.status_code, got.json()) == (404, {"code": "404", "message": message}), path
    for path, params in [(f"{V1}/registered_model", {"name": "nope"}), (f"{V1}/artifact", {"externalId": "nope"}),
                         (f"{ALPHA}/model_version", {"name": "1", "parentResourceId": "999999"}),
                         (f"{V1}/model_artifact", {"externalId": "nope"})]:
        got = http.get(path, params=params)
        assert got.status_code == 404 and got.json()["message"].startswith("no "), path
    for path, message in [
        (f"{V1}/serving_environments/999999", "no serving environment with id 999999"),
        (f"{ALPHA}/inference_services/999999", "no inference service with id 999999"),
        (f"{V1}/inference_services/999999/serves", "no inference service with id 999999"),
        (f"{V1}/inference_services/999999/version", "no inference service with id 999999"),
        (f"{V1}/serving_environments/999999/inference_services", "no serving environment with id 999999"),
    ]:
        got = http.get(path)
        assert (got.status_code, got.json()) == (404, {"code": "404", "message": message}), path
    # experiments (not in v1) are not served
    for path in (f"{V1}/experiments", f"{ALPHA}/experiments"):
        unserved = registry.raw.get(path)
        assert (unserved.status_code, unserved.json()["message"]) == (404, f"no such endpoint: GET {path}")


@pytest.mark.parametrize("prefix", [ALPHA, V1])
def test_serving_environments_inference_services_and_serve_models(registry: Registry, prefix: str) -> None:
    http, raw, tag = registry.http, registry.raw, prefix.rsplit("/", 1)[1]
    model, v1 = _model_and_version(http, prefix, f"served-{tag}")
    v2 = http.post(f"{prefix}/model_versions", json={"name": "2", "registeredModelId": model["id"]}).json()
    created = http.post(f"{prefix}/serving_environments", json={"name": f"team-{tag}", "description": "namespace"})
    assert created.status_code == 201
    env = created.json()
    assert http.get(f"{prefix}/serving_environment", params={"name": f"team-{tag}"}).json() == env
    assert http.get(f"{prefix}/serving_environments/{env['id']}").json() == env
    assert http.patch(f"{prefix}/serving_environments/{env['id']}", json={"externalId": f"ns:{tag}"}).json()[
        "externalId"] == f"ns:{tag}"
    twice = raw.post(f"{prefix}/serving_environments", json={"name": f"team-{tag}"})
    assert (twice.status_code, twice.json()["message"]) == (409, f"a serving environment named 'team-{tag}' already exists")

    # an inference service of version 1, and one naming no version (it serves the latest)
    body = {"name": "eta", "registeredModelId": model["id"], "servingEnvironmentId": env["id"],
            "modelVersionId": v1["id"], "runtime": "kserve"}
    created = http.post(f"{prefix}/inference_services", json=body)
    assert created.status_code == 201  # as every create, and as the official client reads it (the spec says 200)
    isvc = created.json()
    assert {k: isvc[k] for k in body} == body and isvc["desiredState"] == "DEPLOYED"
    latest = http.post(f"{prefix}/serving_environments/{env['id']}/inference_services",
                       json={"name": "eta-latest", "registeredModelId": model["id"], "servingEnvironmentId": env["id"]})
    assert latest.status_code == 201 and latest.json()["servingEnvironmentId"] == env["id"]
    assert http.get(f"{prefix}/inference_service", params={"name": "eta", "parentResourceId": env["id"]}).json() == isvc
    listed = http.get(f"{prefix}/serving_environments/{env['id']}/inference_services").json()
    assert [i["name"] for i in listed["items"]] == ["eta", "eta-latest"]
    assert http.get(f"{prefix}/inference_services/{isvc['id']}/model").json()["id"] == model["id"]
    assert http.get(f"{prefix}/inference_services/{isvc['id']}/version").json()["id"] == v1["id"]
    assert http.get(f"{prefix}/inference_services/{latest.json()['id']}/version").json()["id"] == v2["id"]

    # what it served: serve models, whose state starts unknown
    served = http.post(f"{prefix}/inference_services/{isvc['id']}/serves", json={"modelVersionId": v1["id"]})
    assert served.status_code == 201 and served.json()["lastKnownState"] == "UNKNOWN"
    time.sleep(0.002)
    moved = http.patch(f"{prefix}/inference_services/{isvc['id']}",
                       json={"modelVersionId": v2["id"], "desiredState": "UNDEPLOYED"}).json()
    assert (moved["modelVersionId"], moved["desiredState"], moved["runtime"]) == (v2["id"], "UNDEPLOYED", "kserve")
    assert int(moved["lastUpdateTimeSinceEpoch"]) > int(isvc["lastUpdateTimeSinceEpoch"])
    http.post(f"{prefix}/inference_services/{isvc['id']}/serves",
              json={"modelVersionId": v2["id"], "lastKnownState": "RUNNING", "name": "rollout-2"})
    serves = http.get(f"{prefix}/inference_services/{isvc['id']}/serves").json()["items"]
    assert [(s["modelVersionId"], s["lastKnownState"]) for s in serves] == [(v1["id"], "UNKNOWN"), (v2["id"], "RUNNING")]
    assert http.get(f"{prefix}/inference_services/{isvc['id']}/serves", params={"name": "rollout-2"}).json()["size"] == 1
    by_version = http.get(f"{prefix}/inference_services", params={"filterQuery": f'modelVersionId = "{v2["id"]}"'})
    assert [i["id"] for i in by_version.json()["items"]] == [isvc["id"]]

    # refusals, each with its reason
    other, other_version = _model_and_version(http, prefix, f"other-{tag}")
    for path, sent, status, message in [
        (f"{prefix}/inference_services", {**body, "desiredState": "RUNNING"}, 400,
         "desiredState: Input should be 'DEPLOYED' or 'UNDEPLOYED'"),
        (f"{prefix}/inference_services", body, 409,
         f"serving environment {env['id']} already has an inference service named 'eta'"),
        (f"{prefix}/inference_services", {**body, "name": "x", "modelVersionId": other_version["id"]}, 400,
         f"modelVersionId {other_version['id']} is a version of registered model {other['id']}, not of registered "
         f"model {model['id']}"),
        (f"{prefix}/inference_services", {**body, "name": "x", "servingEnvironmentId": "999999"}, 400,
         "servingEnvironmentId 999999: no such serving environment"),
        (f"{prefix}/inference_services/{isvc['id']}/serves", {"modelVersionId": v1["id"], "lastKnownState": "up"},
         400, "lastKnownState: Input should be 'UNKNOWN', 'NEW', 'RUNNING', 'COMPLETE', 'FAILED', 'CACHED' or "
              "'CANCELED'"),
        (f"{prefix}/inference_services/{isvc['id']}/serves", {"modelVersionId": other_version["id"]}, 400,
         f"modelVersionId {other_version['id']} is a version of registered model {other['id']}, not of registered "
         f"model {model['id']}"),
    ]:
        got = raw.post(path, json=sent)
        assert (got.status_code, got.json()) == (status, {"code": str(status), "message": message}), sent
    no_parent = raw.get(f"{prefix}/inference_service", params={"name": "eta"})
    assert no_parent.status_code == 400 and "parentResourceId" in no_parent.json()["message"]


def test_a_registry_file_of_an_older_featurekit_gains_the_serving_tables(tmp_path: Path) -> None:
    """A registry.db written before the serving resources (schema 1) is migrated in place, its resources kept."""
    import sqlite3

    from featurekit.registry.store import _SCHEMA, RegistryStore

    db = tmp_path / "registry.db"
    conn = sqlite3.connect(db)
    conn.executescript(_SCHEMA)
    conn.execute("INSERT INTO registered_models (name, created_ms, updated_ms, body) VALUES ('old', 1, 1, '{}')")
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    server, thread, port = _serve(create_registry_app(db))
    try:
        url = f"http://127.0.0.1:{port}{V1}"
        assert httpx.get(f"{url}/registered_model", params={"name": "old"}).json()["id"] == "1"
        env = httpx.post(f"{url}/serving_environments", json={"name": "ns"})
        isvc = httpx.post(f"{url}/inference_services", json={"registeredModelId": "1", "servingEnvironmentId": "1"})
        assert (env.status_code, isvc.status_code) == (201, 201)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    store = RegistryStore(db)
    try:
        assert store._connection().execute("PRAGMA user_version").fetchone()[0] == 2
    finally:
        store.close()
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA user_version = 9")
    conn.commit()
    conn.close()
    with pytest.raises(Exception, match="schema version 9; this featurekit reads up to 2"):
        RegistryStore(db)


def test_nothing_is_deletable_resources_are_archived(registry: Registry) -> None:
    http = registry.http
    model, version = _model_and_version(http, V1, "kept")
    dataset = http.post(f"{V1}/model_versions/{version['id']}/artifacts", json=_dataset("kept-ds")).json()
    for path in (f"{V1}/registered_models/{model['id']}", f"{ALPHA}/model_versions/{version['id']}",
                 f"{V1}/artifacts/{dataset['id']}"):
        gone = registry.raw.delete(path)
        assert gone.status_code == 405
        assert "nothing is deleted in the Model Registry: archive through state" in gone.json()["message"]
        assert http.get(path).status_code == 200
    archived = http.patch(f"{V1}/model_versions/{version['id']}", json={"state": "ARCHIVED"}).json()
    assert archived["state"] == "ARCHIVED"
    assert http.get(f"{V1}/model_versions", params={"filterQuery": 'state = "ARCHIVED" AND name = "1"'}).json()[
        "items"][0]["id"] == version["id"]


def test_bad_bodies_are_400_with_the_reason(registry: Registry) -> None:
    raw = registry.raw
    cases = [
        (f"{V1}/registered_models", {"name": "x", "descripton": "typo"},
         "descripton: unknown field — did you mean 'description'?"),
        (f"{V1}/artifacts", {"name": "x", "uri": "s3://x"},
         "artifactType: required, one of 'model-artifact', 'doc-artifact', 'dataset-artifact', 'metric', 'parameter'"),
        (f"{V1}/artifacts", {"artifactType": "dataset-artifact",
                             "customProperties": {"rows": {"metadataType": "MetadataIntValue", "int_value": 7}}},
         'customProperties.rows.int_value: expected a string holding a 32-bit integer, like "42"; got 7 '
         "(larger numbers: MetadataDoubleValue or MetadataStringValue)"),
        (f"{V1}/artifacts", {"artifactType": "dataset-artifact",
                             "customProperties": {"rows": {"metadataType": "MetadataIntValue",
                                                           "int_value": "12000000000"}}},
         'customProperties.rows.int_value: expected a string holding a 32-bit integer, like "42"; got '
         "'12000000000' (larger numbers: MetadataDoubleValue or MetadataStringValue)"),
        (f"{V1}/registered_models", {"name": ""}, "name: String should have at least 1 character"),
    ]
    for path, body, message in cases:
        got = raw.post(path, json=body)
        assert (got.status_code, got.json()) == (400, {"code": "400", "message": message}), body
    missing_parent = raw.post(f"{V1}/model_versions", json={"name": "1", "registeredModelId": "999999"})
    assert (missing_parent.status_code, missing_parent.json()["message"]) == (
        422, "registeredModelId 999999: no such registered model")
    not_json = raw.post(f"{V1}/registered_models", content=b"{nope", headers={"content-type": "application/json"})
    assert not_json.status_code == 400 and not_json.json()["message"].startswith("the request body is not JSON")


def test_concurrent_writers_and_a_restart_keep_every_resource(registry: Registry, tmp_path: Path) -> None:
    def create(i: int) -> int:
        return registry.http.post(f"{V1}/artifacts", json=_dataset(f"conc-{i}", externalId=f"conc:{i}")).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert list(pool.map(create, range(24))) == [201] * 24
    found = registry.http.get(f"{V1}/artifacts", params={"filterQuery": 'sourceType = "delta"', "pageSize": "1000"})
    assert {f"conc-{i}" for i in range(24)} <= {a["name"] for a in found.json()["items"]}

    # the same file served again (a restart) has what was written
    db = tmp_path / "registry.db"
    server, thread, port = _serve(create_registry_app(db))
    try:
        httpx.post(f"http://127.0.0.1:{port}{V1}/registered_models", json={"name": "survivor"}).raise_for_status()
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    server, thread, port = _serve(create_registry_app(db))
    try:
        again = httpx.get(f"http://127.0.0.1:{port}{V1}/registered_model", params={"name": "survivor"})
        assert again.status_code == 200 and again.json()["id"] == "1"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


# -- interop: the official client ----------------------------------------------------------------

def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    """The client's async runner: a fresh event loop per call (no global nest_asyncio patch)."""
    return asyncio.run(coroutine)


def test_the_official_client_registers_a_model_and_reads_featurekits_datasets(registry: Registry) -> None:
    from model_registry import ModelRegistry
    from model_registry.core import ModelRegistryAPIClient
    from model_registry.exceptions import StoreError
    from model_registry.types import DataSet, ModelArtifact

    start = len(registry.recorder.exchanges)
    client = ModelRegistry("http://127.0.0.1", registry.port, author="featurekit-ci", is_secure=False,
                           user_token="featurekit-test", async_runner=_run)
    model = client.register_model("driver-eta", "s3://models/driver-eta/1/model.onnx", version="1.0.0",
                                  model_format_name="onnx", model_format_version="1",
                                  version_description="trained on driver_rates",
                                  metadata={"feature_service": "driver_rates", "epochs": 12, "auc": 0.91})
    assert model.name == "driver-eta" and model.owner == "featurekit-ci"
    version = client.get_model_version("driver-eta", "1.0.0")
    assert version is not None and version.author == "featurekit-ci"
    assert version.description == "trained on driver_rates"
    assert version.custom_properties == {"feature_service": "driver_rates", "epochs": 12, "auc": 0.91}
    artifact = client.get_model_artifact("driver-eta", "1.0.0")
    assert artifact is not None and artifact.uri == "s3://models/driver-eta/1/model.onnx"
    assert (artifact.model_format_name, artifact.model_format_version) == ("onnx", "1")
    with pytest.raises(StoreError, match="Version 1.0.0 already exists"):
        client.register_model("driver-eta", "s3://elsewhere", version="1.0.0", model_format_name="onnx",
                              model_format_version="1")

    # featurekit attaches the training set it built (plain HTTP, as its lineage store does) ...
    dataset = registry.http.post(f"{V1}/artifacts", json=_dataset(
        "driver_rates-training-set", externalId="featurekit:training_set:run-42",
        digest="delta:v3", source="file:///lake/driver_rates")).json()
    linked = registry.http.post(f"{V1}/model_versions/{version.id}/artifacts",
                                json={"artifactType": "dataset-artifact", "id": dataset["id"]})
    assert linked.status_code == 200

    # ... and the official client reads it back with the model artifact
    api = ModelRegistryAPIClient.insecure_connection("http://127.0.0.1", registry.port, "featurekit-test")
    assert version.id is not None
    artifacts = _run(api.get_model_version_artifacts(version.id))
    by_type = {type(a): a for a in artifacts}
    assert set(by_type) == {ModelArtifact, DataSet}
    ds = by_type[DataSet]
    assert isinstance(ds, DataSet)
    assert (ds.id, ds.uri, ds.digest, ds.source_type) == (dataset["id"], "file:///lake/driver_rates-training-set",
                                                          "delta:v3", "delta")
    assert ds.custom_properties == {"delta_version": 3, "rows": 1.2e10, "job": "driver_rates-training-set"}
    searched = _run(api.get_artifacts(filter_query='externalId = "featurekit:training_set:run-42"'))
    assert [a.id for a in searched] == [dataset["id"]]
    assert [v.name for v in client.get_model_versions("driver-eta")] == ["1.0.0"]

    # the serving side, through the client's generated API: where that version is deployed
    from mr_openapi import InferenceServiceCreate, InferenceServiceUpdate, ServeModelCreate, ServingEnvironmentCreate

    async def deploy() -> tuple[Any, ...]:
        async with api.get_client() as mr:
            env = await mr.create_serving_environment(ServingEnvironmentCreate(name="prod"))
            isvc = await mr.create_inference_service(InferenceServiceCreate(
                name="driver-eta", registered_model_id=model.id, serving_environment_id=env.id,
                model_version_id=version.id, runtime="kserve"))
            serve = await mr.create_inference_service_serve(isvc.id, ServeModelCreate(model_version_id=version.id))
            await mr.update_inference_service(isvc.id, InferenceServiceUpdate(runtime="ovms"))
            found = await mr.find_inference_service(name="driver-eta", parent_resource_id=env.id)
            serves = await mr.get_inference_service_serves(isvc.id)
            served = await mr.get_inference_service_version(isvc.id)
            return isvc, serve, found, serves, served

    isvc, serve, found, serves, served = _run(deploy())
    assert isvc.id is not None and isvc.desired_state.value == "DEPLOYED"
    assert (found.id, found.runtime) == (isvc.id, "ovms")
    assert [s.id for s in serves.items] == [serve.id] and serve.last_known_state.value == "UNKNOWN"
    assert served.id == version.id

    # every exchange of this conversation, the client's requests included, is the spec's
    exchanges = registry.recorder.exchanges[start:]
    assert any(e.headers.get("user-agent", "").startswith("OpenAPI-Generator") for e in exchanges)
    problems = [p for e in exchanges for p in registry.recorder.contract.request_problems(
        e.method, e.path, e.query, e.headers, e.body)]
    assert not problems, "\n".join(problems)
    assert not registry.recorder.problems, "\n".join(registry.recorder.problems)
