"""Shared fixtures: the repository root and throw-away projects laid out like a user's."""

from __future__ import annotations

import shutil
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests under integration/ need Spark; tests under e2e/ run the CLI as a user would."""
    for item in items:
        parts = Path(str(item.fspath)).parts
        if "integration" in parts:
            item.add_marker(pytest.mark.spark)
        if "e2e" in parts:
            item.add_marker(pytest.mark.e2e)
            item.add_marker(pytest.mark.spark)


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture
def make_project(tmp_path: Path) -> Callable[..., Path]:
    """A fresh project folder: the repository's conf/ plus the given job files.

    ``make_project({"name": "yaml text"})``; variables raw_root/lake_root point inside it.
    """

    def make(jobs: dict[str, str] | None = None, copy_jobs: bool = False) -> Path:
        root = tmp_path / "project"
        root.mkdir(exist_ok=True)
        shutil.copytree(REPO / "conf", root / "conf", dirs_exist_ok=True)
        (root / "jobs").mkdir(exist_ok=True)
        if copy_jobs:
            shutil.copytree(REPO / "jobs", root / "jobs", dirs_exist_ok=True)
        for name, text in (jobs or {}).items():
            (root / "jobs" / f"{name}.yaml").write_text(textwrap.dedent(text).lstrip())
        return root

    return make
