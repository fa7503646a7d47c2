"""Online features at serving time, from Python: ``get_features`` and the ``OnlineFeatures`` client.

    from featurekit.online import get_features
    get_features({"driver_id": [100001, 100002]}, service="driver_hourly_stats")
    # {"driver_id": [100001, 100002], "trips_24h": [32, 14], ...}   (columns, request order)

The client reads the online store directly (``featurekit.online_store``) with the feature views
as Feast's registry holds them, from the catalog kept beside the project
(``featurekit.feast.catalog``), read once, when the client is made: re-create it, or restart
``featurekit serve``, after ``feast apply``. Values are the ones the Feast SDK returns for the
same store; :meth:`OnlineFeatures.response` gives Feast's HTTP response shape. Nothing here
imports Spark or the batch side, nor Feast while the catalog is current.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from featurekit.config import Project, Settings, find_project, load_settings
from featurekit.errors import ConfigError
from featurekit.feast.catalog import load_catalog
from featurekit.feast.store import online_config, repo_dir
from featurekit.online_store import OnlineStore, ViewLayout, open_online_store
from featurekit.yamlconf.names import did_you_mean

EPOCH = "1970-01-01T00:00:00Z"
PRESENT, NOT_FOUND = "PRESENT", "NOT_FOUND"


class UnknownFeature(ConfigError):
    """A request names a feature, view, service or join key the registry does not hold."""


@dataclass(frozen=True)
class _Plan:
    join_keys: list[str]
    views: list[tuple[str, list[str]]]     # (view, features) in request order


class OnlineFeatures:
    """A reader of one environment's online store, with the registry's feature views."""

    def __init__(self, env: str = "local", project: Project | None = None, settings: Settings | None = None) -> None:
        project = project or find_project()
        settings = settings or load_settings(project, env)
        config, repo_path = online_config(project, settings), str(repo_dir(settings))
        catalog = load_catalog(project, settings, config, repo_path)
        self.layouts: dict[str, ViewLayout] = catalog.views
        self.services: dict[str, list[tuple[str, list[str]]]] = catalog.services
        self.reader: OnlineStore = open_online_store(config, repo_path)
        self._plans: dict[tuple[Any, ...], _Plan] = {}

    # ----------------------------------------------------------------- requests
    def plan(self, features: list[str] | None = None, service: str | None = None) -> _Plan:
        """Which views and features a request reads (cached per distinct request)."""
        cache_key = (service, tuple(features or ()))
        cached = self._plans.get(cache_key)
        if cached is not None:
            return cached
        if (service is None) == (not features):
            raise UnknownFeature.single("give either features or a feature service", file="request", field="features")
        if service is not None:
            if service not in self.services:
                raise UnknownFeature.single(f"unknown feature service {service!r}" + did_you_mean(service, self.services),
                                            file="request", field="feature_service")
            views = self.services[service]
        else:
            grouped: dict[str, list[str]] = {}
            for ref in features or []:
                view, sep, feature = ref.partition(":")
                layout = self.layouts.get(view)
                if not sep or layout is None:
                    raise UnknownFeature.single(
                        f"unknown feature view in {ref!r}" + did_you_mean(view, self.layouts)
                        + " (expected VIEW:FEATURE)", file="request", field="features")
                if feature not in layout.features:
                    raise UnknownFeature.single(f"view {view!r} has no feature {feature!r}"
                                                + did_you_mean(feature, layout.features), file="request", field="features")
                grouped.setdefault(view, []).append(feature)
            views = list(grouped.items())
        join_keys: list[str] = []
        for view, _ in views:
            for key in self.layouts[view].join_keys:
                if key not in join_keys:
                    join_keys.append(key)
        plan = _Plan(join_keys, views)
        self._plans[cache_key] = plan
        return plan

    def _rows(self, plan: _Plan, entities: dict[str, list[Any]]) -> tuple[list[dict[str, Any]], int]:
        missing = [k for k in plan.join_keys if k not in entities]
        unknown = [k for k in entities if k not in plan.join_keys]
        if missing or unknown:
            raise UnknownFeature.single(
                f"entities must give the join keys {', '.join(plan.join_keys)}"
                + (f"; missing {', '.join(missing)}" if missing else "")
                + (f"; unknown {', '.join(unknown)}" if unknown else ""), file="request", field="entities")
        sizes = {len(v) for v in entities.values()}
        if len(sizes) > 1:
            raise UnknownFeature.single("every join key needs the same number of values", file="request", field="entities")
        count = sizes.pop() if sizes else 0
        return [{k: entities[k][i] for k in plan.join_keys} for i in range(count)], count

    def get(self, entities: dict[str, list[Any]], features: list[str] | None = None,
            service: str | None = None) -> dict[str, list[Any]]:
        """Columns: the join keys as given, then each requested feature (null when not found)."""
        plan = self.plan(features, service)
        rows, count = self._rows(plan, entities)
        out: dict[str, list[Any]] = {k: list(entities[k]) for k in plan.join_keys}
        for view, names in plan.views:
            stored = self.reader.read(self.layouts[view], rows)
            for name in names:
                out[name] = [values.get(name) if values else None for values in stored.values]
        return out

    def response(self, entities: dict[str, list[Any]], features: list[str] | None = None,
                 service: str | None = None) -> dict[str, Any]:
        """Feast's ``/get-online-features`` response: column-oriented results with statuses and times."""
        plan = self.plan(features, service)
        rows, count = self._rows(plan, entities)
        names: list[str] = []
        results: list[dict[str, Any]] = []
        for key in plan.join_keys:
            names.append(key)
            results.append({"values": list(entities[key]), "statuses": [PRESENT] * count,
                            "event_timestamps": [EPOCH] * count})
        for view, wanted in plan.views:
            stored = self.reader.read(self.layouts[view], rows)
            stamps = [ts.strftime("%Y-%m-%dT%H:%M:%SZ") if ts else EPOCH for ts in stored.timestamps]
            statuses = [PRESENT if values is not None else NOT_FOUND for values in stored.values]
            for name in wanted:
                names.append(name)
                results.append({"values": [values.get(name) if values else None for values in stored.values],
                                "statuses": list(statuses), "event_timestamps": stamps})
        return {"metadata": {"feature_names": names}, "results": results}


    def view_refs(self, view: str) -> list[str]:
        """Every feature of ``view`` as ``view:feature`` references."""
        if view not in self.layouts:
            raise UnknownFeature.single(f"unknown feature view {view!r}" + did_you_mean(view, self.layouts)
                                        + f" (views: {', '.join(self.layouts)})", file="request", field="view")
        return [f"{view}:{f}" for f in self.layouts[view].features]

    def join_key_types(self, plan: _Plan) -> dict[str, str]:
        types: dict[str, str] = {}
        for view, _ in plan.views:
            types.update(self.layouts[view].join_keys)
        return {k: types[k] for k in plan.join_keys}


CASTS = {"INT64": int, "INT32": int, "STRING": str, "BOOL": lambda v: v.lower() in ("1", "true", "yes"),
         "BYTES": str.encode}


def parse_entities(texts: list[str], key_types: dict[str, str]) -> dict[str, list[Any]]:
    """``["driver_id=1", "driver_id=2"]`` (``a=1,b=2`` for composite keys) -> typed columns."""
    columns: dict[str, list[Any]] = {k: [] for k in key_types}
    for text in texts:
        row: dict[str, Any] = {}
        for part in text.split(","):
            name, sep, value = part.partition("=")
            name = name.strip()
            if not sep or name not in key_types:
                raise ConfigError.single(
                    f"expected KEY=VALUE with KEY one of {', '.join(key_types)}; got {part!r}"
                    + (did_you_mean(name, key_types) if sep else ""), file="command line", field="entities")
            try:
                row[name] = CASTS.get(key_types[name], str)(value.strip())
            except ValueError:
                raise ConfigError.single(f"{name} is {key_types[name]}; got {value!r}", file="command line",
                                         field="entities") from None
        missing = [k for k in key_types if k not in row]
        if missing:
            raise ConfigError.single(f"{text!r} lacks join key(s) {', '.join(missing)}", file="command line",
                                     field="entities")
        for key, value in row.items():
            columns[key].append(value)
    return columns


def lookup(texts: list[str], *, service: str | None = None, view: str | None = None, env: str = "local",
           project: Project | None = None) -> list[dict[str, Any]]:
    """``featurekit online``: entity texts in, one dict per entity out (join keys, then features)."""
    client = _client(project or find_project(), env)
    features = client.view_refs(view) if view is not None else None
    plan = client.plan(features, service)
    found = client.get(parse_entities(texts, client.join_key_types(plan)), features=features, service=service)
    return [{name: found[name][i] for name in found} for i in range(len(texts))]


_clients: dict[tuple[str, str], OnlineFeatures] = {}


def _client(project: Project, env: str) -> OnlineFeatures:
    key = (str(project.root), env)
    if key not in _clients:
        _clients[key] = OnlineFeatures(env, project)
    return _clients[key]


def forget_clients() -> None:
    """Drop cached clients (after ``feast apply`` changed the registry, in the same process)."""
    _clients.clear()


def get_features(entities: dict[str, list[Any]], *, features: list[str] | None = None,
                 service: str | None = None, env: str = "local", project: Project | None = None) -> dict[str, list[Any]]:
    """Online features for ``entities`` (join key -> values), as columns; see the module doc."""
    return _client(project or find_project(), env).get(entities, features=features, service=service)
