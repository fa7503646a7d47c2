"""A failed job, as its user sees it: featurekit's one-line error on stderr, Spark's executor
errors and Java stack traces in the log file that line names (or on stderr with ``--debug``),
through ``featurekit run`` and through ``spark-submit`` of the entrypoint."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

FEATUREKIT = str(Path(sys.executable).parent / "featurekit")
JAVA_TRACE = ("\tat org.apache", "Exception in task")
ERROR = "error: the data broke the job: [USER_RAISED_EXCEPTION] boom SQLSTATE: P0001"


def _env() -> dict[str, str]:
    # this checkout's featurekit, in the CLI and in the driver spark-submit starts
    return {**os.environ, "FEATUREKIT_JARS_DIR": str(REPO / ".featurekit" / "jars"), "PYTHONPATH": str(REPO)}


def _featurekit(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([FEATUREKIT, *args], cwd=root, env=_env(), capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project whose one job fails in Spark's tasks: a row raises an error."""
    root = tmp_path_factory.mktemp("failures") / "project"
    shutil.copytree(REPO / "conf", root / "conf")
    (root / "jobs").mkdir()
    (root / "data" / "raw" / "rows").mkdir(parents=True)
    (root / "data" / "raw" / "rows" / "part-0.csv").write_text("id,v\n1,a\n2,b\n")
    (root / "jobs" / "boom.yaml").write_text(
        "name: boom\n"
        "sources:\n"
        "  rows: {format: csv, path: \"${raw_root}/rows\", options: {header: true}, schema: {id: long, v: string}}\n"
        "steps:\n"
        "  - with_columns: {x: \"if(id > 0, raise_error('boom'), 'ok')\"}\n"
        "output: {path: \"${lake_root}/boom\", mode: overwrite}\n")
    return root


def _last_run(root: Path) -> dict[str, object]:
    reports = sorted((root / ".featurekit" / "runs" / "boom").glob("*.json"), key=lambda p: p.stat().st_mtime_ns)
    return json.loads(reports[-1].read_text())


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def test_a_failed_run_shows_one_line_naming_the_log_and_debug_shows_spark_on_stderr(project: Path) -> None:
    done = _featurekit(project, "run", "boom")

    assert done.returncode == 3, done.stderr[-3000:]
    run_id = _last_run(project)["run_id"]
    log = Path(".featurekit") / "logs" / f"{run_id}.log"
    # stderr: the JVM's own start-up notice at most, then featurekit's line naming the log
    assert _lines(done.stderr)[-1] == f"{ERROR} (Spark's log: {log})"
    assert [line for line in _lines(done.stderr)[:-1] if not line.startswith("WARNING: ")] == []
    assert not any(marker in done.stderr + done.stdout for marker in JAVA_TRACE)
    # the log has what Spark said: the failed task and its Java stack trace
    written = (project / log).read_text()
    assert all(marker in written for marker in JAVA_TRACE)
    assert "[USER_RAISED_EXCEPTION] boom" in written

    debug = _featurekit(project, "--debug", "run", "boom")

    assert debug.returncode == 3
    assert all(marker in debug.stderr for marker in JAVA_TRACE)
    assert f"{ERROR} (Spark's log: .featurekit/logs/{_last_run(project)['run_id']}.log)" in debug.stderr
    assert "Traceback (most recent call last)" in debug.stderr


def test_a_failed_spark_submit_ends_with_the_one_line(project: Path, tmp_path: Path) -> None:
    from featurekit import pipeline
    from featurekit.config import Project

    os.environ["FEATUREKIT_JARS_DIR"] = str(REPO / ".featurekit" / "jars")
    try:
        job, settings = pipeline.load(Project(project), "boom", "local")
        command = pipeline.submit_command(Project(project), job, settings)
    finally:
        del os.environ["FEATUREKIT_JARS_DIR"]

    # run from elsewhere, as a scheduler would; spark-submit joins the driver's stderr to its stdout
    done = subprocess.run(command, cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=600)

    assert done.returncode == 3, done.stdout[-3000:]
    run_id = _last_run(project)["run_id"]
    log = project / ".featurekit" / "logs" / f"{run_id}.log"
    assert _lines(done.stdout)[-1] == f"{ERROR} (Spark's log: {log})"
    assert not any(marker in done.stdout for marker in JAVA_TRACE)
    assert all(marker in log.read_text() for marker in JAVA_TRACE)
    # nothing but the JVM's own start-up lines before it
    assert all(re.match(r"WARNING: |\d\d:\d\d:\d\d WARN ", line) for line in _lines(done.stdout)[:-1]), done.stdout
