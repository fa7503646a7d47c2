"""Domain errors name the library's parameters and the job's spec; each face renders them.

The CLI shows a parameter as its flag, the REST API answers a NotFound with 404, and an error a
sink raises while writing points at the job file's ``output`` key like the spec checks do.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from featurekit.cli import main
from featurekit.cli.present import flag, flagged
from featurekit.config import find_project, load_settings
from featurekit.errors import ConfigError, NotFound, OutputError, UsageError, arg
from featurekit.spec.loader import load_job

REPO = Path(__file__).resolve().parents[2]



def test_a_usage_error_names_parameters_and_the_cli_shows_them_as_flags() -> None:
    error = UsageError("training_set", f"give {arg('training_set')} or {arg('service')}")

    assert isinstance(error, ConfigError) and error.exit_code == 2 and error.param == "training_set"
    assert str(error) == "command line training_set: give training_set or service"
    assert error.text() == "give training_set or service"
    assert [str(p) for p in error.named(flag)] == ["command line --training-set: give --training-set or --service"]
    assert flagged(f"{arg('feature_view')} is not {arg('end')}") == "--feature-view is not --end"


def test_a_not_found_is_a_usage_error_of_its_kind_and_name() -> None:
    error = NotFound("feature service", "rides", "unknown feature service 'rides' (services: none)", param="service")

    assert isinstance(error, UsageError) and error.exit_code == 2
    assert (error.kind, error.name, error.param) == ("feature service", "rides", "service")
    assert [str(p) for p in error.named(flag)] == ["command line --service: unknown feature service 'rides' (services: none)"]


@pytest.mark.parametrize(("args", "expected"), [
    (["lineage", "show"], "command line --model: give --model with --version, or --feature-view"),
    (["lineage", "link", "--model", "m", "--version", "1"], "command line --training-set: give --training-set or --service"),
    (["backfill", "driver_hourly_stats", "--start", "2024-01-01", "--end", "2024-01-05", "--batch", "7m"],
     "command line --batch: --batch 7m must be a whole multiple of the job's bucket (1h)"),
    (["backfill", "driver_hourly_stats", "--start", "2024-01-05", "--end", "2024-01-01"],
     "command line --end: --end 2024-01-01T00:00:00Z must be after --start 2024-01-05T00:00:00Z (aligned to 1h)"),
    (["lineage", "show", "--model", "m", "--version", "1", "--format", "svg"],
     "command line --format: expected one of text, mermaid, dot, png; got 'svg'"),
])
def test_the_cli_shows_the_library_s_parameters_as_its_flags(project: Path, capsys: pytest.CaptureFixture[str],
                                                               args: list[str], expected: str) -> None:
    code = main(args)

    err = capsys.readouterr().err
    assert code == 2
    assert expected in err.splitlines() and "1 problem(s)" in err


def test_the_api_answers_a_not_found_with_404_and_its_message(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from featurekit.api import create_api
    from featurekit.pipeline import lineage

    def show(*_: object, model: str, **__: object) -> None:
        raise NotFound("model", model, f"no registered model {model!r} in the Model Registry at http://registry:8080")

    monkeypatch.setattr(lineage, "show", show)
    found = find_project()
    api = TestClient(create_api(found, load_settings(found, "local")))

    answer = api.get("/api/v1/lineage/models/fraud/versions/1")

    assert (answer.status_code, answer.json()) == (
        404, {"detail": "no registered model 'fraud' in the Model Registry at http://registry:8080"})


def test_an_output_error_points_at_the_output_key_of_the_job_file(tmp_path: Path) -> None:
    path = tmp_path / "jobs" / "trips.yaml"
    path.parent.mkdir()
    path.write_text(textwrap.dedent("""\
        name: trips
        sources:
          raw: {format: csv, path: /raw/trips, schema: {id: long}}
        output:
          mode: append
          path: /lake/trips
    """))
    job = load_job(path, {}, shown_as="jobs/trips.yaml")
    refused = OutputError("path", "/lake/trips exists and is not a Delta table; refusing to write into it")

    assert str(refused) == "output path: /lake/trips exists and is not a Delta table; refusing to write into it"
    located = refused.located(job.positions.problem)
    assert type(located) is ConfigError and located.exit_code == 2   # what a spec check raises
    assert str(located) == ("jobs/trips.yaml:6:3 output.path: /lake/trips exists and is not a Delta table; "
                            "refusing to write into it")
