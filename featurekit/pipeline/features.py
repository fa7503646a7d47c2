"""Feast on the project's tables: render the store file, plan and apply the definitions.

``import feast`` costs seconds, so everything Feast-related is imported inside these functions.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from featurekit.config import Project, Settings
from featurekit.engine.session import session_conf
from featurekit.errors import InfraError
from featurekit.feast import store as feast_store
from featurekit.feast.catalog import refresh_catalog
from featurekit.feast.definitions import ServiceSpec, ViewSpec, service_specs, view_specs

if TYPE_CHECKING:
    from feast import FeatureStore


def feast_session_conf(settings: Settings) -> dict[str, str]:
    """featurekit's Spark settings (Delta, cached jars, conf/), as Feast's Spark store gets them."""
    from featurekit.pipeline.core import _jar_paths

    return session_conf(settings, _jar_paths(settings, fetch=False))


def render(project: Project, settings: Settings) -> Path:
    """Write ``feature_repo/feature_store.yaml`` for the environment; returns its path."""
    return feast_store.render(project, settings, feast_session_conf(settings))


def definitions(project: Project, settings: Settings) -> tuple[list[ViewSpec], list[ServiceSpec]]:
    """The feature views and services the jobs declare (tables read with delta-rs, no JVM)."""
    views = view_specs(project, settings)
    return views, service_specs(views)


def open_store(project: Project, settings: Settings) -> "FeatureStore":
    return feast_store.open_store(project, settings, feast_session_conf(settings))


@contextmanager
def _in_repo(settings: Settings) -> Iterator[None]:
    """Feast's repo operations chdir into the repository, import its modules from there (as
    the ``feast`` CLI does, with the repository on ``sys.path``) and read FEATUREKIT_ENV."""
    cwd, before = os.getcwd(), os.environ.get(feast_store.ENV_VAR)
    folder = str(feast_store.repo_dir(settings).resolve())
    os.environ[feast_store.ENV_VAR] = settings.env
    sys.path.insert(0, folder)
    _forget_modules(folder)  # another project's definitions module may have the same name
    try:
        yield
    finally:
        _forget_modules(folder)
        sys.path.remove(folder)
        os.chdir(cwd)
        if before is None:
            os.environ.pop(feast_store.ENV_VAR, None)
        else:
            os.environ[feast_store.ENV_VAR] = before


def _forget_modules(folder: str) -> None:
    """Drop imported modules of a feature repository so the next apply imports them afresh."""
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None) or ""
        if path.startswith(folder + os.sep) or (name == "features" and path):
            sys.modules.pop(name, None)


def apply(project: Project, settings: Settings, *, plan_only: bool = False) -> Path:
    """``feast apply`` (or ``feast plan``) of the feature repository for the environment.

    The store file is rendered first; the definitions are checked by featurekit (every table
    exists, every column typed), so Feast's own source validation, which would start Spark to
    read each table, is skipped. After an apply, serving's catalog of the registry is written.
    """
    from feast import FeatureStore
    from feast.repo_operations import apply_total, plan

    definitions(project, settings)  # featurekit's errors before Feast's
    path = render(project, settings)
    config = feast_store.repo_config(project, settings, feast_session_conf(settings))
    for folder in feast_store.local_paths(settings):
        folder.mkdir(parents=True, exist_ok=True)
    with _in_repo(settings):
        try:
            if plan_only:
                plan(config, feast_store.repo_dir(settings), skip_source_validation=True)
            else:
                apply_total(config, feast_store.repo_dir(settings), skip_source_validation=True)
        except SystemExit as exc:  # raised by the definitions module or Feast's CLI helpers
            if exc.code not in (0, None):
                raise InfraError(str(exc.code)) from None
    if not plan_only:
        repo = str(feast_store.repo_dir(settings))
        refresh_catalog(project, settings, feast_store.online_config(project, settings), repo,
                        FeatureStore(repo_path=repo, config=config))
    return path


def registry_objects(store: "FeatureStore") -> dict[str, Any]:
    """What the registry holds: entities, views (field: type), services (view: features)."""
    return {
        "entities": {e.name: e.join_key for e in store.list_entities()},
        "views": {v.name: {f.name: str(f.dtype) for f in v.schema} for v in store.list_feature_views()},
        "services": {s.name: {p.name: [f.name for f in p.features] for p in s.feature_view_projections}
                     for s in store.list_feature_services()},
    }
