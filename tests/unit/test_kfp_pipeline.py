"""``featurekit render pipeline``: the job graph from the specs, and the compiled Kubeflow
pipeline loaded back with kfp, its DAG and parameters checked (no Spark, no cluster)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from kfp import components
from ruamel.yaml import YAML

from featurekit.config import Project, load_settings
from featurekit.deploy.graph import JobGraph, job_graph, table_key
from featurekit.deploy.kfp_pipeline import plan_pipeline, render_pipeline
from featurekit.errors import ConfigError, SpecError
from featurekit.spec.loader import load_jobs
from tests.conftest import REPO

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


def _compiled(tmp_path: Path, jobs: dict[str, str], conf: str = _CLUSTER) -> tuple[str, Any]:
    """The compiled YAML and the pipeline kfp loads back from it."""
    project = _project(tmp_path, jobs, conf)
    settings = load_settings(project, "cluster")
    loaded, problems = load_jobs(project.job_files(), settings.vars, base=project.root)
    assert problems == []
    text = render_pipeline(project, settings, loaded)
    path = tmp_path / "pipeline.yaml"
    path.write_text(text)
    return text, components.load_component_from_file(str(path))


def _dag(pipeline: Any) -> dict[str, set[str]]:
    return {name: set(task.dependent_tasks) for name, task in pipeline.pipeline_spec.root.dag.tasks.items()}


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
    executors = YAML(typ="safe", pure=True).load(text)["deploymentSpec"]["executors"]
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


# -- the command ---------------------------------------------------------------------------------

def test_render_pipeline_writes_the_repository_pipeline(tmp_path: Path) -> None:
    out = tmp_path / "manifests" / "pipeline.yaml"
    done = subprocess.run([*FEATUREKIT, "render", "pipeline", "--env", "k8s", "-o", str(out)],
                          cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "wrote pipeline 'featurekit' (2 job(s)) for env k8s" in done.stderr
    printed = subprocess.run([*FEATUREKIT, "render", "pipeline"], cwd=REPO, capture_output=True, text=True)
    assert printed.returncode == 0 and printed.stdout == out.read_text()
    pipeline = components.load_component_from_file(str(out))
    assert _dag(pipeline) == {
        "interval-end": set(),
        "job-driver-hourly-stats": {"interval-end"},
        "job-driver-profile": {"interval-end"},
        "feast-apply": {"job-driver-hourly-stats", "job-driver-profile"},
        "materialize": {"feast-apply", "interval-end"},
        "lineage-flush": {"materialize"},
    }

    done = subprocess.run([*FEATUREKIT, "render", "pipeline", "--env", "local"], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 2 and "environment 'local' has no kubernetes: settings" in done.stderr
