"""The README's screenshot of ``featurekit ui``, made again: ``make screenshots`` (or
``python -m tests.browser.screenshots [--out docs/images]``).

It builds the small project of the ui tests (:mod:`tests.ui_project`, no Spark) in a temporary
folder, serves ``create_ui`` over it on loopback and photographs pages in the same headless
Chromium as the browser tests (``FEATUREKIT_CHROMIUM`` names another binary). The temporary
folder is shown as ``~/mobility`` in the pictures, so they do not change with where they were made.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

import uvicorn

from featurekit.ui import create_ui
from tests.browser.conftest import CHROMIUM
from tests.conftest import REPO, _free_port
from tests.ui_project import make_ui_project

# name -> page; each picture is one viewport (not the full page) so the PNG stays small
SHOTS = {"ui-job": "/jobs/driver_stats"}
VIEWPORT = {"width": 1100, "height": 780}
SHOWN_ROOT = "~/mobility"


def take(out: Path) -> list[Path]:
    """Photograph each page of :data:`SHOTS` into ``out``; returns the files written."""
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.is_file():
        raise SystemExit(f"Chromium is not installed at {CHROMIUM} (apt-get install --no-install-recommends "
                         f"chromium-headless-shell, or set FEATUREKIT_CHROMIUM)")
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        made = make_ui_project(Path(tmp) / "mobility")
        port = _free_port()
        server = uvicorn.Server(uvicorn.Config(create_ui(made.project, made.settings), host="127.0.0.1", port=port,
                                               log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            if not thread.is_alive():
                raise SystemExit(f"the web server did not start on 127.0.0.1:{port}")
            time.sleep(0.02)
        written = []
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True)
                page = browser.new_page(viewport=VIEWPORT)
                for name, url in SHOTS.items():
                    answer = page.goto(f"http://127.0.0.1:{port}{url}")
                    if answer is None or answer.status != 200:
                        raise SystemExit(f"{url} answered {answer.status if answer else 'nothing'}")
                    page.evaluate("""([root, shown]) => {
                        const walk = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
                        while (walk.nextNode()) walk.currentNode.nodeValue = walk.currentNode.nodeValue.replaceAll(root, shown);
                    }""", [str(made.project.root), SHOWN_ROOT])
                    path = out / f"{name}.png"
                    page.screenshot(path=str(path))
                    written.append(path)
                browser.close()
        finally:
            server.should_exit = True
            thread.join(timeout=10)
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "images", help="folder for the PNG files")
    for path in take(parser.parse_args(argv).out):
        print(f"{path} ({path.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
