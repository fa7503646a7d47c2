"""A Kubeflow Pipelines v2 pipeline that runs the project's jobs, then serves their features.

``featurekit render pipeline`` compiles it with the kfp SDK. One run of it:

1. fixes the interval's end once (the ``end`` parameter, else the time the run starts), so
   every task computes up to the same moment;
2. runs each job (``featurekit run JOB --env ENV --end END``) after the jobs whose Delta output
   it reads (:mod:`featurekit.deploy.graph`); jobs with no path between them have no edge, so
   Kubeflow runs them at the same time;
3. after every job: ``featurekit feast apply``, then the incremental materialization of the
   online views, then ``featurekit lineage flush`` (each only when the jobs have something for
   it: features, online features, a registry).

Parameters: ``env`` (default: the environment rendered for), ``end`` (ISO 8601; empty = now)
and ``project_dir`` (where the project is inside the image, ``kubernetes.project_dir``; another
folder to run the same pipeline elsewhere, e.g. with ``kfp.local``). The tasks run in
``kubernetes.image``, the image the SparkApplications use, with ``kubernetes.env`` set.

Every task runs its command inside its own pod (Spark in local mode there). Submitting the
job's SparkApplication instead and waiting on it is not done yet.

Caching is off for every task: a task's inputs (job, env, end) do not say what its sources
hold, and a cached "success" would skip a job whose data changed.

The compile is deterministic: the same specs and conf give the same YAML, byte for byte.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from featurekit.config import Project, Settings
from featurekit.deploy.graph import JobGraph, job_graph
from featurekit.deploy.sparkapp import kubernetes_of, resource_name
from featurekit.spec.loader import LoadedJob

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


def job_task(job: str) -> str:
    """The name of ``job``'s task in the compiled pipeline (a Kubernetes-style name)."""
    return f"job-{resource_name(job)}"


def plan_pipeline(project: Project, settings: Settings, jobs: Sequence[LoadedJob],
                  image: str | None = None) -> PipelinePlan:
    """The pipeline for ``jobs`` in ``settings``' environment; a config error if that environment
    has no ``kubernetes:`` settings (they name the image), a spec error if the jobs cannot be ordered.

    With ``image`` (a run with ``kfp.local``'s subprocess runner, which starts no container) an
    environment without ``kubernetes:`` will do, and the project folder is this one."""
    k8s = kubernetes_of(project, settings) if image is None or settings.kubernetes is not None else None
    graph = job_graph(jobs)
    features = [job.spec.features for job in jobs if job.spec.features is not None]
    return PipelinePlan(
        name=resource_name(settings.feast.project),
        image=image or k8s.image,  # type: ignore[union-attr]
        env=settings.env,
        project_dir=k8s.project_dir if k8s is not None else str(project.root),
        env_vars=dict(sorted(k8s.env.items())) if k8s is not None else {},
        graph=graph,
        feast_apply=bool(features),
        materialize=any(f.online for f in features),
        lineage_flush=settings.registry.enabled,
    )


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

    def configured(task: Any) -> Any:
        task.set_caching_options(False)
        for name, value in plan.env_vars.items():
            task.set_env_variable(name, value)
        return task

    def pipeline(env: str = plan.env, end: str = "", project_dir: str = plan.project_dir) -> None:
        end_task = configured(_component(steps.interval_end, END_TASK, plan.image)(end=end))
        end_task.set_display_name("interval end")
        resolved = end_task.output
        tasks: dict[str, Any] = {}
        for job in order:
            task = configured(_component(steps.run_job, job_task(job), plan.image)(
                project_dir=project_dir, job=job, env=env, end=resolved))
            task.set_display_name(job)
            for before in upstream[job]:
                task.after(tasks[before])
            tasks[job] = task
        last: list[Any] = list(tasks.values())
        if plan.feast_apply:
            apply = configured(_component(steps.feast_apply, APPLY_TASK, plan.image)(project_dir=project_dir, env=env))
            last = [apply.after(*last) if last else apply]
        if plan.materialize:
            fill = configured(_component(steps.materialize, MATERIALIZE_TASK, plan.image)(
                project_dir=project_dir, env=env, end=resolved))
            last = [fill.after(*last) if last else fill]
        if plan.lineage_flush:
            flush = configured(_component(steps.lineage_flush, FLUSH_TASK, plan.image)(project_dir=project_dir, env=env))
            if last:
                flush.after(*last)

    # kfp reads the parameters' types from the annotations, which this module's
    # ``from __future__ import annotations`` turns into strings.
    pipeline.__annotations__ = {"env": str, "end": str, "project_dir": str, "return": None}
    return dsl.pipeline(name=plan.name, description=description)(pipeline)
