"""A job's SparkApplication submitted from a Kubeflow pipeline task, and waited on until it ends.

On a cluster environment the pipeline's job task does what ``kubectl apply`` of ``featurekit
render sparkapp`` would, once per run: the manifest rendered when the pipeline was compiled gets
a name of this run (``<job>-<run id prefix>``, so runs never collide and a run's applications are
found by its id) and the run's interval end (``run JOB --env ENV --end END``, as the task would
run it in its own pod), and is created in ``kubernetes.namespace``. The task then watches it until
the operator says it ended: ``COMPLETED`` passes; ``FAILED`` (and ``SUBMISSION_FAILED`` once the
restart policy has no retry left, which the operator turns into ``FAILED``) fails the task with
the operator's ``errorMessage`` and the driver pod's termination message, which is the tail of
the driver's log: the patched manifest sets the driver container's ``terminationMessagePolicy``
to ``FallbackToLogsOnError``, and featurekit's last line there is its one-line error.

A task that gives up (its ``pipeline.job_timeout_s`` passed, or the run was cancelled and its pod
told to stop) deletes the application, so no job of a run nobody waits for keeps writing.

Everything but :func:`submit_and_wait` is plain data in, plain data out, so it is tested without
a cluster; :func:`submit_and_wait` is the Kubernetes client calls around them.
"""

from __future__ import annotations

import copy
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from featurekit.deploy.sparkapp import API_VERSION, LABEL_PREFIX, suffixed_name
from featurekit.errors import ConfigError, InfraError

GROUP, VERSION = API_VERSION.split("/")
PLURAL = "sparkapplications"
RUN_LABEL = f"{LABEL_PREFIX}/pipeline-run"
RUN_ANNOTATION = f"{LABEL_PREFIX}/pipeline-run-id"
END_ANNOTATION = f"{LABEL_PREFIX}/interval-end"
# Spark's name for the driver's container (when the pod template names none, Spark takes the first).
DRIVER_CONTAINER = "spark-kubernetes-driver"
ROLE = "featurekit-pipeline"
_RUN_CHARS = re.compile(r"[^a-z0-9]")
_LABEL_VALUE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")


@dataclass(frozen=True)
class Outcome:
    """What a SparkApplication's status says: its state (``""`` until the operator has seen it),
    whether that is its end and a success, the operator's error message and the driver pod."""

    state: str
    done: bool
    ok: bool
    error: str = ""
    driver_pod: str = ""

    @property
    def shown(self) -> str:
        return self.state or "NEW"


def application_name(job: str, run_id: str) -> str:
    """``driver-hourly-stats-5f0c1a2b``: the job's resource name and the first 8 letters and digits
    of the run's id (:func:`~featurekit.deploy.sparkapp.suffixed_name`: within the operator's limit)."""
    run = _RUN_CHARS.sub("", run_id.lower())[:8]
    if len(run) < 8:  # not a KFP run's UUID: any text still names the run apart
        run = hashlib.sha256(run_id.encode()).hexdigest()[:8]
    return suffixed_name(job, f"-{run}")


def patch_application(manifest: dict[str, Any], *, env: str, end: str, run_id: str) -> dict[str, Any]:
    """The SparkApplication ``manifest`` (as ``render sparkapp`` made it) for one run: named for the
    run, labelled with its id, computing up to ``end``; a copy, ``manifest`` is left as it is.

    ``env`` must be the environment it was rendered for: the image, namespace and Spark settings
    in it are that environment's, so another would run the job half in each."""
    if manifest.get("kind") != "SparkApplication":
        raise ConfigError.single(f"expected a SparkApplication; got a {manifest.get('kind')!r}",
                                 file="pipeline", field="application")
    app = copy.deepcopy(manifest)
    metadata, spec = app["metadata"], app["spec"]
    arguments: list[str] = spec["arguments"]
    rendered_env = arguments[arguments.index("--env") + 1]
    if env.strip() != rendered_env:
        raise ConfigError.single(
            f"this pipeline's SparkApplications were rendered for env {rendered_env!r} (their image, namespace "
            f"and Spark settings are its); the run asks for {env!r}: render the pipeline with --env {env.strip()}",
            file="pipeline parameters", field="env")
    try:
        datetime.fromisoformat(end.strip())
    except ValueError:
        raise ConfigError.single(f"expected an ISO 8601 time like 2026-01-15T00:00:00Z; got {end!r}",
                                 file="pipeline parameters", field="end") from None
    if "--end" in arguments:
        del arguments[arguments.index("--end"):arguments.index("--end") + 2]
    arguments += ["--end", end.strip()]
    metadata["name"] = application_name(metadata["labels"][f"{LABEL_PREFIX}/job"], run_id)
    run_label = {RUN_LABEL: run_id} if _LABEL_VALUE.match(run_id) else {}
    metadata["labels"] = {**metadata["labels"], **run_label}
    metadata["annotations"] = {**metadata.get("annotations", {}), END_ANNOTATION: end.strip(),
                               RUN_ANNOTATION: run_id}
    for role in ("driver", "executor"):
        spec[role]["labels"] = {**spec[role].get("labels", {}), **run_label}
    spec["driver"]["template"] = _with_log_tail_on_error(spec["driver"].get("template") or {})
    return app


def _with_log_tail_on_error(template: dict[str, Any]) -> dict[str, Any]:
    """A driver pod template whose Spark container reports the end of its log as its termination
    message when it fails: the driver's error, read back from the pod's status."""
    template = copy.deepcopy(template)
    containers = template.setdefault("spec", {}).setdefault("containers", [])
    driver = next((c for c in containers if c.get("name") == DRIVER_CONTAINER), None)
    if driver is None:
        driver = {"name": DRIVER_CONTAINER}
        containers.insert(0, driver)
    driver.setdefault("terminationMessagePolicy", "FallbackToLogsOnError")
    return template


def outcome(status: dict[str, Any] | None, restart_policy: dict[str, Any] | None) -> Outcome:
    """What ``status`` (a SparkApplication's ``.status``) says, given the application's
    ``spec.restartPolicy``: the operator ends an application in ``COMPLETED`` or ``FAILED``; a
    ``SUBMISSION_FAILED`` with no submission retry left is already its failure."""
    status = status or {}
    app_state = status.get("applicationState") or {}
    state = str(app_state.get("state") or "")
    error = str(app_state.get("errorMessage") or "")
    driver = str((status.get("driverInfo") or {}).get("podName") or "")
    if state == "COMPLETED":
        return Outcome(state, True, True, error, driver)
    if state == "FAILED" or (state == "SUBMISSION_FAILED" and not _submission_retried(status, restart_policy or {})):
        return Outcome(state, True, False, error, driver)
    return Outcome(state, False, False, error, driver)


def _submission_retried(status: dict[str, Any], policy: dict[str, Any]) -> bool:
    """Whether the operator submits again after a failed submission (its own rule, on the policy
    of the manifest: Always does; OnFailure while attempts <= onSubmissionFailureRetries)."""
    kind = policy.get("type", "Never")
    if kind == "Always":
        return True
    retries = policy.get("onSubmissionFailureRetries")
    return kind == "OnFailure" and retries is not None and int(status.get("submissionAttempts") or 0) <= int(retries)


def driver_termination(pod: dict[str, Any]) -> str:
    """How the driver pod ``pod`` (its API object as JSON) ended: the Spark container's exit code,
    reason and termination message, or why the pod itself went (evicted, ...); empty if it says nothing."""
    status = pod.get("status") or {}
    containers = status.get("containerStatuses") or []
    driver = next((c for c in containers if c.get("name") == DRIVER_CONTAINER), containers[0] if containers else {})
    state = driver.get("state") or {}
    ended = state.get("terminated") or (driver.get("lastState") or {}).get("terminated")
    said = []
    if status.get("reason") or status.get("message"):
        said.append(": ".join(str(s) for s in (status.get("reason"), status.get("message")) if s))
    if ended:
        head = f"exit code {ended.get('exitCode')}" + (f" ({ended['reason']})" if ended.get("reason") else "")
        message = str(ended.get("message") or "").strip()
        said.append(head + (":\n" + _indented(message) if message else ""))
    return "\n".join(said)


def failure_message(namespace: str, name: str, seen: Outcome, termination: str) -> str:
    """Why the job failed, as the task's error: the application, its state and the operator's
    message, then the driver pod and how it ended (the tail of its log)."""
    lines = [f"SparkApplication {namespace}/{name} {seen.shown}" + (f": {seen.error}" if seen.error else "")]
    if seen.driver_pod:
        lines.append(f"driver pod {seen.driver_pod}" + (f": {termination}" if termination
                                                        else ": no termination message (kubectl logs it)"))
    return "\n".join(lines)


def _indented(text: str) -> str:
    return "\n".join(f"  {line}" for line in text.splitlines())


def rbac_manifests(namespace: str, service_account: str, account_namespace: str) -> list[dict[str, Any]]:
    """The Role and RoleBinding that let ``account_namespace/service_account`` (the pipeline's
    pods) create, watch and delete SparkApplications in ``namespace`` and read their driver pods."""
    labels = {"app.kubernetes.io/name": "featurekit", "app.kubernetes.io/component": "pipeline",
              "app.kubernetes.io/managed-by": "featurekit"}
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": ROLE, "namespace": namespace, "labels": labels},
        "rules": [
            {"apiGroups": [GROUP], "resources": [PLURAL], "verbs": ["create", "get", "list", "watch", "delete"]},
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]},
        ],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": ROLE, "namespace": namespace, "labels": labels},
        "subjects": [{"kind": "ServiceAccount", "name": service_account, "namespace": account_namespace}],
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": ROLE},
    }
    return [role, binding]


# How long one watch lasts before the application is read again (a watch may end quietly).
_WATCH_S = 60


def submit_and_wait(manifest: dict[str, Any], *, env: str, end: str, run_id: str, timeout_s: int,
                    log: Callable[[str], None] = print) -> Outcome:
    """Create the run's SparkApplication of ``manifest`` (:func:`patch_application`) and wait
    until it ends; its outcome when it completed, else an :class:`InfraError` saying why.

    Inside a pod the Kubernetes client uses the pod's service account, elsewhere the kubeconfig.
    If the run's application exists already (the task's pod was started again), the task waits
    on that one instead of submitting the job twice."""
    from kubernetes import client, config
    from urllib3.exceptions import HTTPError

    app = patch_application(manifest, env=env, end=end, run_id=run_id)
    try:
        config.load_incluster_config()
    except config.ConfigException:
        try:
            config.load_kube_config()
        except (config.ConfigException, OSError) as exc:
            raise InfraError(f"no Kubernetes API to submit SparkApplication {app['metadata']['name']} to: not in a pod "
                             f"with a service account, and no kubeconfig ({exc})") from None
    api = client.CustomObjectsApi()
    try:
        _submit(api, app, run_id, log)
        seen = _wait(api, app, timeout_s, log)
    except HTTPError as exc:
        raise InfraError(f"could not reach the Kubernetes API at {api.api_client.configuration.host}: {exc}") from None
    if seen.ok:
        return seen
    raise InfraError(failure_message(app["metadata"]["namespace"], app["metadata"]["name"], seen,
                                     _driver_end(api.api_client, app["metadata"]["namespace"], seen.driver_pod)))


def _submit(api: Any, app: dict[str, Any], run_id: str, log: Callable[[str], None]) -> None:
    from kubernetes.client.exceptions import ApiException

    name, namespace = app["metadata"]["name"], app["metadata"]["namespace"]
    try:
        api.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, app)
        log(f"created SparkApplication {namespace}/{name}: {' '.join(app['spec']['arguments'])}")
    except ApiException as exc:
        existing = _existing(api, namespace, name) if exc.status == 409 else None
        if existing is None or existing["metadata"].get("annotations", {}).get(RUN_ANNOTATION) != run_id:
            raise InfraError(f"could not create SparkApplication {namespace}/{name}: {_said(exc)}") from None
        log(f"SparkApplication {namespace}/{name} of this run exists already; waiting on it")


def _wait(api: Any, app: dict[str, Any], timeout_s: int, log: Callable[[str], None]) -> Outcome:
    """Watch the application until it ends, or ``timeout_s`` passed, or the pod is told to stop."""
    import signal
    import sys
    import time

    from kubernetes import watch
    from kubernetes.client.exceptions import ApiException

    name, namespace = app["metadata"]["name"], app["metadata"]["namespace"]
    where = f"{namespace}/{name}"

    def cancelled(signum: int, frame: Any) -> None:
        # the run was stopped: its pods are told to end, and so is the job
        _delete(api, namespace, name, log)
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, cancelled)
    deadline = time.monotonic() + timeout_s
    seen = Outcome("", False, False)
    while True:
        current = _existing(api, namespace, name)
        if current is None:
            raise InfraError(f"SparkApplication {where} was deleted before it ended (last state {seen.shown})")
        now = outcome(current.get("status"), app["spec"].get("restartPolicy"))
        if now.state != seen.state:
            log(f"SparkApplication {where}: {now.shown}" + (f" (driver pod {now.driver_pod})" if now.driver_pod else ""))
        seen = now
        left = deadline - time.monotonic()
        if seen.done:
            return seen
        if left <= 0:
            _delete(api, namespace, name, log)
            raise InfraError(f"SparkApplication {where} did not end within {timeout_s} s (pipeline.job_timeout_s; "
                             f"last state {seen.shown}); the task deleted it")
        try:  # until the application changes, or the watch ends; then read it again
            for _event in watch.Watch().stream(
                    api.list_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL,
                    field_selector=f"metadata.name={name}",
                    resource_version=current["metadata"].get("resourceVersion"),
                    timeout_seconds=max(1, int(min(left, _WATCH_S)))):
                break
        except ApiException as exc:
            if exc.status != 410:  # 410: the version watched from is gone; reading again is the cure
                raise InfraError(f"could not watch SparkApplication {where}: {_said(exc)}") from None


def _driver_end(api_client: Any, namespace: str, pod_name: str) -> str:
    """How the driver pod ended (:func:`driver_termination`), or why that cannot be read."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    if not pod_name:
        return ""
    try:
        pod = client.CoreV1Api(api_client).read_namespaced_pod(pod_name, namespace)
    except ApiException as exc:
        return f"not readable ({_said(exc)})"
    return driver_termination(api_client.sanitize_for_serialization(pod))


def _existing(api: Any, namespace: str, name: str) -> dict[str, Any] | None:
    from kubernetes.client.exceptions import ApiException

    try:
        return api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)  # type: ignore[no-any-return]
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise InfraError(f"could not read SparkApplication {namespace}/{name}: {_said(exc)}") from None


def _delete(api: Any, namespace: str, name: str, log: Callable[[str], None]) -> None:
    from kubernetes.client.exceptions import ApiException

    try:
        api.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
        log(f"deleted SparkApplication {namespace}/{name}: nobody waits on it any more")
    except ApiException as exc:
        if exc.status != 404:
            log(f"could not delete SparkApplication {namespace}/{name}: {_said(exc)}")


def _said(exc: Any) -> str:
    """An API error as its status and the server's message (the body of a Kubernetes Status)."""
    import json

    try:
        message = json.loads(exc.body or "{}").get("message", "")
    except (TypeError, ValueError, AttributeError):
        message = str(exc.body or "")
    return f"{exc.status} {exc.reason}" + (f": {message}" if message else "")
