"""The feature views and services serving needs, kept beside the project so a lookup needs no Feast.

Reading Feast's registry means importing Feast, which costs seconds. The registry's layouts (each
view's join keys with their types and its features; each service's views and features) change
only when definitions are applied, so featurekit keeps them in a small JSON catalog per
environment in the project's ``.featurekit/online-catalog/``, with a fingerprint of the registry
it was read from (the sha256 of a local registry file). ``featurekit feast apply`` and
``featurekit materialize`` write it; serving uses it while the fingerprint still matches, and
otherwise (a plain ``feast apply`` since, no catalog yet) reads the registry through Feast once
and writes the catalog again. A registry that is not a local file (SQL, S3, a registry server)
cannot be fingerprinted without reading it: it is read through Feast each time a client is made.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from featurekit.config import Project, Settings
from featurekit.online_store import ViewLayout
from featurekit.online_store.base import local_path

if TYPE_CHECKING:
    from feast import FeatureStore

FOLDER = Path(".featurekit") / "online-catalog"
FORMAT = 1


@dataclass(frozen=True)
class Catalog:
    """What the registry holds for serving: views by name, and services as (view, features) in order."""

    views: dict[str, ViewLayout]
    services: dict[str, list[tuple[str, list[str]]]]

    def to_json(self) -> dict[str, Any]:
        return {"views": {name: {"join_keys": v.join_keys, "features": v.features, "timestamp": v.timestamp}
                          for name, v in self.views.items()},
                "services": {name: [[view, features] for view, features in parts] for name, parts in self.services.items()}}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Catalog":
        views = {name: ViewLayout(name, dict(v["join_keys"]), dict(v["features"]), str(v.get("timestamp", "")))
                 for name, v in data["views"].items()}
        services = {name: [(str(view), list(features)) for view, features in parts]
                    for name, parts in data["services"].items()}
        return cls(views, services)


def registry_file(store_config: dict[str, Any], repo_path: str) -> Path | None:
    """The registry's local file, or None when the registry is not one (SQL, S3, remote...)."""
    registry = store_config.get("registry")
    if isinstance(registry, dict):
        if str(registry.get("registry_type", "file")) != "file":
            return None
        registry = registry.get("path")
    if not isinstance(registry, str) or "://" in registry:
        return None
    return local_path(registry, repo_path)


def fingerprint(path: Path) -> str | None:
    """The sha256 of the registry file's bytes (None when there is no file yet)."""
    try:
        return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        return None


def catalog_path(project: Project, env: str) -> Path:
    return project.root / FOLDER / f"{env}.json"


def load_catalog(project: Project, settings: Settings, store_config: dict[str, Any], repo_path: str) -> Catalog:
    """The catalog of the environment's registry: the kept one while its fingerprint matches,
    else read through Feast (and kept for the next time)."""
    registry = registry_file(store_config, repo_path)
    printed = fingerprint(registry) if registry is not None else None
    path = catalog_path(project, settings.env)
    key = _key(store_config, registry, printed)
    if printed is not None:
        kept = _read(path, key)
        if kept is not None:
            return kept
    from featurekit.feast.store import open_store

    catalog = _from_store(open_store(project, settings, {}))
    if printed is not None:
        _write(path, key, catalog)
    return catalog


def refresh_catalog(project: Project, settings: Settings, store_config: dict[str, Any], repo_path: str,
                    store: "FeatureStore") -> None:
    """Keep the catalog of ``store``'s registry (featurekit's apply and materialize, which have
    Feast loaded already). The fingerprint is taken first: a registry changed while it is read
    then no longer matches, and serving reads it again."""
    registry = registry_file(store_config, repo_path)
    printed = fingerprint(registry) if registry is not None else None
    if printed is None:
        return
    _write(catalog_path(project, settings.env), _key(store_config, registry, printed), _from_store(store))


def view_layout(view: Any) -> ViewLayout:
    """A Feast ``FeatureView`` as the online-store port describes it."""
    return ViewLayout(name=view.name,
                      join_keys={c.name: c.dtype.to_value_type().name for c in view.entity_columns},
                      features={f.name: f.dtype.to_value_type().name for f in view.features},
                      timestamp=view.batch_source.timestamp_field if view.batch_source is not None else "")


def _from_store(store: "FeatureStore") -> Catalog:
    views = {fv.name: view_layout(fv) for fv in store.list_feature_views()}
    services = {s.name: [(p.name, [f.name for f in p.features]) for p in s.feature_view_projections]
                for s in store.list_feature_services()}
    return Catalog(views, services)


def _key(store_config: dict[str, Any], registry: Path | None, printed: str | None) -> dict[str, Any]:
    """What a kept catalog must have been read from to be used."""
    return {"format": FORMAT, "project": str(store_config["project"]),
            "registry": str(registry) if registry is not None else None, "fingerprint": printed}


def _read(path: Path, key: dict[str, Any]) -> Catalog | None:
    try:
        data = json.loads(path.read_text())
        if {name: data.get(name) for name in key} != key:
            return None
        return Catalog.from_json(data)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None   # absent or unreadable: read the registry again


def _write(path: Path, key: dict[str, Any], catalog: Catalog) -> None:
    """Replace the catalog in one rename (concurrent readers see the old or the new one); a
    project folder that cannot be written only costs the next client a registry read."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    except OSError:
        return
    try:
        with os.fdopen(handle, "w") as out:
            json.dump({**key, **catalog.to_json()}, out, indent=1)
        os.replace(temp, path)
    except OSError:
        Path(temp).unlink(missing_ok=True)
