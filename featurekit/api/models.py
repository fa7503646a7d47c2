"""The response bodies of the metadata API (pydantic, so ``/openapi.json`` documents them)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ErrorBody(BaseModel):
    """Every 4xx/5xx answer: one readable line."""

    detail: str


class Health(BaseModel):
    """Liveness plus the non-secret facts of the environment served."""

    status: str = "ok"
    env: str
    feast_project: str
    registry_url: str
    registry_enabled: bool
    featurekit_version: str


class OutputSummary(BaseModel):
    path: str
    mode: str
    keys: list[str] = Field(default_factory=list)
    partition_by: list[str] = Field(default_factory=list)


class FeaturesSummary(BaseModel):
    """A job's ``features:`` block, in short."""

    entity: str
    join_keys: list[str]
    timestamp: str
    ttl: str
    online: bool
    services: list[str] = Field(description="The job's own service (named after it) and those it declares.")


class JobSummary(BaseModel):
    name: str
    description: str
    owner: str
    file: str = Field(description="The job file, relative to the project.")
    fingerprint: str
    output: OutputSummary
    features: FeaturesSummary | None = None


class JobList(BaseModel):
    jobs: list[JobSummary]
    problems: list[str] = Field(default_factory=list,
                                description="Problems of job files that do not load (those jobs are left out).")


class RunSummary(BaseModel):
    run_id: str
    job: str
    status: str
    env: str = ""
    started_at: str = ""
    fingerprint: str = ""
    rows_read: int | None = None
    rows_written: int | None = None
    rows_quarantined: int | None = None
    table_version: int | None = None
    exit_code: int = 0
    error: str = Field(default="", description="The first line of the error of a failed run.")


class JobDetail(JobSummary):
    spec: dict[str, Any] = Field(description="The resolved spec (variables filled, defaults shown).")
    recent_runs: list[RunSummary] = Field(description="The 10 most recent runs, newest first.")


class RunList(BaseModel):
    runs: list[RunSummary]


class Materialization(BaseModel):
    """One feature set: a window of one Delta table version put into the online store."""

    run_id: str = Field(description="The materialization's run id.")
    feast_project: str
    job: str
    spec_fingerprint: str
    delta_path: str
    delta_version: int
    window_start: str
    window_end: str
    rows: int
    keys: int
    online_store: str
    features: list[str]
    recorded_at: str
    newest_event: str | None = Field(default=None, description="The newest event time (ISO 8601, UTC) the view's keys "
                                                                "held in the online store after the run; None when "
                                                                "it held none or an older featurekit recorded it.")
    job_run_id: str | None = Field(default=None, description="The job run whose commit made the Delta version "
                                                             "(read from the table's log; detail only).")


class TrainingSetUse(BaseModel):
    """A training set that read a version of the view's table."""

    run_id: str
    feature_service: str
    delta_version: int
    output_path: str
    output_version: int
    rows: int
    recorded_at: str


class FeatureSetSummary(BaseModel):
    view: str
    job: str
    feast_project: str
    declared: bool = Field(description="Whether a job's `features:` block declares the view now.")
    entity: str | None = None
    join_keys: list[str] = Field(default_factory=list)
    online: bool | None = None
    ttl: str | None = Field(default=None, description="The view's ttl as the job declares it ('1d'); None when no "
                                                      "job declares the view now.")
    table_path: str | None = None
    delta_versions: list[int] = Field(description="Delta versions materialized, newest first.")
    materialization_count: int
    latest: Materialization | None = None


class FeatureSetList(BaseModel):
    feature_sets: list[FeatureSetSummary]
    problems: list[str] = Field(default_factory=list)


class FeatureSetDetail(FeatureSetSummary):
    table_version: int | None = Field(default=None,
                                      description="The table's current Delta version (None if unreadable).")
    materializations: list[Materialization] = Field(description="Newest first.")
    training_sets: list[TrainingSetUse] = Field(description="Newest first.")


class LineageNode(BaseModel):
    """A node of the lineage tree: model version, training set, feature set, delta, job run, source, note."""

    kind: str
    label: str
    key: str = ""
    details: list[str] = Field(default_factory=list)
    children: list[LineageNode] = Field(default_factory=list)
    link: dict[str, str] = Field(default_factory=dict,
                                 description='What the node is about: {"model", "version"}, {"view"}, {"job"}, '
                                             '{"job", "run_id"} or {"training_set"}; empty when nothing.')
