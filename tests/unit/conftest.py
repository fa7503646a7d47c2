from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from featurekit.config.project import PROJECT_ENV

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The repository's conf/ and jobs/ copied into a fresh folder, which is the cwd."""
    root = tmp_path / "project"
    shutil.copytree(REPO / "conf", root / "conf")
    shutil.copytree(REPO / "jobs", root / "jobs", ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.delenv(PROJECT_ENV, raising=False)
    monkeypatch.delenv("FEATUREKIT_JARS_DIR", raising=False)
    monkeypatch.chdir(root)
    return root.resolve()
