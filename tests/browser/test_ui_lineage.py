"""The catalog's lineage page in a real browser: the app over the embedded Model Registry
(the project of ``tests/integration/test_ui_lineage.py``), Tab through the picture's nodes, a
click on a feature view's box opens its page, and the page's screenshot ``ui-lineage``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from featurekit.ui import create_ui
from tests.integration.test_ui_lineage import linked_project

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.registry


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with linked_project(tmp_path_factory.mktemp("browser-lineage")) as (project, settings, _, _):
        yield create_ui(project, settings)


def test_tab_walks_the_lineage_nodes_and_a_feature_view_opens_its_page(
        app: Any, page: Page, serve: Callable[[Any], str], screenshot: Callable[..., Path]) -> None:
    base = serve(app)
    response = page.goto(f"{base}/lineage/driver-eta/1")
    assert response is not None and response.status == 200
    assert page.locator("h1").inner_text() == "Lineage of model driver-eta version 1"
    nodes = page.eval_on_selector_all("svg#lineage a.node", "links => links.map(a => a.id)")
    assert len(nodes) == 7

    # Tab from the top of the page: the header's links and search, then each box, in the picture's order
    focused = []
    for _ in range(len(nodes) + 8):
        page.keyboard.press("Tab")
        focused.append(page.evaluate("() => document.activeElement.id || document.activeElement.tagName"))
    in_picture = [f for f in focused if f in nodes]
    assert in_picture == nodes
    assert focused.index(nodes[0]) < 8                                  # nothing between the header and the picture

    picture = page.locator("svg#lineage")
    assert picture.is_visible()
    listed = page.locator("ul.lineage-tree a").evaluate_all("links => links.map(a => a.getAttribute('href'))")
    drawn = page.locator("svg#lineage a.node").evaluate_all("links => links.map(a => a.getAttribute('href'))")
    assert listed == [h for h in drawn if not h.startswith("#")]       # the list links the same pages

    page.focus(f"#{nodes[0]}")                                       # the figure scrolls back to its start
    kept = screenshot(page, "ui-lineage")
    assert kept.read_bytes().startswith(b"\x89PNG") and kept.stat().st_size > 20_000

    page.locator("svg#lineage a.node.kind-feature_set").click()
    page.wait_for_url(f"{base}/features/driver_stats")
    assert page.locator("h1").inner_text() == "Feature view driver_stats"
    models = page.locator("section[aria-labelledby=models] a")
    assert models.evaluate_all("links => links.map(a => a.getAttribute('href'))") == [
        "/lineage/driver-eta/1", "/lineage/driver-eta/2"]
