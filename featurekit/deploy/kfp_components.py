"""The steps of the Kubeflow pipeline, as KFP lightweight Python components.

KFP copies each function's source, alone, into the compiled pipeline and runs it in the
featurekit image: so each one imports what it uses inside its body and calls nothing else of
this module. Each runs a ``featurekit`` command in a process of its own (``python -m
featurekit``), so the task's log shows the command's own output and error, and a failed
command fails the task with its exit code; or, for a job run as its SparkApplication, submits
it and waits on it (:mod:`featurekit.deploy.submission`).

This module has no ``from __future__ import annotations``: KFP reads the parameter types from
the annotations, and string annotations would hide them.
"""


def interval_end(end: str) -> str:
    """The end every task of one pipeline run computes up to: ``end`` as given, else the time the
    run starts (UTC, to the second), so that jobs started minutes apart agree on the interval."""
    from datetime import datetime, timezone

    if end.strip():
        return end.strip()
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


def run_job(project_dir: str, job: str, env: str, end: str) -> None:
    """``featurekit run JOB --env ENV --end END`` inside this task's pod."""
    import subprocess
    import sys

    args = ["--project", project_dir, "run", job, "--env", env, "--end", end]
    code = subprocess.run([sys.executable, "-m", "featurekit", *args], check=False).returncode
    if code != 0:
        raise RuntimeError(f"featurekit run {job} --env {env} --end {end} failed (exit {code}); its error is above")


def feast_apply(project_dir: str, env: str) -> None:
    """``featurekit feast apply --env ENV``: the jobs' feature views and services into Feast's registry."""
    import subprocess
    import sys

    args = ["--project", project_dir, "feast", "apply", "--env", env]
    code = subprocess.run([sys.executable, "-m", "featurekit", *args], check=False).returncode
    if code != 0:
        raise RuntimeError(f"featurekit feast apply --env {env} failed (exit {code}); its error is above")


def materialize(project_dir: str, env: str, end: str) -> None:
    """``featurekit materialize --incremental --end END --env ENV``: every online view, the keys
    that changed since the Delta version the online store holds."""
    import subprocess
    import sys

    args = ["--project", project_dir, "materialize", "--incremental", "--end", end, "--env", env]
    code = subprocess.run([sys.executable, "-m", "featurekit", *args], check=False).returncode
    if code != 0:
        raise RuntimeError(f"featurekit materialize --incremental --end {end} --env {env} failed (exit {code}); "
                           "its error is above")


def lineage_flush(project_dir: str, env: str) -> None:
    """``featurekit lineage flush --env ENV``: the run's lineage records into the Model Registry."""
    import subprocess
    import sys

    args = ["--project", project_dir, "lineage", "flush", "--env", env]
    code = subprocess.run([sys.executable, "-m", "featurekit", *args], check=False).returncode
    if code != 0:
        raise RuntimeError(f"featurekit lineage flush --env {env} failed (exit {code}); its error is above")


def submit_sparkapp(application: str, job: str, env: str, end: str, run_id: str, timeout_s: int) -> None:
    """The job's SparkApplication (``application``: the manifest ``featurekit render sparkapp``
    made when the pipeline was compiled, as JSON), submitted as this run's and computing up to
    ``end``, then watched until it ends; a failed one fails the task with the driver's error."""
    import json

    from featurekit.deploy.submission import submit_and_wait
    from featurekit.errors import FeaturekitError

    try:
        submit_and_wait(json.loads(application), env=env, end=end, run_id=run_id, timeout_s=timeout_s)
    except FeaturekitError as exc:  # its message says it all: no traceback of featurekit's insides
        raise RuntimeError(f"job {job}: {exc}") from None
