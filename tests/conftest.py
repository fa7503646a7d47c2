"""Shared fixtures: the repository root and throw-away projects laid out like a user's."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Integration tests using the session's SparkSession are marked ``spark``; tests under e2e/
    run the CLI as a user would;
    tests using the Redis server are marked ``redis``."""
    for item in items:
        if "redis_server" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.redis)
        if "minio_server" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.s3)
        parts = Path(str(item.fspath)).parts
        if "integration" in parts and "spark" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.spark)
        if "e2e" in parts:
            item.add_marker(pytest.mark.e2e)
            item.add_marker(pytest.mark.spark)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real ``redis-server`` on loopback for the test run: its ``host:port``.

    Without the server a Redis test is skipped on a laptop but fails under CI (``CI`` set),
    where ``.ci/run`` installs it.
    """
    binary = shutil.which("redis-server")
    if binary is None:
        _missing("redis-server is not installed (apt-get install redis-server)")
    port = _free_port()
    folder = tmp_path_factory.mktemp("redis")
    process = subprocess.Popen(
        [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
         "--dir", str(folder), "--protected-mode", "yes"],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )
    import redis

    client = redis.Redis(host="127.0.0.1", port=port)
    _wait_until_ready(process, client.ping, redis.ConnectionError, f"redis-server did not start on 127.0.0.1:{port}")
    yield f"127.0.0.1:{port}"
    process.terminate()
    process.wait(timeout=20)


def _wait_until_ready(process: subprocess.Popen[bytes], probe: Callable[[], object], not_yet: type[Exception],
                      failure: str, seconds: float = 20) -> None:
    """Call ``probe`` until it stops raising ``not_yet``; fail the test run if the server exits or never answers."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            probe()
            return
        except not_yet:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(failure)
            time.sleep(0.05)


def _missing(message: str) -> None:
    """Skip on a laptop; under CI (``CI`` set), where ``.ci/run`` installs everything, fail."""
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


MINIO_USER, MINIO_PASSWORD = "featurekit-test", "featurekit-test-secret"


@pytest.fixture(scope="session")
def minio_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A real MinIO S3 server on loopback: its endpoint URL and data folder.

    Buckets are made by creating a folder under the data folder before the first request.
    ``make s3-deps`` builds the server into .featurekit/tools/.
    """
    binary = REPO / ".featurekit" / "tools" / "minio"
    if not binary.is_file():
        binary = Path(shutil.which("minio") or binary)
    if not binary.is_file():
        _missing("MinIO is not built: `make s3-deps` (needs Go) builds it into .featurekit/tools/")
    port, console = _free_port(), _free_port()
    data = tmp_path_factory.mktemp("minio")
    log = open(data.parent / f"{data.name}.log", "wb")  # noqa: SIM115 (kept open for the server's life)
    env = {**os.environ, "MINIO_ROOT_USER": MINIO_USER, "MINIO_ROOT_PASSWORD": MINIO_PASSWORD, "MINIO_BROWSER": "off"}
    process = subprocess.Popen(
        [str(binary), "server", "--quiet", "--address", f"127.0.0.1:{port}", "--console-address", f"127.0.0.1:{console}", str(data)],
        stdout=log, stderr=subprocess.STDOUT, env=env,
    )
    import httpx

    endpoint = f"http://127.0.0.1:{port}"
    _wait_until_ready(process, lambda: httpx.get(f"{endpoint}/minio/health/ready", timeout=1).raise_for_status(),
                      httpx.HTTPError, f"MinIO did not start on {endpoint} (log: {log.name})", seconds=30)
    yield endpoint, data
    process.terminate()
    process.wait(timeout=20)
    log.close()


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture
def make_project(tmp_path: Path) -> Callable[..., Path]:
    """A fresh project folder: the repository's conf/ plus the given job files.

    ``make_project({"name": "yaml text"})``; variables raw_root/lake_root point inside it.
    """

    def make(jobs: dict[str, str] | None = None, copy_jobs: bool = False) -> Path:
        root = tmp_path / "project"
        root.mkdir(exist_ok=True)
        shutil.copytree(REPO / "conf", root / "conf", dirs_exist_ok=True)
        (root / "jobs").mkdir(exist_ok=True)
        if copy_jobs:
            shutil.copytree(REPO / "jobs", root / "jobs", dirs_exist_ok=True)
        for name, text in (jobs or {}).items():
            (root / "jobs" / f"{name}.yaml").write_text(textwrap.dedent(text).lstrip())
        return root

    return make
