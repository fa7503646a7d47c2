"""Online lookups at serving time: entity keys in, the latest feature values out."""

from __future__ import annotations

from typing import Any

from featurekit.config import Project, Settings
from featurekit.errors import ConfigError
from featurekit.feast.definitions import ViewSpec, service_specs, view_specs
from featurekit.pipeline.features import open_store
from featurekit.spec.names import did_you_mean

CASTS = {"Int64": int, "Int32": int, "String": str, "Bool": lambda v: v.lower() in ("1", "true", "yes")}


def _views_of(views: list[ViewSpec], service: str | None, view: str | None) -> tuple[list[str], dict[str, str]]:
    """Feature references and the join keys (column -> Feast type) they need."""
    by_name = {v.name: v for v in views}
    if view is not None:
        if view not in by_name:
            raise ConfigError.single(f"unknown feature view {view!r}" + did_you_mean(view, by_name)
                                     + f" (views: {', '.join(by_name)})", file="command line", field="--view")
        chosen = {view: list(by_name[view].features)}
    else:
        services = {s.name: s for s in service_specs(views)}
        if service not in services:
            raise ConfigError.single(f"unknown feature service {service!r}" + did_you_mean(str(service), services)
                                     + f" (services: {', '.join(services)})", file="command line", field="--service")
        chosen = services[service].features
    keys: dict[str, str] = {}
    for name in chosen:
        keys.update(by_name[name].join_keys)
    return [f"{v}:{f}" for v, names in chosen.items() for f in names], keys


def parse_entities(texts: list[str], keys: dict[str, str]) -> list[dict[str, Any]]:
    """``["driver_id=1", "driver_id=2"]`` (``a=1,b=2`` for composite keys) -> entity rows, typed."""
    rows = []
    for text in texts:
        row: dict[str, Any] = {}
        for part in text.split(","):
            name, sep, value = part.partition("=")
            name = name.strip()
            if not sep or name not in keys:
                raise ConfigError.single(
                    f"expected KEY=VALUE with KEY one of {', '.join(keys)}; got {part!r}"
                    + (did_you_mean(name, keys) if sep else ""), file="command line", field="entities")
            try:
                row[name] = CASTS.get(keys[name], str)(value.strip())
            except ValueError:
                raise ConfigError.single(f"{name} is {keys[name]}; got {value!r}", file="command line",
                                         field="entities") from None
        missing = [k for k in keys if k not in row]
        if missing:
            raise ConfigError.single(f"{text!r} lacks join key(s) {', '.join(missing)}", file="command line",
                                     field="entities")
        rows.append(row)
    return rows


def lookup(project: Project, settings: Settings, entities: list[str], *, service: str | None = None,
           view: str | None = None) -> list[dict[str, Any]]:
    """The online features of ``service`` (or all of ``view``) for each entity, one dict per entity."""
    views = view_specs(project, settings)
    features, keys = _views_of(views, service, view)
    rows = parse_entities(entities, keys)
    store = open_store(project, settings)
    refs: Any = store.get_feature_service(service) if service else features
    found = store.get_online_features(features=refs, entity_rows=rows).to_dict()
    names = list(found)
    return [{name: found[name][i] for name in names} for i in range(len(rows))]
