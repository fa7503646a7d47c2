"""Training-set arguments that contradict each other are refused before any table or Spark is
touched: through the library (parameters by their Python names) and through the CLI (by its
flags, exit code 2)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from featurekit.cli import main
from featurekit.config import Project, load_settings
from featurekit.errors import UsageError
from featurekit.pipeline.training import training_set

START, END = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)

# keyword arguments -> the error's text, with the library's parameter names
CASES: dict[str, tuple[dict[str, Any], str]] = {
    "spine_and_range": ({"spine": "spine.parquet", "start": START, "end": END},
                        "command line spine: give either spine or start and end, not both"),
    "spine_and_start": ({"spine": "spine.parquet", "start": START},
                        "command line spine: give either spine or start and end, not both"),
    "neither": ({}, "command line spine: give spine, or start and end (the rows of the service's first view "
                    "in that range)"),
    "start_without_end": ({"start": START}, "command line spine: give spine, or start and end (the rows of the "
                                            "service's first view in that range)"),
    "feast_without_spine": ({"start": START, "end": END, "engine": "feast"},
                            "command line engine: engine feast needs spine"),
    "unknown_engine": ({"spine": "spine.parquet", "engine": "spark"},
                       "command line engine: engine is 'spark'; expected one of featurekit, feast"),
    "start_after_end": ({"start": END, "end": START},
                        "command line start: start 2026-01-02T00:00:00+00:00 is after end 2026-01-01T00:00:00+00:00"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_contradicting_arguments_are_refused_with_their_message(project: Path, case: str) -> None:
    kwargs, message = CASES[case]
    settings = load_settings(Project(project), "local")
    with pytest.raises(UsageError) as info:
        training_set(Project(project), settings, service="driver_hourly_stats", out=str(project / "ts"), **kwargs)
    assert str(info.value) == message
    assert not (project / "ts").exists()


# CLI arguments -> the problem line on stderr, with the CLI's flags
CLI_CASES: dict[str, tuple[list[str], str]] = {
    "spine_and_range": (["--spine", "spine.parquet", "--start", "2026-01-01", "--end", "2026-01-02"],
                        "command line --spine: give either --spine or --start and --end, not both"),
    "start_without_end": (["--start", "2026-01-01"],
                          "command line --spine: give --spine, or --start and --end (the rows of the "
                          "service's first view in that range)"),
    "feast_without_spine": (["--start", "2026-01-01", "--end", "2026-01-02", "--engine", "feast"],
                            "command line --engine: --engine feast needs --spine"),
    "start_after_end": (["--start", "2026-01-02T00:00:00Z", "--end", "2026-01-01"],
                        "command line --start: --start 2026-01-02T00:00:00+00:00 is after --end "
                        "2026-01-01T00:00:00+00:00"),
    "unreadable_as_of": (["--start", "2026-01-01", "--end", "2026-01-02", "--as-of", "yesterday"],
                         "command line --as-of: expected an ISO 8601 time like 2026-01-15T00:00:00Z; "
                         "got 'yesterday'"),
}


@pytest.mark.parametrize("case", list(CLI_CASES))
def test_the_cli_names_its_flags_and_exits_2(project: Path, capsys: pytest.CaptureFixture[str], case: str) -> None:
    given, line = CLI_CASES[case]
    code = main(["training-set", "--service", "driver_hourly_stats", "--out", "ts", *given])
    captured = capsys.readouterr()
    assert code == 2
    assert captured.err.splitlines() == [line, "1 problem(s)"]
    assert not (project / "ts").exists()
