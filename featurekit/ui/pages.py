"""What each page shows, shaped for its template from :mod:`featurekit.api.reads`: plain functions
over a project and its settings, so a notebook or a test can call them without a server."""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from featurekit.api import reads
from featurekit.api.models import FeatureSetSummary
from featurekit.config import Project, Settings
from featurekit.errors import FeaturekitError
from featurekit.spec.durations import parse_duration
from featurekit.ui.lineage import Model, ModelRegistry, RegistryUnreachable, node_href
from featurekit.ui.search import Catalog, catalog

if TYPE_CHECKING:
    from featurekit.lineage.tree import Node

RECENT_RUNS = 20


def to_yaml(value: Any) -> str:
    """A spec or manifest as block YAML, keys in the order given."""
    from ruamel.yaml import YAML

    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    yaml.width = 4096  # one line per value, as the manifest shows them
    yaml.sort_base_mapping_type_on_output = False  # the spec's own order: name, sources, steps, output
    text = io.StringIO()
    yaml.dump(value, text)
    return text.getvalue()


def prime(project: Project, settings: Settings) -> None:
    """What the first requests after start-up would read (:func:`reads.prime`), read in advance; a
    problem is left to the pages to report."""
    try:
        reads.prime(project, settings)
    except Exception:  # the page that needs it says what is wrong
        pass


def index(project: Project, settings: Settings, query: str) -> dict[str, Any]:
    jobs, views, schemas, problems = reads.catalog(project, settings)
    everything = catalog(jobs, views, schemas, problems)
    found = everything.search(query) if query.strip() else everything
    closest = everything.closest(query.strip()) if query.strip() and found.empty else None
    return {"query": query, "catalog": found, "closest": closest, "total": everything,
            "freshness": {v.view: freshness(v) for v in found.views}}


@dataclass
class Bar:
    """One run's row accounting as a horizontal bar chart row (the SVG is drawn in the template)."""

    run_id: str
    label: str
    read: int
    dropped: int
    quarantined: int
    written: int
    by_step: str = ""   # "step 1 filter 3, step 2 dedup 1": the dropped rows step by step


def by_step(steps: list[dict[str, Any]]) -> str:
    """The steps that dropped rows, with how many: ``step 1 filter 3, step 2 dedup 1``."""
    return ", ".join(f"step {s.get('index')} {s.get('op')} {s['dropped']}" for s in steps
                     if isinstance(s.get("dropped"), int) and s["dropped"])


def _accounting(report: dict[str, Any]) -> dict[str, Any]:
    """Rows read per source, dropped per step, quarantined and written, from one run's report."""
    sources = [s for s in report.get("sources") or [] if isinstance(s, dict)]
    steps = [s for s in report.get("steps") or [] if isinstance(s, dict)]
    read = [s.get("rows_read") for s in sources if isinstance(s.get("rows_read"), int)]
    return {
        "sources": sources, "steps": steps, "rows_read": sum(read) if read else None,
        "dropped": sum(s["dropped"] for s in steps if isinstance(s.get("dropped"), int)), "by_step": by_step(steps),
        "rows_out": report.get("rows_out"), "rows_quarantined": report.get("rows_quarantined"),
        "rows_written": report.get("rows_written"),
    }


def job(project: Project, settings: Settings, name: str) -> dict[str, Any]:
    detail = reads.job_detail(project, settings, name)
    reports = reads.run_reports(settings, name, RECENT_RUNS)
    runs = [{"report": r, "summary": reads.run_summary(r), **_accounting(r)} for r in reports]
    try:
        manifest_env, manifest = reads.job_manifest(project, settings, name)
        manifest_error = ""
    except FeaturekitError as exc:
        manifest_env, manifest, manifest_error = "", "", reads.redact_text(str(exc))
    bars = [Bar(r["summary"].run_id, r["summary"].started_at or r["summary"].run_id, r["rows_read"] or 0,
                r["dropped"] or 0, r["rows_quarantined"] or 0, r["rows_written"] or 0, r["by_step"]) for r in runs]
    return {"job": detail, "spec_yaml": to_yaml(detail.spec), "runs": runs, "bars": list(reversed(bars)),
            "scale": max([b.read for b in bars] + [b.written for b in bars] + [1]),
            "manifest": manifest, "manifest_env": manifest_env, "manifest_error": manifest_error}


def run(settings: Settings, run_id: str) -> dict[str, Any]:
    report = reads.run_report(settings, run_id)
    gate = report.get("gate") or {}
    checks = gate.get("checks") if isinstance(gate.get("checks"), list) else []
    quarantined, quarantine_problem = reads.quarantine_examples(settings, report)
    return {"report": report, "summary": reads.run_summary(report), "checks": checks, "gate": gate,
            "quarantined": quarantined, "quarantine_problem": quarantine_problem,
            # refused rows and unparsed source records side by side: every column either has
            "quarantine_columns": list(dict.fromkeys(k for row in quarantined for k in row["values"])),
            "durations": report.get("durations") or {}, **_accounting(report)}


def services_of(specs: dict[str, dict[str, Any]], view: str) -> dict[str, list[str]]:
    """The feature services (by name) that include ``view`` or some of its features, and what of it.
    ``specs``: the resolved specs of the jobs with a ``features:`` block."""
    found: dict[str, list[str]] = {}
    for job_name, spec in sorted(specs.items()):
        features = spec.get("features") or {}
        if job_name == view:
            found.setdefault(job_name, []).append(view)        # every view's own service
        for service, entries in (features.get("services") or {}).items():
            mine = [e for e in entries if e == view or str(e).startswith(f"{view}:")]
            if mine:
                found.setdefault(service, []).extend(mine)
    return found


@dataclass
class Freshness:
    """How old a view's newest online value is, from its last materialization's record (the
    store is not read: a Redis store would be scanned key by key on every page)."""

    newest: datetime | None      # the newest value's event time; None: unknown, or the store held none
    age: str = ""                # "3 h 12 min" ("" when unknown)
    ttl: str | None = None       # as the job declares it ("1d"); None: no job declares the view now
    stale: bool = False          # older than the ttl allows
    note: str = ""               # a sentence: why the age or the verdict is missing


def human_age(seconds: float) -> str:
    """``3 h 12 min``: the two largest units of an age (whole seconds under a minute)."""
    total = int(seconds)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min" if minutes else f"{secs} s"


def freshness(view: FeatureSetSummary, now: datetime | None = None) -> Freshness | None:
    """The freshness of ``view``'s online values as its last materialization left them (None:
    never materialized). ``newest_event`` is what the store held right after that run."""
    latest = view.latest
    if latest is None:
        return None
    if latest.newest_event is None:
        older = "newest_event" not in latest.model_fields_set
        return Freshness(None, ttl=view.ttl, note=(
            "Unknown: the last materialization was made by an older featurekit, which did not record the newest "
            "online value's event time (the next materialization records it)." if older
            else "The online store held no value of the view after the last materialization."))
    newest = datetime.fromisoformat(latest.newest_event)
    age = ((now or datetime.now(UTC)) - newest).total_seconds()
    if age < 0:
        return Freshness(newest, "0 s", view.ttl, note="Its event time is after now.")
    if view.ttl is None:
        return Freshness(newest, human_age(age), note="No job declares the view now, so there is no ttl to compare it with.")
    return Freshness(newest, human_age(age), view.ttl, stale=age > parse_duration(view.ttl))


def feature(project: Project, settings: Settings, view: str) -> dict[str, Any]:
    detail, types, declared = reads.feature_set_page(project, settings, view)
    specs = {name: j.spec.model_dump(mode="json", exclude_none=True) for name, j in declared.items()}
    spec = specs.get(detail.job, {})
    features = spec.get("features") or {}
    job_description = spec.get("description", "")
    return {"view": detail, "types": types, "spec_features": features,
            "tags": reads.redact(features.get("tags") or {}), "description": features.get("description") or job_description,
            "services": services_of(specs, view), "declared_job": detail.job if detail.job in specs else None,
            "freshness": freshness(detail)}


def registered_models(registry: ModelRegistry, query: str = "") -> dict[str, Any]:
    """The index's models and their versions (those whose name or description holds every word of
    ``query``); when the registry cannot be asked, why."""
    try:
        found = registry.models()
    except RegistryUnreachable as exc:
        return {"models": [], "registry_problem": str(exc)}
    words = query.lower().split()
    return {"models": [m for m in found if all(w in f"{m.name} {m.description}".lower() for w in words)],
            "registry_problem": ""}


def models_using(registry: ModelRegistry, view: str) -> dict[str, Any]:
    """The feature page's model versions linked to the view's data; when the registry cannot be asked, why."""
    try:
        return {"models_using": registry.using(view), "registry_problem": ""}
    except RegistryUnreachable as exc:
        return {"models_using": [], "registry_problem": str(exc)}


@dataclass
class Item:
    """A lineage node as an item of the nested list under the picture: texts masked, its page if it has one."""

    kind: str
    label: str
    details: list[str]
    href: str | None
    children: list[Item]


def item(node: Node) -> Item:
    return Item(node.kind, reads.redact_text(node.label), [reads.redact_text(d) for d in node.details],
                node_href(node.link) if node.link else None, [item(child) for child in node.children])


def lineage(project: Project, registry: ModelRegistry, model: str, version: str) -> dict[str, Any]:
    """A model version's lineage: the picture and the same tree as a list. NotFound for an unknown
    model or version, RegistryUnreachable when the registry cannot be asked."""
    from featurekit.lineage.svg import svg

    tree = registry.tree(project, model, version)
    return {"model": model, "version": version, "registry_url": registry.url,
            "picture": svg(tree, node_href, title=f"Lineage of model {model} version {version}"),
            "tree": item(tree)}


__all__ = ["Catalog", "Freshness", "Item", "Model", "feature", "freshness", "human_age", "index", "item", "job",
           "lineage", "models_using", "prime", "registered_models", "run", "services_of", "to_yaml"]
