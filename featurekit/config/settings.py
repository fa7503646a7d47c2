"""Per-environment settings: every YAML file of ``conf/base`` deep-merged with ``conf/<env>``.

Later files win key by key (files in name order, the environment after base). String
values may use ``${name}`` for ``vars`` and the built-ins ``project_root`` and ``env``.
Problems are reported at the file and line that set the offending value.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from featurekit import redaction
from featurekit.config.kubernetes import CREDENTIAL_SETTING, EnvName, KubernetesSettings, refuse_credentials
from featurekit.config.pipeline import PipelineSettings
from featurekit.config.project import Project
from featurekit.config.storage import delta_rs_options
from featurekit.errors import ConfigError, NotFound, Problem
from featurekit.yamlconf.names import did_you_mean
from featurekit.yamlconf.positions import KeyPath, Positions, load_yaml_file
from featurekit.yamlconf.pydantic_errors import problems_from
from featurekit.yamlconf.values import OptionValue
from featurekit.yamlconf.variables import substitute, unclosed

JARS_ENV = "FEATUREKIT_JARS_DIR"
REGISTRY_URL_ENV = "FEATUREKIT_REGISTRY_URL"
REGISTRY_TOKEN_ENV = "FEATUREKIT_REGISTRY_TOKEN"
_MAVEN = re.compile(r"^[A-Za-z0-9_.-]+:[A-Za-z0-9_.-]+:[A-Za-z0-9_.+-]+$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SparkSettings(_Strict):
    master: str = "local[*]"
    app_name: str = "featurekit"
    log_level: Literal["ERROR", "WARN", "INFO", "DEBUG"] = "WARN"
    # Spark's own log (at log_level) goes to a file under paths.logs; with this also to stderr.
    # Off, a failure shows as featurekit's one-line error naming that file (`--debug` turns it on).
    console_log: bool = False
    conf: dict[str, OptionValue] = Field(default_factory=dict)
    # Maven packages besides Delta (e.g. hadoop-aws for s3a://), fetched by `featurekit setup`.
    packages: list[str] = Field(default_factory=list)

    @field_validator("conf")
    @classmethod
    def _no_credentials(cls, conf: dict[str, str]) -> dict[str, str]:
        refuse_credentials(conf, CREDENTIAL_SETTING, "a credential set inline; credentials never sit in conf. "
                           "Give them to the process as environment variables (e.g. AWS_ACCESS_KEY_ID / "
                           "AWS_SECRET_ACCESS_KEY, which s3a reads) or, on Kubernetes, as kubernetes.secret_env references")
        return conf

    @field_validator("packages")
    @classmethod
    def _coordinates(cls, packages: list[str]) -> list[str]:
        for package in packages:
            if not _MAVEN.match(package):
                raise ValueError(f"expected Maven coordinates group:artifact:version; got {package!r}")
        return packages


class PathSettings(_Strict):
    runs: str = "${project_root}/.featurekit/runs"
    jars: str = "${project_root}/.featurekit/jars"
    logs: str = "${project_root}/.featurekit/logs"


class FeastSettings(_Strict):
    """The Feast feature repository of an environment (rendered into ``feature_store.yaml``).

    ``registry`` and ``online_store`` are passed to Feast as written (a file path or a
    mapping such as ``{registry_type: sql, path: ...}``; ``{type: sqlite, path: ...}`` or
    ``{type: redis, connection_string: ...}``); Feast checks them when the file is rendered.
    """

    project: str = "featurekit"
    repo: str = "${project_root}/feature_repo"
    # Inside the feature repository (gitignored data/), where plain `feast` creates the folder.
    registry: str | dict[str, OptionValue] = "${project_root}/feature_repo/data/registry.db"
    online_store: dict[str, OptionValue] = Field(
        default_factory=lambda: {"type": "sqlite", "path": "${project_root}/feature_repo/data/online.db"})
    entity_key_serialization_version: int = 3
    # Rows per batch written to the online store by `featurekit materialize`. A writer holds
    # every row of a batch while it encodes and sends it: batches of this size bound that memory
    # without costing speed (docs/benchmarks.md).
    write_batch_rows: int = Field(default=2_500, gt=0)
    # How `featurekit materialize` reads the tables: `spark` (reduced to the latest row per key
    # in Spark, written by its Python workers; any store) or `arrow` (streamed from delta-rs in
    # the command's own process, no JVM; plain Redis only, whose writer keeps the newer value).
    materialize_engine: Literal["spark", "arrow"] = "spark"

    @field_validator("online_store")
    @classmethod
    def _no_password(cls, store: dict[str, str]) -> dict[str, str]:
        for key, value in store.items():
            if ("password" in key.lower() and not value.startswith("${")) or re.search(r"(^|,)\s*password=(?!\$\{)", value) \
                    or re.search(r"://[^/@]*:(?!\$\{)[^/@]*@", value):
                raise ValueError(
                    f"{key}: holds a password; credentials never sit in conf. Refer to an environment "
                    "variable instead, e.g. password=$${REDIS_PASSWORD} ($$ keeps the ${...} for Feast and "
                    "featurekit to fill from the environment)")
        return store

    @field_validator("registry")
    @classmethod
    def _no_registry_password(cls, registry: str | dict[str, str]) -> str | dict[str, str]:
        values = registry.values() if isinstance(registry, dict) else [registry]
        if any(redaction.url_passwords(str(value)) for value in values):
            raise ValueError(
                "holds a password in its URL; credentials never sit in conf. Refer to an environment variable "
                "instead, e.g. postgresql://feast:$${FEAST_REGISTRY_PASSWORD}@db:5432/feast")
        return registry


class RegistrySettings(_Strict):
    """The Kubeflow Model Registry that lineage goes to (``featurekit registry serve`` by default).

    ``token_env`` names the environment variable holding a bearer token (the token itself never
    sits in conf); it must then be set. Without ``token_env`` the token is read from
    ``FEATUREKIT_REGISTRY_TOKEN`` when that is set, and none is sent otherwise. Requests
    failing to connect, timing out or answered 5xx are retried ``retries`` times, waiting ``backoff_s``, then twice that, and so on; a record that still
    cannot be sent waits in ``outbox`` for ``featurekit lineage flush``. With ``enabled: false``
    materializations and training sets are recorded in the run log only.
    """

    url: str = "http://127.0.0.1:8080"
    token_env: str | None = None
    timeout_s: float = Field(default=5.0, gt=0)
    retries: int = Field(default=3, ge=0, le=10)
    backoff_s: float = Field(default=0.5, ge=0)
    outbox: str = "${project_root}/.featurekit/lineage-outbox"
    enabled: bool = False

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")) or len(value.split("://", 1)[1].strip("/")) == 0:
            raise ValueError(f"expected an http:// or https:// URL like http://127.0.0.1:8080; got {value!r}")
        return value.rstrip("/")

    @property
    def effective_url(self) -> str:
        """The URL to use: ``FEATUREKIT_REGISTRY_URL`` when set, else ``url``."""
        return (os.environ.get(REGISTRY_URL_ENV) or self.url).rstrip("/")

    @property
    def token_variable(self) -> str:
        """The environment variable the bearer token is read from: ``token_env``, else
        ``FEATUREKIT_REGISTRY_TOKEN``."""
        return self.token_env or REGISTRY_TOKEN_ENV


class ConcurrencySettings(_Strict):
    """What a run does when another run of its job commits to its table first: run again, up to
    ``retries`` times, where repeating is safe (an overwrite, merge, partition or interval
    replace; an append whose commit is known not to have landed); else, or after the last
    retry, fail with exit 1 naming the version the other run committed."""

    retries: int = Field(default=2, ge=0, le=10)


class SecretSettings(_Strict):
    """Environment variables whose values are secrets besides those featurekit recognizes by name
    (``...PASSWORD``, ``...TOKEN``, ``...SECRET...``, ``...ACCESS_KEY``...), by conf
    (``registry.token_env``, ``kubernetes.secret_env``) or by a ``${NAME}`` standing for a
    password: no output of featurekit holds their values (docs/configuration.md#credentials)."""

    env: list[EnvName] = Field(default_factory=list)


class Settings(_Strict):
    """The merged settings of one environment, variables filled."""

    env: str = "local"
    vars: dict[str, str] = Field(default_factory=dict)
    spark: SparkSettings = Field(default_factory=SparkSettings)
    paths: PathSettings = Field(default_factory=PathSettings)
    feast: FeastSettings = Field(default_factory=FeastSettings)
    registry: RegistrySettings = Field(default_factory=RegistrySettings)
    concurrency: ConcurrencySettings = Field(default_factory=ConcurrencySettings)
    # Only cluster environments have it (see conf/k8s).
    kubernetes: KubernetesSettings | None = None
    # How the Kubeflow pipeline runs the jobs (featurekit render pipeline).
    pipeline: PipelineSettings = Field(default_factory=PipelineSettings)
    secrets: SecretSettings = Field(default_factory=SecretSettings)

    def secret_env(self) -> list[str]:
        """The environment variables these settings say hold secrets (see :class:`SecretSettings`)."""
        names = [*self.secrets.env, *([self.registry.token_env] if self.registry.token_env else [])]
        if self.kubernetes is not None:
            names += self.kubernetes.secret_env
        for value in [*self.feast.online_store.values(), *_strings(self.feast.registry), *self.spark.conf.values(),
                      self.registry.url]:
            names += redaction.referenced_env(str(value))
        return sorted(set(names))

    @property
    def storage_options(self) -> dict[str, str]:
        """delta-rs options for this environment's object storage (from its s3a settings)."""
        return delta_rs_options(self.spark.conf)

    @property
    def jars_dir(self) -> Path:
        return Path(os.environ.get(JARS_ENV) or self.paths.jars)

    @property
    def runs_dir(self) -> Path:
        return Path(self.paths.runs)

    @property
    def logs_dir(self) -> Path:
        return Path(self.paths.logs)

    def with_console_log(self) -> "Settings":
        """These settings with Spark's log on stderr too (the CLI's ``--debug``)."""
        return self.model_copy(update={"spark": self.spark.model_copy(update={"console_log": True})})


class _Merged:
    """Deep-merged YAML data, remembering which file set each key."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}
        self.origin: dict[KeyPath, Positions] = {}

    def add(self, data: dict[str, Any], positions: Positions, path: KeyPath = (), into: dict[str, Any] | None = None) -> None:
        target = self.data if into is None else into
        for key, value in data.items():
            sub = (*path, key)
            if isinstance(value, dict) and isinstance(target.get(key), dict):
                self.origin.setdefault(sub, positions)
                self.add(value, positions, sub, target[key])
            else:
                target[key] = value
                self._mark(value, positions, sub)

    def _mark(self, value: Any, positions: Positions, path: KeyPath) -> None:
        """Record ``positions`` as the origin of ``path`` and everything below it."""
        self.origin[path] = positions
        if isinstance(value, dict):
            for key, item in value.items():
                self._mark(item, positions, (*path, key))
        elif isinstance(value, list):
            for index, item in enumerate(value):
                self._mark(item, positions, (*path, index))

    def problem(self, path: KeyPath, message: str, at_value: bool = True) -> Problem:
        for end in range(len(path), 0, -1):
            positions = self.origin.get(tuple(path[:end]))
            if positions is not None:
                return positions.problem(path, message, at_value)
        return Problem("conf", None, None, ".".join(map(str, path)), message)


def _conf_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.y*ml") if p.suffix in {".yaml", ".yml"})


def load_settings(project: Project, env: str = "local") -> Settings:
    """The settings of ``env`` or a :class:`ConfigError` with every problem found."""
    known = project.environments()
    if env not in known:
        raise NotFound("environment", env, f"unknown environment {env!r}" + did_you_mean(env, known)
                       + f" (environments: {', '.join(known)})", param="env", where=project.shown(project.conf_dir))
    merged, problems = _Merged(), []
    for folder in (project.conf_dir / "base", project.conf_dir / env):
        for path in _conf_files(folder) if folder.is_dir() else []:
            data, positions, found = load_yaml_file(path, project.shown(path))
            problems += found
            if data is None or found:
                continue
            if not isinstance(data, dict):
                problems.append(Problem(positions.file, 1, 1, "", "expected a mapping of settings"))
                continue
            merged.add(data, positions)
    if problems:
        raise ConfigError(problems)
    builtins = {"project_root": str(project.root), "env": env}
    variables, problems = _resolve_vars(merged, builtins)
    filled = _fill(merged.data, {**variables, **builtins}, merged, (), problems)
    filled["vars"] = variables
    filled["env"] = env
    try:
        settings = Settings.model_validate(filled)
    except ValidationError as exc:
        problems += problems_from(exc, Settings, filled, merged)
    if problems:
        raise ConfigError(problems)
    # Defaults may use variables too (e.g. the run-log folder under ${project_root}).
    again = _fill(settings.model_dump(), {**variables, **builtins}, merged, (), problems)
    settings = Settings.model_validate({**again, "vars": variables})
    redaction.flag_env(settings.secret_env())
    for text in _all_strings(settings.model_dump()):   # masked even where shown apart from their URL
        for password in redaction.url_passwords(text):
            redaction.add_secret(password)
    return settings


def _strings(value: str | dict[str, Any]) -> list[str]:
    return [str(v) for v in value.values()] if isinstance(value, dict) else [value]


def _all_strings(data: Any) -> list[str]:
    if isinstance(data, dict):
        return [s for value in data.values() for s in _all_strings(value)]
    if isinstance(data, list):
        return [s for value in data for s in _all_strings(value)]
    return [data] if isinstance(data, str) else []


def _resolve_vars(merged: _Merged, builtins: dict[str, str]) -> tuple[dict[str, str], list[Problem]]:
    """Vars may use each other; fill them until nothing changes, reporting cycles and unknowns."""
    raw = merged.data.get("vars") or {}
    problems: list[Problem] = []
    if not isinstance(raw, dict):
        return {}, [merged.problem(("vars",), "expected a mapping of name: value")]
    values = {str(k): str(v) for k, v in raw.items()}
    for name, value in values.items():
        problem = unclosed(value)
        if problem:
            problems.append(merged.problem(("vars", name), problem))
    for _ in range(len(values) + 1):
        changed = False
        for name, value in values.items():
            filled, _unknown = substitute(value, {**values, **builtins})
            if filled != value:
                values[name], changed = filled, True
        if not changed:
            break
    for name, value in values.items():
        _, unknown = substitute(value, builtins)
        for missing in dict.fromkeys(unknown):
            if missing in values:
                message = f"${{{missing}}} never resolves: the vars refer to each other in a cycle"
            else:
                message = f"unknown variable ${{{missing}}}" + did_you_mean(missing, [*values, *builtins])
            problems.append(merged.problem(("vars", name), message))
    return values, problems


def _fill(data: Any, variables: dict[str, str], merged: _Merged, path: KeyPath, problems: list[Problem]) -> Any:
    if isinstance(data, dict):
        return {k: _fill(v, variables, merged, (*path, k), problems) for k, v in data.items() if path or k != "vars"}
    if isinstance(data, list):
        return [_fill(v, variables, merged, (*path, i), problems) for i, v in enumerate(data)]
    if isinstance(data, str):
        problem = unclosed(data)
        if problem:
            problems.append(merged.problem(path, problem))
            return data
        filled, unknown = substitute(data, variables)
        for name in unknown:
            problems.append(merged.problem(path, f"unknown variable ${{{name}}}" + did_you_mean(name, variables)))
        return filled
    return data
