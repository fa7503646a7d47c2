"""A Kubeflow Pipelines v2 pipeline that runs the project's jobs, then serves their features.

``featurekit render pipeline`` compiles it with the kfp SDK. One run of it:

1. fixes the interval's end once (the ``end`` parameter, else the time the run starts), so
   every task computes up to the same moment;
2. runs each job after the jobs whose Delta output it reads (:mod:`featurekit.deploy.graph`);
   jobs with no path between them have no edge, so Kubeflow runs them at the same time. As
   ``pipeline.run_jobs`` (or ``run_jobs_per_job``) says, a job task either submits the job's
   SparkApplication (``featurekit render sparkapp``'s manifest, rendered now, given the run's
   name and end when it runs) and waits for its end (``sparkapp``:
   :mod:`featurekit.deploy.submission`), or runs ``featurekit run JOB --env ENV --end END``
   inside its own pod, Spark in local mode there (``in_task``);
3. after every job: ``featurekit feast apply``, then the incremental materialization of the
   online views, then ``featurekit lineage flush`` (each only when the jobs have something for
   it: features, online features, a registry).

Parameters: ``env`` (default: the environment rendered for), ``end`` (ISO 8601; empty = now)
and ``project_dir`` (where the project is inside the image, ``kubernetes.project_dir``; another
folder to run the same pipeline elsewhere, e.g. with ``kfp.local``). The tasks run in
``kubernetes.image``, the image the SparkApplications use, pulled as ``image_pull_policy`` with
``image_pull_secrets``, with ``kubernetes.env`` set. The tasks that run featurekit in their own
pod (feast apply, materialize, lineage flush, ``in_task`` jobs) also get each
``kubernetes.secret_env`` entry from its secret (kfp-kubernetes' ``use_secret_as_env``, in the
compiled pipeline's ``platforms.kubernetes`` part): the credentials the SparkApplications get.
The others (the interval end, the tasks submitting a SparkApplication) need none, so they get
none. kfp-kubernetes cannot give a whole secret as environment variables, so
``kubernetes.env_from_secrets`` reaches the SparkApplications only; ``render pipeline`` warns
when a task would need them. A SparkApplication is rendered for one environment: a run whose
``env`` is another fails its job tasks at once.

A task submitting SparkApplications needs a Role in ``kubernetes.namespace``
(:func:`pipeline_rbac`). KFP sets a run's service account when the run is created, so the
pipeline cannot carry it (kfp-kubernetes has no setting for it either): the Role is bound to
``pipeline.service_account``.

Caching is off for every task: a task's inputs (job, env, end) do not say what its sources
hold, and a cached "success" would skip a job whose data changed.

The compile is deterministic: the same specs and conf give the same YAML, byte for byte.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from featurekit.config import Project, Settings
from featurekit.deploy.graph import JobGraph, job_graph
from featurekit.deploy.sparkapp import kubernetes_of, render_jobs, resource_name
from featurekit.deploy.submission import rbac_manifests
from featurekit.errors import ConfigError, Problem
from featurekit.spec.loader import LoadedJob
from featurekit.yamlconf.names import did_you_mean

# Task names in the compiled pipeline (job tasks are "job-<name>").
END_TASK = "interval-end"
APPLY_TASK = "feast-apply"
MATERIALIZE_TASK = "materialize"
FLUSH_TASK = "lineage-flush"


@dataclass(frozen=True)
class PipelinePlan:
    """What the pipeline will do, decided from the specs and conf before kfp is imported."""

    name: str
    image: str
    env: str
    project_dir: str
    env_vars: dict[str, str]
    graph: JobGraph
    feast_apply: bool
    materialize: bool
    lineage_flush: bool
    # The jobs run as their SparkApplication: job name -> its manifest as JSON.
    applications: dict[str, str] = field(default_factory=dict)
    job_timeout_s: int = 6 * 3600
    # Where the SparkApplications go, and who submits them (for their Role).
    namespace: str = ""
    service_account: str = ""
    account_namespace: str = ""
    # The task pods on Kubernetes (none for kfp.local's runner without kubernetes: settings):
    # how they pull the image, and the secret_env entries (variable -> (secret, key)) given to
    # the tasks running featurekit in their pod.
    image_pull_policy: str = ""
    image_pull_secrets: tuple[str, ...] = ()
    secret_env: dict[str, tuple[str, str]] = field(default_factory=dict)
    # What rendering the SparkApplications (and the task pods) noticed but did not refuse.
    warnings: tuple[str, ...] = ()

    @property
    def in_pod_tasks(self) -> tuple[str, ...]:
        """The tasks that run a featurekit command in their own pod, and so need the env's
        credentials: ``in_task`` jobs, feast apply, materialize, lineage flush."""
        return (*(job_task(job) for job in self.graph.order if job not in self.applications),
                *((APPLY_TASK,) if self.feast_apply else ()), *((MATERIALIZE_TASK,) if self.materialize else ()),
                *((FLUSH_TASK,) if self.lineage_flush else ()))


def job_task(job: str) -> str:
    """The name of ``job``'s task in the compiled pipeline (a Kubernetes-style name)."""
    return f"job-{resource_name(job)}"


def plan_pipeline(project: Project, settings: Settings, jobs: Sequence[LoadedJob],
                  image: str | None = None) -> PipelinePlan:
    """The pipeline for ``jobs`` in ``settings``' environment; a config error if that environment
    has no ``kubernetes:`` settings (they name the image), a spec error if the jobs cannot be ordered.
    The SparkApplications of the jobs run as such are rendered here, every problem of every job at once.

    With ``image`` (a run with ``kfp.local``'s subprocess runner, which starts no container) an
    environment without ``kubernetes:`` will do, and the project folder is this one."""
    k8s = kubernetes_of(project, settings) if image is None or settings.kubernetes is not None else None
    graph = job_graph(jobs)
    features = [job.spec.features for job in jobs if job.spec.features is not None]
    submitted = _submitted_jobs(project, settings, jobs)
    rendered = render_jobs(project, settings, submitted) if submitted else []
    account = settings.pipeline
    plan = PipelinePlan(
        name=resource_name(settings.feast.project),
        image=image or k8s.image,  # type: ignore[union-attr]
        env=settings.env,
        project_dir=k8s.project_dir if k8s is not None else str(project.root),
        env_vars=dict(sorted(k8s.env.items())) if k8s is not None else {},
        graph=graph,
        feast_apply=bool(features),
        materialize=any(f.online for f in features),
        lineage_flush=settings.registry.enabled,
        # compact JSON: a constant string of the compiled pipeline, the exact manifest render made
        # (a struct parameter would turn its integers into floats)
        applications={r.job: json.dumps(r.manifest, separators=(",", ":")) for r in rendered},
        job_timeout_s=account.job_timeout_s,
        namespace=k8s.namespace if k8s is not None else "",
        service_account=account.service_account,
        account_namespace=account.namespace or (k8s.namespace if k8s is not None else ""),
        image_pull_policy=k8s.image_pull_policy if k8s is not None else "",
        image_pull_secrets=tuple(k8s.image_pull_secrets) if k8s is not None else (),
        secret_env={name: (ref.secret, ref.key) for name, ref in sorted(k8s.secret_env.items())} if k8s is not None else {},
        warnings=tuple(w for r in rendered for w in r.warnings),
    )
    if k8s is not None and k8s.env_from_secrets and plan.in_pod_tasks:
        plan = replace(plan, warnings=(*plan.warnings, _env_from_warning(project, settings, k8s.env_from_secrets, plan)))
    return plan


def _env_from_warning(project: Project, settings: Settings, secrets: Sequence[str], plan: PipelinePlan) -> str:
    """That the tasks of ``plan`` running featurekit in their pod do not get the whole ``secrets``
    (``kubernetes.env_from_secrets``): kfp-kubernetes sets single keys of a secret
    (``use_secret_as_env``), never a whole one (it has no ``envFrom``)."""
    return (f"{project.shown(project.conf_dir / settings.env)} kubernetes.env_from_secrets: the pipeline's tasks "
            f"{', '.join(plan.in_pod_tasks)} do not get the secret(s) {', '.join(secrets)} (a Kubeflow "
            "pipeline gives a task single keys of a secret, not whole ones; the SparkApplications do get them): "
            "name the keys those tasks need in kubernetes.secret_env")


def _submitted_jobs(project: Project, settings: Settings, jobs: Sequence[LoadedJob]) -> list[LoadedJob]:
    """The jobs whose task submits their SparkApplication (``pipeline.run_jobs``, per job
    ``run_jobs_per_job``); a config error for a job name conf gives that no job has, or for a
    restart policy under which an application never ends."""
    conf_file = project.shown(project.conf_dir / settings.env)
    names = sorted(job.name for job in jobs)
    problems = [Problem(conf_file, None, None, f"pipeline.run_jobs_per_job.{name}",
                        "no job of that name in jobs/" + did_you_mean(name, names))
                for name in sorted(settings.pipeline.run_jobs_per_job) if name not in names]
    submitted = [job for job in jobs if settings.pipeline.run_of(job.name) == "sparkapp"]
    if submitted:
        k8s = kubernetes_of(project, settings)
        if k8s.restart_policy.type == "Always":
            problems.append(Problem(conf_file, None, None, "kubernetes.restart_policy.type",
                                    "Always runs an application again after it completes, so it never ends and the "
                                    "pipeline task waiting on it would wait forever; use OnFailure or Never, or "
                                    "pipeline.run_jobs: in_task"))
    if problems:
        raise ConfigError(problems)
    return sorted(submitted, key=lambda job: job.name)


def pipeline_rbac(plan: PipelinePlan) -> list[dict[str, Any]]:
    """The Role and RoleBinding that let the pipeline's pods submit and watch the SparkApplications
    of ``plan`` in their namespace (none when no job task submits one)."""
    if not plan.applications:
        return []
    return rbac_manifests(plan.namespace, plan.service_account, plan.account_namespace)


def compile_pipeline(plan: PipelinePlan) -> str:
    """The pipeline of ``plan`` compiled by the kfp SDK: the YAML that Kubeflow Pipelines takes."""
    from kfp import compiler

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "pipeline.yaml"
        compiler.Compiler().compile(_pipeline_func(plan), str(path))
        return path.read_text(encoding="utf-8")


def render_pipeline(project: Project, settings: Settings, jobs: Sequence[LoadedJob]) -> str:
    """``featurekit render pipeline``: :func:`plan_pipeline`, compiled."""
    return compile_pipeline(plan_pipeline(project, settings, jobs))


LOCAL_IMAGE = "featurekit:local"


def run_local(project: Project, settings: Settings, jobs: Sequence[LoadedJob], end: str = "",
              pipeline_root: Path | None = None) -> PipelinePlan:
    """Run the pipeline of ``jobs`` on this machine with KFP's local runner, each task a process
    of this Python (``kfp.local.SubprocessRunner(use_venv=False)``: no container, no pip), up to
    ``end`` (empty: now). The same compiled definition a cluster runs, loaded back from its YAML.

    A failed task fails the run with an :class:`InfraError` naming it; the task's own error is
    in the log above (the local runner prints each task's output)."""
    import re

    from kfp import components, local

    from featurekit.errors import InfraError

    plan = plan_pipeline(project, settings, jobs, image=LOCAL_IMAGE)
    root = pipeline_root or project.root / ".featurekit" / "kfp"
    root.mkdir(parents=True, exist_ok=True)
    path = root / f"{plan.name}-{settings.env}.yaml"
    path.write_text(compile_pipeline(plan), encoding="utf-8")
    pipeline = components.load_component_from_file(str(path))
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root))
    try:
        pipeline(end=end, project_dir=str(project.root))
    except RuntimeError as exc:  # kfp.local's one way to say a task failed; colored for a terminal
        said = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))
        task = re.search(r"Inner task failed: '([^']+)'", said)
        raise InfraError(f"the pipeline stopped at task {task.group(1)!r}; its error is above" if task else said) from exc
    return plan


def _component(func: Callable[..., Any], name: str, image: str) -> Any:
    """A KFP lightweight component of ``func`` named ``name`` (its task's name), run in ``image``.

    No pip step at start (``install_kfp_package=False``): the image has featurekit and kfp."""
    from kfp import dsl

    component = dsl.component(func, base_image=image, install_kfp_package=False)
    component.component_spec.name = name
    return component


def _pipeline_func(plan: PipelinePlan) -> Any:
    from kfp import dsl

    from featurekit.deploy import kfp_components as steps

    order, upstream = plan.graph.order, plan.graph.upstream
    description = (f"featurekit jobs {', '.join(order)} in dependency order"
                   + (", then feast apply" if plan.feast_apply else "")
                   + (", the incremental materialization" if plan.materialize else "")
                   + (", the lineage flush" if plan.lineage_flush else "")
                   + f"; rendered for env {plan.env}")

    def step(func: Callable[..., Any], name: str, **inputs: Any) -> Any:
        """The task ``name`` running ``func`` on ``inputs``, uncached, in the env's pod settings;
        one that runs featurekit in its pod (:attr:`PipelinePlan.in_pod_tasks`) gets its secrets too."""
        task = _component(func, name, plan.image)(**inputs)
        task.set_caching_options(False)
        for variable, value in plan.env_vars.items():
            task.set_env_variable(variable, value)
        _on_kubernetes(task, plan, secrets=name in plan.in_pod_tasks)
        return task

    def pipeline(env: str = plan.env, end: str = "", project_dir: str = plan.project_dir) -> None:
        end_task = step(steps.interval_end, END_TASK, end=end)
        end_task.set_display_name("interval end")
        resolved = end_task.output
        tasks: dict[str, Any] = {}
        for job in order:
            if job in plan.applications:
                task = step(steps.submit_sparkapp, job_task(job), application=plan.applications[job], job=job, env=env,
                            end=resolved, run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER, timeout_s=plan.job_timeout_s)
            else:
                task = step(steps.run_job, job_task(job), project_dir=project_dir, job=job, env=env, end=resolved)
            task.set_display_name(job)
            for before in upstream[job]:
                task.after(tasks[before])
            tasks[job] = task
        last: list[Any] = list(tasks.values())
        if plan.feast_apply:
            apply = step(steps.feast_apply, APPLY_TASK, project_dir=project_dir, env=env)
            last = [apply.after(*last) if last else apply]
        if plan.materialize:
            fill = step(steps.materialize, MATERIALIZE_TASK, project_dir=project_dir, env=env, end=resolved)
            last = [fill.after(*last) if last else fill]
        if plan.lineage_flush:
            flush = step(steps.lineage_flush, FLUSH_TASK, project_dir=project_dir, env=env)
            if last:
                flush.after(*last)

    # kfp reads the parameters' types from the annotations, which this module's
    # ``from __future__ import annotations`` turns into strings.
    pipeline.__annotations__ = {"env": str, "end": str, "project_dir": str, "return": None}
    return dsl.pipeline(name=plan.name, description=description)(pipeline)


def _on_kubernetes(task: Any, plan: PipelinePlan, secrets: bool) -> None:
    """Set ``task``'s pod as ``plan`` says, through kfp-kubernetes (the compiled pipeline's
    ``platforms.kubernetes`` part, which KFP's backend applies and ``kfp.local`` ignores)."""
    if not (plan.image_pull_policy or plan.image_pull_secrets or (secrets and plan.secret_env)):
        return
    from kfp import kubernetes

    if plan.image_pull_policy:
        kubernetes.set_image_pull_policy(task, plan.image_pull_policy)
    if plan.image_pull_secrets:
        kubernetes.set_image_pull_secrets(task, list(plan.image_pull_secrets))
    if secrets:
        for secret, keys in _secret_groups(plan.secret_env):
            kubernetes.use_secret_as_env(task, secret, keys)


def _secret_groups(secret_env: dict[str, tuple[str, str]]) -> list[tuple[str, dict[str, str]]]:
    """``secret_env`` (variable -> (secret, key)) as ``use_secret_as_env`` takes it: per secret, its
    keys and the variable each fills. A key given to two variables starts a second group of its
    secret, since one group maps a key to one variable."""
    groups: list[tuple[str, dict[str, str]]] = []
    for name, (secret, key) in secret_env.items():
        keys = next((keys for of, keys in groups if of == secret and key not in keys), None)
        if keys is None:
            keys = {}
            groups.append((secret, keys))
        keys[key] = name
    return groups
