"""The compiled Kubeflow pipeline run end to end by KFP's local runner (``kfp.local``), on the
local env of a small project: each task a process, each job a real ``featurekit run``."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from deltalake import DeltaTable
from kfp import components, local

from featurekit.config import Project, load_settings
from featurekit.deploy.kfp_pipeline import compile_pipeline, plan_pipeline
from featurekit.spec.loader import load_jobs
from tests.conftest import REPO

pytestmark = [
    pytest.mark.spark, pytest.mark.e2e,
    # the local runner ignores display names and warns that it runs the image's tasks in this Python:
    # both are what this test means
    pytest.mark.filterwarnings("ignore:Task .* have no effect in the current local runner:UserWarning"),
    pytest.mark.filterwarnings("ignore:You may be attemping to run a task:RuntimeWarning"),
]

JOBS = {
    "base": """
        name: base
        sources:
          raw: {format: csv, path: "${raw_root}/things", options: {header: true}, schema: {id: long, v: long}}
        steps:
          - filter: "v >= 0"
        output: {path: "${lake_root}/base", mode: overwrite}
        """,
    "doubled": """
        name: doubled
        sources:
          base: {format: delta, path: "${lake_root}/base"}
        steps:
          - with_columns: {v: "v * 2"}
        output: {path: "${lake_root}/doubled", mode: overwrite}
        """,
}
LOCAL = """
spark:
  master: local[2]
  conf: {spark.driver.memory: 1g, spark.ui.enabled: false, spark.sql.shuffle.partitions: 2}
registry:
  enabled: false
"""


def _pipeline(root: Path, folder: Path) -> object:
    """The project's pipeline compiled for the local env and loaded back, as a user's file would be."""
    project = Project(root)
    settings = load_settings(project, "local")
    jobs, problems = load_jobs(project.job_files(), settings.vars, base=project.root)
    assert problems == []
    path = folder / "pipeline.yaml"
    path.write_text(compile_pipeline(plan_pipeline(project, settings, jobs, image="featurekit:local")))
    return components.load_component_from_file(str(path))


@pytest.fixture
def tasks_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The task processes import this checkout and find the jars the repository already has."""
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    monkeypatch.setenv("FEATUREKIT_JARS_DIR", str(REPO / ".featurekit" / "jars"))


def test_the_local_runner_runs_the_jobs_in_order(make_project: Callable[..., Path], tmp_path: Path,
                                                   tasks_env: None) -> None:
    root = make_project({name: textwrap.dedent(text) for name, text in JOBS.items()})
    (root / "conf" / "local" / "featurekit.yaml").write_text(LOCAL)
    (root / "data" / "raw" / "things").mkdir(parents=True)
    (root / "data" / "raw" / "things" / "part-0.csv").write_text("id,v\n1,10\n2,-1\n3,30\n")
    pipeline = _pipeline(root, tmp_path)

    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"))
    pipeline(end="2026-03-01T00:00:00Z")  # type: ignore[operator]

    # doubled read base's table: it ran after base committed
    doubled = DeltaTable(str(root / "data" / "lake" / "doubled")).to_pyarrow_table().to_pylist()
    assert sorted((row["id"], row["v"]) for row in doubled) == [(1, 20), (3, 60)]


def test_a_failed_job_fails_the_local_run_at_its_task(make_project: Callable[..., Path], tmp_path: Path,
                                                       tasks_env: None) -> None:
    root = make_project({name: textwrap.dedent(text) for name, text in JOBS.items()})
    (root / "conf" / "local" / "featurekit.yaml").write_text(LOCAL)
    pipeline = _pipeline(root, tmp_path)

    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"))
    with pytest.raises(RuntimeError, match=r"Inner task failed: .*job-base"):
        pipeline(project_dir=str(tmp_path / "nowhere"))  # type: ignore[operator]
