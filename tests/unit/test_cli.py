"""The CLI in-process (``featurekit.cli.main`` returns the exit code), inside throwaway projects.

Only commands that need no JVM are run: ``validate`` and ``plan``.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from featurekit.cli import main
from featurekit.config.project import PROJECT_ENV

REPO = Path(__file__).resolve().parents[2]

BROKEN_JOB = """\
name: broken
sources:
  trips:
    format: cvs
    path: ${raw_rot}/trips
output:
  path: ${lake_root}/broken
  mode: upsert
"""



def test_validate_ok_lists_every_job(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["validate"])

    out = capsys.readouterr().out
    assert code == 0
    lines = out.splitlines()
    assert any(line.startswith("ok jobs/driver_hourly_stats.yaml  (driver_hourly_stats, fingerprint ") for line in lines)
    assert any(line.startswith("ok jobs/driver_profile.yaml  (driver_profile, fingerprint ") for line in lines)
    assert "2 job(s) valid" in lines


def test_validate_from_a_nested_folder_finds_the_project(project: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    (project / "notebooks" / "scratch").mkdir(parents=True)
    monkeypatch.chdir(project / "notebooks" / "scratch")

    assert main(["validate"]) == 0
    assert "2 job(s) valid" in capsys.readouterr().out


def test_validate_with_a_broken_job_prints_every_problem_and_exits_2(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "jobs" / "broken.yaml").write_text(BROKEN_JOB)

    code = main(["validate"])

    captured = capsys.readouterr()
    assert code == 2
    errors = captured.err.splitlines()
    assert errors == [
        "jobs/broken.yaml:4:13 sources.trips.format: expected one of 'csv', 'json', 'parquet', 'delta'; "
        "got 'cvs' — did you mean 'csv'?",
        "jobs/broken.yaml:5:11 sources.trips.path: unknown variable ${raw_rot} — did you mean 'raw_root'? "
        "(known: lake_root, raw_root)",
        "jobs/broken.yaml:8:9 output.mode: expected one of 'overwrite', 'append', 'merge', 'replace_partitions'; "
        "got 'upsert' — did you mean 'merge'?",
        "3 problem(s)",
    ]
    assert "job(s) valid" not in captured.out
    assert "Traceback" not in captured.err


def test_validate_one_file_by_path(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "jobs" / "broken.yaml").write_text(BROKEN_JOB)

    code = main(["validate", "jobs/driver_profile.yaml"])

    assert code == 0
    assert "1 job(s) valid" in capsys.readouterr().out


def _submit_command(out: str) -> list[str]:
    lines = out.splitlines()
    return shlex.split(lines[lines.index("spark-submit") + 1])


def test_plan_prints_resolved_paths_and_the_spark_submit_command_without_a_jvm(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["plan", "driver_hourly_stats"])

    out = capsys.readouterr().out
    assert code == 0
    assert "file: jobs/driver_hourly_stats.yaml   env: local   fingerprint: " in out
    assert f"output {project}/data/lake/driver_hourly_stats  mode=merge keys=driver_id,event_ts partition_by=event_date" in out
    assert "  3. aggregate: " in out
    command = _submit_command(out)
    assert command[0].endswith("spark-submit")
    entry = next(i for i, part in enumerate(command) if part.endswith("entrypoint.py"))
    after = command[entry + 1:]
    assert after[after.index("run") + 1] == str(project / "jobs" / "driver_hourly_stats.yaml")
    assert after[after.index("--env") + 1] == "local"
    assert after[after.index("--project") + 1] == str(project)
    confs = [command[i + 1] for i, part in enumerate(command) if part == "--conf"]
    assert "spark.sql.extensions=io.delta.sql.DeltaSparkSessionExtension" in confs
    assert "spark.sql.catalog.spark_catalog=org.apache.spark.sql.delta.catalog.DeltaCatalog" in confs
    assert "spark.sql.session.timeZone=UTC" in confs
    assert command[command.index("--master") + 1] == "local[*]"
    # No JVM is started: in a fresh process (this one may hold the integration tests'
    # session), pyspark may be imported to find spark-submit but has no gateway.
    probe = (
        "import sys; from featurekit.cli import main; rc = main(['plan', 'driver_hourly_stats']); "
        "import pyspark; print('GATEWAY', pyspark.SparkContext._gateway, rc)"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=project, capture_output=True, text=True)
    assert "GATEWAY None 0" in done.stdout, done.stderr


def test_plan_unknown_job_exits_2_with_did_you_mean(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["plan", "driver_profil"])

    assert code == 2
    assert capsys.readouterr().err.splitlines() == [
        "jobs: no job named 'driver_profil' in jobs/ — did you mean 'driver_profile'? "
        "(jobs: driver_hourly_stats, driver_profile)",
        "1 problem(s)",
    ]


def test_plan_broken_job_exits_2(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "jobs" / "broken.yaml").write_text(BROKEN_JOB)

    code = main(["plan", "broken"])

    captured = capsys.readouterr()
    assert code == 2
    assert captured.err.splitlines()[-1] == "3 problem(s)"
    assert "spark-submit" not in captured.out


@pytest.mark.parametrize("command", [["validate", "--env", "locl"], ["plan", "driver_profile", "--env", "locl"]])
def test_unknown_env_exits_2(project: Path, capsys: pytest.CaptureFixture[str], command: list[str]) -> None:
    code = main(command)

    assert code == 2
    assert capsys.readouterr().err.splitlines() == [
        "conf --env: unknown environment 'locl' — did you mean 'local'? (environments: k8s, local, local-redis)",
        "1 problem(s)",
    ]


def test_outside_a_project_exits_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv(PROJECT_ENV, raising=False)
    monkeypatch.chdir(tmp_path)

    code = main(["validate"])

    err = capsys.readouterr().err
    assert code == 2
    assert "no featurekit project here" in err
    assert "Traceback" not in err


def test_broken_conf_exits_2_and_names_the_file(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "conf" / "local" / "extra.yaml").write_text(textwrap.dedent("""\
        spark:
          mastr: local[2]
    """))

    code = main(["validate"])

    assert code == 2
    assert capsys.readouterr().err.splitlines()[0] == (
        "conf/local/extra.yaml:2:3 spark.mastr: unknown key 'mastr' — did you mean 'master'?"
    )
