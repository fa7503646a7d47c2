"""What ``feature_repo/features.py`` calls: the project's Feast objects, for plain ``feast`` too.

The module finds its project from its own location (the nearest folder upwards with ``conf/``
and ``jobs/``) and the environment from ``FEATUREKIT_ENV`` (default ``local``), which
``featurekit feast apply --env ENV`` sets. A problem (a job whose table was not written yet,
a bad spec) ends the Feast command with featurekit's one-line message instead of a traceback.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from featurekit.config import find_project, load_settings
from featurekit.errors import FeaturekitError
from featurekit.feast.definitions import feast_objects, service_specs, view_specs
from featurekit.feast.store import ENV_VAR


def definitions(module_file: str) -> dict[str, Any]:
    """Feast objects of the project holding ``module_file``, by module-level name."""
    env = os.environ.get(ENV_VAR) or "local"
    try:
        project = find_project(Path(module_file).resolve().parent)
        settings = load_settings(project, env)
        views = view_specs(project, settings)
        objects = feast_objects(views, service_specs(views))
    except FeaturekitError as exc:
        raise SystemExit(f"featurekit: {exc}") from None
    from feast import Project as FeastProject

    objects["feast_project"] = FeastProject(name=settings.feast.project, description="Feature views built by featurekit from jobs/*.yaml.")
    return objects
