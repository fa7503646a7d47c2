"""`featurekit ui`: every page rendered by the app over a small project, read as a browser would.

One project for the module, made without Spark (:mod:`tests.ui_project`), with one more feature
view here, materialized a few hours ago (fresh). Its Model Registry is
a closed loopback port (with a password in its URL): the lineage parts say so, the rest renders
(``test_ui_lineage`` has a running registry). Pages are fetched with Starlette's TestClient; every
link on every page is followed; one test starts the real ``featurekit ui`` process and asks it over
HTTP.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from importlib import resources
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient

from featurekit.config import Project, Settings
from featurekit.config.settings import REGISTRY_URL_ENV
from featurekit.lineage import RunLogLineage
from featurekit.lineage.records import FeatureSetRecord
from featurekit.spec.loader import LoadedJob, load_job
from featurekit.ui import create_ui
from tests.conftest import REPO, _free_port
from tests.ui_project import RUN_IDS, SPEC_PASSWORD, URL_PASSWORD, UiProject, make_ui_project

RATINGS_JOB = """\
name: driver_ratings
description: Ratings per driver, materialized a few hours ago.
owner: mobility-data
sources:
  ratings: {format: parquet, path: "${raw_root}/ratings"}
output:
  path: ${lake_root}/driver_ratings
features:
  entity: driver
  join_keys: [driver_id]
  timestamp: event_ts
  ttl: 7d
"""
RATINGS_RUNS = ["20260301T140000Z-eeee0005", "20260301T150000Z-ffff0006"]


@dataclass
class World:
    project: Project
    settings: Settings
    job: LoadedJob
    client: TestClient
    materialization: str


def add_ratings(made: UiProject) -> None:
    """The driver_ratings view: fresh (its newest online value about 3 h old, ttl 7d); the record
    before its last one is one an older featurekit wrote, without the newest value's time."""
    root, settings = made.project.root, made.settings
    (root / "jobs" / "driver_ratings.yaml").write_text(RATINGS_JOB)
    ratings = load_job(root / "jobs" / "driver_ratings.yaml", settings.vars)
    now = datetime.now(UTC).replace(microsecond=0)
    for run_id, recorded, newest in ((RATINGS_RUNS[0], now - timedelta(days=2), None),
                                     (RATINGS_RUNS[1], now - timedelta(hours=2), now - timedelta(hours=3, minutes=5))):
        path = RunLogLineage(settings.runs_dir).record_feature_set(FeatureSetRecord(
            run_id=run_id, feast_project=settings.feast.project, feature_view="driver_ratings",
            features=["rating"], job="driver_ratings", spec_fingerprint=ratings.fingerprint,
            delta_path=ratings.spec.output.path, delta_version=0, window_start=(recorded - timedelta(days=7)).isoformat(),
            window_end=recorded.isoformat(), rows=2, keys=2, online_store="redis", recorded_at=recorded.isoformat(),
            newest_event=None if newest is None else newest.isoformat(),
            view_schema={"join_keys": {"driver_id": "Int64"}, "timestamp": "event_ts", "features": {"rating": "Float64"}}))
        if newest is None:   # as an older featurekit wrote it: no newest_event at all
            written = json.loads(Path(path).read_text())
            del written["newest_event"]
            Path(path).write_text(json.dumps(written))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """The project with its Model Registry on a closed loopback port."""
    with pytest.MonkeyPatch.context() as env:
        env.delenv(REGISTRY_URL_ENV, raising=False)
        made = make_ui_project(tmp_path_factory.mktemp("ui") / "project",
                               f"http://featurekit:{URL_PASSWORD}@127.0.0.1:{_free_port()}")
        add_ratings(made)
        with TestClient(create_ui(made.project, made.settings)) as client:
            yield World(made.project, made.settings, made.job, client, made.materialization)


class Page(HTMLParser):
    """The facts of a page a reader (or a screen reader) relies on."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.links: list[str] = []
        self.text: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        self.tags.append((tag, found))
        if tag in ("a", "link") and found.get("href"):
            self.links.append(str(found["href"]))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def all(self, tag: str) -> list[dict[str, str | None]]:
        return [attrs for name, attrs in self.tags if name == tag]

    def classes(self, tag: str, having: str) -> list[str]:
        """The class attribute of each ``<tag>`` whose classes include ``having``."""
        return [str(a["class"]) for a in self.all(tag) if having in str(a.get("class") or "").split()]

    @property
    def words(self) -> str:
        # text nodes apart (table cells), but not before the punctuation that ends a sentence
        return re.sub(r" ([?.,:])(?=\s|$)", r"\1", re.sub(r"\s+", " ", " ".join(self.text)))

    def problems(self) -> list[str]:
        """What breaks the basics: landmarks, one h1, no skipped heading level, labelled inputs,
        table headers with a scope, unique ids."""
        found = []
        html = self.all("html")
        if not html or not html[0].get("lang"):
            found.append("no <html lang>")
        for landmark in ("header", "nav", "main"):
            if len(self.all(landmark)) != 1:
                found.append(f"{len(self.all(landmark))} <{landmark}>")
        if len(self.all("h1")) != 1:
            found.append(f"{len(self.all('h1'))} <h1>")
        levels = [int(tag[1]) for tag, _ in self.tags if re.fullmatch(r"h[1-6]", tag)]
        found += [f"h{b} after h{a}" for a, b in zip(levels, levels[1:]) if b > a + 1]
        labelled = {attrs.get("for") for attrs in self.all("label")}
        found += [f"input {a.get('id')} has no label" for a in self.all("input")
                  if a.get("id") not in labelled and not a.get("aria-label")]
        found += ["<th> without scope" for a in self.all("th") if a.get("scope") not in ("col", "row")]
        ids = [a["id"] for _, a in self.tags if a.get("id")]
        found += [f"id {i!r} twice" for i in {i for i in ids if ids.count(i) > 1}]
        for svg in self.all("svg"):
            # a picture of links is a group: the children of an image are hidden from assistive technology
            if svg.get("role") not in ("img", "group") or not svg.get("aria-labelledby"):
                found.append("<svg> without role=img (or group) and a title")
        return found


def root_of(world: World) -> Path:
    return world.project.root


def get(world: World, url: str, status: int = 200) -> Page:
    answer = world.client.get(url)
    assert answer.status_code == status, (url, answer.text[:500])
    assert answer.headers["content-type"].startswith("text/html")
    assert SPEC_PASSWORD not in answer.text and URL_PASSWORD not in answer.text
    page = Page(answer.text)
    assert page.problems() == [], url
    return page


def test_index_lists_views_features_jobs_and_entities(world: World) -> None:
    page = get(world, "/")
    words = page.words
    assert "Feature catalog" in words
    assert "Feature views (3)" in words and "Features (3)" in words and "Jobs (4)" in words and "Entities (1)" in words
    assert "conv_rate driver_stats Float64" in words and "trips driver_stats Int32" in words
    assert "vault_export Not run; its source has a password option. security" in words
    assert "driver driver_ratings, driver_stats, driver_trips" in words                         # the entity and its views
    assert "driver_trips driver driver_id none never" in words
    assert {"/features/driver_stats", "/jobs/driver_stats", "/jobs/vault_export"} <= set(page.links)
    assert "2026-03-01T13:00:00+00:00" in words                                  # last materialized
    # a stale view is marked in words, a fresh one is not
    stale = re.search(r"driver_stats driver driver_id 1 2026-03-01T13:00:00\+00:00 stale: the newest online value is "
                      r"\d+ d \d+ h old, older than the ttl \(1d\) allows driver_trips", words)
    assert stale is not None and re.search(r"driver_ratings driver driver_id 0 \S+ driver_stats", words)
    assert page.classes("span", "stale") == ["stale"]


def test_search_narrows_every_list_and_suggests_a_close_name(world: World) -> None:
    page = get(world, "/?q=conv")
    assert "Results for “conv”" in page.words
    assert "Features (1)" in page.words and "Jobs (1)" in page.words             # the job's description says conversion
    assert "driver_trips" not in page.words
    assert "Feature views (0)" in page.words and "Entities (0)" in page.words
    assert any(a.get("value") == "conv" for a in page.all("input"))
    security = get(world, "/?q=SECURITY")                                         # case-insensitive, owners too
    assert "Jobs (1)" in security.words and "vault_export" in security.words
    missed = get(world, "/?q=drivr_stats")
    assert "Nothing matches “drivr_stats”. Did you mean driver_stats?" in missed.words
    assert "/?q=driver_stats" in missed.links


def test_job_page_shows_spec_fingerprint_manifest_and_run_accounting(world: World) -> None:
    page = get(world, "/jobs/driver_stats")
    words = page.words
    assert page.all("h1") and "Job driver_stats" in words
    assert f"Fingerprint {world.job.fingerprint}" in words
    spec = str(world.job.spec.output.path)
    assert f"path: {spec}" in words and "- filter: driver_id IS NOT NULL" in words   # the resolved spec as YAML
    assert "featurekit render sparkapp driver_stats --env k8s" in words
    assert "kind: SparkApplication" in words and "featurekit.io/job: driver_stats" in words
    # newest first: the failed run (no commit), then versions 1 and 0
    assert re.search(rf"{RUN_IDS[2]} \S+ failed 6 0 – – –", words)
    assert re.search(rf"{RUN_IDS[1]} \S+ succeeded 4 1 step 1 filter 1 0 3 1", words)   # dropped: total, then by step
    assert re.search(rf"{RUN_IDS[0]} \S+ succeeded 5 1 step 1 filter 1 1 3 0", words)
    assert [f"/runs/{r}" for r in reversed(RUN_IDS)] == [link for link in page.links if link.startswith("/runs/")]
    (svg,) = page.all("svg")
    assert "read 5" in words and "written 3" in words and "quarantined 1" in words   # the bars' titles
    vault = get(world, "/jobs/vault_export")
    assert "password: '***'" in vault.words or "password: ***" in vault.words
    assert "No runs yet." in vault.words


def test_run_page_shows_accounting_gate_examples_durations_and_commit(world: World) -> None:
    page = get(world, f"/runs/{RUN_IDS[0]}")
    words = page.words
    assert f"Run {RUN_IDS[0]}" in words and "/jobs/driver_stats" in page.links
    assert "source stats – 5 – parquet raw/stats" in words
    assert "step 1: filter 5 4 1" in words
    assert "gate 4 3 1 quarantined" in words
    assert "4 rows checked, 3 good, 1 bad" in words
    assert "in_range(0, 1) conv_rate 1 conv_rate outside [0, 1]" in words
    assert "Example rows failing in_range(0, 1) on conv_rate driver_id conv_rate 7 1.7" in words
    assert "read 0.4 gate 0.2 write 0.9" in words
    assert "Version 1" not in words and "Version 0 Operation WRITE numOutputRows 3" in words
    # read from the quarantine table: this run's rows only, each with its reasons
    assert "Quarantined rows 2 row(s) in" in words and "at version 0; the first 2 with their reasons:" in words
    assert ("Reasons driver_id conv_rate source record "
            "in_range(0, 1) conv_rate: conv_rate outside [0, 1] 7 1.7 null null "
            'parse stats: the record does not parse null null stats {"driver_id": "x"}') in words
    assert "2.5" not in words                                                    # another run's row
    failed = get(world, f"/runs/{RUN_IDS[2][:20]}")                              # a unique prefix will do
    assert "failed (exit code 1)" in failed.words
    assert "Error InfraError: the lake is not reachable" in failed.words and "more lines" not in failed.words
    assert "No commit: the table kept its previous version." in failed.words
    assert "Quarantined rows" not in failed.words


def test_feature_page_shows_entity_types_table_materialization_and_services(world: World) -> None:
    page = get(world, "/features/driver_stats")
    words = page.words
    assert "Feature view driver_stats" in words and "How often a driver accepts a ride." in words
    assert "Entity driver Join keys driver_id Timestamp event_ts TTL 1d Online yes" in words
    assert f"Delta table {world.job.spec.output.path}, version 1" in words
    assert "team=mobility" in words
    assert "conv_rate Float64 trips Int32" in words
    assert ("When 2026-03-01T13:00:00+00:00 Window 2026-03-01T00:00:00+00:00 to 2026-03-01T12:30:00+00:00 "
            "Rows 3 Keys 3 Online store sqlite Delta version 1") in words
    assert f"/runs/{RUN_IDS[1]}" in page.links                                   # the run whose commit is v1
    assert "driver_rates: driver_stats:conv_rate" in words and "driver_stats: driver_stats" in words
    # freshness: the newest online value's event time, its age and the ttl; stale in words and a class
    assert re.search(r"Delta version 1 Freshness Stale: the newest online value is from 2026-03-01T12:00:00\+00:00, "
                     r"\d+ d \d+ h old: older than the ttl \(1d\) allows\. Materialization", words)
    assert page.classes("dd", "freshness") == ["freshness stale"]
    assert "Keys Newest online value Made by run 20260301T130000Z-dddd0004" in words
    ratings = get(world, "/features/driver_ratings")
    assert re.search(r"Freshness The newest online value is from \S+, 3 h [56] min old, within the ttl \(7d\)\.",
                     ratings.words)
    assert ratings.classes("dd", "freshness") == ["freshness fresh"]
    assert f"{RATINGS_RUNS[0]} " in ratings.words and " 2 2 not recorded unknown" in ratings.words  # an older record
    trips = get(world, "/features/driver_trips")                                   # written, never materialized
    assert "TTL 7d" in trips.words and "Feature Type trips integer Last materialization Never materialized." in trips.words
    assert f"Delta table {root_of(world)}/data/lake/driver_trips, version 0" in trips.words


@pytest.mark.parametrize(("url", "detail", "closest"), [
    ("/jobs/driver_stat", "unknown job 'driver_stat' — did you mean 'driver_stats'?", "/jobs/driver_stats"),
    ("/jobs/zzz", "unknown job 'zzz' (jobs: driver_ratings, driver_stats, driver_trips, vault_export)", None),
    ("/features/driver_stat", "unknown feature view 'driver_stat' — did you mean 'driver_stats'?",
     "/features/driver_stats"),
    ("/features/vault_export", "unknown feature view 'vault_export' (feature views: driver_ratings, driver_stats, driver_trips)",
     None),
    ("/runs/19990101T000000Z", "unknown run '19990101T000000Z': no run id starts with it", None),
    ("/lineage", "no page at /lineage", None),
])
def test_unknown_names_are_a_404_page_with_a_close_match(world: World, url: str, detail: str,
                                                          closest: str | None) -> None:
    page = get(world, url, 404)
    assert detail in page.words
    suggested = [link for link in page.links if link not in ("#content", "/", "/static/ui.css")]
    assert suggested == ([closest] if closest else [])
    if closest:
        get(world, closest)


def test_an_ambiguous_run_prefix_or_a_bad_query_is_a_page_that_says_so(world: World) -> None:
    page = get(world, "/runs/20260301T1", 409)
    assert "run id '20260301T1' is ambiguous: 3 runs start with it" in page.words
    long = get(world, "/?q=" + "x" * 201, 422)
    assert "q: String should have at most 200 characters" in long.words


def crawl(client: TestClient, *start: str) -> set[str]:
    """Every address reached by following links from ``start``; each must answer 200 and none
    may leave the site (no CDN, nothing external)."""
    seen: set[str] = set()
    todo = list(start)
    while todo:
        url = todo.pop()
        if url in seen:
            continue
        seen.add(url)
        answer = client.get(url)
        assert answer.status_code == 200, (url, answer.status_code)
        if not answer.headers["content-type"].startswith("text/html"):
            continue
        for link in Page(answer.text).links:
            target = urljoin(url, link.split("#")[0]) or url
            assert not urlsplit(target).netloc, f"{url} links off the site: {link}"
            todo.append(target)
    return seen


def test_every_link_of_every_page_resolves(world: World) -> None:
    seen = crawl(world.client, "/", "/?q=driver")
    pages = {urlsplit(u).path for u in seen}
    assert {"/", "/jobs/driver_stats", "/jobs/vault_export", "/features/driver_stats", "/features/driver_trips",
            "/jobs/driver_trips", "/static/ui.css",
            *(f"/runs/{r}" for r in RUN_IDS)} <= pages


def test_the_stylesheet_and_templates_ship_in_the_package() -> None:
    folder = resources.files("featurekit.ui")
    assert "font-family" in (folder / "static" / "ui.css").read_text() or "font:" in (folder / "static" / "ui.css").read_text()
    assert {"base.html", "index.html", "job.html", "run.html", "feature.html", "404.html"} <= {
        p.name for p in (folder / "templates").iterdir()}
    pyproject = (REPO / "pyproject.toml").read_text()
    assert '"ui/templates/**/*.html", "ui/static/**/*"' in pyproject


def test_the_cli_serves_the_pages_over_http(world: World) -> None:
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen([sys.executable, "-m", "featurekit", "--project", str(world.project.root), "ui",
                                "--port", str(port)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/jobs/driver_stats", timeout=10)
                break
            except httpx.TransportError:
                assert process.poll() is None, process.communicate()[0].decode()
                assert time.monotonic() < deadline, "featurekit ui did not listen within 60 s"
                time.sleep(0.2)
        assert answer.status_code == 200 and world.job.fingerprint in answer.text
        assert httpx.get(f"http://127.0.0.1:{port}/static/ui.css").status_code == 200
        assert httpx.get(f"http://127.0.0.1:{port}/features/nope").status_code == 404
    finally:
        process.terminate()
        output = process.communicate(timeout=30)[0].decode()
    assert f"featurekit ui (env local) on http://127.0.0.1:{port}/" in output


def test_a_changed_job_file_shows_at_once(world: World) -> None:
    """Specs are parsed once per version of their file: an edit shows on the next request."""
    path = world.project.root / "jobs" / "vault_export.yaml"
    before = path.read_text()
    assert "Not run; its source has a password option." in get(world, "/jobs/vault_export").words
    try:
        path.write_text(before.replace("Not run;", "Never run;"))
        assert "Never run; its source has a password option." in get(world, "/jobs/vault_export").words
        assert "Never run;" in get(world, "/?q=never").words
        path.write_text(before.replace("owner: security", "owner: [security]"))
        broken = get(world, "/jobs/vault_export", 422)
        assert "job 'vault_export' does not load: jobs/vault_export.yaml:" in broken.words
        assert "Job files that do not load" in get(world, "/").words
    finally:
        path.write_text(before)
    assert "Not run; its source has a password option." in get(world, "/jobs/vault_export").words


def test_an_unreachable_registry_is_a_notice_on_each_page_and_a_503_lineage_page(world: World) -> None:
    url = f"http://featurekit:***@127.0.0.1:{urlsplit(world.settings.registry.url).port}"
    notice = f"Model Registry unreachable at {url}: the Model Registry at {url} is unavailable"
    feature = get(world, "/features/driver_stats")
    assert f"Models using it {notice}" in feature.words and "Connection refused" in feature.words
    assert "conv_rate Float64 trips Int32" in feature.words                       # the rest renders
    index = get(world, "/")
    assert f"Models (0) {notice}" in index.words and "Feature views (3)" in index.words
    lineage = get(world, "/lineage/driver-eta/1", 503)
    assert f"This page cannot be shown {notice}" in lineage.words
