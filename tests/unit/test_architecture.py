"""The import rules of STYLE.md, checked on every test run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO


def test_import_contracts_are_kept() -> None:
    lint = Path(sys.executable).parent / "lint-imports"
    done = subprocess.run([str(lint)], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-2000:]
    assert "0 broken" in done.stdout


def test_the_cli_starts_without_spark() -> None:
    """`featurekit validate` must not pay for importing pyspark (or pandas)."""
    code = (
        "import sys; from featurekit.cli import main; "
        "rc = main(['validate']); "
        "heavy = sorted(m for m in ('pyspark', 'pandas', 'delta', 'deltalake') if m in sys.modules); "
        "print('HEAVY', heavy, rc)"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert "HEAVY [] 0" in done.stdout, done.stdout + done.stderr
