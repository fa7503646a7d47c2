"""``featurekit render pipeline``: the job graph from the specs, and the compiled Kubeflow
pipeline loaded back with kfp, its DAG, parameters and task pods (the kfp-kubernetes platform
spec) checked (no Spark, no cluster; the SparkApplications its job tasks submit are checked
against the operator's CRD)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format
from kfp import components
from ruamel.yaml import YAML

from featurekit.config import Project, load_settings
from featurekit.deploy.graph import JobGraph, job_graph, table_key
from featurekit.deploy.kfp_pipeline import LOCAL_IMAGE, compile_pipeline, pipeline_rbac, plan_pipeline, render_pipeline
from featurekit.deploy.sparkapp import render
from featurekit.deploy.submission import patch_application
from featurekit.errors import ConfigError, SpecError
from featurekit.spec.loader import load_jobs
from tests.conftest import REPO
from tests.unit.test_sparkapp import schema_errors

FEATUREKIT = [sys.executable, "-m", "featurekit"]

_CLUSTER = """\
vars:
  lake_root: s3a://lake/root
kubernetes:
  image: registry.example.com/fk:1
  namespace: data
  service_account: spark
  env: {FEATUREKIT_MODE: pipeline}
"""


def _job(name: str, reads: tuple[str, ...] = (), features: str = "") -> str:
    """A job writing ${lake_root}/<name>, reading the Delta outputs of ``reads`` (else raw Parquet)."""
    sources = "".join(f'  {r}: {{format: delta, path: "${{lake_root}}/{r}"}}\n' for r in reads) \
        or '  raw: {format: parquet, path: "${lake_root}/raw"}\n'
    return (f"name: {name}\nsources:\n{sources}steps:\n  - filter: \"x >= 0\"\n"
            f"output: {{path: \"${{lake_root}}/{name}\", mode: overwrite}}\n{textwrap.dedent(features)}")


def _project(tmp_path: Path, jobs: dict[str, str], conf: str = _CLUSTER) -> Project:
    for folder in ("jobs", "conf/base", "conf/cluster"):
        (tmp_path / folder).mkdir(parents=True, exist_ok=True)
    for name, text in jobs.items():
        (tmp_path / "jobs" / f"{name}.yaml").write_text(text)
    (tmp_path / "conf" / "cluster" / "featurekit.yaml").write_text(conf)
    return Project(tmp_path.resolve())


def _graph(tmp_path: Path, jobs: dict[str, str]) -> JobGraph:
    project = _project(tmp_path, jobs)
    loaded, problems = load_jobs(project.job_files(), load_settings(project, "cluster").vars, base=project.root)
    assert problems == []
    return job_graph(loaded)


def _loaded(tmp_path: Path, jobs: dict[str, str], conf: str = _CLUSTER) -> tuple[Project, Any, list[Any]]:
    project = _project(tmp_path, jobs, conf)
    settings = load_settings(project, "cluster")
    loaded, problems = load_jobs(project.job_files(), settings.vars, base=project.root)
    assert problems == []
    return project, settings, loaded


def _compiled(tmp_path: Path, jobs: dict[str, str], conf: str = _CLUSTER) -> tuple[str, Any]:
    """The compiled YAML and the pipeline kfp loads back from it."""
    project, settings, loaded = _loaded(tmp_path, jobs, conf)
    text = render_pipeline(project, settings, loaded)
    path = tmp_path / "pipeline.yaml"
    path.write_text(text)
    return text, components.load_component_from_file(str(path))


def _dag(pipeline: Any) -> dict[str, set[str]]:
    return {name: set(task.dependent_tasks) for name, task in pipeline.pipeline_spec.root.dag.tasks.items()}


def _executors(text: str) -> dict[str, Any]:
    """The executors of the compiled pipeline (its first YAML document; the platform spec follows)."""
    return next(iter(YAML(typ="safe", pure=True).load_all(text)))["deploymentSpec"]["executors"]


def _pods(pipeline: Any) -> dict[str, dict[str, Any]]:
    """Each executor's Kubernetes settings in the loaded pipeline's platform spec (kfp-kubernetes')."""
    if "kubernetes" not in pipeline.platform_spec.platforms:
        return {}
    spec = json_format.MessageToDict(pipeline.platform_spec.platforms["kubernetes"].deployment_spec)
    return spec["executors"]  # type: ignore[no-any-return]


def _secrets(pod: dict[str, Any]) -> set[tuple[str, str, str]]:
    """(variable, secret, key) of each secret-backed variable of ``pod``."""
    return {(pair["envVar"], item["secretName"], pair["secretKey"])
            for item in pod.get("secretAsEnv", []) for pair in item["keyToEnv"]}


# -- the graph -----------------------------------------------------------------------------------

def test_a_chain_runs_in_order(tmp_path: Path) -> None:
    graph = _graph(tmp_path, {"c": _job("c", ("b",)), "a": _job("a"), "b": _job("b", ("a",))})
    assert graph.order == ("a", "b", "c")
    assert graph.upstream == {"a": (), "b": ("a",), "c": ("b",)}
    assert graph.downstream("a") == ("b",)


def test_a_diamond_waits_for_both_branches(tmp_path: Path) -> None:
    graph = _graph(tmp_path, {"a": _job("a"), "b": _job("b", ("a",)), "c": _job("c", ("a",)),
                              "d": _job("d", ("c", "b"))})
    assert graph.order == ("a", "b", "c", "d")
    assert graph.upstream == {"a": (), "b": ("a",), "c": ("a",), "d": ("b", "c")}


def test_independent_jobs_have_no_edges(tmp_path: Path) -> None:
    graph = _graph(tmp_path, {"z": _job("z"), "m": _job("m"), "a": _job("a")})
    assert graph.order == ("a", "m", "z")
    assert all(reads == () for reads in graph.upstream.values())


def test_only_delta_sources_on_another_jobs_output_make_an_edge(tmp_path: Path) -> None:
    parquet_of_a = 'name: p\nsources:\n  a: {format: parquet, path: "${lake_root}/a"}\nsteps:\n  - filter: "x >= 0"\n' \
                   'output: {path: "${lake_root}/p", mode: overwrite}\n'
    slash = _job("s").replace('{format: parquet, path: "${lake_root}/raw"}', '{format: delta, path: "${lake_root}/a/"}')
    graph = _graph(tmp_path, {"a": _job("a"), "p": parquet_of_a, "s": slash, "x": _job("x", ("elsewhere",))})
    assert graph.upstream == {"a": (), "p": (), "s": ("a",), "x": ()}
    assert table_key("file:///lake/a/") == table_key("/lake/a") == "/lake/a"


def test_a_cycle_and_a_shared_output_are_spec_problems(tmp_path: Path) -> None:
    twin = _job("twin").replace("${lake_root}/twin", "${lake_root}/a")
    with pytest.raises(SpecError) as caught:
        _graph(tmp_path, {"a": _job("a"), "twin": twin, "b": _job("b", ("c",)), "c": _job("c", ("b",))})
    assert [str(p) for p in caught.value.problems] == [
        "jobs/b.yaml:3:22 sources.c.path: reads the output of job 'c', which waits on this job: the jobs b, c "
        "wait on each other, so none can run first",
        "jobs/c.yaml:3:22 sources.b.path: reads the output of job 'b', which waits on this job: the jobs b, c "
        "wait on each other, so none can run first",
        "jobs/twin.yaml:6:10 output.path: job 'a' (jobs/a.yaml) writes this table too; one table has one "
        "writing job, or their order is unknown",
    ]


# -- the compiled pipeline -----------------------------------------------------------------------

_ONLINE = """\
features:
  entity: thing
  join_keys: [x]
  timestamp: ts
  ttl: 1d
  online: true
"""


def test_the_compiled_dag_orders_jobs_then_apply_materialize_flush(tmp_path: Path) -> None:
    conf = _CLUSTER + "registry:\n  enabled: true\n  url: http://registry.example.com:8080\n"
    jobs = {"a": _job("a"), "b": _job("b", ("a",)), "c": _job("c", ("a",)), "d": _job("d", ("b", "c"), _ONLINE),
            "solo": _job("solo")}
    _, pipeline = _compiled(tmp_path, jobs, conf)
    assert _dag(pipeline) == {
        "interval-end": set(),
        "job-a": {"interval-end"},
        "job-b": {"interval-end", "job-a"},
        "job-c": {"interval-end", "job-a"},
        "job-d": {"interval-end", "job-b", "job-c"},
        "job-solo": {"interval-end"},
        "feast-apply": {"job-a", "job-b", "job-c", "job-d", "job-solo"},
        "materialize": {"feast-apply", "interval-end"},
        "lineage-flush": {"materialize"},
    }
    tasks = pipeline.pipeline_spec.root.dag.tasks
    assert tasks["job-solo"].task_info.name == "solo"
    assert not any(task.caching_options.enable_cache for task in tasks.values())
    # every job gets its own name and the run's one end; env and project_dir come from the parameters
    for job in jobs:
        given = tasks[f"job-{job}"].inputs.parameters
        assert given["job"].runtime_value.constant.string_value == job
        assert given["end"].task_output_parameter.producer_task == "interval-end"
        assert given["env"].component_input_parameter == "env"
        assert given["project_dir"].component_input_parameter == "project_dir"
    assert tasks["materialize"].inputs.parameters["end"].task_output_parameter.producer_task == "interval-end"
    assert tasks["interval-end"].inputs.parameters["end"].component_input_parameter == "end"
    parameters = pipeline.pipeline_spec.root.input_definitions.parameters
    assert {name: p.default_value.string_value for name, p in parameters.items()} == {
        "env": "cluster", "end": "", "project_dir": "/opt/featurekit"}


def test_tasks_run_the_featurekit_commands_in_the_conf_image(tmp_path: Path) -> None:
    text, pipeline = _compiled(tmp_path, {"a": _job("a", features=_ONLINE)})
    executors = _executors(text)
    assert sorted(executors) == ["exec-feast-apply", "exec-interval-end", "exec-job-a", "exec-materialize"]
    for executor in executors.values():
        container = executor["container"]
        assert container["image"] == "registry.example.com/fk:1"
        assert container["env"] == [{"name": "FEATUREKIT_MODE", "value": "pipeline"}]
        assert "pip install" not in " ".join(container["command"])  # the image has featurekit and kfp
    job = executors["exec-job-a"]["container"]
    assert job["args"][-1] == "run_job"
    assert '"run", job, "--env", env, "--end", end' in job["command"][-1]
    # no registry in this env: no flush
    assert "lineage-flush" not in _dag(pipeline)


def test_jobs_without_features_end_the_pipeline(tmp_path: Path) -> None:
    _, pipeline = _compiled(tmp_path, {"a": _job("a"), "b": _job("b")})
    assert _dag(pipeline) == {"interval-end": set(), "job-a": {"interval-end"}, "job-b": {"interval-end"}}


def test_the_compile_is_deterministic(tmp_path: Path) -> None:
    jobs = {"a": _job("a"), "b": _job("b", ("a",)), "c": _job("c", ("a",), _ONLINE)}
    first, _ = _compiled(tmp_path / "one", jobs)
    second, _ = _compiled(tmp_path / "two", dict(reversed(jobs.items())))
    assert first == second


def test_an_env_without_kubernetes_settings_has_no_image(tmp_path: Path) -> None:
    project = _project(tmp_path, {"a": _job("a")}, conf="vars: {lake_root: /lake}\n")
    settings = load_settings(project, "cluster")
    loaded, _ = load_jobs(project.job_files(), settings.vars, base=project.root)
    with pytest.raises(ConfigError, match="environment 'cluster' has no kubernetes: settings"):
        plan_pipeline(project, settings, loaded)
    # for kfp.local, which starts no container: any image name, and this project's folder
    plan = plan_pipeline(project, settings, loaded, image="featurekit:local")
    assert (plan.image, plan.project_dir, plan.env, plan.env_vars) == ("featurekit:local", str(project.root), "cluster", {})


# -- job tasks submitting SparkApplications --------------------------------------------------------

_SUBMITTING = _CLUSTER + """\
pipeline:
  run_jobs: sparkapp
  run_jobs_per_job: {solo: in_task}
  job_timeout_s: 900
  namespace: kubeflow-user-team
"""
RUN = "5f0c1a2b-9d3e-4c1f-8a7b-0e6d5c4b3a29"


def test_sparkapp_job_tasks_carry_the_rendered_sparkapplication(tmp_path: Path) -> None:
    jobs = {"a": _job("a"), "b": _job("b", ("a",)), "solo": _job("solo")}
    text, pipeline = _compiled(tmp_path, jobs, _SUBMITTING)
    assert _dag(pipeline) == {"interval-end": set(), "job-a": {"interval-end"}, "job-b": {"interval-end", "job-a"},
                              "job-solo": {"interval-end"}}
    project, settings, loaded = _loaded(tmp_path, jobs, _SUBMITTING)
    executors = _executors(text)
    tasks = pipeline.pipeline_spec.root.dag.tasks
    for job in loaded:
        if job.name == "solo":  # run_jobs_per_job: this one runs in its task's pod, as before
            assert executors["exec-job-solo"]["container"]["args"][-1] == "run_job"
            assert tasks["job-solo"].inputs.parameters["project_dir"].component_input_parameter == "project_dir"
            continue
        container = executors[f"exec-job-{job.name}"]["container"]
        assert container["args"][-1] == "submit_sparkapp"
        assert container["image"] == "registry.example.com/fk:1"
        given = tasks[f"job-{job.name}"].inputs.parameters
        # the manifest `render sparkapp` makes, as it is, and valid for the operator
        application = json.loads(given["application"].runtime_value.constant.string_value)
        assert application == render(project, settings, job).manifest
        assert schema_errors(application) == []
        assert given["job"].runtime_value.constant.string_value == job.name
        assert given["run_id"].runtime_value.constant.string_value == "{{$.pipeline_job_uuid}}"
        assert given["timeout_s"].runtime_value.constant.number_value == 900
        assert given["env"].component_input_parameter == "env"
        assert given["end"].task_output_parameter.producer_task == "interval-end"
        # what the task submits at run time: this run's name and end, still valid for the operator
        run = patch_application(application, env="cluster", end="2026-03-01T00:00:00+00:00", run_id=RUN)
        assert schema_errors(run) == []
        assert run["metadata"]["name"] == f"{job.name}-5f0c1a2b"
        assert run["spec"]["arguments"] == ["run", job.name, "--env", "cluster", "--end", "2026-03-01T00:00:00+00:00"]
    assert pipeline_rbac(plan_pipeline(project, settings, loaded))[1]["subjects"] == [
        {"kind": "ServiceAccount", "name": "default-editor", "namespace": "kubeflow-user-team"}]


@pytest.mark.parametrize(("conf", "expected"), [
    (_CLUSTER + "pipeline: {run_jobs: sparkapp, run_jobs_per_job: {sollo: in_task}}\n",
     ["conf/cluster pipeline.run_jobs_per_job.sollo: no job of that name in jobs/ — did you mean 'solo'?"]),
    (_CLUSTER.replace("  env:", "  restart_policy: {type: Always}\n  env:") + "pipeline: {run_jobs: sparkapp}\n",
     ["conf/cluster kubernetes.restart_policy.type: Always runs an application again after it completes, so it never "
      "ends and the pipeline task waiting on it would wait forever; use OnFailure or Never, or pipeline.run_jobs: in_task"]),
    ("vars: {lake_root: /lake}\npipeline: {run_jobs: sparkapp}\n",
     ["conf/cluster kubernetes: environment 'cluster' has no kubernetes: settings, so it cannot run on the Spark "
      "operator; add them to conf/cluster/ (conf/k8s is the example)"]),
    (_CLUSTER + "pipeline: {run_jobs: spark_app}\n",
     ["conf/cluster/featurekit.yaml:8:22 pipeline.run_jobs: expected one of 'sparkapp', 'in_task'; got 'spark_app' "
      "— did you mean 'sparkapp'?"]),
])
def test_a_pipeline_conf_that_cannot_run_is_a_clear_error(tmp_path: Path, conf: str, expected: list[str]) -> None:
    with pytest.raises(ConfigError) as caught:
        project, settings, loaded = _loaded(tmp_path, {"solo": _job("solo")}, conf)
        plan_pipeline(project, settings, loaded)
    assert [str(p) for p in caught.value.problems] == expected


# -- the task pods: the env's secrets and image pull settings (kfp-kubernetes) ------------------------

_SECRETS = _SUBMITTING.replace("  env: {FEATUREKIT_MODE: pipeline}\n", """\
  env: {FEATUREKIT_MODE: pipeline}
  image_pull_policy: Always
  image_pull_secrets: [regcred, mirror-cred]
  secret_env:
    AWS_SECRET_ACCESS_KEY: {secret: s3, key: secret-access-key}
    AWS_ACCESS_KEY_ID: {secret: s3, key: access-key-id}
    FS_S3A_ACCESS_KEY: {secret: s3, key: access-key-id}
    FEATUREKIT_REGISTRY_TOKEN: {secret: registry-token, key: token}
""") + "registry:\n  enabled: true\n  url: http://registry.example.com:8080\n"


def test_tasks_running_featurekit_in_their_pod_get_exactly_the_envs_secrets(tmp_path: Path) -> None:
    jobs = {"a": _job("a"), "solo": _job("solo", features=_ONLINE)}  # a: sparkapp; solo: in_task
    text, pipeline = _compiled(tmp_path, jobs, _SECRETS)
    pods = _pods(pipeline)
    assert sorted(pods) == sorted(_executors(text)) == [
        "exec-feast-apply", "exec-interval-end", "exec-job-a", "exec-job-solo", "exec-lineage-flush", "exec-materialize"]
    conf = {("AWS_ACCESS_KEY_ID", "s3", "access-key-id"), ("AWS_SECRET_ACCESS_KEY", "s3", "secret-access-key"),
            ("FEATUREKIT_REGISTRY_TOKEN", "registry-token", "token"), ("FS_S3A_ACCESS_KEY", "s3", "access-key-id")}
    secrets = {name[len("exec-"):]: _secrets(pod) for name, pod in pods.items()}
    assert secrets == {
        # featurekit commands in the task's own pod: S3, the registry, ...
        "job-solo": conf, "feast-apply": conf, "materialize": conf, "lineage-flush": conf,
        # the end's time and a submission (the SparkApplication carries the secrets to its pods)
        "interval-end": set(), "job-a": set(),
    }
    # a key given to two variables: a second reference to its secret, each variable set
    assert [item["secretName"] for item in pods["exec-feast-apply"]["secretAsEnv"]] == ["s3", "registry-token", "s3"]
    assert not any(item["optional"] for item in pods["exec-feast-apply"]["secretAsEnv"])
    for pod in pods.values():  # every pod pulls the image as the SparkApplications do
        assert pod["imagePullPolicy"] == "Always"
        assert [item["secretName"] for item in pod["imagePullSecret"]] == ["regcred", "mirror-cred"]
    # the SparkApplication gets the same secrets from the same conf
    project, settings, loaded = _loaded(tmp_path, jobs, _SECRETS)
    driver_env = render(project, settings, next(j for j in loaded if j.name == "a")).manifest["spec"]["driver"]["env"]
    assert {(e["name"], e["valueFrom"]["secretKeyRef"]["name"], e["valueFrom"]["secretKeyRef"]["key"])
            for e in driver_env if "valueFrom" in e} == conf
    # every secret is carried: nothing to warn about
    assert plan_pipeline(project, settings, loaded).warnings == ()


def test_whole_secrets_reach_the_sparkapplications_only_and_render_says_so(tmp_path: Path) -> None:
    conf = _SECRETS.replace("  secret_env:\n", "  env_from_secrets: [redis-auth, extra]\n  secret_env:\n")
    project, settings, loaded = _loaded(tmp_path, {"a": _job("a"), "solo": _job("solo")}, conf)
    plan = plan_pipeline(project, settings, loaded)
    assert plan.warnings == (
        "conf/cluster kubernetes.env_from_secrets: the pipeline's tasks job-solo, lineage-flush do not get the "
        "secret(s) redis-auth, extra (a Kubeflow pipeline gives a task single keys of a secret, not whole ones; "
        "the SparkApplications do get them): name the keys those tasks need in kubernetes.secret_env",)
    done = subprocess.run([*FEATUREKIT, "--project", str(project.root), "render", "pipeline", "--env", "cluster"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert f"warning {plan.warnings[0]}" in " ".join(done.stderr.split())
    path = tmp_path / "pipeline.yaml"
    path.write_text(done.stdout)
    pipeline = components.load_component_from_file(str(path))
    assert "redis-auth" not in json.dumps(_pods(pipeline))
    application = json.loads(pipeline.pipeline_spec.root.dag.tasks["job-a"].inputs.parameters["application"]
                             .runtime_value.constant.string_value)
    assert application["spec"]["driver"]["envFrom"] == [{"secretRef": {"name": "redis-auth"}},
                                                        {"secretRef": {"name": "extra"}}]
    # every task submits a SparkApplication, and nothing follows: no task misses them
    only_submitting = conf.replace("  run_jobs_per_job: {solo: in_task}\n", "").replace("  enabled: true", "  enabled: false")
    project, settings, loaded = _loaded(tmp_path / "all", {"a": _job("a"), "solo": _job("solo")}, only_submitting)
    assert plan_pipeline(project, settings, loaded).warnings == ()


def test_the_local_env_pipeline_has_no_platform_spec(tmp_path: Path) -> None:
    """`pipeline run --local` on the local env: no kubernetes: settings, so no pod settings at all."""
    project = Project(REPO)
    settings = load_settings(project, "local")
    loaded, problems = load_jobs(project.job_files(), settings.vars, base=project.root)
    assert problems == []
    path = tmp_path / "pipeline.yaml"
    path.write_text(compile_pipeline(plan_pipeline(project, settings, loaded, image=LOCAL_IMAGE)))
    assert "platforms" not in path.read_text()
    pipeline = components.load_component_from_file(str(path))
    assert _pods(pipeline) == {} and "exec-feast-apply" in _executors(path.read_text())


# -- the command ---------------------------------------------------------------------------------

def test_render_pipeline_writes_the_repository_pipeline(tmp_path: Path) -> None:
    out, rbac = tmp_path / "manifests" / "pipeline.yaml", tmp_path / "manifests" / "rbac.yaml"
    done = subprocess.run([*FEATUREKIT, "render", "pipeline", "--env", "k8s", "-o", str(out), "--rbac", str(rbac)],
                          cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "wrote pipeline 'featurekit' (2 job(s)) for env k8s" in done.stderr
    assert ("wrote the Role and RoleBinding of kubeflow-user-example-com/default-editor in namespace featurekit"
            in done.stderr)
    assert [(m["kind"], m["metadata"]["namespace"]) for m in YAML(typ="safe", pure=True).load_all(rbac.read_text())] == [
        ("Role", "featurekit"), ("RoleBinding", "featurekit")]
    printed = subprocess.run([*FEATUREKIT, "render", "pipeline"], cwd=REPO, capture_output=True, text=True)
    assert printed.returncode == 0 and printed.stdout == out.read_text()
    assert ("note: 2 job task(s) submit SparkApplications in namespace featurekit; the run's service account "
            "(kubeflow-user-example-com/default-editor, conf pipeline.*) needs the Role and RoleBinding of --rbac FILE"
            in printed.stderr)
    pipeline = components.load_component_from_file(str(out))
    assert _dag(pipeline) == {
        "interval-end": set(),
        "job-driver-hourly-stats": {"interval-end"},
        "job-driver-profile": {"interval-end"},
        "feast-apply": {"job-driver-hourly-stats", "job-driver-profile"},
        "materialize": {"feast-apply", "interval-end"},
        "lineage-flush": {"materialize"},
    }
    executors = _executors(out.read_text())
    assert {name: e["container"]["args"][-1] for name, e in executors.items() if name.startswith("exec-job-")} == {
        "exec-job-driver-hourly-stats": "submit_sparkapp", "exec-job-driver-profile": "submit_sparkapp"}
    # conf/k8s's credentials on the tasks running featurekit in their pod; the job tasks only submit
    k8s = {("AWS_ACCESS_KEY_ID", "featurekit-s3", "access-key-id"),
           ("AWS_SECRET_ACCESS_KEY", "featurekit-s3", "secret-access-key"),
           ("FEATUREKIT_REGISTRY_TOKEN", "model-registry-token", "token")}
    assert {name: _secrets(pod) for name, pod in _pods(pipeline).items()} == {
        "exec-interval-end": set(), "exec-job-driver-hourly-stats": set(), "exec-job-driver-profile": set(),
        "exec-feast-apply": k8s, "exec-materialize": k8s, "exec-lineage-flush": k8s}

    done = subprocess.run([*FEATUREKIT, "render", "pipeline", "--env", "local"], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 2 and "environment 'local' has no kubernetes: settings" in done.stderr
