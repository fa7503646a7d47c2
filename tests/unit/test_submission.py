"""What a pipeline task does with a job's SparkApplication, short of the API server (none runs
here): the run's name and manifest, checked against the operator's CRD; the state read from
status documents valid under the CRD's status schema; the driver pod's end read from pods as
the ``kubernetes`` client's models serialize them; the Role, as the client's models read it."""

from __future__ import annotations

import copy
import json
import re
from types import SimpleNamespace
from typing import Any

import pytest
from kubernetes import client

from featurekit.config import Project, load_settings
from featurekit.deploy.sparkapp import render
from featurekit.deploy.submission import (
    DRIVER_CONTAINER,
    Outcome,
    application_name,
    driver_termination,
    failure_message,
    outcome,
    patch_application,
    rbac_manifests,
)
from featurekit.errors import ConfigError
from featurekit.spec.loader import load_jobs
from tests.conftest import REPO
from tests.unit.test_sparkapp import schema_errors

RUN = "5f0c1a2b-9d3e-4c1f-8a7b-0e6d5c4b3a29"
END = "2026-03-01T00:00:00+00:00"
DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
ON_FAILURE = {"type": "OnFailure", "onFailureRetries": 3, "onFailureRetryInterval": 120,
              "onSubmissionFailureRetries": 2, "onSubmissionFailureRetryInterval": 30}


@pytest.fixture(scope="module")
def manifest() -> dict[str, Any]:
    """The repository's driver_hourly_stats job as `render sparkapp --env k8s` makes it."""
    project = Project(REPO)
    settings = load_settings(project, "k8s")
    jobs, problems = load_jobs([project.job_path("driver_hourly_stats")], settings.vars, base=project.root)
    assert problems == []
    return render(project, settings, jobs[0]).manifest


# -- names ---------------------------------------------------------------------------------------

def test_a_runs_application_is_named_after_the_job_and_the_run() -> None:
    assert application_name("driver_hourly_stats", RUN) == "driver-hourly-stats-5f0c1a2b"
    assert application_name("driver_hourly_stats", "5F0C-1A2B-9D3E") == "driver-hourly-stats-5f0c1a2b"
    # not a UUID: a hash of the id, still 8 characters of the run
    assert application_name("a", "run 1") != application_name("a", "run 2")
    assert re.fullmatch(r"a-[0-9a-f]{8}", application_name("a", "run 1"))
    # long names: cut to the operator's limit (63 less "-driver"), told apart by a hash of the job
    long_a, long_b = "x" * 70 + "_a", "x" * 70 + "_b"
    names = [application_name(job, RUN) for job in (long_a, long_b)]
    assert names[0] != names[1]
    for name in names + [application_name("driver_hourly_stats", RUN)]:
        assert len(name) <= 56 and DNS_1035.match(name), name
        assert name.endswith("-5f0c1a2b")


# -- the manifest of one run ---------------------------------------------------------------------

def test_the_runs_manifest_has_its_name_end_labels_and_the_drivers_error_policy(manifest: dict[str, Any]) -> None:
    before = copy.deepcopy(manifest)
    run = patch_application(manifest, env="k8s", end=END, run_id=RUN)
    assert manifest == before  # a copy: the compiled one is left as it is
    assert schema_errors(run) == []
    assert run["metadata"]["name"] == "driver-hourly-stats-5f0c1a2b"
    assert run["spec"]["arguments"] == ["run", "driver_hourly_stats", "--env", "k8s", "--end", END]
    for labels in (run["metadata"]["labels"], run["spec"]["driver"]["labels"], run["spec"]["executor"]["labels"]):
        assert labels["featurekit.io/pipeline-run"] == RUN
        assert labels["featurekit.io/job"] == "driver_hourly_stats"
    assert run["metadata"]["annotations"] == {"featurekit.io/job-file": "jobs/driver_hourly_stats.yaml",
                                              "featurekit.io/interval-end": END,
                                              "featurekit.io/pipeline-run-id": RUN}
    assert run["spec"]["driver"]["template"] == {"spec": {"containers": [
        {"name": DRIVER_CONTAINER, "terminationMessagePolicy": "FallbackToLogsOnError"}]}}
    # everything else is the rendered manifest's
    for key in ("image", "sparkConf", "restartPolicy", "mainApplicationFile", "sparkVersion", "dynamicAllocation"):
        assert run["spec"][key] == manifest["spec"][key]
    assert run["metadata"]["namespace"] == manifest["metadata"]["namespace"] == "featurekit"

    # a second patch (a task started again) replaces the end rather than adding one; a pod template
    # of the manifest keeps what it has
    again = copy.deepcopy(run)
    again["spec"]["driver"]["template"] = {"metadata": {"labels": {"team": "x"}},
                                           "spec": {"containers": [{"name": DRIVER_CONTAINER, "terminationMessagePolicy": "File"}]}}
    patched = patch_application(again, env="k8s", end="2026-03-02T00:00:00Z", run_id=RUN)
    assert patched["spec"]["arguments"][-2:] == ["--end", "2026-03-02T00:00:00Z"]
    assert patched["spec"]["arguments"].count("--end") == 1
    assert patched["spec"]["driver"]["template"] == again["spec"]["driver"]["template"]
    assert schema_errors(patched) == []


@pytest.mark.parametrize(("change", "expected"), [
    ({"env": "staging"},
     "pipeline parameters env: this pipeline's SparkApplications were rendered for env 'k8s' (their image, namespace "
     "and Spark settings are its); the run asks for 'staging': render the pipeline with --env staging"),
    ({"end": "yesterday"},
     "pipeline parameters end: expected an ISO 8601 time like 2026-01-15T00:00:00Z; got 'yesterday'"),
    ({"kind": "ScheduledSparkApplication"},
     "pipeline application: expected a SparkApplication; got a 'ScheduledSparkApplication'"),
])
def test_a_run_that_cannot_submit_says_why(manifest: dict[str, Any], change: dict[str, str], expected: str) -> None:
    given = {**manifest, **({"kind": change["kind"]} if "kind" in change else {})}
    with pytest.raises(ConfigError) as caught:
        patch_application(given, env=change.get("env", "k8s"), end=change.get("end", END), run_id=RUN)
    assert [str(p) for p in caught.value.problems] == [expected]


# -- the state ------------------------------------------------------------------------------------

def _status(state: str | None, error: str = "", driver: str = "", submissions: int = 1) -> dict[str, Any]:
    status: dict[str, Any] = {"driverInfo": {"podName": driver} if driver else {}, "submissionAttempts": submissions}
    if state is not None:
        status["applicationState"] = {"state": state, **({"errorMessage": error} if error else {})}
    return status


@pytest.mark.parametrize(("status", "policy", "expected"), [
    (None, ON_FAILURE, Outcome("", False, False)),  # not yet seen by the operator
    (_status(""), ON_FAILURE, Outcome("", False, False)),
    (_status("SUBMITTED", driver="d-driver"), ON_FAILURE, Outcome("SUBMITTED", False, False, "", "d-driver")),
    (_status("RUNNING", driver="d-driver"), ON_FAILURE, Outcome("RUNNING", False, False, "", "d-driver")),
    (_status("SUCCEEDING", driver="d-driver"), ON_FAILURE, Outcome("SUCCEEDING", False, False, "", "d-driver")),
    (_status("COMPLETED", driver="d-driver"), ON_FAILURE, Outcome("COMPLETED", True, True, "", "d-driver")),
    # the operator retries a failing run, then says FAILED
    (_status("FAILING", "driver container failed with ExitCode: 1, Reason: Error", "d-driver"), ON_FAILURE,
     Outcome("FAILING", False, False, "driver container failed with ExitCode: 1, Reason: Error", "d-driver")),
    (_status("PENDING_RERUN"), ON_FAILURE, Outcome("PENDING_RERUN", False, False)),
    (_status("UNKNOWN", driver="d-driver"), ON_FAILURE, Outcome("UNKNOWN", False, False, "", "d-driver")),
    (_status("FAILED", "driver container failed with ExitCode: 1, Reason: Error", "d-driver"), ON_FAILURE,
     Outcome("FAILED", True, False, "driver container failed with ExitCode: 1, Reason: Error", "d-driver")),
    # a failed submission: retried while attempts <= onSubmissionFailureRetries, else the end
    (_status("SUBMISSION_FAILED", "admission webhook denied", submissions=2), ON_FAILURE,
     Outcome("SUBMISSION_FAILED", False, False, "admission webhook denied")),
    (_status("SUBMISSION_FAILED", "admission webhook denied", submissions=3), ON_FAILURE,
     Outcome("SUBMISSION_FAILED", True, False, "admission webhook denied")),
    (_status("SUBMISSION_FAILED", "quota exceeded"), {"type": "Never"},
     Outcome("SUBMISSION_FAILED", True, False, "quota exceeded")),
    (_status("SUBMISSION_FAILED", "quota exceeded"), None, Outcome("SUBMISSION_FAILED", True, False, "quota exceeded")),
])
def test_the_state_says_whether_the_job_ended_and_how(manifest: dict[str, Any], status: dict[str, Any] | None,
                                                       policy: dict[str, Any] | None, expected: Outcome) -> None:
    if status is not None:  # a status the operator could write: valid under the CRD's status schema
        assert schema_errors({**manifest, "status": status}) == []
    assert outcome(status, policy) == expected


# -- the driver pod and the task's error ----------------------------------------------------------

def _pod(**status: Any) -> dict[str, Any]:
    """A driver pod as the API serves it (the kubernetes client's models, serialized)."""
    pod = client.V1Pod(metadata=client.V1ObjectMeta(name="driver-hourly-stats-5f0c1a2b-driver"),
                       status=client.V1PodStatus(**status))
    return client.ApiClient().sanitize_for_serialization(pod)  # type: ignore[no-any-return]


def _driver(state: client.V1ContainerState | None = None, last: client.V1ContainerState | None = None,
            name: str = DRIVER_CONTAINER) -> client.V1ContainerStatus:
    return client.V1ContainerStatus(name=name, image="registry.example.com/featurekit-jobs:0.1.0", image_id="sha256:1",
                                    ready=False, restart_count=0, state=state, last_state=last)


TAIL = ("26/03/01 00:00:12 WARN SparkSession: stopping\n"
        "error: jobs/driver_hourly_stats.yaml:4:11 sources.trips.path: no data at s3a://featurekit-raw/raw/trips")


def test_the_drivers_end_is_read_from_its_pod() -> None:
    failed = client.V1ContainerState(terminated=client.V1ContainerStateTerminated(exit_code=2, reason="Error", message=TAIL))
    assert driver_termination(_pod(phase="Failed", container_statuses=[_driver(failed)])) == (
        "exit code 2 (Error):\n"
        "  26/03/01 00:00:12 WARN SparkSession: stopping\n"
        "  error: jobs/driver_hourly_stats.yaml:4:11 sources.trips.path: no data at s3a://featurekit-raw/raw/trips")
    # a container started again: its last end; another container first in the list: still the driver's
    killed = client.V1ContainerState(terminated=client.V1ContainerStateTerminated(exit_code=137, reason="OOMKilled"))
    waiting = client.V1ContainerState(waiting=client.V1ContainerStateWaiting(reason="CrashLoopBackOff"))
    sidecar = _driver(client.V1ContainerState(running=client.V1ContainerStateRunning()), name="istio-proxy")
    assert driver_termination(_pod(phase="Running", container_statuses=[sidecar, _driver(waiting, killed)])) == \
        "exit code 137 (OOMKilled)"
    assert driver_termination(_pod(phase="Failed", reason="Evicted", message="The node was low on resource: memory.")) == \
        "Evicted: The node was low on resource: memory."
    assert driver_termination(_pod(phase="Pending")) == ""


def test_a_failed_job_fails_its_task_with_the_drivers_error() -> None:
    seen = Outcome("FAILED", True, False, "driver container failed with ExitCode: 2, Reason: Error",
                   "driver-hourly-stats-5f0c1a2b-driver")
    failed = client.V1ContainerState(terminated=client.V1ContainerStateTerminated(exit_code=2, reason="Error", message=TAIL))
    termination = driver_termination(_pod(phase="Failed", container_statuses=[_driver(failed)]))
    assert failure_message("featurekit", "driver-hourly-stats-5f0c1a2b", seen, termination) == (
        "SparkApplication featurekit/driver-hourly-stats-5f0c1a2b FAILED: driver container failed with ExitCode: 2, "
        "Reason: Error\n"
        "driver pod driver-hourly-stats-5f0c1a2b-driver: exit code 2 (Error):\n"
        "  26/03/01 00:00:12 WARN SparkSession: stopping\n"
        "  error: jobs/driver_hourly_stats.yaml:4:11 sources.trips.path: no data at s3a://featurekit-raw/raw/trips")
    never_ran = Outcome("SUBMISSION_FAILED", True, False, "failed to run spark-submit: quota exceeded")
    assert failure_message("featurekit", "a-5f0c1a2b", never_ran, "") == \
        "SparkApplication featurekit/a-5f0c1a2b SUBMISSION_FAILED: failed to run spark-submit: quota exceeded"
    silent = Outcome("FAILED", True, False, "", "a-5f0c1a2b-driver")
    assert failure_message("featurekit", "a-5f0c1a2b", silent, "") == (
        "SparkApplication featurekit/a-5f0c1a2b FAILED\n"
        "driver pod a-5f0c1a2b-driver: no termination message (kubectl logs it)")


# -- the Role -------------------------------------------------------------------------------------

def test_the_role_lets_the_runs_account_submit_watch_and_read_drivers() -> None:
    role, binding = rbac_manifests("featurekit", "default-editor", "kubeflow-user-team")
    api = client.ApiClient()
    for document, model in ((role, "V1Role"), (binding, "V1RoleBinding")):
        # the client's models take every key (a misspelt one would be dropped on the way back)
        read = api.deserialize(SimpleNamespace(data=json.dumps(document)), model)
        assert api.sanitize_for_serialization(read) == document
    assert role["metadata"] == {**role["metadata"], "name": "featurekit-pipeline", "namespace": "featurekit"}
    assert {(tuple(r["apiGroups"]), tuple(r["resources"])): set(r["verbs"]) for r in role["rules"]} == {
        (("sparkoperator.k8s.io",), ("sparkapplications",)): {"create", "get", "list", "watch", "delete"},
        (("",), ("pods",)): {"get"},
    }
    assert binding["metadata"]["namespace"] == "featurekit"
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "default-editor", "namespace": "kubeflow-user-team"}]
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "featurekit-pipeline"}
