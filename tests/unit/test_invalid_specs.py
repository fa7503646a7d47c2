"""Every invalid job spec in ``invalid_specs/`` is paired with the exact problem lines it gets.

Each file starts with comment lines ``# expect: <problem line>`` (one per problem the loader
must report, in ``str(Problem)`` form, shown as ``jobs/<file name>``). ``# known-issue:``
lines mark expectations that pin today's wording or location although a clearer one is
wanted; the reason is written there.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from featurekit.spec.loader import parse_job

CORPUS = Path(__file__).parent / "invalid_specs"
VARIABLES = {"raw_root": "/data/raw", "lake_root": "/data/lake"}
CASES = sorted(CORPUS.glob("*.yaml"))


def expected_lines(path: Path) -> list[str]:
    """The ``# expect:`` lines of the file's leading comment block."""
    expected = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        if line.startswith("# expect: "):
            expected.append(line.removeprefix("# expect: "))
    return expected


def test_corpus_is_large_enough() -> None:
    assert len(CASES) >= 35


def test_every_case_names_its_expected_problems() -> None:
    missing = [path.name for path in CASES if not expected_lines(path)]
    assert missing == []


@pytest.mark.parametrize("path", CASES, ids=[path.stem for path in CASES])
def test_invalid_spec_reports_exactly_the_expected_problems(path: Path) -> None:
    job, problems = parse_job(path, VARIABLES, shown_as=f"jobs/{path.name}")

    assert job is None
    got = [str(problem) for problem in problems]
    assert len(got) == len(set(got)), f"a problem is reported twice: {got}"
    assert set(got) == set(expected_lines(path))
