"""Every page of ``featurekit ui`` in a real browser: what it shows as rendered, every link followed
by navigating, the stylesheet applied, no serious accessibility violation (axe-core), the
keyboard path through a page, the same text with JavaScript off, and a full-page screenshot of
each (``ui-<page>.png``).

The app is ``create_ui`` over the small project of :mod:`tests.ui_project` (made once for the
module), served on loopback by uvicorn.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest

from featurekit.ui import create_ui
from tests.conftest import _free_port, _missing
from tests.ui_project import RUN_IDS, SPEC_PASSWORD, UiProject, make_ui_project

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

# axe-core's impact levels that fail a page; "moderate" and "minor" are listed in the failure too
FAILING_IMPACTS = {"serious", "critical"}
SOFT = "rgb(246, 248, 250)"            # ui.css --soft: the header's background when the stylesheet applies
READ = "rgb(143, 184, 232)"            # ui.css --read: the read bars' fill


@dataclass
class Shown:
    """A page as the test expects it: its address, answer, h1 and lines of its rendered text."""

    name: str
    url: str
    h1: str
    says: list[str]
    status: int = 200
    links: list[str] = field(default_factory=list)   # addresses the page must link to


PAGES = [
    Shown("index", "/", "Feature catalog",
          ["Feature views (2)", "Features (2)", "Jobs (3)", "Entities (1)", "driver_stats\tdriver\tdriver_id\t1",
           "conv_rate\tdriver_stats\tFloat64"],
          links=["/features/driver_stats", "/features/driver_trips", "/jobs/driver_stats", "/jobs/vault_export"]),
    Shown("search", "/?q=conv", "Results for “conv”",
          ["Feature views (0)", "Features (1)", "Jobs (1)", "conv_rate\tdriver_stats\tFloat64"],
          links=["/features/driver_stats", "/jobs/driver_stats"]),
    Shown("search-miss", "/?q=drivr_stats", "Results for “drivr_stats”",
          ["Nothing matches “drivr_stats”. Did you mean driver_stats?", "Jobs (0)"], links=["/?q=driver_stats"]),
    Shown("job", "/jobs/driver_stats", "Job driver_stats",
          ["Owner\nmobility-data", "kind: SparkApplication", "- filter: driver_id IS NOT NULL",
           f"{RUN_IDS[1]}\t", "succeeded\t4\t1\nstep 1 filter 1\n\t0\t3\t1"],
          links=[f"/runs/{r}" for r in RUN_IDS] + ["/features/driver_stats"]),
    Shown("run", f"/runs/{RUN_IDS[0]}", f"Run {RUN_IDS[0]}",
          ["Status\nsucceeded", "step 1: filter\t5\t4\t1", "gate\t4\t3\t1\tquarantined",
           "in_range(0, 1)\tconv_rate\t1\tconv_rate outside [0, 1]", "Version\n0", "2 row(s) in"],
          links=["/jobs/driver_stats"]),
    Shown("run-failed", f"/runs/{RUN_IDS[2]}", f"Run {RUN_IDS[2]}",
          ["Status\nfailed (exit code 1)", "Error\nInfraError: the lake is not reachable",
           "No commit: the table kept its previous version."], links=["/jobs/driver_stats"]),
    Shown("feature", "/features/driver_stats", "Feature view driver_stats",
          ["Entity\ndriver", "TTL\n1d", "conv_rate\tFloat64", "trips\tInt32", "Rows\n3",
           "driver_rates: driver_stats:conv_rate"],
          links=["/jobs/driver_stats", f"/runs/{RUN_IDS[1]}"]),
    Shown("404", "/features/driver_stat", "No such feature view: driver_stat",
          ["unknown feature view 'driver_stat' — did you mean 'driver_stats'?", "Did you mean driver_stats?"],
          status=404, links=["/features/driver_stats", "/"]),
    Shown("409", "/runs/20260301T1", "This page cannot be shown",
          ["run id '20260301T1' is ambiguous: 3 runs start with it"], status=409, links=["/"]),
]


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> UiProject:
    # a closed loopback port: the models sections say the registry is unreachable, the same on every machine
    return make_ui_project(tmp_path_factory.mktemp("ui-browser") / "project", f"http://127.0.0.1:{_free_port()}")


@pytest.fixture(scope="module")
def base(made: UiProject, serve: Callable[[Any], str]) -> str:
    """The catalog's base URL: the real app over the module's project, on a free loopback port."""
    return serve(create_ui(made.project, made.settings))


def rendered(page: Page) -> str:
    """The main content's text as the browser lays it out: table cells apart by tabs, one space
    for any run of spaces (so a test line reads like the page)."""
    return re.sub(r"[ \u00a0]+", " ", page.locator("main").inner_text())


def axe_problems(page: Page) -> tuple[list[str], list[str]]:
    """axe-core's violations on the page, as ``rule (impact): targets``: (failing, the rest)."""
    try:
        from axe_playwright_python.sync_playwright import Axe
    except ImportError:
        _missing("axe-playwright-python is not installed (pip install -e '.[dev]')")
    found = Axe().run(page).response["violations"]
    line = [f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']]}" for v in found]
    return ([text for v, text in zip(found, line) if v["impact"] in FAILING_IMPACTS],
            [text for v, text in zip(found, line) if v["impact"] not in FAILING_IMPACTS])


# Each address is asked once per module (one server for the module): pages link to one another a lot.
_followed: dict[str, int] = {}


def follow_links(page: Page) -> list[str]:
    """Navigate to every link of the page (and its stylesheet); returns the links that did not answer 200."""
    here = page.url
    targets = page.evaluate("""() => [...document.querySelectorAll('a[href], link[rel=stylesheet]')]
        .map(e => ({href: e.getAttribute('href'), url: e.href}))""")
    # fragments first: they point into this page, which the navigation below leaves
    bad = [f"{t['href']}: no such element" for t in targets
           if t["href"].startswith("#") and not page.locator(t["href"]).count()]
    for target in targets:
        href, url = target["href"], target["url"].split("#")[0]
        assert not urlsplit(href).netloc, f"{here} links off the site: {href}"   # nothing from a CDN
        if href.startswith("#"):
            continue
        if url not in _followed:
            answer = page.goto(url)
            _followed[url] = answer.status if answer else 0
        if _followed[url] != 200:
            bad.append(f"{href}: {_followed[url]}")
    return bad


@pytest.mark.parametrize("shown", PAGES, ids=[p.name for p in PAGES])
def test_each_page_renders_is_accessible_and_its_links_answer(
        page: Page, base: str, screenshot: Callable[..., Path], shown: Shown) -> None:
    answer = page.goto(base + shown.url)
    assert answer is not None and answer.status == shown.status
    assert SPEC_PASSWORD not in page.content()

    # content as rendered: one h1, the key values, the links a reader follows from here
    assert page.locator("h1").all_inner_texts() == [shown.h1]
    text = rendered(page)
    missing = [line for line in shown.says if line not in text]
    assert not missing, f"{shown.url} does not show {missing}:\n{text}"
    hrefs = page.eval_on_selector_all("a[href]", "links => links.map(a => a.getAttribute('href'))")
    assert set(shown.links) <= set(hrefs), hrefs

    # the stylesheet applies (it loads, and its rules match the markup)
    assert page.eval_on_selector("header", "e => getComputedStyle(e).backgroundColor") == SOFT
    assert page.eval_on_selector("a.skip", "e => e.getBoundingClientRect().right") <= 0   # off-screen until focused

    failing, rest = axe_problems(page)
    assert failing == [], f"{shown.url}: {failing} (and, not failing: {rest})"

    kept = screenshot(page, f"ui-{shown.name}")
    assert kept.read_bytes().startswith(b"\x89PNG")

    bad = follow_links(page)
    assert bad == [], f"{shown.url} has links that do not answer: {bad}"


def test_the_job_page_chart_draws_a_bar_per_run_sized_by_its_rows(page: Page, base: str) -> None:
    page.goto(f"{base}/jobs/driver_stats")
    bars = page.evaluate("""() => [...document.querySelectorAll('figure svg rect')].map(r => ({
        kind: r.getAttribute('class'), title: r.querySelector('title').textContent,
        width: r.getBBox().width, fill: getComputedStyle(r).fill}))""")
    reads = [b for b in bars if b["kind"] == "read"]
    # oldest first: the runs read 5, 4 and 6 rows; the longest bar is the chart's full width
    assert [b["title"] for b in reads] == ["read 5", "read 4", "read 6"]
    widest = max(b["width"] for b in reads)
    assert widest > 300
    largest = max(int(b["title"].split()[1]) for b in bars)
    for b in bars:                                   # every bar (read, written, quarantined, dropped) in scale
        rows = int(b["title"].split()[1])
        assert b["width"] == pytest.approx(rows / largest * widest, abs=0.1), b
    assert [b["title"] for b in bars if b["kind"] == "dropped"] == ["dropped 1 (step 1 filter 1)"] * 2 + ["dropped 0"]
    written = [b["title"] for b in bars if b["kind"] == "written"]
    assert written == ["written 3", "written 3", "written 0"]          # the failed run wrote nothing
    assert {b["fill"] for b in reads} == {READ}
    chart = page.locator("figure svg").bounding_box()
    assert chart is not None and chart["width"] > widest and chart["height"] > 3 * 30
    # every label and value is drawn whole inside the picture (none cut at its right edge)
    texts = page.evaluate("""() => { const svg = document.querySelector('figure svg');
        return [...svg.querySelectorAll('text')].map(t => ({text: t.textContent,
            right: t.getBBox().x + t.getComputedTextLength(), width: svg.viewBox.baseVal.width})); }""")
    assert [t["text"] for t in texts if t["text"].endswith("written")] == ["3 written", "3 written", "0 written"]
    assert [t for t in texts if t["right"] > t["width"]] == []


def active(page: Page) -> dict[str, Any]:
    return page.evaluate("""() => { const e = document.activeElement, s = getComputedStyle(e);
        return {tag: e.tagName.toLowerCase(), id: e.id, href: e.getAttribute('href'), text: e.textContent.trim(),
                inMain: !!e.closest('main'), outline: s.outlineStyle + ' ' + s.outlineWidth,
                left: e.getBoundingClientRect().left}; }""")


FIRST_IN_MAIN = """() => document.querySelector(
    'main :is(a[href], input, button, select, textarea, [tabindex="0"])').getAttribute('href')"""


def test_the_keyboard_skips_to_content_reaches_search_and_nav_and_searches(page: Page, base: str) -> None:
    page.goto(f"{base}/jobs/driver_stats")
    nav = page.eval_on_selector_all("header nav a[href]", "links => links.map(a => a.getAttribute('href'))")
    first_in_main = page.evaluate(FIRST_IN_MAIN)
    assert "/" in nav and first_in_main == "/features/driver_stats"
    order = []
    while not order or not order[-1]["inMain"]:
        assert len(order) < 20, f"Tab never reached the main content: {order}"
        page.keyboard.press("Tab")
        order.append(active(page))
    header = order[1:-1]
    # first stop: the skip link, shown on screen while it has focus
    assert (order[0]["href"], order[0]["text"]) == ("#content", "Skip to content") and order[0]["left"] >= 0
    # then the header: every nav link and the search box with its button; then the page's first link
    assert set(nav) <= {o["href"] for o in header}
    assert ("input", "q") in {(o["tag"], o["id"]) for o in header} and "button" in {o["tag"] for o in header}
    assert order[-1]["href"] == first_in_main
    assert {o["outline"] for o in order} == {"solid 3px"}                        # focus is visible everywhere

    for _ in order[1:]:
        page.keyboard.press("Shift+Tab")
    assert active(page)["href"] == "#content"
    page.keyboard.press("Enter")                                                   # skip: the next Tab is in main
    assert urlsplit(page.url).fragment == "content"
    page.keyboard.press("Tab")
    assert active(page)["href"] == first_in_main

    page.focus("#q")
    page.keyboard.type("conv")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/\?q=conv$"))
    assert page.locator("h1").inner_text() == "Results for “conv”"
    assert page.input_value("#q") == "conv"


def test_every_page_reads_the_same_without_javascript(browser: Browser, page: Page, base: str) -> None:
    context = browser.new_context(java_script_enabled=False, viewport={"width": 1280, "height": 800})
    try:
        plain = context.new_page()
        for shown in PAGES:
            answer = plain.goto(base + shown.url)
            assert answer is not None and answer.status == shown.status
            page.goto(base + shown.url)
            assert plain.locator("h1").all_inner_texts() == [shown.h1]
            assert rendered(plain) == rendered(page), shown.url
    finally:
        context.close()
