"""``feature_store.yaml`` for an environment, rendered from ``conf/``, and Feast stores opened on it.

The rendered file is what plain ``feast`` commands read in ``feature_repo/``. Paths inside the
project are written relative to the feature repository (Feast resolves them from there), so the
file for the local environment can be committed and works in any clone.

The offline store is Feast's Spark store reading the Delta tables; its ``spark_conf`` carries
the same Delta settings and cached jars as featurekit's own sessions, for plain ``feast``
commands that start Spark themselves (featurekit's commands hand Feast a session they built).

The rendered file never holds a secret: a password is referenced (``password=${REDIS_PASSWORD}``,
which Feast fills from the environment when it reads the file), and a value that would carry one
is refused, naming its setting (:func:`featurekit.redaction.leaks`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ruamel.yaml import YAML

from featurekit.config import Project
from featurekit.config.environment import with_environment
from featurekit.config.settings import Settings
from featurekit.errors import ConfigError, Problem
from featurekit.online_store import local_folders
from featurekit.redaction import leaks

if TYPE_CHECKING:
    from feast import FeatureStore

STORE_FILE = "feature_store.yaml"
ENV_VAR = "FEATUREKIT_ENV"
HEADER = (
    "# Rendered by `featurekit feast render --env {env}` from conf/; edit conf/, not this file.\n"
    "# Plain `feast` commands work here; the definitions come from jobs/*.yaml (features.py).\n"
)
# Set per process by featurekit, or naming files of this machine: not for a shared file.
PROCESS_KEYS = ("spark.driver.extraJavaOptions", "spark.pyspark.python", "spark.pyspark.driver.python")


def repo_dir(settings: Settings) -> Path:
    return Path(settings.feast.repo)


def _relative(value: Any, project: Project, base: Path) -> Any:
    """A path inside the project, written relative to ``base`` (other values unchanged)."""
    if isinstance(value, str) and os.path.isabs(value):
        path = Path(value)
        if path == project.root or project.root in path.parents:
            return os.path.relpath(path, base)
    return value


def spark_conf(settings: Settings, session_conf: dict[str, str], project: Project) -> dict[str, str]:
    """The Spark settings plain Feast commands start their session with (Delta + cached jars).

    ``session_conf`` is what featurekit's own sessions get (Delta, jars, conf/ settings).
    """
    base = repo_dir(settings)
    conf = {"spark.master": settings.spark.master, "spark.app.name": f"{settings.spark.app_name}:feast"}
    for key, value in session_conf.items():
        if key in PROCESS_KEYS:
            continue
        if key == "spark.jars":
            value = ",".join(str(_relative(j, project, base)) for j in value.split(","))
        conf[key] = str(value)
    return conf


def online_config(project: Project, settings: Settings) -> dict[str, Any]:
    """The part of ``feature_store.yaml`` the online store and serving need: project, registry,
    online store and key serialization, without the offline store's Spark settings."""
    base = repo_dir(settings)
    feast = settings.feast
    registry: Any = feast.registry
    if isinstance(registry, dict):
        registry = {k: _relative(v, project, base) if k == "path" else v for k, v in registry.items()}
    else:
        registry = {"registry_type": "file", "path": _relative(registry, project, base)}
    online = {k: _relative(v, project, base) if k == "path" else v for k, v in feast.online_store.items()}
    return {
        "project": feast.project,
        "provider": "local",
        "registry": registry,
        "online_store": online,
        "entity_key_serialization_version": feast.entity_key_serialization_version,
    }


def store_config(project: Project, settings: Settings, session_conf: dict[str, str]) -> dict[str, Any]:
    """The content of ``feature_store.yaml`` for ``settings.env``."""
    online = online_config(project, settings)
    return {
        **{key: online[key] for key in ("project", "provider", "registry", "online_store")},
        "offline_store": {"type": "spark", "spark_conf": spark_conf(settings, session_conf, project)},
        "entity_key_serialization_version": online["entity_key_serialization_version"],
    }


def repo_config(project: Project, settings: Settings, session_conf: dict[str, str]) -> Any:
    """Feast's ``RepoConfig`` for the environment, or a :class:`ConfigError` saying what is wrong."""
    from feast.errors import FeastError
    from feast.repo_config import RepoConfig
    from pydantic import ValidationError

    from featurekit.feast import quiet_spark_source

    quiet_spark_source()
    _s3_registry_access(settings)
    config = store_config(project, settings, session_conf)
    try:
        repo = RepoConfig(repo_path=repo_dir(settings), **with_environment(config))
        repo.online_store  # parsed lazily: make Feast check it now
        repo.registry
        return repo
    except (ValidationError, ValueError, FeastError, ImportError) as exc:
        first = str(exc).strip().splitlines()
        raise ConfigError.single(f"Feast rejects these settings: {' '.join(first[:3])}", file="conf", field="feast") from None


def _s3_registry_access(settings: Settings) -> None:
    """A registry on ``s3://`` goes through boto3, at the endpoint the s3a settings name.

    Feast's S3 registry reads its endpoint from ``FEAST_S3_ENDPOINT_URL`` (boto3 reads the
    credentials from ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, as s3a does); an explicit
    value in the environment wins.
    """
    registry = settings.feast.registry if isinstance(settings.feast.registry, str) else settings.feast.registry.get("path")
    if not str(registry).startswith("s3://"):
        return
    try:
        import boto3  # noqa: F401
    except ImportError:
        raise ConfigError.single(f"the Feast registry {registry} is on S3, which needs boto3: "
                                 "pip install 'featurekit[s3]'", file="conf", field="feast.registry") from None
    options = settings.storage_options
    if "AWS_ENDPOINT_URL" in options:
        os.environ.setdefault("FEAST_S3_ENDPOINT_URL", options["AWS_ENDPOINT_URL"])
    if "AWS_REGION" in options:
        os.environ.setdefault("AWS_DEFAULT_REGION", options["AWS_REGION"])


def render(project: Project, settings: Settings, session_conf: dict[str, str]) -> Path:
    """Write ``feature_store.yaml`` for ``settings.env`` into the feature repository."""
    repo_config(project, settings, session_conf)  # refuse to write what Feast would not read
    config = store_config(project, settings, session_conf)
    leaked = leaks(config)
    if leaked:
        raise ConfigError([Problem("conf", None, None, f"{STORE_FILE} {where}", "would hold a secret (a password in a "
                                   "URL, or the value of a secret environment variable); refer to an environment "
                                   "variable instead, e.g. password=$${REDIS_PASSWORD}") for where in leaked])
    folder = repo_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / STORE_FILE
    yaml = YAML()
    yaml.default_flow_style = False
    with path.open("w") as handle:
        handle.write(HEADER.format(env=settings.env))
        yaml.dump(config, handle)
    return path


def local_paths(settings: Settings) -> list[Path]:
    """Folders Feast writes into that must exist (file registry, SQLite online store)."""
    feast = settings.feast
    paths = []
    registry = feast.registry if isinstance(feast.registry, str) else feast.registry.get("path")
    if isinstance(registry, str) and "://" not in registry and not str(registry).startswith(("postgresql", "mysql", "sqlite")):
        paths.append(Path(registry).parent)
    paths += local_folders({"online_store": feast.online_store}, str(repo_dir(settings)))
    return paths


def open_store(project: Project, settings: Settings, session_conf: dict[str, str]) -> "FeatureStore":
    """A Feast ``FeatureStore`` on the environment's settings (no feature_store.yaml needed)."""
    from feast import FeatureStore

    for folder in local_paths(settings):
        folder.mkdir(parents=True, exist_ok=True)
    return FeatureStore(repo_path=str(repo_dir(settings)), config=repo_config(project, settings, session_conf))
