"""The online-store port (see ``base.py``): one implementation per store, chosen here, once.

``open_online_store(store_config, repo_path)`` takes the online part of ``feature_store.yaml``
(``project``, ``online_store``, ``entity_key_serialization_version``, ``registry``) and the
feature repository (relative paths are inside it). Nothing here imports Feast, but for the
paths that need it (key serialization versions other than 3, non-scalar values), inside the
function that needs it.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from featurekit.errors import ConfigError
from featurekit.online_store.base import KeyCount, Marker, OnlineStore, ViewLayout, ViewRows

__all__ = ["KeyCount", "Marker", "OnlineStore", "ViewLayout", "ViewRows", "local_folders", "open_online_store"]

# online_store.type -> its implementation (module, class), imported when chosen
STORES = {
    "sqlite": ("featurekit.online_store.sqlite", "SqliteStore"),
    "redis": ("featurekit.online_store.redis", "RedisStore"),
}


def _implementation(store_config: dict[str, Any]) -> tuple[str, Any]:
    kind = str(store_config["online_store"].get("type", "sqlite"))   # Feast's default
    found = STORES.get(kind)
    return kind, getattr(importlib.import_module(found[0]), found[1]) if found else None


def open_online_store(store_config: dict[str, Any], repo_path: str) -> OnlineStore:
    """The :class:`OnlineStore` of the store ``store_config`` names: the one switch on its type."""
    kind, implementation = _implementation(store_config)
    if implementation is None:
        raise ConfigError.single(f"featurekit reads, verifies and keeps its state in {' and '.join(STORES)} online "
                                 f"stores only (this env's is {kind!r})", file="conf", field="feast.online_store.type")
    store: OnlineStore = implementation(store_config, repo_path)
    return store


def local_folders(store_config: dict[str, Any], repo_path: str) -> list[Path]:
    """Folders the store's files live in, which must exist before Feast opens it (none for
    stores featurekit does not implement: Feast makes what it needs)."""
    _, implementation = _implementation(store_config)
    return implementation.local_folders(store_config, repo_path) if implementation is not None else []
