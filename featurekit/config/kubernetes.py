"""The ``kubernetes:`` settings of a cluster environment (``featurekit render sparkapp``).

They describe where and how the Kubeflow Spark operator runs a job: the image, namespace and
service account, driver and executor resources, retries, and the environment of the pods.
Credentials never sit in conf: they reach the pods as environment variables taken from
Kubernetes secrets (``secret_env`` for single keys, ``env_from_secrets`` for whole secrets).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

# Spark's JVM sizes (spark.driver.memory and friends): a positive whole number and a unit.
_JVM_SIZE = re.compile(r"^[1-9][0-9]*[kmgtp]b?$", re.IGNORECASE)
# A Kubernetes CPU quantity for a limit or a request: "2", "1.5", "500m".
_CPU = re.compile(r"^([0-9]+(\.[0-9]+)?|[1-9][0-9]*m)$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SECRET_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
# Names that hold a credential: they belong in a secret, not in a plain value in conf.
CREDENTIAL_NAME = re.compile(r"secret|passw|token|access_?key|private_?key|credential", re.IGNORECASE)
# Spark/Hadoop settings whose value is a credential (an s3a key, a password, an account key).
CREDENTIAL_SETTING = re.compile(
    r"(\.access\.key|\.secret\.key|\.session\.token|password|\.secret|\.account\.key(\.|$)|private\.key(\.|$)|\.token)$"
    r"|\.account\.key\.",
    re.IGNORECASE,
)


def refuse_credentials(names: Iterable[str], pattern: re.Pattern[str], advice: str) -> None:
    """A ValueError naming every key that ``pattern`` says holds a credential set inline."""
    inline = sorted(name for name in names if pattern.search(name))
    if inline:
        raise ValueError(f"{', '.join(inline)}: " + advice.format(name=inline[0]))


def _jvm_size(text: str) -> str:
    if not _JVM_SIZE.match(text):
        raise ValueError(f"expected a positive JVM memory size such as 512m or 4g; got {text!r}")
    return text


def _cpu(text: str) -> str:
    if not _CPU.match(text) or float(text.rstrip("m") or 0) <= 0:
        raise ValueError(f"expected a positive Kubernetes CPU quantity such as 2, 1.5 or 500m; got {text!r}")
    return text


def _dns_label(text: str) -> str:
    if len(text) > 63 or not _DNS_LABEL.match(text):
        raise ValueError(f"expected a Kubernetes name (lowercase letters, digits and '-', at most 63); got {text!r}")
    return text


def _dns_subdomain(text: str) -> str:
    if len(text) > 253 or not _DNS_SUBDOMAIN.match(text):
        raise ValueError(f"expected a Kubernetes object name (lowercase letters, digits, '-' and '.'); got {text!r}")
    return text


def _env_name(text: str) -> str:
    if not _ENV_NAME.match(text):
        raise ValueError(f"expected an environment variable name (letters, digits, '_'); got {text!r}")
    return text


def _image(text: str) -> str:
    if not text.strip() or any(c.isspace() for c in text):
        raise ValueError(f"expected a container image reference such as registry.example.com/featurekit-jobs:0.1.0; got {text!r}")
    return text


JvmSize = Annotated[str, AfterValidator(_jvm_size)]
Cpu = Annotated[str, AfterValidator(_cpu)]
DnsLabel = Annotated[str, AfterValidator(_dns_label)]
DnsSubdomain = Annotated[str, AfterValidator(_dns_subdomain)]
EnvName = Annotated[str, AfterValidator(_env_name)]
Image = Annotated[str, AfterValidator(_image)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PodResources(_Strict):
    """A driver's resources; ``memory`` is the JVM heap, ``memory_overhead`` what the pod adds."""

    cores: int = Field(default=1, ge=1)
    memory: JvmSize = "2g"
    memory_overhead: JvmSize | None = None
    core_limit: Cpu | None = None


class ExecutorResources(PodResources):
    """The executors: ``instances`` is the fixed count (the start count with dynamic allocation)."""

    instances: int = Field(default=2, ge=1)
    memory: JvmSize = "4g"


class DynamicAllocation(_Strict):
    """Spark's dynamic allocation; on Kubernetes it needs shuffle tracking (no external shuffle service)."""

    enabled: bool = False
    initial_executors: int | None = Field(default=None, ge=0)
    min_executors: int = Field(default=0, ge=0)
    max_executors: int = Field(default=10, ge=1)
    shuffle_tracking: bool = True

    @model_validator(mode="after")
    def _ordered(self) -> "DynamicAllocation":
        initial = self.initial_executors if self.initial_executors is not None else self.min_executors
        if not self.min_executors <= initial <= self.max_executors:
            raise ValueError(
                f"expected min_executors <= initial_executors <= max_executors; got {self.min_executors}, "
                f"{initial}, {self.max_executors}")
        return self


class SecretKeyRef(_Strict):
    """One key of a Kubernetes secret, given to the pods as an environment variable."""

    secret: DnsSubdomain
    key: Annotated[str, Field(pattern=_SECRET_KEY.pattern, max_length=253)]


class RestartPolicy(_Strict):
    """The operator's retries. Runs are safe to repeat (a rerun commits nothing twice)."""

    type: Literal["Never", "OnFailure", "Always"] = "OnFailure"
    on_failure_retries: int = Field(default=3, ge=0)
    on_failure_retry_interval_s: int = Field(default=60, ge=1)
    on_submission_failure_retries: int = Field(default=3, ge=0)
    on_submission_failure_retry_interval_s: int = Field(default=60, ge=1)


class ScheduleSettings(_Strict):
    """How ``--schedule`` runs behave. ``Forbid`` keeps one writer per table at a time."""

    concurrency_policy: Literal["Allow", "Forbid", "Replace"] = "Forbid"
    time_zone: str = "UTC"
    successful_run_history_limit: int = Field(default=3, ge=0)
    failed_run_history_limit: int = Field(default=3, ge=0)


class KubernetesSettings(_Strict):
    """Where and how the Spark operator runs this environment's jobs."""

    image: Image
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    image_pull_secrets: list[DnsSubdomain] = Field(default_factory=list)
    namespace: DnsLabel
    service_account: DnsSubdomain
    # Where the Dockerfile puts the project (jobs/, conf/, feature_repo/) and the package.
    project_dir: str = "/opt/featurekit"
    python: str = "/opt/featurekit/venv/bin/python"
    driver: PodResources = Field(default_factory=PodResources)
    executor: ExecutorResources = Field(default_factory=ExecutorResources)
    dynamic_allocation: DynamicAllocation = Field(default_factory=DynamicAllocation)
    restart_policy: RestartPolicy = Field(default_factory=RestartPolicy)
    schedule: ScheduleSettings = Field(default_factory=ScheduleSettings)
    # baked: the jars are in the image (the Dockerfile runs `featurekit setup --env ...`);
    # packages: the operator resolves them from Maven at every submission (deps.packages).
    dependencies: Literal["baked", "packages"] = "baked"
    env: dict[EnvName, str] = Field(default_factory=dict)
    secret_env: dict[EnvName, SecretKeyRef] = Field(default_factory=dict)
    env_from_secrets: list[DnsSubdomain] = Field(default_factory=list)
    labels: dict[str, str] = Field(default_factory=dict)
    time_to_live_s: int | None = Field(default=None, ge=1)

    @field_validator("env")
    @classmethod
    def _no_inline_credentials(cls, env: dict[str, str]) -> dict[str, str]:
        refuse_credentials(env, CREDENTIAL_NAME, "looks like a credential; give it as secret_env: "
                           "{{{name}: {{secret: NAME, key: KEY}}}} (credentials never sit in conf)")
        return env

    @model_validator(mode="after")
    def _env_once(self) -> "KubernetesSettings":
        both = sorted(set(self.env) & set(self.secret_env))
        if both:
            raise ValueError(f"{', '.join(both)}: set in both env and secret_env; keep one")
        return self
