"""Kubeflow Spark operator manifests from job specs and a cluster environment's settings.

A manifest runs the job exactly as ``spark-submit`` does locally: the operator starts the
image's ``featurekit/entrypoint.py`` with ``run JOB --env ENV``, the same arguments and the
same code path as ``featurekit run`` (for a backfill, ``backfill JOB --start .. --end ..``, as
``featurekit backfill``). Everything environment-specific comes from conf/
(``spark:`` for Spark settings, ``kubernetes:`` for the pods); nothing here names a job.

Jars are baked into the image by default: Delta, and hadoop-aws with the AWS SDK bundle it
needs for s3a:// (686 MB), are fetched once when the image is built instead of by
every driver at every submission, so a run neither waits on nor depends on Maven Central
and every run of an image uses the same jars. ``kubernetes.dependencies: packages`` lists
them in ``spec.deps.packages`` instead, for clusters where images cannot be rebuilt.

A manifest never holds a secret: credentials reach the pods as references
(``env[].valueFrom.secretKeyRef`` from ``kubernetes.secret_env``, ``envFrom`` from
``kubernetes.env_from_secrets``). A value that would carry one (a password in a URL, the value
of a secret environment variable) is refused, naming its key, rather than written or masked.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from featurekit.config import Project, Settings
from featurekit.config.kubernetes import KubernetesSettings
from featurekit.config.versions import DELTA_CONF, SPARK_VERSION, packages_of
from featurekit.deploy.cron import schedule_problem
from featurekit.errors import ARGUMENTS, ConfigError, Problem, arg
from featurekit.redaction import leaks
from featurekit.spec.durations import format_duration
from featurekit.spec.intervals import align_down, grain, iso, range_problems
from featurekit.spec.loader import LoadedJob

API_VERSION = "sparkoperator.k8s.io/v1beta2"
LABEL_PREFIX = "featurekit.io"
# Settings the operator derives from the manifest's own fields: set them under kubernetes:.
_OPERATOR_OWNED = {
    "spark.master": "the operator sets the master",
    "spark.submit.deployMode": "the operator submits in cluster mode",
    "spark.driver.memory": "kubernetes.driver.memory",
    "spark.driver.cores": "kubernetes.driver.cores",
    "spark.driver.memoryOverhead": "kubernetes.driver.memory_overhead",
    "spark.executor.memory": "kubernetes.executor.memory",
    "spark.executor.cores": "kubernetes.executor.cores",
    "spark.executor.instances": "kubernetes.executor.instances",
    "spark.executor.memoryOverhead": "kubernetes.executor.memory_overhead",
    "spark.kubernetes.namespace": "kubernetes.namespace",
    "spark.kubernetes.container.image": "kubernetes.image",
    "spark.kubernetes.authenticate.driver.serviceAccountName": "kubernetes.service_account",
}
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
# The operator names a scheduled run "<name>-<unix nanoseconds>" and the driver pod
# "<run>-driver"; both must stay within a 63-character Kubernetes name.
_MAX_NAME = 63 - len("-driver")
_MAX_SCHEDULED_NAME = _MAX_NAME - len("-1767225600000000000")


@dataclass(frozen=True)
class Backfill:
    """A range ``(start, end]`` of an incremental job to recompute once, in commits of ``batch``
    (``featurekit backfill``); ``render`` aligns the bounds to the job's buckets as the backfill does."""

    start: datetime
    end: datetime
    batch: str = "1d"


@dataclass
class Rendered:
    """One job's manifest and what the renderer noticed but did not refuse."""

    job: str
    name: str
    manifest: dict[str, Any]
    warnings: list[str] = field(default_factory=list)


def kubernetes_of(project: Project, settings: Settings) -> KubernetesSettings:
    """The environment's ``kubernetes:`` settings, or a clear error naming the envs that have them."""
    if settings.kubernetes is not None:
        return settings.kubernetes
    raise ConfigError.single(
        f"environment {settings.env!r} has no kubernetes: settings, so it cannot run on the Spark operator; "
        f"add them to conf/{settings.env}/ (conf/k8s is the example)",
        file=project.shown(project.conf_dir / settings.env), field="kubernetes",
    )


def resource_name(job: str) -> str:
    """``driver_hourly_stats`` -> ``driver-hourly-stats`` (Kubernetes names take no '_')."""
    return job.replace("_", "-").strip("-")


def backfill_name(job: str, backfill: Backfill) -> str:
    """``driver-hourly-stats-backfill-20260101t0000-20260131t0000``: a name of its own per range,
    apart from the job's scheduled app (:func:`suffixed_name`)."""
    return suffixed_name(job, f"-backfill-{_stamp(backfill.start)}-{_stamp(backfill.end)}")


def suffixed_name(job: str, suffix: str) -> str:
    """The job's resource name ending in ``suffix``, within the operator's name limit: a long job
    name is cut and told apart by a hash of it."""
    name = resource_name(job)
    if len(name) + len(suffix) > _MAX_NAME:
        digest = hashlib.sha256(job.encode()).hexdigest()[:6]
        name = f"{name[:_MAX_NAME - len(suffix) - len(digest) - 1].rstrip('-')}-{digest}"
    return name + suffix


def render(project: Project, settings: Settings, job: LoadedJob, schedule: str | None = None,
           materialize: bool = False, backfill: Backfill | None = None) -> Rendered:
    """The SparkApplication (or, with ``schedule``, ScheduledSparkApplication) that runs ``job``.

    With ``materialize`` a run also materializes the job's online features incrementally
    (``featurekit run --materialize``) when it has some; otherwise that is a warning. With
    ``backfill``, one SparkApplication that backfills that range of an incremental job.
    """
    k8s = kubernetes_of(project, settings)
    warnings = _local_paths(job)
    problems = _backfill_problems(job, backfill, schedule, materialize) if backfill is not None else []
    if backfill is not None and not problems:
        backfill = _aligned(job, backfill, warnings)
    name = resource_name(job.name) if backfill is None or problems else backfill_name(job.name, backfill)
    problems = _problems(project, settings, k8s, name, schedule) + problems
    if problems:
        raise ConfigError(problems)
    incremental = job.spec.incremental is not None
    labels = {
        "app.kubernetes.io/name": "featurekit",
        "app.kubernetes.io/component": "prep-job",
        "app.kubernetes.io/managed-by": "featurekit",
        f"{LABEL_PREFIX}/job": job.name,
        f"{LABEL_PREFIX}/spec-fingerprint": job.fingerprint,
        f"{LABEL_PREFIX}/env": settings.env,
        **({f"{LABEL_PREFIX}/incremental": "true"} if incremental else {}),
        **({f"{LABEL_PREFIX}/backfill": f"{_utc(backfill.start):%Y%m%dT%H%M%SZ}--{_utc(backfill.end):%Y%m%dT%H%M%SZ}"}
           if backfill is not None else {}),
        **k8s.labels,
    }
    online = job.spec.features is not None and job.spec.features.online
    if materialize and not online:
        warnings.append(f"{job.shown_path}: no online features, so its runs do not materialize")
    spec = _application_spec(settings, k8s, job, labels, materialize and online, backfill)
    annotations = {f"{LABEL_PREFIX}/job-file": project.shown(job.path)}
    if backfill is not None:  # the exact range; label values cannot hold ':'
        annotations |= {f"{LABEL_PREFIX}/backfill-start": iso(backfill.start),
                        f"{LABEL_PREFIX}/backfill-end": iso(backfill.end),
                        f"{LABEL_PREFIX}/backfill-batch": backfill.batch}
    metadata = {"name": name, "namespace": k8s.namespace, "labels": labels, "annotations": annotations}
    if schedule is None:
        manifest = {"apiVersion": API_VERSION, "kind": "SparkApplication", "metadata": metadata, "spec": spec}
    else:
        s = k8s.schedule
        policy = s.concurrency_policy
        if incremental and policy != "Forbid":
            # two runs planned from one watermark cannot both commit; Replace would kill a long run at every tick
            warnings.append(f"{project.shown(project.conf_dir / settings.env)} kubernetes.schedule.concurrency_policy: "
                            f"Forbid, not {policy}, for {job.name!r}: runs of an incremental job must not overlap "
                            "(of two at once, the second fails at its commit)")
            policy = "Forbid"
        manifest = {
            "apiVersion": API_VERSION, "kind": "ScheduledSparkApplication", "metadata": metadata,
            "spec": {
                "schedule": schedule.strip(),
                "timeZone": s.time_zone,
                "concurrencyPolicy": policy,
                "successfulRunHistoryLimit": s.successful_run_history_limit,
                "failedRunHistoryLimit": s.failed_run_history_limit,
                "template": spec,
            },
        }
    secrets = _secret_problems(project, settings, manifest)
    if secrets:
        raise ConfigError(secrets)
    return Rendered(job.name, name, manifest, warnings)


def _secret_problems(project: Project, settings: Settings, manifest: dict[str, Any]) -> list[Problem]:
    """A problem per value of ``manifest`` that holds a secret, at the conf key it came from."""
    conf_file = project.shown(project.conf_dir / settings.env)
    spec = manifest["spec"].get("template", manifest["spec"])
    fields = {f"spark.conf.{key}": value for key, value in spec["sparkConf"].items()}
    fields |= {f"kubernetes.env.{item['name']}": item.get("value", "") for item in spec["driver"].get("env", [])}
    known = leaks(fields)
    problems = [Problem(conf_file, None, None, key, "holds a secret (a password in a URL, or the value of a secret "
                        "environment variable); a manifest takes credentials as references: give it as "
                        "kubernetes.secret_env: {NAME: {secret: SECRET, key: KEY}}") for key in known]
    if not problems:   # anything else: the manifest's own path
        problems = [Problem(conf_file, None, None, f"manifest {where}", "holds a secret; credentials reach the pods "
                            "as references (kubernetes.secret_env, kubernetes.env_from_secrets)") for where in leaks(manifest)]
    return problems


def arguments(job: LoadedJob, settings: Settings, materialize: bool = False, backfill: Backfill | None = None) -> list[str]:
    """What the entrypoint is given: ``featurekit run``'s own command line, found by job name
    (``featurekit backfill``'s for a backfill)."""
    if backfill is not None:
        return ["backfill", job.name, "--start", iso(backfill.start), "--end", iso(backfill.end),
                "--batch", backfill.batch, "--env", settings.env]
    return ["run", job.name, "--env", settings.env, *(["--materialize"] if materialize else [])]


def _application_spec(settings: Settings, k8s: KubernetesSettings, job: LoadedJob, labels: dict[str, str],
                      materialize: bool, backfill: Backfill | None = None) -> dict[str, Any]:
    spark_conf = {
        **DELTA_CONF,
        **settings.spark.conf,
        "spark.pyspark.python": k8s.python,
        "spark.pyspark.driver.python": k8s.python,
    }
    spec: dict[str, Any] = {
        "type": "Python",  # no pythonVersion: Spark 4 runs Python 3 only and dropped the setting it maps to
        "mode": "cluster",
        "image": k8s.image,
        "imagePullPolicy": k8s.image_pull_policy,
        "mainApplicationFile": f"local://{k8s.project_dir.rstrip('/')}/featurekit/entrypoint.py",
        "arguments": arguments(job, settings, materialize, backfill),
        "sparkVersion": SPARK_VERSION,
        "sparkConf": spark_conf,
        "restartPolicy": {
            "type": k8s.restart_policy.type,
            **({
                "onFailureRetries": k8s.restart_policy.on_failure_retries,
                "onFailureRetryInterval": k8s.restart_policy.on_failure_retry_interval_s,
                "onSubmissionFailureRetries": k8s.restart_policy.on_submission_failure_retries,
                "onSubmissionFailureRetryInterval": k8s.restart_policy.on_submission_failure_retry_interval_s,
            } if k8s.restart_policy.type != "Never" else {}),
        },
        "driver": {
            **_pod(k8s.driver, labels, pod_env(k8s), pod_env_from(k8s)),
            "serviceAccount": k8s.service_account,
        },
        "executor": {
            **_pod(k8s.executor, labels, pod_env(k8s), pod_env_from(k8s)),
            "instances": k8s.executor.instances,
        },
    }
    if k8s.image_pull_secrets:
        spec["imagePullSecrets"] = list(k8s.image_pull_secrets)
    if k8s.dependencies == "packages":
        spec["deps"] = {"packages": packages_of(settings.spark.packages)}
        # The container user has no home folder; Ivy needs somewhere to write.
        spark_conf.setdefault("spark.jars.ivy", "/tmp/.ivy2")
    if k8s.dynamic_allocation.enabled:
        d = k8s.dynamic_allocation
        spec["dynamicAllocation"] = {
            "enabled": True,
            "initialExecutors": d.initial_executors if d.initial_executors is not None else max(d.min_executors, 1),
            "minExecutors": d.min_executors,
            "maxExecutors": d.max_executors,
            "shuffleTrackingEnabled": d.shuffle_tracking,
        }
    if k8s.time_to_live_s is not None:
        spec["timeToLiveSeconds"] = k8s.time_to_live_s
    return spec


def _pod(resources: Any, labels: dict[str, str], env: list[dict[str, Any]], env_from: list[dict[str, Any]]) -> dict[str, Any]:
    pod: dict[str, Any] = {"cores": resources.cores, "memory": resources.memory, "labels": dict(labels)}
    if resources.memory_overhead:
        pod["memoryOverhead"] = resources.memory_overhead
    if resources.core_limit:
        pod["coreLimit"] = resources.core_limit
    if env:
        pod["env"] = env
    if env_from:
        pod["envFrom"] = env_from
    return pod


def pod_env(k8s: KubernetesSettings) -> list[dict[str, Any]]:
    """The environment of a featurekit container in this cluster env: the project folder, then
    ``kubernetes.env``, then ``kubernetes.secret_env`` as secret references (never values)."""
    env: list[dict[str, Any]] = [{"name": "FEATUREKIT_PROJECT", "value": k8s.project_dir}]
    env += [{"name": name, "value": value} for name, value in sorted(k8s.env.items())]
    env += [
        {"name": name, "valueFrom": {"secretKeyRef": {"name": ref.secret, "key": ref.key}}}
        for name, ref in sorted(k8s.secret_env.items())
    ]
    return env


def pod_env_from(k8s: KubernetesSettings) -> list[dict[str, Any]]:
    """``kubernetes.env_from_secrets``: whole secrets as environment variables."""
    return [{"secretRef": {"name": secret}} for secret in k8s.env_from_secrets]


def _problems(project: Project, settings: Settings, k8s: KubernetesSettings, name: str,
              schedule: str | None) -> list[Problem]:
    conf_file = project.shown(project.conf_dir / settings.env)
    problems = []
    for key in sorted(settings.spark.conf):
        if key in _OPERATOR_OWNED or key.startswith("spark.dynamicAllocation."):
            where = _OPERATOR_OWNED.get(key, "kubernetes.dynamic_allocation")
            problems.append(Problem(conf_file, None, None, f"spark.conf.{key}",
                                    f"the manifest sets this from its own fields; use {where}"
                                    if where.startswith("kubernetes.") else f"not settable here: {where}"))
    limit = _MAX_NAME if schedule is None else _MAX_SCHEDULED_NAME
    if len(name) > limit:
        problems.append(Problem("jobs", None, None, name,
                                f"the resource name {name!r} is {len(name)} characters; the Spark operator's pod "
                                f"names allow at most {limit} here (shorten the job name)"))
    for key, value in k8s.labels.items():
        if not _LABEL_VALUE.match(value) or len(value) > 63:
            problems.append(Problem(conf_file, None, None, f"kubernetes.labels.{key}",
                                    f"expected a label value (letters, digits, '-', '_', '.', at most 63); got {value!r}"))
    if schedule is not None:
        problem = schedule_problem(schedule)
        if problem:
            problems.append(Problem(arg("schedule"), None, None, "", problem))
    return problems


def _backfill_problems(job: LoadedJob, backfill: Backfill, schedule: str | None, materialize: bool) -> list[Problem]:
    """What ``featurekit backfill`` would refuse, and what a one-off run cannot be."""
    problems = []
    if schedule is not None:
        problems.append(Problem("render sparkapp", None, None, arg("schedule"), "a backfill runs once, never on a "
                                f"schedule (a scheduled incremental job already runs incremental runs); drop {arg('schedule')}"))
    if materialize:
        problems.append(Problem("render sparkapp", None, None, arg("materialize"), "a backfill does not materialize; "
                                "run `featurekit materialize --start .. --end ..` after it"))
    if job.spec.incremental is None:
        problems.append(Problem(job.shown_path, None, None, "incremental",
                                f"job {job.name!r} has no incremental: block; a backfill needs one"))
    problems += [Problem(ARGUMENTS, None, None, arg(param), message)
                 for param, message in range_problems(job.spec, backfill.start, backfill.end, backfill.batch)]
    return problems


def _aligned(job: LoadedJob, backfill: Backfill, warnings: list[str]) -> Backfill:
    """The range on the job's bucket bounds, as the backfill will run it (a warning where that moved it)."""
    step = grain(job.spec)
    start, end = align_down(backfill.start, step), align_down(backfill.end, step)
    for param, given, moved in (("start", backfill.start, start), ("end", backfill.end, end)):
        if moved != given:
            warnings.append(f"{ARGUMENTS} {arg(param)}: {iso(given)} is not on a bucket bound ({format_duration(int(step.total_seconds()))}); "
                            f"the backfill runs with {iso(moved)}, as `featurekit backfill` aligns it")
    return replace(backfill, start=start, end=end, batch=backfill.batch.strip())


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def _stamp(moment: datetime) -> str:
    """A bound in a resource name: ``20260101t0000``, seconds only when there are some."""
    moment = _utc(moment)
    return f"{moment:%Y%m%dt%H%M}" + (f"{moment:%S}" if moment.second else "")


def _local_paths(job: LoadedJob) -> list[str]:
    """Paths in the job that only the machine they name can read (pods need shared storage)."""
    paths = {("sources", n, "path"): s.path for n, s in job.spec.sources.items()}
    paths[("output", "path")] = job.spec.output.path
    return [
        str(job.positions.problem(where, f"{path!r} is a local path; pods need shared storage "
                                         "(s3a://, gs://, abfss://, hdfs://) or a volume mounted at that path"))
        for where, path in paths.items()
        if path.startswith("file:") or "://" not in path
    ]


def render_jobs(project: Project, settings: Settings, jobs: list[LoadedJob], schedule: str | None = None,
                materialize: bool = False, backfill: Backfill | None = None) -> list[Rendered]:
    """Every job's manifest; every problem of every job before failing."""
    kubernetes_of(project, settings)
    rendered, problems = [], []
    for job in jobs:
        if job.path.resolve().parent != project.jobs_dir.resolve():
            problems.append(Problem(job.shown_path, None, None, "", "only jobs in the project's jobs/ folder are in the "
                                    "image; move the file there to run it on the cluster"))
            continue
        try:
            rendered.append(render(project, settings, job, schedule, materialize, backfill))
        except ConfigError as exc:
            problems += [p for p in exc.problems if p not in problems]
    if problems:
        raise ConfigError(problems)
    return rendered


def to_yaml(rendered: list[Rendered]) -> str:
    """The manifests as one YAML stream (``kubectl apply -f`` takes it as it is)."""
    return manifests_yaml([r.manifest for r in rendered])


def manifests_yaml(manifests: list[dict[str, Any]]) -> str:
    """Kubernetes objects as one YAML stream, each key in the order written."""
    import io

    from ruamel.yaml import YAML

    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    yaml.width = 4096  # one line per value: no folded class names
    yaml.sort_base_mapping_type_on_output = False  # keep the order written: apiVersion, kind, ...
    buffer = io.StringIO()
    yaml.dump_all(manifests, buffer)
    return buffer.getvalue()
