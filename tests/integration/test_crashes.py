"""The crash tier: featurekit killed with SIGKILL (its JVM with it) at random points of ``run``,
``backfill``, ``materialize`` and ``training-set``, then checked and run again.

Each trial starts the real CLI in its own process group with ``FEATUREKIT_PHASE_LOG`` set,
picks one of the command's phases at random (seeded), waits until the process enters it,
waits a random moment more and kills the whole group. Afterwards every table is at its old or
its new version (read with delta-rs and compared with the content before, and with a reference
built by an uninterrupted run), the quarantine table is not ahead of its table once the next
run has settled what the killed one left, the run log says ``interrupted`` and never
``running``, the online store's marker and Feast's registry claim no window that was not
written whole, and the rerun (in this process, on the shared session) ends with the
reference's result.

Two more tests hold ``run`` at the point between its quarantine commit and its table commit
(``FEATUREKIT_PHASE_HOLD``) and kill it there, on an existing table and on its first run.

``FEATUREKIT_CRASH_TRIALS`` sets the random trials per command (by default one of ``materialize``
besides the two held kills: the default run stays small; 20 on demand), ``FEATUREKIT_CRASH_SEED``
the seed (printed with the kill point of any failing trial). See docs/reliability.md, "Crashes".
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

from featurekit import pipeline
from featurekit.config import Project, Settings
from featurekit.pipeline import features
from featurekit.pipeline.incremental import backfill
from featurekit.pipeline.materialize import materialize
from featurekit.pipeline.phases import ENV as PHASE_LOG, HOLD
from featurekit.pipeline.report import INTERRUPTED, RUNNING, list_runs
from featurekit.pipeline.training import training_set
from tests.conftest import REPO
from tests.e2e.test_incremental_cli import END as BF_END, START as BF_START, job_text, write_trips
from tests.integration.conftest import with_test_conf
from tests.integration.helpers import Lab, sort_rows

pytestmark = [pytest.mark.crash, pytest.mark.feast]

# trials per command: by default a few in all (the default run stays small), the same number
# for every command on demand (FEATUREKIT_CRASH_TRIALS=20)
ON_DEMAND = os.environ.get("FEATUREKIT_CRASH_TRIALS")
DEFAULT_TRIALS = {"run": 0, "materialize": 1, "backfill": 0, "training-set": 0}
SEED = int(os.environ.get("FEATUREKIT_CRASH_SEED", "2121"))
MAX_DELAY = 2.0  # seconds after the phase begins
FEATUREKIT = str(Path(sys.executable).parent / "featurekit")

T0 = datetime(2026, 3, 1, tzinfo=UTC)
MATERIALIZE_END = datetime(2026, 4, 1, tzinfo=UTC)
SKIPPED = {"_fk_run_id", "_fk_quarantined_at"}  # who quarantined a row, and when: not its content

RUN_PHASES = ["session", "read", "compute", "gate", "write", "commit quarantine", "commit table", "committed"]
MATERIALIZE_PHASES = ["materialize write", "materialize verify", "materialize registry", "materialize marker"]
TRAINING_PHASES = ["training-set build", "training-set commit", "training-set lineage"]

CONF = """
spark:
  master: local[2]
  conf:
    spark.driver.memory: 1g
    spark.ui.enabled: false
    spark.sql.shuffle.partitions: 2
    spark.default.parallelism: 2
    spark.databricks.delta.snapshotPartitions: 2
registry:
  enabled: false
"""


def fares_job(name: str, view: bool = True) -> str:
    """Trips merged by id (a later record corrects a trip); negative fares quarantined; with
    ``view``, a Feast feature view."""
    features = "features: {entity: driver, join_keys: [driver_id], timestamp: event_ts, ttl: 52w}" if view else ""
    return f"""
        name: {name}
        sources:
          trips:
            format: csv
            path: ${{raw_root}}/cr_trips
            options: {{header: true}}
            schema: {{trip_id: string, driver_id: long, fare: double, event_ts: timestamp}}
        steps:
          - filter: "driver_id IS NOT NULL"
          - dedup: {{keys: [trip_id], order_by: event_ts}}
        validate:
          policy: quarantine
          max_bad_fraction: 0.5
          columns:
            fare: {{checks: {{ge: 0}}}}
        output: {{path: "${{lake_root}}/{name}", mode: merge, keys: [trip_id]}}
        {features}
    """


@dataclass
class World:
    lab: Lab
    seed: int

    @property
    def project(self) -> Project:
        return Project(self.lab.root)

    def settings(self, job: str = "cr_fares") -> Settings:
        return with_test_conf(pipeline.load(self.project, job, "local")[1])

    def run(self, job: str, **options: Any) -> pipeline.RunResult:
        loaded, settings = pipeline.load(self.project, job, "local")
        return pipeline.run(self.project, loaded, with_test_conf(settings), self.lab.spark, **options)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def world(spark: object, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """One project for every trial series: the fares job and its reference twin (the same spec
    under another name: what an uninterrupted run makes), applied to Feast."""
    root = tmp_path_factory.mktemp("crashes")
    lab = Lab(root, spark)
    (root / "conf" / "local" / "featurekit.yaml").write_text(CONF.lstrip())
    (root / "feature_repo").mkdir()
    (root / "feature_repo" / "features.py").write_text((REPO / "feature_repo" / "features.py").read_text())
    for name in ("cr_fares", "cr_fares_ref"):
        lab.write_job(name, fares_job(name))
    world = World(lab, SEED)
    add_trips(world, 0)
    world.run("cr_fares")
    world.run("cr_fares_ref")
    features.apply(world.project, world.settings())
    print(f"crash trials: FEATUREKIT_CRASH_SEED={SEED} FEATUREKIT_CRASH_TRIALS={ON_DEMAND or DEFAULT_TRIALS}")
    yield world


def add_trips(world: World, batch: int) -> None:
    """One more CSV file of trips: new ones, corrections of earlier ones, negative fares,
    trips without a driver. Times are distinct, so each driver's latest row is one row."""
    rng = random.Random(world.seed * 1000 + batch)
    lines = ["trip_id,driver_id,fare,event_ts"]
    base = T0 + timedelta(days=batch % 20)  # within March: every trial's rows in the views' windows
    for n in range(40):
        moment = base + timedelta(minutes=n * 17, seconds=batch)
        driver = "" if n % 19 == 0 else str(rng.randrange(1, 9))
        fare = -float(rng.randrange(1, 9)) if n % 11 == 0 else float(rng.randrange(0, 60))
        lines.append(f"b{batch}t{n},{driver},{fare},{moment.isoformat().replace('+00:00', 'Z')}")
    if batch:  # a correction of an earlier trip, later in time
        later = base + timedelta(hours=20, seconds=batch)
        lines.append(f"b{batch - 1}t3,4,{float(rng.randrange(0, 60))},{later.isoformat()}")
    folder = world.lab.raw / "cr_trips"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"batch-{batch:03d}.csv").write_text("\n".join(lines) + "\n")


# --------------------------------------------------------------------------- killing


@dataclass
class Kill:
    where: str      # the trial, for every assertion message
    killed: bool    # False: the command finished before the kill point
    pid: int
    returncode: int
    output: str

    def __str__(self) -> str:
        return self.where


def kill_during(world: World, trial: int, command: list[str], phases: list[str], rng: random.Random | None,
                occurrences: int = 1) -> Kill:
    """Run the CLI and SIGKILL its process group at a random point: once it enters a phase
    picked at random (its n-th time, for a command that passes it more than once), plus a
    random delay. Without ``rng``: held at the first of ``phases`` and killed there. Fails if
    anything of the group outlives the kill."""
    if rng is None:
        phase, nth, delay = phases[0], 1, 0.0
        where = f"`featurekit {' '.join(command)}` held at phase {phase!r} and killed"
    else:
        phase, nth, delay = rng.choice(phases), rng.randint(1, occurrences), rng.uniform(0, MAX_DELAY)
        where = (f"FEATUREKIT_CRASH_SEED={world.seed} trial {trial}: `featurekit {' '.join(command)}` "
                 f"killed {delay:.2f}s into phase {phase!r} (occurrence {nth})")
    root = world.lab.root
    log, output = root / "phases.log", root / "killed.log"
    log.unlink(missing_ok=True)
    env = {**os.environ, PHASE_LOG: str(log), "FEATUREKIT_JARS_DIR": str(REPO / ".featurekit" / "jars"),
           "PYTHONPATH": str(REPO), "COLUMNS": "200"}
    env.pop(HOLD, None)
    if rng is None:
        env[HOLD] = phase
    with output.open("w") as sink:
        process = subprocess.Popen([FEATUREKIT, *command], cwd=root, env=env, stdout=sink, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        try:
            deadline = time.monotonic() + 600
            while process.poll() is None and _entered(log, phase) < nth and time.monotonic() < deadline:
                time.sleep(0.02)
            until = time.monotonic() + delay
            while process.poll() is None and time.monotonic() < until:
                time.sleep(0.01)
            killed = process.poll() is None
            if killed:
                os.killpg(process.pid, signal.SIGKILL)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=60)
    _group_gone(process.pid, where)
    text = output.read_text()
    if not killed:
        where += " — finished first"
        assert process.returncode == 0, f"{where}: exit {process.returncode}\n{text[-3000:]}"
    print(where)
    return Kill(where, killed, process.pid, process.returncode, text)


def _entered(log: Path, phase: str) -> int:
    try:
        return sum(1 for line in log.read_text().splitlines() if line.split(" ", 1)[-1] == phase)
    except OSError:
        return 0


def _group_gone(group: int, where: str) -> None:
    """Every process of the killed group (the JVM included) has ended."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    pytest.fail(f"{where}: processes of group {group} still run after SIGKILL")


# --------------------------------------------------------------------------- reading state


def table_rows(path: Path, skip: set[str] = frozenset()) -> list[dict[str, Any]] | None:
    """A table's rows by delta-rs (its columns but ``skip``), sorted; None if there is no table."""
    if not (path / "_delta_log").is_dir() or not any((path / "_delta_log").glob("*.json")):
        return None
    found = DeltaTable(str(path)).to_pyarrow_table().to_pylist()
    return sort_rows([{k: json.dumps(v, default=str) if isinstance(v, list | dict) else v
                       for k, v in row.items() if k not in skip} for row in found])


def state(world: World, job: str) -> tuple[Any, Any]:
    lake = world.lab.lake
    return table_rows(lake / job), table_rows(lake / f"{job}_quarantine", SKIPPED)


def check_run_log(world: World, job: str, kill: Kill) -> dict[str, Any] | None:
    """No report says ``running``; the killed run's (if it wrote one) says ``interrupted``, or
    ``succeeded`` when the kill came after its end was written."""
    reports = list_runs(world.lab.runs, job, limit=1000) if (world.lab.runs / job).is_dir() else []
    assert not [r["run_id"] for r in reports if r.get("status") == RUNNING], f"{kill}: a run is left 'running'"
    mine = [r for r in reports if (r.get("owner") or {}).get("pid") == kill.pid]
    for report in mine:
        assert report["status"] in ({INTERRUPTED, "succeeded"} if kill.killed else {"succeeded"}), f"{kill}: {report}"
    return mine[-1] if mine else None


def trials(world: World, name: str) -> list[tuple[int, random.Random]]:
    """The series' trials, each with the series' random source; skips the test (before it
    prepares anything) when the series runs on demand only."""
    count = int(ON_DEMAND) if ON_DEMAND else DEFAULT_TRIALS[name]
    if not count:
        pytest.skip(f"{name}: on demand (FEATUREKIT_CRASH_TRIALS=N); the default run holds `run` at its commits "
                    "and kills `materialize`")
    rng = random.Random(f"{world.seed}:{name}")
    return [(trial, rng) for trial in range(count)]


# --------------------------------------------------------------------------- the series


def test_run_killed_between_its_two_commits(world: World) -> None:
    """The one state a kill leaves for the next run to settle, made every time: the quarantine
    commit made, the table commit not."""
    run_trial(world, 0, None, ["commit table"])


def test_first_run_killed_before_its_table_exists(world: World) -> None:
    """Killed while creating its table (data files written, no commit yet, its quarantine table
    committed): the next run clears the folder it left and makes both tables."""
    world.lab.write_job("cr_new", fares_job("cr_new", view=False))
    world.run("cr_fares_ref")
    expected = table_rows(world.lab.lake / "cr_fares_ref"), table_rows(world.lab.lake / "cr_fares_ref_quarantine", SKIPPED)
    kill = kill_during(world, 0, ["run", "cr_new"], ["commit table"], None)
    folder = world.lab.lake / "cr_new"
    assert list(folder.glob("*.parquet")) and table_rows(folder) is None, f"{kill}: expected files and no commit"
    assert check_run_log(world, "cr_new", kill)["status"] == INTERRUPTED

    again = world.run("cr_new")
    (settled,) = again.recovered
    assert settled["uncommitted_folders_removed"] == [str(folder)] and settled["quarantine"]["taken_back"], settled
    assert state(world, "cr_new") == expected, f"{kill}: the rerun differs from an uninterrupted run"


def test_run_killed_at_random_points(world: World) -> None:
    for trial, rng in trials(world, "run"):
        run_trial(world, 1 + trial, rng, RUN_PHASES)


def run_trial(world: World, trial: int, rng: random.Random | None, phases: list[str]) -> None:
    before = state(world, "cr_fares")
    add_trips(world, 100 + trial)
    world.run("cr_fares_ref")
    expected = table_rows(world.lab.lake / "cr_fares_ref"), table_rows(world.lab.lake / "cr_fares_ref_quarantine", SKIPPED)
    assert expected != before

    kill = kill_during(world, trial, ["run", "cr_fares"], phases, rng)
    main, quarantine = state(world, "cr_fares")
    assert main in (before[0], expected[0]), f"{kill}: the table is at neither its old nor its new content"
    assert quarantine in (before[1], expected[1]), f"{kill}: the quarantine table is at neither version"
    killed_report = check_run_log(world, "cr_fares", kill)
    ahead = main == before[0] and quarantine == expected[1] != before[1]
    if rng is None:
        assert ahead, f"{kill}: expected the quarantine commit made and the table's not"

    again = world.run("cr_fares")
    assert again.status == "succeeded", kill
    assert state(world, "cr_fares") == expected, f"{kill}: the rerun differs from an uninterrupted run"
    if ahead:  # the killed run's quarantine commit without its table commit: taken back, then made again
        settled = {r["run_id"]: r for r in again.recovered}
        assert killed_report is not None and settled[killed_report["run_id"]]["quarantine"]["taken_back"], kill
    if killed_report is not None and killed_report["status"] == INTERRUPTED:
        after = pipeline.read_run(world.lab.runs, killed_report["run_id"])
        assert after["status"] == INTERRUPTED and after.get("recovered_by") == again.run_id, f"{kill}: {after}"
    assert not list((world.lab.runs / "cr_fares" / ".open").glob("*")), f"{kill}: a run is left open"
    assert not (world.lab.lake / "cr_fares" / "_fk_staging").exists(), f"{kill}: a staging folder is left"


def test_backfill_killed_at_random_points(world: World) -> None:
    series = trials(world, "backfill")
    write_trips(world.lab.root, seed=world.seed)
    world.lab.write_job("bf_ref", job_text("bf_ref", incremental=False))
    world.run("bf_ref", end=BF_END)
    expected = table_rows(world.lab.lake / "bf_ref")
    command = ["--start", BF_START.isoformat(), "--end", BF_END.isoformat(), "--batch", "18h"]
    chunks = 2
    for trial, rng in series:
        job = f"bf{trial}"
        world.lab.write_job(job, job_text(job))
        kill = kill_during(world, trial, ["backfill", job, *command], RUN_PHASES, rng, occurrences=chunks)
        table = world.lab.lake / job
        if table_rows(table) is not None:  # each chunk one commit: the table is at one of them
            assert DeltaTable(str(table)).version() <= chunks - 1, kill
        check_run_log(world, job, kill)

        loaded, settings = pipeline.load(world.project, job, "local")
        done = backfill(world.project, loaded, with_test_conf(settings), BF_START, BF_END, "18h", spark=world.lab.spark)
        assert all(r.status == "succeeded" for r in done.runs), kill
        assert DeltaTable(str(table)).version() == chunks - 1, f"{kill}: a chunk was committed twice"
        assert table_rows(table) == expected, f"{kill}: the resumed backfill differs from one full run"
        assert not [r for r in list_runs(world.lab.runs, job, limit=1000) if r["status"] == RUNNING], kill


def online_values(world: World, settings: Settings) -> dict[int, tuple[Any, ...]]:
    """What the online store holds per driver: (fare, trip id)."""
    from featurekit.online.client import OnlineFeatures

    reader = OnlineFeatures("local", world.project, settings)
    drivers = list(range(1, 9))
    got = reader.get({"driver_id": drivers}, service="cr_fares")
    return {d: (got["fare"][i], got["trip_id"][i]) for i, d in enumerate(drivers) if got["fare"][i] is not None}


def latest_per_driver(world: World, end: datetime) -> dict[int, tuple[Any, ...]]:
    """Each driver's row with the latest time up to ``end``: (fare, trip id)."""
    rows = table_rows(world.lab.lake / "cr_fares") or []
    latest: dict[int, dict[str, Any]] = {}
    for row in rows:
        if row["event_ts"] > end:
            continue
        held = latest.get(row["driver_id"])
        if held is None or row["event_ts"] > held["event_ts"]:
            latest[row["driver_id"]] = row
    return {d: (r["fare"], r["trip_id"]) for d, r in latest.items()}


def registry_end(world: World, settings: Settings) -> datetime | None:
    from featurekit.feast import store as feast_store
    from featurekit.pipeline.features import feast_session_conf

    store = feast_store.open_store(world.project, settings, feast_session_conf(settings))
    end = store.get_feature_view("cr_fares").most_recent_end_time
    return None if end is None else end.replace(tzinfo=UTC) if end.tzinfo is None else end.astimezone(UTC)


def store_marker(world: World, settings: Settings) -> Any:
    from featurekit.feast import store as feast_store
    from featurekit.feast.store import repo_dir
    from featurekit.online_store import open_online_store

    return open_online_store(feast_store.online_config(world.project, settings), str(repo_dir(settings))).marker("cr_fares")


def test_materialize_killed_at_random_points(world: World) -> None:
    series = trials(world, "materialize")
    settings = world.settings()
    materialize(world.project, settings, incremental=True, end=MATERIALIZE_END, spark=world.lab.spark)
    for trial, rng in series:
        add_trips(world, 200 + trial)  # a new version of the table for the store to catch up with
        world.run("cr_fares")
        version = DeltaTable(str(world.lab.lake / "cr_fares")).version()
        end = MATERIALIZE_END + timedelta(hours=trial + 1)
        expected = latest_per_driver(world, end)
        window = (["--incremental"] if rng.random() < 0.5
                  else ["--start", (end - timedelta(weeks=52)).isoformat()])
        before_end = registry_end(world, settings)
        kill = kill_during(world, trial, ["materialize", *window, "--end", end.isoformat()], MATERIALIZE_PHASES, rng)

        marker, claimed = store_marker(world, settings), registry_end(world, settings)
        assert claimed in (before_end, end), f"{kill}: the registry holds window end {claimed}"
        if claimed == end or (marker is not None and marker.delta_version == version):
            assert online_values(world, settings) == expected, f"{kill}: a window is claimed that was not written whole"
        if marker is not None and marker.delta_version == version:
            assert marker.window_end == end, kill

        done = materialize(world.project, settings, incremental=True, end=end, spark=world.lab.spark)
        assert all(v.verified for v in done.views), kill
        assert online_values(world, settings) == expected, f"{kill}: the rerun left other values than the table's"
        assert registry_end(world, settings) == end, kill


def test_training_set_killed_at_random_points(world: World) -> None:
    series = trials(world, "training-set")
    spine = world.lab.root / "spine.parquet"
    moments = [T0 + timedelta(hours=h) for h in range(0, 24 * 21, 7)]
    out, reference = world.lab.lake / "cr_training", world.lab.lake / "cr_training_ref"
    for trial, rng in series:
        moments.append(T0 + timedelta(days=trial % 20, hours=23))  # one spine row more: each build differs
        pq.write_table(pa.table({
            "driver_id": pa.array([1 + i % 8 for i in range(len(moments))], pa.int64()),
            "event_timestamp": pa.array(moments, pa.timestamp("us", tz="UTC")),
        }), spine)
        add_trips(world, 300 + trial)
        world.run("cr_fares")
        settings = world.settings()
        before = table_rows(out)
        training_set(world.project, settings, spine=str(spine), service="cr_fares", out=str(reference),
                     spark=world.lab.spark)
        expected = table_rows(reference)
        assert expected != before
        kill = kill_during(world, trial, ["training-set", "--spine", str(spine), "--service", "cr_fares",
                                          "--out", str(out)], TRAINING_PHASES, rng)
        assert table_rows(out) in (before, expected), f"{kill}: the training set is at neither version"

        training_set(world.project, settings, spine=str(spine), service="cr_fares", out=str(out), spark=world.lab.spark)
        assert table_rows(out) == expected, f"{kill}: the rerun differs from an uninterrupted build"
