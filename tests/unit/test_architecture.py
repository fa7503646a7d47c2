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


def test_serving_imports_neither_spark_nor_feast_nor_the_batch_side() -> None:
    """A serving image and a lookup stay light: the serving package and the online-store port."""
    code = (
        "import sys; import featurekit.online, featurekit.online.http, featurekit.online_store.redis, "
        "featurekit.online_store.sqlite; "
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('pyspark', 'pandas', 'feast', 'delta') "
        "or m.startswith(('featurekit.pipeline', 'featurekit.engine', 'featurekit.sinks', 'featurekit.validation', "
        "'featurekit.deploy', 'featurekit.demo', 'featurekit.materialization'))); "
        "print('HEAVY', heavy)"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert "HEAVY []" in done.stdout, done.stdout + done.stderr
