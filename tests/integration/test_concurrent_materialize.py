"""Two materializations of one view at once, as real processes (the arrow engine: no JVM in them).

One pauses after writing and verifying its keys, before it records them (the test hook of
:mod:`featurekit.pipeline.conflicts`); the other runs whole and sets the store's marker. The
paused one, let go, finds the marker changed under it: it removes the marker, records nothing
and exits 1 in one line; the next ``--incremental`` materializes the whole window again.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from featurekit.lineage import RunLogLineage
from featurekit.pipeline.conflicts import PAUSE_ENV
from featurekit.pipeline.materialize import WINDOW, materialize
from tests.conftest import REPO
from tests.integration.test_materialize_incremental import FIRST_END, VIEW, _flush, marker, world

pytestmark = pytest.mark.feast

FEATUREKIT = [str(Path(sys.executable).parent / "featurekit")]


def test_the_loser_of_two_materializations_removes_the_marker_and_fails(redis_server: str, spark: object,
                                                                        tmp_path: Path) -> None:
    online = {"type": "redis", "connection_string": f"{redis_server},db=6"}
    _flush(redis_server, 6, 7)
    w = world(tmp_path / "project", spark, online, {"type": "redis", "connection_string": f"{redis_server},db=7"})
    (w.project.root / "conf" / "race").mkdir()
    (w.project.root / "conf" / "race" / "featurekit.yaml").write_text(
        f'feast:\n  online_store: {{type: redis, connection_string: "{redis_server},db=6"}}\nregistry: {{enabled: false}}\n')
    command = [*FEATUREKIT, "materialize", "--incremental", "--end", FIRST_END.isoformat(), "--engine", "arrow",
               "--env", "race"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200"}  # this checkout's featurekit
    pause = tmp_path / "pause"
    pause.mkdir()
    loser = subprocess.Popen(command, cwd=w.project.root, env={**env, PAUSE_ENV: str(pause)}, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not list(pause.glob("paused-*")):
        assert loser.poll() is None, loser.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert marker(w, w.settings) is None  # written and verified, not recorded yet

    winner = subprocess.run(command, cwd=w.project.root, env=env, capture_output=True, text=True, timeout=300)
    assert winner.returncode == 0, winner.stderr[-3000:]
    version = w.lab.table(VIEW).version()
    assert marker(w, w.settings).delta_version == version
    records = len(RunLogLineage(w.settings.runs_dir).records())

    (pause / "go").write_text("")
    out, err = loser.communicate(timeout=300)
    assert loser.returncode == 1, f"{out}\n{err}"
    assert [line for line in err.splitlines() if line.strip()] == [
        f"error: another materialization of {VIEW} set the online store's marker to Delta version {version} while this "
        "one ran; the marker is removed, so the next --incremental materializes the whole window — run it again"], err
    assert marker(w, w.settings) is None
    assert len(RunLogLineage(w.settings.runs_dir).records()) == records  # the loser recorded nothing

    again = materialize(w.project, w.settings, incremental=True, end=FIRST_END, engine="arrow").views[0]
    assert again.method == WINDOW and again.verified and again.keys == 30
    assert marker(w, w.settings).delta_version == version
