"""Real-browser tests: Debian's Chromium headless shell driven by Playwright, pages served on loopback.

Playwright never downloads a browser here (no ``playwright install``): it drives the system's
``chromium-headless-shell`` (``.ci/run`` installs it; ``FEATUREKIT_CHROMIUM`` names another
Chromium binary). Without it a browser test is skipped on a laptop and fails under CI. Playwright
only promises to work with the Chromium it was released with, so the run logs both versions and
stops when their majors drift more than :data:`MAX_MAJOR_DRIFT` apart (bump the pin in
pyproject.toml when Debian moves Chromium on).

Screenshots go to ``$FEATUREKIT_TEST_ARTIFACTS/browser/`` when that variable is set (CI keeps the
folder), else to a pytest temporary folder; the run's summary names the folder.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import uvicorn

from tests.conftest import _free_port, _missing

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

CHROMIUM = Path(os.environ.get("FEATUREKIT_CHROMIUM") or "/usr/lib/chromium/chromium-headless-shell")
ARTIFACTS_ENV = "FEATUREKIT_TEST_ARTIFACTS"
MAX_MAJOR_DRIFT = 2
log = logging.getLogger(__name__)
_summary: list[str] = []


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests using the browser are marked ``browser``."""
    for item in items:
        if "browser" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.browser)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _summary:
        terminalreporter.write_sep("-", "browser")
        for line in _summary:
            terminalreporter.write_line(line)


def expected_chromium() -> str:
    """The Chromium version the installed Playwright was released with (its driver's browsers.json)."""
    import playwright

    browsers = json.loads((Path(playwright.__file__).parent / "driver" / "package" / "browsers.json").read_text())
    return next(b["browserVersion"] for b in browsers["browsers"] if b["name"] == "chromium")


def major(version: str) -> int:
    return int(version.split(".", 1)[0])


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    """Headless Chromium for the browser tests (one process; each test opens its own page). It
    stops when they end: while Playwright's sync API runs it holds the main thread's event loop,
    and the tests after them run asyncio themselves (``asyncio.run`` would refuse)."""
    if not CHROMIUM.is_file():
        _missing(f"Chromium is not installed at {CHROMIUM} (apt-get install --no-install-recommends "
                 f"chromium-headless-shell, or set FEATUREKIT_CHROMIUM to a Chromium binary)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("Playwright is not installed (pip install -e '.[dev]')")
    expected = expected_chromium()
    with sync_playwright() as p:
        # the real binary, not Debian's /usr/bin wrapper script; no channel (it would look elsewhere)
        launched = p.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        line = f"Chromium {launched.version} at {CHROMIUM}; Playwright expects Chromium {expected}"
        log.info(line)
        _summary.append(line)
        if abs(major(launched.version) - major(expected)) > MAX_MAJOR_DRIFT:
            launched.close()
            pytest.fail(f"{line}: more than {MAX_MAJOR_DRIFT} major versions apart, so the protocol may not "
                        f"match; move the playwright pin in pyproject.toml to the release for Chromium "
                        f"{major(launched.version)}")
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh page in its own context (no cookies or storage shared between tests)."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    yield context.new_page()
    context.close()


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where screenshots go: ``$FEATUREKIT_TEST_ARTIFACTS/browser`` when set, else a pytest temporary folder."""
    root = os.environ.get(ARTIFACTS_ENV)
    folder = Path(root) / "browser" if root else tmp_path_factory.mktemp("browser-artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    _summary.append(f"screenshots in {folder}" + ("" if root else f" (set {ARTIFACTS_ENV} to keep them elsewhere)"))
    return folder


@pytest.fixture
def screenshot(artifacts: Path) -> Callable[..., Path]:
    """``screenshot(page, name)`` saves the whole page as ``<artifacts>/<name>.png`` and returns the file."""

    def take(page: Page, name: str, **options: Any) -> Path:
        path = artifacts / f"{name}.png"
        page.screenshot(path=str(path), full_page=True, **options)
        return path

    return take


@pytest.fixture(scope="module")
def serve() -> Iterator[Callable[[Any], str]]:
    """``serve(app)`` runs an ASGI app on a free loopback port (uvicorn, in a thread) and returns its
    base URL; the servers stop when the test module ends (a module-scoped fixture can serve one app
    to all its tests)."""
    running: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(app: Any) -> str:
        port = _free_port()
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        running.append((server, thread))
        deadline = time.monotonic() + 20
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                pytest.fail(f"the test's web server did not start on 127.0.0.1:{port}")
            time.sleep(0.02)
        return f"http://127.0.0.1:{port}"

    yield start
    for server, thread in running:
        server.should_exit = True
        thread.join(timeout=10)
