"""The lineage picture in a real browser: it renders as laid out, and Tab walks its nodes as links."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from markupsafe import Markup
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from featurekit.lineage.svg import PAD, layout, svg
from tests.unit.test_lineage_svg import model_tree, ui_href

if TYPE_CHECKING:
    from playwright.sync_api import Page

PAGE = Markup("""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Lineage of driver-eta 3</title></head>
<body><main><h1>Lineage of model driver-eta version 3</h1>
{picture}
</main></body></html>
""")


def app() -> Starlette:
    async def lineage(request: Request) -> HTMLResponse:
        return HTMLResponse(PAGE.format(picture=svg(model_tree(), ui_href)))

    return Starlette(routes=[Route("/lineage/driver-eta/3", lineage)])


def boxes_in_browser(page: Page) -> list[dict[str, Any]]:
    """Each node's link as the browser lays it out: id, href, its box and its texts' drawn widths."""
    return page.evaluate("""() => [...document.querySelectorAll('svg#lineage a.node')].map(a => {
        const r = a.querySelector('rect').getBBox();
        return {id: a.id, href: a.getAttribute('href'), x: r.x, y: r.y, width: r.width, height: r.height,
                texts: [...a.querySelectorAll('text')].map(t => t.getComputedTextLength())};
    })""")


def test_each_node_is_a_link_reached_by_tab_and_the_picture_renders(
        page: Page, serve: Callable[[Any], str], screenshot: Callable[..., Path]) -> None:
    tree = model_tree()
    drawn = layout(tree)
    base = serve(app())
    response = page.goto(f"{base}/lineage/driver-eta/3")
    assert response is not None and response.status == 200

    # the browser draws every box where the layout put it, and every text fits in its box
    shown = boxes_in_browser(page)
    assert [b["id"] for b in shown] == [f"lineage-{ident}" for ident in drawn.boxes]
    for seen, box in zip(shown, drawn.boxes.values()):
        assert (seen["x"], seen["y"], seen["width"], seen["height"]) == (box.x, box.y, box.width, box.height)
        assert seen["texts"] and all(0 < width <= box.width - PAD for width in seen["texts"]), (seen, box)
    picture = page.locator("svg#lineage")
    assert picture.is_visible()
    size = picture.bounding_box()
    assert size is not None and (size["width"], size["height"]) == (drawn.width, drawn.height)
    assert page.locator("svg#lineage path.edge").count() == len(drawn.edges)

    # Tab goes from node to node, in the picture's order, each a link with its page (or itself)
    order = []
    for _ in shown:
        page.keyboard.press("Tab")
        order.append(page.evaluate("""() => { const e = document.activeElement;
            return {id: e.id, tag: e.tagName.toLowerCase(), href: e.getAttribute('href'),
                    name: e.querySelector('title')?.textContent.split('\\n')[0],
                    stroke: getComputedStyle(e.querySelector('rect')).strokeWidth}; }"""))
    assert [(o["id"], o["href"]) for o in order] == [(b["id"], b["href"]) for b in shown]
    assert {o["tag"] for o in order} == {"a"} and all(o["name"] for o in order)
    assert {o["stroke"] for o in order} == {"3px"}          # the focused box is outlined (:focus-visible)
    assert order[0]["href"] == "/lineage/driver-eta/3" and any(o["href"].startswith("/runs/") for o in order)

    page.focus("#lineage-n4")
    kept = screenshot(page, "lineage-picture")
    assert kept.read_bytes().startswith(b"\x89PNG") and kept.stat().st_size > 10_000
