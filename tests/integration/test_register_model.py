"""``featurekit lineage register-model``: a model version's model artifact, in the embedded
registry, read back with the official ``model-registry`` client."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from featurekit.config import Project, load_settings
from featurekit.lineage.client import MODEL, RegistryClient
from featurekit.pipeline.lineage import register_model
from featurekit.registry import create_registry_app
from tests.conftest import REPO
from tests.integration.registry_helpers import serve

pytestmark = pytest.mark.registry
T = TypeVar("T")


@pytest.fixture(scope="module")
def registry_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server, thread, port = serve(create_registry_app(tmp_path_factory.mktemp("registry") / "registry.db"))
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.new_event_loop().run_until_complete(coroutine)


def test_registering_again_updates_the_one_model_artifact(registry_url: str) -> None:
    from model_registry import ModelRegistry

    settings = load_settings(Project(REPO), "local")
    with RegistryClient(registry_url) as client:
        first = register_model(settings, "fare", "7", "s3://models/fare/7/", "sklearn", "1", client=client)
        second = register_model(settings, "fare", "7", "s3://models/fare/7b/", "xgboost", client=client)
        held = client.version_artifacts(first.version["id"], MODEL)

    assert second.artifact["id"] == first.artifact["id"] and [a["id"] for a in held] == [first.artifact["id"]]
    official = ModelRegistry(registry_url.rsplit(":", 1)[0], int(registry_url.rsplit(":", 1)[1]), author="ci",
                             is_secure=False, user_token="t", async_runner=_run)
    artifact = official.get_model_artifact("fare", "7")
    assert artifact is not None and artifact.uri == "s3://models/fare/7b/"
    # a format version given before stays unless a new one is given
    assert (artifact.model_format_name, artifact.model_format_version) == ("xgboost", "1")


def test_the_command_registers_and_refuses_a_uri_without_a_scheme(registry_url: str) -> None:
    def featurekit(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(Path(sys.executable).parent / "featurekit"), "--project", str(REPO),
                               "lineage", "register-model", "--model", "eta", "--version", "2", *args],
                              env={**os.environ, "FEATUREKIT_REGISTRY_URL": registry_url},
                              capture_output=True, text=True, timeout=120)

    done = featurekit("--uri", "gs://bucket/eta/2", "--format", "onnx:1")
    assert done.returncode == 0, done.stderr
    assert "model eta version 2" in done.stdout and "gs://bucket/eta/2 (onnx:1)" in done.stdout
    with RegistryClient(registry_url) as client:
        version = client.find_model_version(client.find_registered_model("eta")["id"], "2")
        assert [(a["uri"], a["modelFormatName"], a["modelFormatVersion"])
                for a in client.version_artifacts(version["id"], MODEL)] == [("gs://bucket/eta/2", "onnx", "1")]

    refused = featurekit("--uri", "models/eta", "--format", "onnx")
    assert refused.returncode == 2
    assert "expected a URI with a scheme" in refused.stderr and "'models/eta'" in refused.stderr
