"""One real local SparkSession (with Delta) for the whole test run, and helpers to run
jobs in throw-away projects against it."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from featurekit import pipeline
from featurekit.config import Project, Settings, load_settings
from tests.conftest import REPO

TEST_SPARK_CONF = {
    "spark.sql.shuffle.partitions": "2",
    "spark.default.parallelism": "2",
    "spark.driver.memory": "2g",
    "spark.sql.session.timeZone": "UTC",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.databricks.delta.snapshotPartitions": "2",
}


def with_test_conf(settings: Settings) -> Settings:
    spark = settings.spark.model_copy(update={"master": "local[2]", "conf": {**settings.spark.conf, **TEST_SPARK_CONF}})
    # lineage goes to the run log only, unless a test points it at its own registry server
    registry = settings.registry.model_copy(update={"enabled": False})
    return settings.model_copy(update={"spark": spark, "registry": registry})


@pytest.fixture(scope="session")
def spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    os.environ.setdefault("FEATUREKIT_JARS_DIR", str(REPO / ".featurekit" / "jars"))
    settings = with_test_conf(load_settings(Project(REPO), "local"))
    # Spark's log in the test run's own folder, not the repository's; on stderr as well,
    # where pytest shows it beside a failed test
    logs = str(tmp_path_factory.mktemp("spark-logs"))
    settings = settings.with_console_log().model_copy(update={"paths": settings.paths.model_copy(update={"logs": logs})})
    session = pipeline.session(settings, "featurekit-tests")
    yield session
    session.stop()


@pytest.fixture
def run_job(spark: object, make_project: Callable[..., Path]) -> Callable[..., pipeline.RunResult]:
    """Run a job given as YAML text in a fresh project; returns the RunResult.

    The job's ``${lake_root}``/``${raw_root}`` point inside the project; tests usually
    write their input with Spark or plain files under ``project/data/raw`` first.
    """

    def run(name: str, text: str, project_root: Path | None = None) -> pipeline.RunResult:
        root = project_root or make_project()
        (root / "jobs" / f"{name}.yaml").write_text(text)
        project = Project(root)
        loaded, settings = pipeline.load(project, name, "local")
        return pipeline.run(project, loaded, with_test_conf(settings), spark)  # type: ignore[arg-type]

    return run
