"""Incremental runs, window expiry and backfills on real Spark + Delta.

The core promise: after any sequence of incremental runs over arriving data (late rows within
the lookback, corrections resolved by ``dedup``, filters, a join, windowed aggregates with
expiry), the table equals one full run over all the data, row for row. The data is generated
(seeded), arrives as files, and every comparison reads both tables with delta-rs.
"""

from __future__ import annotations

import os
import random
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from featurekit import pipeline
from featurekit.config import Project
from featurekit.cli.present import flag
from featurekit.errors import FeaturekitError, InfraError, face
from featurekit.pipeline.incremental import Chunk, arrivals_app, backfill, plan_increment, watermark_app
from featurekit.sinks.delta import ConcurrentRun, prepare
from featurekit.sinks.transaction import CommitMeta, app_versions
from featurekit.spec.intervals import between
from tests.integration.conftest import with_test_conf
from tests.integration.helpers import Lab, fresh_lab, lab, ts  # noqa: F401  (fixtures)

START = datetime(2026, 3, 1, tzinfo=UTC)
HEADER = "trip_id,driver_id,fare,event_ts"


def job_text(name: str, incremental: bool = True, mode: str = "merge") -> str:
    block = "incremental: {time_column: event_ts, lookback: 6h}\n" if incremental else ""
    output = ("  mode: merge\n  keys: [driver_id, event_ts]\n" if mode == "merge"
              else "  mode: replace_partitions\n  partition_by: [event_date]\n")
    return f"""
name: {name}
sources:
  trips:
    format: csv
    path: ${{raw_root}}/arrivals
    options: {{header: true}}
    schema: {{trip_id: string, driver_id: long, fare: double, event_ts: timestamp}}
  drivers:
    format: csv
    path: ${{raw_root}}/drivers
    options: {{header: true}}
    schema: {{driver_id: long, city: string}}
{block}steps:
  - filter: "driver_id IS NOT NULL AND event_ts IS NOT NULL"
  - filter: "fare >= 0"
  - dedup: {{keys: [trip_id], order_by: event_ts}}
  - join: {{source: drivers, on: [driver_id]}}
  - aggregate:
      keys: [driver_id]
      timestamp: event_ts
      every: 1h
      windows: [1h, 6h, 1d]
      metrics:
        trips: "count(*)"
        fare_sum: "sum(fare)"
        fare_avg: "avg(fare)"
        fare_max: "max(fare)"
        north: "count(CASE WHEN city = 'north' THEN 1 END)"
      expire: true
  - with_columns: {{event_date: "to_date(event_ts)"}}
validate: {{max_bad_fraction: 0.1}}
output:
  path: ${{lake_root}}/{name}
{output}"""


class Arrivals:
    """Trips landing as CSV files, one file per arrival: the events up to the arrival's end,
    some of them late (up to 5 h before the previous arrival's end: inside the 6 h lookback),
    corrections of recent trips (a later time, another fare), negative fares and a record
    whose time does not parse. Files get a modification time in the past, as landed files do."""

    def __init__(self, lab: Lab, job: str, seed: int = 11) -> None:
        self.lab, self.job, self.rng, self.count = lab, job, random.Random(seed), 0
        self.folder = lab._folder("arrivals")
        self.recent: list[tuple[str, int, datetime]] = []
        lab.csv("drivers", "driver_id,city\n" + "".join(f"{d},{'north' if d % 2 else 'south'}\n" for d in range(1, 7)))

    def land(self, lo: datetime, hi: datetime, trips: int = 120, late: int = 6, old: datetime | None = None) -> Path:
        rng, lines, recent = self.rng, [HEADER], []

        def trip(moment: datetime, fare: int | None = None) -> None:
            trip_id = f"a{self.count}-{len(lines)}"
            driver = rng.randrange(1, 7)
            fare = rng.randrange(-3, 60) if fare is None else fare
            lines.append(f"{trip_id},{driver},{fare},{moment:%Y-%m-%dT%H:%M:%SZ}")
            recent.append((trip_id, driver, moment))

        span = int((hi - lo).total_seconds())
        for _ in range(trips):
            trip(lo + timedelta(seconds=rng.randrange(1, span + 1)))
        for _ in range(late if self.count else 0):
            trip(lo - timedelta(seconds=rng.randrange(0, 5 * 3600)))
        for trip_id, driver, moment in rng.sample(self.recent, min(4, len(self.recent))):
            if moment > lo - timedelta(hours=4):  # corrections inside the lookback
                lines.append(f"{trip_id},{driver},{rng.randrange(0, 60)},{moment + timedelta(minutes=50):%Y-%m-%dT%H:%M:%SZ}")
        if old is not None:  # a row far older than the lookback reaches
            trip(old, fare=42)
        lines.append(f"bad{self.count},1,5,not-a-time")
        self.recent = [r for r in recent if r[2] > hi - timedelta(hours=5)]
        path = self.folder / f"part-{self.count}.csv"
        path.write_text("\n".join(lines) + "\n")
        # landed after the job's last run planned (the time it marked), as a real file would
        # have; a file's own time may fall in the second before a run plans, which that run
        # and the next would both take
        table = self.lab.lake / self.job
        mark = app_versions(self.lab.spark, str(table), [arrivals_app(self.job)])[arrivals_app(self.job)] \
            if table.exists() else -1
        landed = mark + 0.5 if mark >= 0 else time.time() - 5
        os.utime(path, (landed, landed))
        self.count += 1
        return path


def run(lab: Lab, name: str, **kwargs: Any) -> pipeline.RunResult:
    project = Project(lab.root)
    loaded, settings = pipeline.load(project, name, "local")
    return pipeline.run(project, loaded, with_test_conf(settings), lab.spark, **kwargs)  # type: ignore[arg-type]


def hours(n: int) -> timedelta:
    return timedelta(hours=n)


def test_incremental_runs_equal_one_full_run(fresh_lab: Lab) -> None:
    lab = fresh_lab
    lab.write_job("inc", job_text("inc"))
    lab.write_job("full", job_text("full", incremental=False))
    arrivals = Arrivals(lab, "inc")
    ends = [START + hours(h) for h in (20, 34, 41, 60)]
    results = []
    previous = START
    for end in ends:
        arrivals.land(previous, end)
        results.append(run(lab, "inc", end=end))
        previous = end
    full = run(lab, "full", end=ends[-1])

    assert lab.rows("inc") == lab.rows("full")
    # every driver's last row carries its windows as of the end: expiry rows let them fall to 0
    assert len(lab.rows("full")) > len({(r["driver_id"], r["event_ts"]) for r in lab.rows("full") if r["trips_1h"]})
    aggregate = next(step for step in full.steps if step.op == "aggregate")
    assert aggregate.note.endswith("expiry row(s) where windows empty")
    # the report of each run: its interval, the watermark before and after, the rows read
    first, second = results[0].incremental, results[1].incremental
    assert (first["start"], first["end"], first["watermark_before"]) == (None, "2026-03-01T20:00:00Z", None)
    assert (second["start"], second["end"], second["read_from"]) == (
        "2026-03-01T14:00:00Z", "2026-03-02T10:00:00Z", "2026-02-28T14:00:00Z")
    assert (second["watermark_before"], second["watermark_after"]) == ("2026-03-01T20:00:00Z", "2026-03-02T10:00:00Z")
    assert results[1].sources[0]["rows_read"] < full.sources[0]["rows_read"]
    interval_step = results[1].steps[-1]
    assert interval_step.op == "interval" and interval_step.dropped and interval_step.dropped > 0
    # every malformed record is quarantined once, by the run that saw its file arrive
    assert [r.sources[0]["rows_malformed"] for r in results] == [1, 1, 1, 1]
    versions = app_versions(lab.spark, str(lab.lake / "inc"), [watermark_app("inc")])
    assert versions[watermark_app("inc")] == int(ends[-1].timestamp())

    # --full rebuilds the same table
    rebuilt = run(lab, "inc", end=ends[-1], full=True)
    assert rebuilt.incremental["kind"] == "full" and lab.rows("inc") == lab.rows("full")


def test_rerun_of_an_interval_changes_nothing(fresh_lab: Lab) -> None:
    lab = fresh_lab
    lab.write_job("again", job_text("again", mode="replace_partitions"))
    arrivals = Arrivals(lab, "again", seed=3)
    arrivals.land(START, START + hours(30))
    first = run(lab, "again", end=START + hours(30))
    rows = lab.rows("again")
    second = run(lab, "again", end=START + hours(30))
    assert lab.rows("again") == rows
    assert second.table_version == first.table_version + 1
    assert second.incremental["watermark_before"] == second.incremental["watermark_after"] == "2026-03-02T06:00:00Z"
    # the same files again: their rows without a time were quarantined by the first run only
    assert (first.sources[0]["rows_malformed"], second.sources[0]["rows_malformed"]) == (1, 0)


def test_late_rows_beyond_the_lookback_wait_for_a_backfill(fresh_lab: Lab) -> None:
    lab = fresh_lab
    lab.write_job("late", job_text("late"))
    lab.write_job("late_full", job_text("late_full", incremental=False))
    arrivals = Arrivals(lab, "late", seed=5)
    arrivals.land(START, START + hours(24))
    run(lab, "late", end=START + hours(24))
    too_old = START + hours(3) + timedelta(minutes=10)  # 21 h before the watermark; the lookback is 6 h
    arrivals.land(START + hours(24), START + hours(36), old=too_old)
    run(lab, "late", end=START + hours(36))
    run(lab, "late_full", end=START + hours(36))
    stale = {(r["driver_id"], r["event_ts"]) for r in lab.rows("late")} ^ {(r["driver_id"], r["event_ts"]) for r in lab.rows("late_full")}
    assert lab.rows("late") != lab.rows("late_full")  # the documented limit
    assert all(key[1] > too_old.replace(tzinfo=UTC) for key in stale)

    project = Project(lab.root)
    loaded, settings = pipeline.load(project, "late", "local")
    done = backfill(project, loaded, with_test_conf(settings), START, START + hours(36), "12h", spark=lab.spark)
    assert [r.incremental["kind"] for r in done.runs] == ["backfill"] * 3
    assert lab.rows("late") == lab.rows("late_full")
    # the backfill never moved the watermark back, and a rerun of it skips every chunk
    assert app_versions(lab.spark, str(lab.lake / "late"), [watermark_app("late")])[watermark_app("late")] == \
        int((START + hours(36)).timestamp())
    version = lab.table("late").version()
    again = backfill(project, loaded, with_test_conf(settings), START, START + hours(36), "12h", spark=lab.spark)
    assert (again.done_before, again.runs, lab.table("late").version()) == (3, [], version)


EXPIRY_EVENTS = """
    trip_id,driver_id,fare,event_ts
    a,1,10,2026-03-01T10:30:00Z
    b,1,20,2026-03-01T12:15:00Z
    c,2,7,2026-03-01T17:30:00Z
"""
N = None


def test_expiry_rows_by_hand(lab: Lab) -> None:
    lab.csv("expiry_events", EXPIRY_EVENTS)
    lab.run("expiry", """
        name: expiry
        sources:
          trips:
            format: csv
            path: ${raw_root}/expiry_events
            options: {header: true}
            schema: {trip_id: string, driver_id: long, fare: double, event_ts: timestamp}
        steps:
          - aggregate:
              keys: [driver_id]
              timestamp: event_ts
              every: 1h
              windows: [1h, 3h]
              metrics: {trips: "count(*)", fare_sum: "sum(fare)", fare_avg: "avg(fare)", fare_max: "max(fare)"}
              expire: true
        output: {path: "${lake_root}/expiry"}
    """)
    # (the run's end is now: every expiry row is in the past)
    columns = ["driver_id", "event_ts", "trips_1h", "fare_sum_1h", "fare_avg_1h", "fare_max_1h",
               "trips_3h", "fare_sum_3h", "fare_avg_3h", "fare_max_3h"]
    got = [tuple(row[c] for c in columns) for row in lab.rows("expiry", by=["driver_id", "event_ts"])]
    assert got == [
        # a (bucket 11:00) arrives
        (1, ts("2026-03-01 11:00:00"), 1, 10.0, 10.0, 10.0, 1, 10.0, 10.0, 10.0),
        # a leaves the 1h window at 12:00 (11:00 + 1h): empty, so 0 and nulls; the 3h window holds a
        (1, ts("2026-03-01 12:00:00"), 0, N, N, N, 1, 10.0, 10.0, 10.0),
        # b (bucket 13:00) arrives
        (1, ts("2026-03-01 13:00:00"), 1, 20.0, 20.0, 20.0, 2, 30.0, 15.0, 20.0),
        # 14:00: b leaves the 1h window, a leaves the 3h window (11:00 + 3h)
        (1, ts("2026-03-01 14:00:00"), 0, N, N, N, 1, 20.0, 20.0, 20.0),
        # nothing changes at 15:00; at 16:00 b leaves the 3h window: everything empty
        (1, ts("2026-03-01 16:00:00"), 0, N, N, N, 0, N, N, N),
        (2, ts("2026-03-01 18:00:00"), 1, 7.0, 7.0, 7.0, 1, 7.0, 7.0, 7.0),
        (2, ts("2026-03-01 19:00:00"), 0, N, N, N, 1, 7.0, 7.0, 7.0),
        (2, ts("2026-03-01 21:00:00"), 0, N, N, N, 0, N, N, N),
    ]
    # the run's end bounds expiry: none after it
    run(lab, "expiry", end=datetime(2026, 3, 1, 19, 30, tzinfo=UTC))
    assert max(r["event_ts"] for r in lab.rows("expiry")) == ts("2026-03-01 19:00:00")


def test_a_run_planned_before_another_commits_fails_cleanly(fresh_lab: Lab) -> None:
    lab = fresh_lab
    lab.write_job("race", job_text("race"))
    Arrivals(lab, "race", seed=9).land(START, START + hours(24))
    run(lab, "race", end=START + hours(12))
    project = Project(lab.root)
    loaded, _ = pipeline.load(project, "race", "local")
    spark = lab.spark
    rows = spark.read.format("delta").load(str(lab.lake / "race")).limit(0)  # type: ignore[attr-defined]
    meta = CommitMeta("race", "r-late", loaded.fingerprint, "local")

    # planned from the watermark, then another run commits: the planned one writes nothing
    planned = plan_increment(spark, loaded, START + hours(24))
    winner = run(lab, "race", end=START + hours(24))
    version = lab.table("race").version()
    with pytest.raises(ConcurrentRun, match="another run of job 'race' committed"):
        prepare(spark, rows, loaded.spec.output, meta, planned.replacement)
    assert lab.table("race").version() == version == winner.table_version

    # both written, one commits: Delta's conflict check refuses the other (read through its transaction)
    first = plan_increment(spark, loaded, START + hours(24))
    second = plan_increment(spark, loaded, START + hours(24))
    a = prepare(spark, rows, loaded.spec.output, meta, first.replacement)
    b = prepare(spark, rows, loaded.spec.output, CommitMeta("race", "r-b", loaded.fingerprint, "local"), second.replacement)
    a.commit()
    with pytest.raises(Exception) as info:
        b.commit()
    b.abandon()
    from featurekit.pipeline.spark_errors import classify
    error = classify(info.value)
    assert isinstance(error, InfraError) and "another writer committed to the table first" in str(error)
    assert lab.table("race").version() == version + 1


def test_backfill_chunks_align_and_refuse_bad_ranges(lab: Lab) -> None:
    lab.write_job("chunks", job_text("chunks"))
    project = Project(lab.root)
    loaded, settings = pipeline.load(project, "chunks", "local")
    plan = backfill(project, loaded, with_test_conf(settings), START + timedelta(minutes=20), START + hours(30), "12h",
                    spark=lab.spark, dry_run=True)
    assert [(lo.isoformat(), hi.isoformat()) for lo, hi in plan.chunks] == [
        ("2026-03-01T00:00:00+00:00", "2026-03-01T12:00:00+00:00"),
        ("2026-03-01T12:00:00+00:00", "2026-03-02T00:00:00+00:00"),
        ("2026-03-02T00:00:00+00:00", "2026-03-02T06:00:00+00:00"),
    ]
    assert (plan.done_before, plan.runs) == (0, [])
    with pytest.raises(FeaturekitError, match=r"--batch 90m must be a whole multiple of the job's bucket \(1h\)"), face(flag):
        backfill(project, loaded, settings, START, START + hours(30), "90m", spark=lab.spark)
    with pytest.raises(FeaturekitError, match="--end 2026-03-01T00:30:00Z must be after --start"), face(flag):
        backfill(project, loaded, settings, START, START + timedelta(minutes=30), "1h", spark=lab.spark)
    chunk = Chunk(between(loaded.spec, START, START + hours(1)), "x")
    assert chunk.interval.read_from == START - timedelta(days=1)
    assert arrivals_app("chunks") == "featurekit/chunks/arrivals"


def _day_files(lab: Lab, folder: str) -> None:
    """Five days of events, each day in its Hive-style folder ``event_date=YYYY-MM-DD``."""
    rng = random.Random(21)
    root = lab._folder(folder)
    for day in range(5):
        date = START + timedelta(days=day)
        part = root / f"event_date={date:%Y-%m-%d}"
        part.mkdir()
        rows = [f"t{day}-{i},{rng.randrange(1, 4)},{rng.randrange(1, 30)},"
                f"{date + timedelta(seconds=rng.randrange(1, 86400)):%Y-%m-%dT%H:%M:%SZ}" for i in range(40)]
        (part / "part-0.csv").write_text("\n".join([HEADER, *rows]) + "\n")


PRUNED = """
name: {name}
sources:
  trips:
    format: {format}
    path: {path}
    {options}
{incremental}
steps:
  - aggregate:
      keys: [driver_id]
      timestamp: event_ts
      every: 1h
      windows: [1h, 6h]
      metrics: {{trips: "count(*)", fare_sum: "sum(fare)"}}
output:
  path: ${{lake_root}}/{name}
  mode: merge
  keys: [driver_id, event_ts]
"""


@pytest.mark.parametrize("source", ["csv", "delta"])
def test_a_run_reads_only_the_files_its_interval_needs(lab: Lab, source: str) -> None:
    _day_files(lab, "days")
    if source == "csv":
        path, options = "${raw_root}/days", ("options: {header: true}\n    schema: {trip_id: string, driver_id: long, "
                                              "fare: double, event_ts: timestamp, event_date: date}")
        partition = "\n  partition_column: event_date"  # the folders' dates: the partitions read
    else:  # the same days as a Delta table, one commit (one file) a day: its statistics prune
        reader = lab.spark.read.option("header", True).schema(  # type: ignore[attr-defined]
            "trip_id string, driver_id long, fare double, event_ts timestamp")
        for day in sorted((lab.raw / "days").iterdir()):
            reader.csv(str(day)).coalesce(1).write.format("delta").mode("append").save(str(lab.lake / "days_delta"))
        path, options, partition = "${lake_root}/days_delta", "", ""
    name = f"pruned_{source}"
    incremental = "incremental:\n  time_column: event_ts\n  lookback: 1h" + partition
    lab.write_job(name, PRUNED.format(name=name, format=source, path=path, options=options, incremental=incremental))
    lab.write_job(f"{name}_full", PRUNED.format(name=f"{name}_full", format=source, path=path, options=options,
                                                incremental=""))
    first = run(lab, name, end=START + timedelta(days=2))
    second = run(lab, name, end=START + timedelta(days=5))
    run(lab, f"{name}_full", end=START + timedelta(days=5))
    # the first run needs the events up to 3 Mar 00:00, the second those from 2 Mar 17:00 (its
    # interval's start minus the 6 h window): by date folders 1-3 Mar then 2-5 Mar; by Delta's
    # statistics (no event falls on midnight) 1-2 Mar, then 2-5 Mar
    assert (first.sources[0]["files_read"], first.sources[0]["files"]) == (3 if source == "csv" else 2, 5)
    assert (second.sources[0]["files_read"], second.sources[0]["files"]) == (4, 5)
    assert lab.rows(name) == lab.rows(f"{name}_full")


LATEST = """
name: {name}
sources:
  updates:
    format: {format}
    path: {path}
    {schema}
{incremental}
steps:
  - filter: "driver_id IS NOT NULL"
  - dedup: {{keys: [driver_id], order_by: updated_at}}
  - with_columns: {{is_active: "status = 'active'"}}
  - rename: {{updated_at: profile_updated_at}}
output:
  path: ${{lake_root}}/{name}
  mode: merge
  keys: [driver_id]
"""
JSON_SCHEMA = "schema: {driver_id: long, status: string, rating: double, updated_at: timestamp}"


def _updates(rng: random.Random, batch: int, late: bool) -> list[dict[str, Any]]:
    """Profile updates of drivers 1-8 in hour ``batch``; ``late`` adds versions older than
    any the table holds by now (they must never win)."""
    rows = [{"driver_id": rng.randrange(1, 9), "status": rng.choice(["active", "inactive"]), "rating": rng.randrange(30, 50) / 10,
             "updated_at": f"{START + hours(batch) + timedelta(minutes=rng.randrange(60)):%Y-%m-%dT%H:%M:%SZ}"}
            for _ in range(12)]
    if late:
        rows += [{"driver_id": d, "status": "gone", "rating": 0.0, "updated_at": "2026-02-01T00:00:00Z"} for d in (1, 2, 3)]
    rows.append({"driver_id": None, "status": "active", "rating": 1.0, "updated_at": f"{START:%Y-%m-%dT%H:%M:%SZ}"})
    return rows


def test_latest_state_by_arrival_equals_one_full_run(fresh_lab: Lab) -> None:
    import json

    lab = fresh_lab
    folder = lab._folder("updates")
    path, incremental = "${raw_root}/updates", "incremental: {by: arrival}"
    lab.write_job("profile", LATEST.format(name="profile", format="json", path=path, schema=JSON_SCHEMA, incremental=incremental))
    lab.write_job("profile_full", LATEST.format(name="profile_full", format="json", path=path, schema=JSON_SCHEMA,
                                                incremental=""))
    rng = random.Random(4)
    results, batches = [], []
    for batch in range(4):
        file = folder / f"part-{batch}.json"
        batches.append(_updates(rng, batch, late=batch == 2))
        file.write_text("".join(json.dumps(row) + "\n" for row in batches[-1]))
        mark = app_versions(lab.spark, str(lab.lake / "profile"), [arrivals_app("profile")])[arrivals_app("profile")]
        landed = mark + 0.5 if mark >= 0 else time.time() - 5  # after the last run planned, as a new file is
        os.utime(file, (landed, landed))
        results.append(run(lab, "profile"))
    run(lab, "profile_full")

    assert lab.rows("profile") == lab.rows("profile_full")
    assert "gone" not in {row["status"] for row in lab.rows("profile")}
    # each run read only the file that arrived since the one before
    assert [(r.sources[0]["rows_read"], r.sources[0].get("files_read")) for r in results] == \
        [(13, None), (13, 1), (16, 1), (13, 1)]
    # the late versions the batch's own dedup did not drop (a driver updated in it too) were
    # offered to the merge and left out
    fresh = {row["driver_id"] for row in batches[2] if row["status"] != "gone"}
    assert results[2].incremental["kept_newer"] == len({1, 2, 3} - fresh) > 0
    assert results[0].incremental["files_since"] is None and results[1].incremental["files_since"] is not None


def test_latest_state_from_a_delta_source_reads_its_new_versions(fresh_lab: Lab) -> None:
    lab = fresh_lab
    source = str(lab.lake / "updates_delta")
    path = "${lake_root}/updates_delta"
    lab.write_job("from_delta", LATEST.format(name="from_delta", format="delta", path=path, schema="",
                                              incremental="incremental: {by: arrival}"))
    lab.write_job("from_delta_full", LATEST.format(name="from_delta_full", format="delta", path=path, schema="",
                                                   incremental=""))
    rng = random.Random(6)
    schema = "driver_id long, status string, rating double, updated_at timestamp"
    reads = []
    for batch in range(3):
        rows = [(r["driver_id"], r["status"], r["rating"], datetime.fromisoformat(r["updated_at"]))
                for r in _updates(rng, batch, late=batch == 1)]
        frame = lab.spark.createDataFrame(rows, schema)  # type: ignore[attr-defined]
        writer = frame.write.format("delta").mode("append")
        if batch == 0:
            writer = writer.option("delta.enableChangeDataFeed", "true")
        writer.save(source)
        result = run(lab, "from_delta")
        reads.append((result.sources[0]["delta_version"], result.sources[0]["rows_read"], result.incremental["after_version"]))
    run(lab, "from_delta_full")
    assert lab.rows("from_delta") == lab.rows("from_delta_full")
    assert reads == [(0, 13, None), (1, 16, 0), (2, 13, 1)]
