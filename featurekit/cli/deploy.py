"""``featurekit render``: deployment manifests (and the Kubeflow pipeline) from the job specs and conf/."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from featurekit.cli.options import Env, options, when
from featurekit.cli.present import err, flagged
from featurekit.config import load_settings
from featurekit.errors import ConfigError, SpecError

if TYPE_CHECKING:
    from featurekit.deploy.sparkapp import Rendered

render_app = typer.Typer(no_args_is_help=True, help="Render deployment manifests from the job specs and conf/.")


@render_app.command("sparkapp")
def render_sparkapp(
    ctx: typer.Context,
    job: Annotated[Optional[str], typer.Argument(help="Job name or path (or --all).")] = None,
    all_jobs: Annotated[bool, typer.Option("--all", help="Every job in jobs/.")] = False,
    env: Env = "k8s",
    schedule: Annotated[Optional[str], typer.Option(help="Cron schedule: a ScheduledSparkApplication.")] = None,
    materialize: Annotated[bool, typer.Option(
        "--materialize", help="Runs also materialize the job's online features (featurekit run --materialize).")] = False,
    output: Annotated[Optional[Path], typer.Option(
        "--output", "-o", help="A .yaml file for all manifests, or a folder for one file per job.")] = None,
    backfill_run: Annotated[bool, typer.Option(
        "--backfill", help="One run of featurekit backfill JOB --start --end (an incremental job; never scheduled).")] = False,
    start: Annotated[Optional[str], typer.Option(help="--backfill: range start, exclusive (ISO 8601, UTC if no zone).")] = None,
    end: Annotated[Optional[str], typer.Option(help="--backfill: range end, inclusive.")] = None,
    batch: Annotated[Optional[str], typer.Option(help="--backfill: chunk length, each chunk one commit (default 1d).")] = None,
) -> None:
    """Kubeflow Spark operator manifests (SparkApplication, or scheduled) for jobs in an environment."""
    from featurekit.deploy.sparkapp import Backfill, render_jobs, to_yaml
    from featurekit.spec.loader import load_jobs

    if (job is None) == (not all_jobs):
        raise ConfigError.single("give one job, or --all for every job", file="render sparkapp", field="JOB")
    given = [option for option, value in (("--start", start), ("--end", end), ("--batch", batch)) if value is not None]
    if given and not backfill_run:
        raise ConfigError.single("--start, --end and --batch go with --backfill", file="render sparkapp", field=given[0])
    if backfill_run and all_jobs:
        raise ConfigError.single("a backfill is of one job: give JOB, not --all", file="render sparkapp", field="--all")
    if backfill_run and (start is None or end is None):
        raise ConfigError.single("give the range to recompute: --start and --end", file="render sparkapp", field="--backfill")
    backfill = Backfill(when(start, "--start"), when(end, "--end"), batch or "1d") if backfill_run else None  # type: ignore[arg-type]
    project = options(ctx).project()
    settings = load_settings(project, env)
    files = project.job_files() if all_jobs else [project.job_path(job or "")]
    jobs, problems = load_jobs(files, settings.vars, base=project.root)
    if problems:
        raise SpecError(problems)
    rendered = render_jobs(project, settings, jobs, schedule, materialize=materialize, backfill=backfill)
    for item in rendered:
        for warning in item.warnings:
            err.print(f"[yellow]warning[/] {flagged(warning)}", markup=True)
    if output is None:
        sys.stdout.write(to_yaml(rendered))
        return
    written = _write(rendered, output)
    kind = "ScheduledSparkApplication" if schedule else "SparkApplication"
    err.print(f"wrote {len(rendered)} {kind}(s) for env {env}: {', '.join(str(p) for p in written)}")


@render_app.command("pipeline")
def render_pipeline(
    ctx: typer.Context,
    env: Env = "k8s",
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Write the YAML to this file (default: stdout).")] = None,
    rbac: Annotated[Optional[Path], typer.Option(
        help="Also write the Role and RoleBinding the job tasks need to submit SparkApplications to this file.")] = None,
) -> None:
    """A Kubeflow Pipelines v2 pipeline (compiled YAML): every job in dependency order, then feast
    apply, the incremental materialization and the lineage flush. Parameters: env, end, project_dir.
    On a cluster env (pipeline.run_jobs: sparkapp) each job task submits the job's SparkApplication
    and waits for its end."""
    from featurekit.deploy.kfp_pipeline import compile_pipeline, pipeline_rbac, plan_pipeline
    from featurekit.deploy.sparkapp import manifests_yaml
    from featurekit.spec.loader import load_jobs

    project = options(ctx).project()
    settings = load_settings(project, env)
    jobs, problems = load_jobs(project.job_files(), settings.vars, base=project.root)
    if problems:
        raise SpecError(problems)
    plan = plan_pipeline(project, settings, jobs)
    roles = pipeline_rbac(plan)
    if rbac is not None and not roles:
        raise ConfigError.single(f"no job task of env {env} submits a SparkApplication (pipeline.run_jobs: in_task), "
                                 "so the pipeline needs no Role", file="render pipeline", field="--rbac")
    compiled = compile_pipeline(plan)
    for warning in plan.warnings:
        err.print(f"[yellow]warning[/] {flagged(warning)}", markup=True)
    if output is None:
        sys.stdout.write(compiled)
    else:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(compiled, encoding="utf-8")
        err.print(f"wrote pipeline {plan.name!r} ({len(plan.graph.order)} job(s)) for env {env}: {output}", markup=False)
    if rbac is not None:
        rbac.parent.mkdir(parents=True, exist_ok=True)
        rbac.write_text(manifests_yaml(roles), encoding="utf-8")
        err.print(f"wrote the Role and RoleBinding of {plan.account_namespace}/{plan.service_account} "
                  f"in namespace {plan.namespace}: {rbac}", markup=False)
    elif roles:
        err.print(f"note: {len(plan.applications)} job task(s) submit SparkApplications in namespace {plan.namespace}; "
                  f"the run's service account ({plan.account_namespace}/{plan.service_account}, conf pipeline.*) "
                  "needs the Role and RoleBinding of --rbac FILE", markup=False)


@render_app.command("inferenceservice")
def render_inferenceservice(
    ctx: typer.Context,
    model: Annotated[str, typer.Option(help="Registered model in the Model Registry.")],
    version: Annotated[str, typer.Option(help="Its version: the predictor serves its model artifact.")],
    env: Env = "k8s",
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Write the YAML to this file (default: stdout).")] = None,
    name: Annotated[Optional[str], typer.Option(help="The InferenceService's name (default: from the model and version).")] = None,
    record: Annotated[bool, typer.Option(
        "--record", help="Record the deployment in the Model Registry (serving environment, inference service, serve model).")] = False,
) -> None:
    """A KServe InferenceService: the predictor serves the model version's artifact from the Model
    Registry, featurekit's transformer adds the online features linked to the version."""
    from featurekit.deploy import inferenceservice
    from featurekit.lineage.client import registry_client

    project = options(ctx).project()
    settings = load_settings(project, env)
    with registry_client(settings) as client:
        rendered = inferenceservice.render(project, settings, client, model, version, name)
        if record:
            rendered = inferenceservice.record(client, rendered)
            assert rendered.recorded is not None
            err.print(f"recorded inference service {rendered.recorded['id']} ({rendered.name}, serving environment "
                      f"{rendered.namespace}) in the Model Registry at {client.url}", markup=False)
    text = inferenceservice.to_yaml(rendered)
    if output is None:
        sys.stdout.write(text)
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text, encoding="utf-8")
    err.print(f"wrote InferenceService {rendered.name!r} (model {model} version {version}) for env {env}: {output}",
              markup=False)


pipeline_app = typer.Typer(no_args_is_help=True, help="Run the Kubeflow pipeline of `featurekit render pipeline`.")


@pipeline_app.command("run")
def pipeline_run(
    ctx: typer.Context,
    local: Annotated[bool, typer.Option("--local", help="With KFP's local runner on this machine (required: on a cluster, upload the YAML of `render pipeline`).")] = False,
    env: Env = "local",
    end: Annotated[Optional[str], typer.Option(help="The interval's end for every job (ISO 8601, UTC if no zone; default now).")] = None,
) -> None:
    """Run the Kubeflow pipeline of `render pipeline` here, with KFP's local runner: the jobs in
    dependency order, then feast apply, the incremental materialization and the lineage flush."""
    from featurekit.deploy.kfp_pipeline import run_local
    from featurekit.spec.loader import load_jobs

    if not local:
        raise ConfigError.single("give --local (runs here); on a cluster, upload the YAML of "
                                 "`featurekit render pipeline` to Kubeflow Pipelines", file="pipeline run", field="--local")
    at = when(end, "--end")
    project = options(ctx).project()
    settings = load_settings(project, env)
    jobs, problems = load_jobs(project.job_files(), settings.vars, base=project.root)
    if problems:
        raise SpecError(problems)
    plan = run_local(project, settings, jobs, end=at.isoformat() if at is not None else "")
    err.print(f"pipeline {plan.name!r} ran {len(plan.graph.order)} job(s) locally for env {env}", markup=False)


def _write(rendered: list[Rendered], output: Path) -> list[Path]:
    """Every manifest into one .yaml file, or one file per job into a folder."""
    from featurekit.deploy.sparkapp import to_yaml

    if output.suffix in (".yaml", ".yml"):
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(to_yaml(rendered), encoding="utf-8")
        return [output]
    output.mkdir(parents=True, exist_ok=True)
    for item in rendered:
        (output / f"{item.name}.yaml").write_text(to_yaml([item]), encoding="utf-8")
    return [output / f"{item.name}.yaml" for item in rendered]
