"""The FastAPI app of ``featurekit api``: routes over :mod:`featurekit.api.reads` and the
lineage tree of :func:`featurekit.pipeline.lineage.show`.

Routes are plain ``def`` functions: FastAPI runs them in its thread pool, so reading files or
asking the Model Registry never blocks the event loop.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse

from featurekit import __version__
from featurekit.api import reads
from featurekit.api.models import (
    ErrorBody,
    FeatureSetDetail,
    FeatureSetList,
    Health,
    JobDetail,
    JobList,
    LineageNode,
    RunList,
)
from featurekit.api.reads import ApiError, redact, redact_text
from featurekit.config import Project, Settings
from featurekit.errors import ConfigError, FeaturekitError, NotFound, UsageError
from featurekit.lineage.tree import Node
from featurekit.web import RedactedJSONResponse, error_response

PREFIX = "/api/v1"


def _errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": ErrorBody} for status in statuses}


def create_api(project: Project, settings: Settings) -> FastAPI:
    """The metadata API of one project in one environment (read-only; files are read per request)."""
    api = FastAPI(
        default_response_class=RedactedJSONResponse,
        title="featurekit metadata API",
        version=__version__,
        description=f"Jobs, runs, feature sets and lineage of a featurekit project (environment {settings.env!r}). "
                    "Read-only over what featurekit records; no secrets in any answer.",
    )

    @api.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error_response({"detail": redact_text(exc.detail)}, exc.status)

    # The library names its parameters as the API does (model, version, job), so a message reads as is.
    @api.exception_handler(NotFound)
    async def _not_found(_: Request, exc: NotFound) -> JSONResponse:
        return error_response({"detail": redact_text(exc.text())}, 404)

    @api.exception_handler(UsageError)
    async def _usage_error(_: Request, exc: UsageError) -> JSONResponse:
        return error_response({"detail": redact_text(exc.text())}, 422)

    @api.exception_handler(FeaturekitError)
    async def _featurekit_error(_: Request, exc: FeaturekitError) -> JSONResponse:
        return error_response({"detail": redact_text(str(exc))}, 500)

    @api.get("/health", response_model=Health, tags=["health"])
    def health() -> Health:
        """Liveness, and which environment is served."""
        return Health(env=settings.env, feast_project=settings.feast.project,
                      registry_url=redact_text(settings.registry.effective_url),
                      registry_enabled=settings.registry.enabled, featurekit_version=__version__)

    @api.get(f"{PREFIX}/jobs", response_model=JobList, tags=["jobs"])
    def list_jobs() -> JobList:
        """Every job of ``jobs/``: name, owner, fingerprint, output, features block."""
        loaded, problems = reads.jobs(project, settings)
        return JobList(jobs=[reads.job_summary(job) for job in loaded], problems=problems)

    @api.get(f"{PREFIX}/jobs/{{name}}", response_model=JobDetail, responses=_errors(404, 422), tags=["jobs"])
    def get_job(name: str) -> JobDetail:
        """One job: its resolved spec, fingerprint and 10 most recent runs."""
        return reads.job_detail(project, settings, name)

    @api.get(f"{PREFIX}/runs", response_model=RunList, responses=_errors(404), tags=["runs"])
    def list_runs(job: Annotated[str | None, Query(description="Only this job's runs.")] = None,
                  limit: Annotated[int, Query(ge=1, le=1000)] = 20) -> RunList:
        """Recent runs, newest first."""
        return RunList(runs=reads.runs(project, settings, job, limit))

    @api.get(f"{PREFIX}/runs/{{run_id}}", response_model=dict[str, Any], responses=_errors(404, 409), tags=["runs"])
    def get_run(run_id: str) -> dict[str, Any]:
        """A run's report (as written to the run log); a unique prefix of the run id is enough."""
        return reads.run_report(settings, run_id)

    @api.get(f"{PREFIX}/feature-sets", response_model=FeatureSetList, tags=["feature sets"])
    def list_feature_sets() -> FeatureSetList:
        """Every feature view (declared by a job, or recorded in the run log) and its latest materialization."""
        found, problems = reads.feature_sets(project, settings)
        return FeatureSetList(feature_sets=found, problems=problems)

    @api.get(f"{PREFIX}/feature-sets/{{view}}", response_model=FeatureSetDetail, responses=_errors(404),
             tags=["feature sets"])
    def get_feature_set(view: str) -> FeatureSetDetail:
        """A view's materializations (windows, Delta versions, rows, keys, run ids) and the training sets
        that read it, newest first."""
        return reads.feature_set(project, settings, view)

    @api.get(f"{PREFIX}/lineage/models/{{model}}/versions/{{version}}", response_model=LineageNode,
             responses=_errors(404, 502, 503), tags=["lineage"])
    def model_lineage(model: str, version: str) -> LineageNode:
        """Model version -> training sets / feature sets -> Delta versions -> job runs -> sources,
        from the Model Registry and the run log."""
        return lineage_tree(project, settings, model, version)

    return api


def lineage_tree(project: Project, settings: Settings, model: str, version: str) -> LineageNode:
    """The tree of :func:`featurekit.pipeline.lineage.show`, with the registry's failures as HTTP answers
    (an unknown model or version is a :class:`NotFound`, which the app answers with 404)."""
    from featurekit.lineage.client import RegistryError, RegistryUnavailable
    from featurekit.pipeline import lineage

    try:
        tree = lineage.show(project, settings, model=model, version=version)
    except RegistryUnavailable as exc:
        raise ApiError(503, str(exc)) from None
    except RegistryError as exc:   # refused (4xx) or an answer that is not the API's
        raise ApiError(502, str(exc)) from None
    except UsageError:
        raise
    except ConfigError as exc:   # the registry cannot be asked as configured
        problem = exc.problems[0].named(str)
        raise ApiError(503, f"the Model Registry cannot be asked: {problem.field}: {problem.message}") from None
    return node(tree)


def node(tree: Node) -> LineageNode:
    """A :class:`Node` as its JSON model, nested (no secrets in labels or details)."""
    return LineageNode(kind=tree.kind, label=redact_text(tree.label), key=redact_text(tree.key),
                       details=[redact_text(d) for d in tree.details], children=[node(c) for c in tree.children],
                       link={k: redact_text(v) for k, v in tree.link.items()})


__all__ = ["create_api", "lineage_tree", "node", "redact"]
