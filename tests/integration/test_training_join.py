"""featurekit's own point-in-time join against Feast's retrieval and against plain Python.

One project serves three views of generated data (seeded, their Delta tables written by
delta-rs): ``eq_driver`` (driver_id, ttl 2h), ``eq_profile`` (driver_id, ttl 30d) and ``eq_zone``
(driver_id and zone, an int and a string key, ttl 1d). A spine with the edge cases (a time equal to a feature row's, before a key's first row,
exactly at and just past the ttl, unknown keys, null features, duplicate rows, no time) is built
by both engines and by :func:`reference`, a few lines of Python over the generated rows. No
key has two rows at one instant: Feast returns a spine row twice then (tested in
test_training_set.py). A second, tiny project has a table overwritten after a time T, for
``as_of``.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from bisect import bisect_right
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable, write_deltalake

from featurekit.cli import main
from featurekit.cli.present import flag
from featurekit.errors import DataError, UsageError, face
from featurekit.lineage import RunLogLineage
from tests.conftest import REPO
from tests.integration.helpers import TrainingLab, sort_rows

T0 = datetime(2026, 3, 1, tzinfo=UTC)
H, DAY, S = timedelta(hours=1), timedelta(days=1), timedelta(seconds=1)
Row = dict[str, Any]


@dataclass(frozen=True, eq=False)   # one object per view: a dict key by identity
class View:
    """A feature view as the tests generate and check it."""

    name: str
    keys: tuple[str, ...]
    timestamp: str
    ttl: timedelta
    features: dict[str, pa.DataType]

    def key(self, row: Row) -> tuple[Any, ...]:
        return tuple(row[k] for k in self.keys)

    def job(self, entity: str, ttl: str, services: str = "") -> str:
        columns = ", ".join((*self.keys, self.timestamp, *self.features))
        return (f"name: {self.name}\n"
                f"sources:\n  rows: {{format: parquet, path: \"${{raw_root}}/{self.name}\"}}\n"
                f"steps:\n  - select: [{columns}]\n"
                f"output: {{path: \"${{lake_root}}/{self.name}\", mode: overwrite}}\n"
                f"features:\n  entity: {entity}\n  join_keys: [{', '.join(self.keys)}]\n"
                f"  timestamp: {self.timestamp}\n  ttl: {ttl}\n{services}")

    def table(self, rows: list[Row]) -> pa.Table:
        types = {"driver_id": pa.int64(), "zone": pa.string(), self.timestamp: pa.timestamp("us", tz="UTC"),
                 **self.features}
        columns = (*self.keys, self.timestamp, *self.features)
        return pa.table({c: pa.array([r[c] for r in rows], types[c]) for c in columns})


DRIVER = View("eq_driver", ("driver_id",), "event_ts", 2 * H, {"speed": pa.float64(), "trips": pa.int64()})
PROFILE = View("eq_profile", ("driver_id",), "updated_at", 30 * DAY, {"rating": pa.float64(), "status": pa.string()})
ZONE = View("eq_zone", ("driver_id", "zone"), "zone_ts", DAY, {"demand": pa.float64(), "note": pa.string()})
SERVICES = ("  services:\n"
            "    eq_all: [eq_driver, eq_zone, eq_profile]\n"     # the spine's service
            "    eq_range: [eq_zone, eq_driver, eq_profile]\n")  # without a spine: eq_zone has every key
JOBS = {PROFILE: PROFILE.job("driver", "30d"), ZONE: ZONE.job("driver_zone", "1d"),
        DRIVER: DRIVER.job("driver", "2h", SERVICES)}
ALL = [DRIVER, ZONE, PROFILE]          # eq_all's order: its output's feature columns
ZONES = ["z1", "z2", "z3", "z4"]


def maybe(rng: random.Random, value: Any, null_share: float = 0.08) -> Any:
    return None if rng.random() < null_share else value


def distinct_times(rng: random.Random, count: int, first: datetime, span: timedelta) -> list[datetime]:
    """``count`` distinct whole minutes in [first, first + span), sorted: no key has two rows at one instant."""
    return [first + timedelta(minutes=m) for m in sorted(rng.sample(range(int(span / timedelta(minutes=1))), count))]


def generate(seed: int = 22) -> dict[View, list[Row]]:
    rng = random.Random(seed)
    data: dict[View, list[Row]] = {DRIVER: [], PROFILE: [], ZONE: []}
    for driver in range(1, 31):
        for at in distinct_times(rng, 40, T0, 3 * DAY):
            data[DRIVER].append({"driver_id": driver, "event_ts": at, "speed": maybe(rng, round(rng.uniform(10, 90), 2)),
                                 "trips": maybe(rng, rng.randint(0, 20))})
        for zone in rng.sample(ZONES, rng.randint(1, 3)):
            for at in distinct_times(rng, 6, T0, 3 * DAY):
                data[ZONE].append({"driver_id": driver, "zone": zone, "zone_ts": at,
                                   "demand": maybe(rng, round(rng.uniform(0, 5), 3)),
                                   "note": maybe(rng, rng.choice(["calm", "busy"]), 0.2)})
    for driver in range(1, 36):   # 31-35: known to the profiles only
        for at in distinct_times(rng, 3, T0 - 10 * DAY, 13 * DAY):
            data[PROFILE].append({"driver_id": driver, "updated_at": at, "rating": maybe(rng, round(rng.uniform(3, 5), 2)),
                                  "status": maybe(rng, rng.choice(["active", "paused"]), 0.15)})
    return data


def make_spine(data: dict[View, list[Row]], seed: int = 23) -> tuple[list[Row], dict[str, list[int]]]:
    """The spine's rows (``row_id``, driver_id, zone, event_timestamp, label) and the row ids of
    each edge case."""
    rng = random.Random(seed)
    rows: list[Row] = []
    cases: dict[str, list[int]] = {}

    def add(case: str, driver: int, zone: str, at: datetime | None) -> None:
        cases.setdefault(case, []).append(len(rows))
        rows.append({"row_id": len(rows), "driver_id": driver, "zone": zone, "event_timestamp": at,
                     "label": rng.randint(0, 1)})

    for _ in range(900):
        add("random", rng.choice([*range(1, 37), 999]), rng.choice([*ZONES, "z9"]),
            T0 - DAY + timedelta(seconds=rng.randrange(int(4.5 * DAY / S))))
    drivers = sorted(data[DRIVER], key=lambda r: (r["driver_id"], r["event_ts"]))
    for row in rng.sample(drivers, 60) + [r for r in drivers if r["speed"] is None][:10]:
        add("at_driver_time", row["driver_id"], rng.choice(ZONES), row["event_ts"])
    for row in rng.sample(data[ZONE], 50):
        add("at_zone_time", row["driver_id"], row["zone"], row["zone_ts"])
    for row in rng.sample(data[PROFILE], 15):
        add("at_profile_time", row["driver_id"], rng.choice(ZONES), row["updated_at"])
    for driver in range(1, 11):
        first = min(r["event_ts"] for r in drivers if r["driver_id"] == driver)
        add("before_first", driver, "z1", first - S)
    # rows whose next row of the key is more than the ttl later: exactly at the ttl, and a second past it
    lonely = [a for a, b in zip(drivers, drivers[1:]) if a["driver_id"] == b["driver_id"]
              and b["event_ts"] - a["event_ts"] > DRIVER.ttl + S]
    for row in rng.sample(lonely, 15):
        add("at_ttl", row["driver_id"], "z2", row["event_ts"] + DRIVER.ttl)
        add("past_ttl", row["driver_id"], "z2", row["event_ts"] + DRIVER.ttl + S)
    add("unknown", 999, "z1", T0 + DAY)
    add("unknown_zone", 3, "z9", T0 + DAY)
    for _ in range(3):
        add("no_time", 5, "z1", None)
    duplicates = [dict(r) for r in rng.sample(rows, 40)]
    cases["duplicate"] = [r["row_id"] for r in duplicates]
    rows += duplicates
    rng.shuffle(rows)
    return rows, cases


def latest(view: View, rows: list[Row]) -> dict[tuple[Any, ...], tuple[list[datetime], list[Row]]]:
    """Per key of ``view``, its rows sorted by time (and the times alone, for bisect)."""
    by_key: dict[tuple[Any, ...], list[Row]] = {}
    for row in rows:
        by_key.setdefault(view.key(row), []).append(row)
    return {k: ([r[view.timestamp] for r in sorted(v, key=lambda r: r[view.timestamp])],
                sorted(v, key=lambda r: r[view.timestamp])) for k, v in by_key.items()}


def reference(spine: list[Row], timestamp: str, views: list[View], data: dict[View, list[Row]]) -> list[Row]:
    """The point-in-time join by its definition: per row and view, the key's latest row at or
    before the row's time and at most the ttl older, else nulls."""
    indexes = {view: latest(view, data[view]) for view in views}
    out = []
    for row in spine:
        joined = dict(row)
        for view in views:
            times, rows = indexes[view].get(view.key(row), ([], []))
            at = row[timestamp]
            i = bisect_right(times, at) - 1 if at is not None else -1
            found = rows[i] if i >= 0 and at - times[i] <= view.ttl else None
            joined.update({f: None if found is None else found[f] for f in view.features})
        out.append(joined)
    return out


def spine_table(rows: list[Row]) -> pa.Table:
    return pa.table({"row_id": pa.array([r["row_id"] for r in rows], pa.int64()),
                     "driver_id": pa.array([r["driver_id"] for r in rows], pa.int64()),
                     "zone": pa.array([r["zone"] for r in rows], pa.string()),
                     "event_timestamp": pa.array([r["event_timestamp"] for r in rows], pa.timestamp("us", tz="UTC")),
                     "label": pa.array([r["label"] for r in rows], pa.int64())})


def by_row_id(rows: list[Row]) -> list[Row]:
    return sort_rows(rows, ["row_id"])


def differences(got: list[Row], want: list[Row], limit: int = 5) -> list[str]:
    """The first rows that differ, column by column, for a readable failure."""
    found = []
    for a, b in zip(got, want):
        if a != b:
            found.append(f"row {a.get('row_id')}: " + ", ".join(f"{k}={a.get(k)!r} (expected {b.get(k)!r})"
                                                                 for k in {**a, **b} if a.get(k) != b.get(k)))
    if len(got) != len(want):
        found.append(f"{len(got)} rows, expected {len(want)}")
    return found[:limit]


class JoinLab(TrainingLab):
    """The three views' jobs, their tables written by delta-rs as a run of each would write them
    (runs are tested elsewhere; this keeps the module quick); Feast applied only when asked."""

    def __init__(self, root: Path, spark: Any) -> None:
        super().__init__(root, spark, service="eq_all")
        self.data = generate()
        for view, text in JOBS.items():
            self.write_job(view.name, text)
            write_deltalake(str(self.lake / view.name), view.table(self.data[view]))
        self.spine_rows, self.cases = make_spine(self.data)
        self.spine = self.root / "spines" / "main.parquet"
        self.spine.parent.mkdir(exist_ok=True)
        pq.write_table(spine_table(self.spine_rows), self.spine)
        self.expected = by_row_id(reference(self.spine_rows, "event_timestamp", ALL, self.data))


@pytest.fixture(scope="module")
def jl(spark: Any, tmp_path_factory: pytest.TempPathFactory) -> JoinLab:
    return JoinLab(tmp_path_factory.mktemp("join") / "project", spark)


# --------------------------------------------------------------------------- the reference itself


def test_the_spine_holds_every_edge_case(jl: JoinLab) -> None:
    """The cases are in the data, and the reference gives them the values the definition says."""
    expected = {r["row_id"]: r for r in jl.expected}
    spine = {r["row_id"]: r for r in jl.spine_rows}
    drivers = {(r["driver_id"], r["event_ts"]): r for r in jl.data[DRIVER]}
    for case in ("at_driver_time", "at_ttl"):   # the row at the spine's time, or exactly ttl before it
        for i in jl.cases[case]:
            shift = DRIVER.ttl if case == "at_ttl" else timedelta(0)
            row = drivers[(spine[i]["driver_id"], spine[i]["event_timestamp"] - shift)]
            assert (expected[i]["speed"], expected[i]["trips"]) == (row["speed"], row["trips"])
    assert any(expected[i]["speed"] is None and expected[i]["trips"] is not None for i in jl.cases["at_driver_time"])
    for case in ("past_ttl", "before_first"):
        assert all(expected[i]["speed"] is None and expected[i]["trips"] is None for i in jl.cases[case])
    assert any(expected[i]["rating"] is not None for i in jl.cases["before_first"])   # the other view still joins
    features = [f for view in ALL for f in view.features]
    assert all(expected[i][f] is None for case in ("unknown", "no_time") for i in jl.cases[case] for f in features)
    (i,) = jl.cases["unknown_zone"]
    assert (expected[i]["demand"], expected[i]["note"]) == (None, None)
    assert len(jl.spine_rows) - len({r["row_id"] for r in jl.spine_rows}) == len(jl.cases["duplicate"]) == 40


# --------------------------------------------------------------------------- equivalence with Feast


@pytest.mark.feast
def test_featurekit_and_feast_give_the_same_rows_and_the_definitions(jl: JoinLab) -> None:
    jl.apply_feast()
    ours, feast = jl.build(jl.spine, "eq_featurekit"), jl.build(jl.spine, "eq_feast", engine="feast")
    assert ours.rows == feast.rows == len(jl.spine_rows)
    assert ours.rows_without_timestamp == sum(r["event_timestamp"] is None for r in jl.spine_rows) >= 3
    assert ours.columns == ["row_id", "driver_id", "zone", "event_timestamp", "label",
                            "speed", "trips", "demand", "note", "rating", "status"]
    assert set(feast.columns) == set(ours.columns)
    ours_rows, feast_rows = jl.out_rows("eq_featurekit", ["row_id"]), jl.out_rows("eq_feast", ["row_id"])
    assert differences(ours_rows, feast_rows) == []
    assert differences(ours_rows, jl.expected) == []
    assert Counter(r["row_id"] for r in ours_rows) == Counter(r["row_id"] for r in jl.spine_rows)


# --------------------------------------------------------------------------- spine formats


def pandas_spine(rows: list[Row], aware: bool) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    stamps = pd.to_datetime(frame["event_timestamp"], utc=True)
    frame["event_timestamp"] = stamps if aware else stamps.dt.tz_localize(None)
    return frame


@pytest.mark.parametrize("kind", ["csv", "parquet_pandas_utc", "parquet_pandas_naive", "delta"])
def test_each_spine_format_gives_the_same_values(jl: JoinLab, kind: str) -> None:
    rows = [r for r in jl.spine_rows if r["event_timestamp"] is not None][:300]
    assert {c for c, ids in jl.cases.items() if {r["row_id"] for r in rows} & set(ids)} >= {
        "at_driver_time", "at_zone_time", "at_ttl", "past_ttl", "before_first", "duplicate"}
    folder = jl.root / "spines" / kind
    folder.mkdir(parents=True)
    warnings = []
    if kind == "csv":
        lines = ["row_id,driver_id,zone,event_timestamp,label"] + [
            f"{r['row_id']},{r['driver_id']},{r['zone']},{r['event_timestamp']:%Y-%m-%d %H:%M:%S},{r['label']}"
            for r in rows]
        (folder / "part-0.csv").write_text("\n".join(lines) + "\n")
    elif kind == "delta":
        write_deltalake(str(folder), spine_table(rows))
    else:
        frame = pandas_spine(rows, aware=kind.endswith("utc"))
        # one time a few nanoseconds past a feature row's: read at microseconds, it is that row's time
        at = frame.index[frame["row_id"] == next(r["row_id"] for r in rows if r["row_id"] in jl.cases["at_driver_time"])]
        frame.loc[at, "event_timestamp"] += pd.Timedelta(nanoseconds=789)
        frame.to_parquet(folder / "part-0.parquet", index=False)
        stored = pq.read_schema(folder / "part-0.parquet").field("event_timestamp").type
        assert (stored.unit, stored.tz) == ("ns", "UTC" if kind.endswith("utc") else None)
        warnings = [f"source 'spine': column 'event_timestamp' holds nanosecond timestamps; {len(at)} value(s) were "
                    "truncated to microseconds, Spark's precision (declare it long in the source's schema to keep "
                    "the nanoseconds as a number)"]
    result = jl.build(folder, f"from_{kind}")
    assert result.spine_format == kind.split("_")[0] and result.warnings == warnings
    got = jl.out_rows(f"from_{kind}", ["row_id"])
    if kind.endswith("naive"):   # a naive time is UTC, and stays naive in the output
        assert all(r["event_timestamp"].tzinfo is None for r in got)
        got = [{**r, "event_timestamp": r["event_timestamp"].replace(tzinfo=UTC)} for r in got]
    assert differences(got, by_row_id(reference(rows, "event_timestamp", ALL, jl.data))) == []


# --------------------------------------------------------------------------- without a spine


def test_start_end_gives_every_row_of_the_first_view_in_the_range_joined_point_in_time(jl: JoinLab) -> None:
    zone_rows = sorted(jl.data[ZONE], key=lambda r: r["zone_ts"])
    start, end = zone_rows[40]["zone_ts"], zone_rows[-60]["zone_ts"]   # both ends are rows' times
    result = jl.build(None, "range", service="eq_range", start=start, end=end)
    inside = [r for r in zone_rows if start <= r["zone_ts"] <= end]
    assert inside[0]["zone_ts"] == start and inside[-1]["zone_ts"] == end
    want = reference(inside, "zone_ts", [DRIVER, PROFILE], jl.data)
    key = ["driver_id", "zone", "zone_ts"]
    assert differences(jl.out_rows("range", key), sort_rows(want, key)) == []
    assert result.rows == len(inside) and result.spine == "" and (result.start, result.end) == (start.isoformat(),
                                                                                                  end.isoformat())
    assert result.columns == ["driver_id", "zone", "zone_ts", "demand", "note", "speed", "trips", "rating", "status"]
    record = next(r for r in RunLogLineage(jl.settings.runs_dir).records() if r["run_id"] == result.run_id)
    assert (record["start"], record["end"], record["spine_path"], record["rows"]) == (start.isoformat(),
                                                                                      end.isoformat(), "", len(inside))


def test_a_range_without_rows_is_refused(jl: JoinLab) -> None:
    start, end = T0 - 3 * DAY, T0 - DAY
    version = DeltaTable(str(jl.lake / "eq_zone")).version()
    with pytest.raises(DataError) as info:
        jl.build(None, "empty_range", service="eq_range", start=start, end=end)
    assert str(info.value) == (f"feature view 'eq_zone' has no row from {start.isoformat()} to {end.isoformat()} "
                               f"(at version {version}); nothing was written")
    assert not jl.out("empty_range").exists()


def test_a_range_whose_first_view_lacks_the_other_views_keys_is_refused(jl: JoinLab) -> None:
    with pytest.raises(UsageError) as info, face(flag):
        jl.build(None, "no_zone", start=T0, end=T0 + DAY)   # eq_all: eq_driver first, without a zone
    assert str(info.value) == ("command line --start: without a spine, the rows are those of the first view, "
                               "'eq_driver', and the other views join on its columns: eq_zone joins on 'zone', "
                               "which 'eq_driver' does not have (give a --spine instead)")
    assert not jl.out("no_zone").exists()


# --------------------------------------------------------------------------- Feast not on this path

CHILD = """
import json, sys
from pathlib import Path
sys.modules["feast"] = None          # `import feast` raises ImportError from here on
from featurekit.config import Project, load_settings
from featurekit.pipeline.training import training_set
from tests.integration.conftest import with_test_conf

root, spine, out = sys.argv[1:4]
project = Project(Path(root))
result = training_set(project, with_test_conf(load_settings(project, "local")), service="eq_all", spine=spine, out=out)
loaded = sorted(m for m, v in sys.modules.items() if m.split(".")[0] == "feast" and v is not None)
print(json.dumps({"rows": result.rows, "feast_modules": loaded}))
"""


def test_the_default_engine_builds_without_feast(jl: JoinLab) -> None:
    rows = [r for r in jl.spine_rows if r["row_id"] in {*jl.cases["at_zone_time"], *jl.cases["past_ttl"]}]
    spine = jl.root / "spines" / "no_feast.parquet"
    pq.write_table(spine_table(rows), spine)
    env = {**os.environ, "PYTHONPATH": str(REPO), "FEATUREKIT_JARS_DIR": str(REPO / ".featurekit" / "jars")}
    done = subprocess.run([sys.executable, "-c", CHILD, str(jl.root), str(spine), str(jl.out("no_feast"))],
                          cwd=jl.root, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"rows": len(rows), "feast_modules": []}
    want = by_row_id(reference(rows, "event_timestamp", ALL, jl.data))
    assert differences(jl.out_rows("no_feast", ["row_id"]), want) == []


# --------------------------------------------------------------------------- as of a time

STATS = View("ao_stats", ("driver_id",), "event_ts", DAY, {"value": pa.float64()})
TIERS = View("ao_tier", ("driver_id",), "updated_at", 30 * DAY, {"tier": pa.string()})
AO_SERVICE = "  services:\n    ao_both: [ao_stats, ao_tier]\n"


def stats_rows(scale: float, backfill: bool) -> list[Row]:
    rows = [(1, T0 + H, 1.0), (2, T0 + 2 * H, 5.0), (1, T0 + 3 * H, 2.0)] + ([(2, T0 + 4 * H, 6.0)] if backfill else [])
    return [{"driver_id": d, "event_ts": t, "value": v * scale} for d, t, v in rows]


class AsOfLab(TrainingLab):
    """ao_stats written, then overwritten after ``before_overwrite`` with values x10 and a row
    backfilled earlier than the spine's times; ao_tier written once, before."""

    def __init__(self, root: Path, spark: Any) -> None:
        super().__init__(root, spark, service="ao_both")
        # the CLI reads the env's files: lineage to the run log, as in the library's tests
        local = root / "conf" / "local" / "featurekit.yaml"
        local.write_text(local.read_text().replace("enabled: true", "enabled: false"))
        self.parquet("ao_tier", TIERS.table([{"driver_id": 1, "updated_at": T0 - DAY, "tier": "gold"},
                                             {"driver_id": 2, "updated_at": T0, "tier": "silver"}]))
        self.run("ao_tier", TIERS.job("driver", "30d"))
        self.write_stats(1, backfill=False)   # declares the service of both: after ao_tier
        self.old = {"ao_stats": self.version("ao_stats"), "ao_tier": self.version("ao_tier")}
        time.sleep(0.2)   # commit times are in milliseconds: T falls strictly between the two commits
        self.before_overwrite = datetime.now(UTC)
        time.sleep(0.2)
        self.write_stats(10, backfill=True)
        self.spine = self.root / "spines" / "ao.parquet"
        self.spine.parent.mkdir(exist_ok=True)
        pq.write_table(pa.table({"driver_id": pa.array([1, 1, 2], pa.int64()),
                                 "event_timestamp": pa.array([T0 + 2 * H, T0 + 5 * H, T0 + 5 * H],
                                                             pa.timestamp("us", tz="UTC")),
                                 "label": pa.array(["a", "b", "c"])}), self.spine)

    def write_stats(self, scale: float, backfill: bool) -> None:
        self.scale = scale
        self.parquet("ao_stats", STATS.table(stats_rows(scale, backfill)))
        self.run("ao_stats", STATS.job("driver", "1d", AO_SERVICE))

    def version(self, name: str) -> int:
        return DeltaTable(str(self.lake / name)).version()

    def values(self, out: str) -> dict[str, tuple[Any, Any]]:
        return {r["label"]: (r["value"], r["tier"]) for r in self.out_rows(out)}


@pytest.fixture(scope="module")
def ao(spark: Any, tmp_path_factory: pytest.TempPathFactory) -> AsOfLab:
    return AsOfLab(tmp_path_factory.mktemp("as_of") / "project", spark)


OLD = {"a": (1.0, "gold"), "b": (2.0, "gold"), "c": (5.0, "silver")}


def test_as_of_reads_the_tables_as_they_were_and_records_it(ao: AsOfLab) -> None:
    now = ao.build(ao.spine, "ao_now")
    k = ao.scale   # the latest write's: the backfilled 6.0 is driver 2's latest now
    assert ao.values("ao_now") == {"a": (1.0 * k, "gold"), "b": (2.0 * k, "gold"), "c": (6.0 * k, "silver")}
    assert now.views == {"ao_stats": ao.version("ao_stats"), "ao_tier": ao.old["ao_tier"]} and now.as_of is None
    assert now.views["ao_stats"] > ao.old["ao_stats"]

    then = ao.build(ao.spine, "ao_then", as_of=ao.before_overwrite)
    assert ao.values("ao_then") == OLD
    assert then.views == ao.old and then.as_of == ao.before_overwrite.isoformat()
    record = next(r for r in RunLogLineage(ao.settings.runs_dir).records() if r["run_id"] == then.run_id)
    assert record["feature_views"] == ao.old and record["as_of"] == ao.before_overwrite.isoformat()
    assert {s["feature_view"]: s["delta_version"] for s in record["offline_feature_sets"]} == ao.old


def test_the_same_as_of_rebuilds_the_same_rows_after_more_writes(ao: AsOfLab) -> None:
    first = ao.build(ao.spine, "ao_first", as_of=ao.before_overwrite)
    ao.write_stats(100, backfill=True)   # one more version after T
    again = ao.build(ao.spine, "ao_again", as_of=ao.before_overwrite)
    assert ao.out_rows("ao_again") == ao.out_rows("ao_first") and ao.values("ao_again") == OLD
    assert first.views == again.views == ao.old


def test_as_of_before_the_tables_existed_is_refused(ao: AsOfLab) -> None:
    when = T0 - DAY   # the tables were written today, long after

    def earliest(name: str) -> str:
        stamp = min(DeltaTable(str(ao.lake / name)).history(), key=lambda c: c["version"])["timestamp"]
        return datetime.fromtimestamp(stamp / 1000).astimezone().isoformat()

    with pytest.raises(UsageError) as info, face(flag):
        ao.build(ao.spine, "ao_never", as_of=when)
    assert str(info.value) == (
        f"command line --as-of: feature view 'ao_stats': its table did not exist yet at {when.isoformat()} "
        f"(earliest commit kept: version 0 at {earliest('ao_stats')}); feature view 'ao_tier': its table did not "
        f"exist yet at {when.isoformat()} (earliest commit kept: version 0 at {earliest('ao_tier')})")
    assert not ao.out("ao_never").exists()


def test_the_cli_builds_a_range_as_of_a_time(ao: AsOfLab, capsys: pytest.CaptureFixture[str]) -> None:
    """``featurekit training-set --start --end --as-of`` in this process, on the shared session."""
    out = ao.out("ao_cli")
    code = main(["--project", str(ao.root), "training-set", "--service", "ao_both", "--out", str(out),
                 "--start", "2026-03-01T01:00:00Z", "--end", "2026-03-01T04:00:00+00:00",
                 "--as-of", ao.before_overwrite.isoformat()])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    rows = ao.out_rows("ao_cli", ["event_ts"])
    assert [(r["driver_id"], r["event_ts"], r["value"], r["tier"]) for r in rows] == [
        (1, T0 + H, 1.0, "gold"), (2, T0 + 2 * H, 5.0, "silver"), (1, T0 + 3 * H, 2.0, "gold")]   # not the backfill
    assert f"Delta v{ao.old['ao_stats']} (as of {ao.before_overwrite.isoformat()})" in " ".join(captured.out.split())
    record = max((r for r in RunLogLineage(ao.settings.runs_dir).records() if r["output_path"] == str(out)),
                 key=lambda r: r["recorded_at"])
    assert (record["start"], record["end"], record["as_of"], record["feature_views"]) == (
        (T0 + H).isoformat(), (T0 + 4 * H).isoformat(), ao.before_overwrite.isoformat(), ao.old)
