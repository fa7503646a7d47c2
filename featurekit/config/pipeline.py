"""The ``pipeline:`` settings: how the Kubeflow pipeline of ``featurekit render pipeline`` runs its jobs.

A job task either submits the job's SparkApplication (the manifest of ``featurekit render
sparkapp``) and waits for its end (``sparkapp``, a cluster environment's choice: the job gets
the driver and executors of ``kubernetes:``), or runs ``featurekit run`` inside its own pod,
Spark in local mode there (``in_task``: no Spark operator needed; what ``pipeline run --local``
does on this machine).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from featurekit.config.kubernetes import DnsLabel, DnsSubdomain

RunJobs = Literal["sparkapp", "in_task"]


class PipelineSettings(BaseModel):
    """How the pipeline's job tasks run their jobs, and who they run as."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    run_jobs: RunJobs = "in_task"
    # The same choice for single jobs (job name: sparkapp | in_task), over run_jobs.
    run_jobs_per_job: dict[str, RunJobs] = Field(default_factory=dict)
    # How long a job task waits for its SparkApplication to end; then it deletes it and fails.
    job_timeout_s: int = Field(default=6 * 3600, ge=60)
    # Who the pipeline's pods run as, for the Role that lets them submit SparkApplications
    # (`render pipeline --rbac`). A KFP run sets its service account when it is created, not in
    # the pipeline: Kubeflow's profiles run pipelines as default-editor in the profile's namespace.
    service_account: DnsSubdomain = "default-editor"
    # That service account's namespace (the KFP profile's); default: kubernetes.namespace.
    namespace: DnsLabel | None = None

    def run_of(self, job: str) -> RunJobs:
        """How ``job``'s task runs it."""
        return self.run_jobs_per_job.get(job, self.run_jobs)
