"""Training sets: Feast's point-in-time join on Spark over the Delta tables, checked on data
small enough to work out by hand, written as Delta and read back with delta-rs; the Delta
versions pinned and recorded; the session featurekit runs on left as it was."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable, write_deltalake

from featurekit import pipeline
from featurekit.cli.present import flag
from featurekit.errors import ConfigError, DataError, face
from featurekit.lineage import RunLogLineage
from featurekit.pipeline import training
from featurekit.pipeline.training import TrainingSetResult
from tests.integration.helpers import TrainingLab

pytestmark = pytest.mark.feast

T0 = datetime(2026, 3, 1, tzinfo=UTC)
H = timedelta(hours=1)
DAY = timedelta(days=1)
T1, T2 = T0 + 10 * H, T0 + 12 * H          # driver 1's two events
T_D2 = T0 + 9 * H                           # driver 2's one event

JOB = """
name: pit_stats
sources:
  events: {format: parquet, path: "${raw_root}/pit_events"}
steps:
  - select: [driver_id, event_ts, value]
output: {path: "${lake_root}/pit_stats", mode: overwrite}
features: {entity: driver, join_keys: [driver_id], timestamp: event_ts, ttl: 1d}
"""


def events(scale: float = 1.0) -> pa.Table:
    """Driver 1 at t1 (1.0) and t2 (2.0); driver 2 once; driver 4 twice at one instant."""
    rows = [(1, T1, 1.0), (1, T2, 2.0), (2, T_D2, 5.0), (4, T0 + 8 * H, 7.0), (4, T0 + 8 * H, 8.0)]
    ids, stamps, values = zip(*rows)
    return pa.table({"driver_id": pa.array(ids, pa.int64()), "event_ts": pa.array(stamps, pa.timestamp("us", tz="UTC")),
                     "value": pa.array([v * scale for v in values], pa.float64())})


# label -> (driver, spine time, expected value): each case worked out from events() by hand
CASES: dict[str, tuple[int, datetime | None, float | None]] = {
    "between": (1, T0 + 11 * H, 1.0),               # t1 < t < t2 -> t1's value
    "between_again": (1, T0 + 11 * H, 1.0),          # the same spine row twice: both kept
    "before_t1": (1, T0 + 9 * H, None),              # nothing known yet
    "at_t1": (1, T1, 1.0),
    "at_t2": (1, T2, 2.0),                           # an event at the spine's instant counts
    "at_ttl": (1, T2 + DAY, 2.0),                    # exactly ttl after the latest event: still in
    "beyond_ttl": (1, T2 + DAY + H, None),           # more than ttl after the latest event
    "d2_beyond_ttl": (2, T_D2 + DAY + timedelta(seconds=1), None),
    "d2_within": (2, T_D2 + H, 5.0),
    "unknown_driver": (3, T0 + 11 * H, None),
    "no_timestamp": (1, None, None),                 # kept, with null features
}


def spine_table(cases: dict[str, tuple[int, datetime | None, float | None]]) -> pa.Table:
    return pa.table({
        "driver_id": pa.array([c[0] for c in cases.values()], pa.int64()),
        "event_timestamp": pa.array([c[1] for c in cases.values()], pa.timestamp("us", tz="UTC")),
        "label": pa.array(list(cases), pa.string()),
    })


def expected(cases: dict[str, tuple[int, datetime | None, float | None]]) -> dict[str, dict[str, Any]]:
    return {label: {"driver_id": d, "event_timestamp": t, "label": label, "value": v} for label, (d, t, v) in cases.items()}


def by_label(path: str | Path) -> dict[str, dict[str, Any]]:
    """The output's rows read by delta-rs, keyed by label."""
    return {row["label"]: row for row in DeltaTable(str(path)).to_pyarrow_table().to_pylist()}


class PitLab(TrainingLab):
    """A project with the pit_stats job run and its Feast repository applied."""

    def __init__(self, root: Path, spark: Any) -> None:
        super().__init__(root, spark, service="pit_stats")
        self.run_job(events())
        self.apply_feast()

    def run_job(self, table: pa.Table) -> pipeline.RunResult:
        self.parquet("pit_events", table)
        return self.run("pit_stats", JOB)

    @property
    def table(self) -> str:
        return str(self.lake / "pit_stats")

    def spine(self, name: str, cases: dict[str, tuple[int, datetime | None, float | None]]) -> Path:
        path = self.root / "spines" / f"{name}.parquet"
        path.parent.mkdir(exist_ok=True)
        pq.write_table(spine_table(cases), path)
        return path


@pytest.fixture(scope="module")
def pit(spark: Any, tmp_path_factory: pytest.TempPathFactory) -> PitLab:
    return PitLab(tmp_path_factory.mktemp("pit") / "project", spark)


@pytest.fixture(scope="module")
def result(pit: PitLab) -> TrainingSetResult:
    """The training set of the main spine (every case), built once for the tests that read it."""
    return pit.build(pit.spine("main", CASES), "main")


# --------------------------------------------------------------------------- point-in-time values


def test_point_in_time_values_by_hand(result: TrainingSetResult) -> None:
    assert by_label(result.out) == expected(CASES)
    assert result.rows == len(CASES) and result.rows_without_timestamp == 1
    assert result.columns == ["driver_id", "event_timestamp", "label", "value"]   # spine columns, then features
    assert result.features == ["pit_stats:value"]


def test_the_output_is_a_delta_table_with_the_spine_types(result: TrainingSetResult) -> None:
    table = DeltaTable(result.out)
    assert table.version() == result.out_version == 0
    assert [(f.name, f.type.type) for f in table.schema().fields] == [
        ("driver_id", "long"), ("event_timestamp", "timestamp"), ("label", "string"), ("value", "double")]
    commit = table.history(1)[0]
    assert commit["operation"] == "WRITE" and int(commit["operationMetrics"]["numOutputRows"]) == len(CASES)
    assert json.loads(commit["userMetadata"])["run_id"] == result.run_id
    assert table.metadata().configuration["featurekit.job"] == "training-set:pit_stats"


def test_lineage_records_views_versions_spine_and_rows(pit: PitLab, result: TrainingSetResult) -> None:
    records = [r for r in RunLogLineage(pit.settings.runs_dir).records() if r["run_id"] == result.run_id]
    assert len(records) == 1 and result.lineage.endswith(f"training_set-{result.run_id}.json")
    record = records[0]
    version = DeltaTable(pit.table).version()
    assert record["kind"] == "training_set"
    assert record["feature_service"] == "pit_stats" and record["feast_project"] == pit.settings.feast.project
    assert record["feature_views"] == {"pit_stats": version} == result.views
    assert record["features"] == ["pit_stats:value"]
    assert record["spine_path"] == result.spine and record["spine_path"].endswith("main.parquet")
    assert record["output_path"] == result.out and record["output_version"] == 0
    assert record["rows"] == len(CASES)
    # the feature data read: the view's Delta table at the version the join read
    (read,) = record["offline_feature_sets"]
    assert read["kind"] == "offline_feature_set" and read["feature_view"] == "pit_stats" and read["job"] == "pit_stats"
    assert (read["delta_path"], read["delta_version"]) == (str(pit.table), version)
    assert list(read["view_schema"]["features"]) == ["value"] and read["recorded_at"] == record["recorded_at"]


def test_featurekit_session_is_left_as_it_was(spark: Any, result: TrainingSetResult) -> None:
    from pyspark.sql import SparkSession

    assert result.rows == len(CASES)   # a training set was built on this session
    assert spark.conf.get("spark.sql.parser.quotedRegexColumnNames") == "false"
    assert spark.sql("SELECT 1 AS `x`").columns == ["x"]   # backticks are names, not regexes
    views = [t.name for t in spark.catalog.listTables() if t.isTemporary]
    assert not [v for v in views if v.startswith("feast_") or v == "entity_dataframe" or v.endswith("__cleaned")]
    assert SparkSession.getActiveSession() is spark


# --------------------------------------------------------------------------- spine formats, versions


@pytest.mark.parametrize("kind", ["csv", "delta"])
def test_csv_and_delta_spines(pit: PitLab, kind: str) -> None:
    cases = {k: CASES[k] for k in ("between", "before_t1", "at_t2", "beyond_ttl")}
    folder = pit.root / "spines" / f"small_{kind}"
    if kind == "csv":
        folder.mkdir(parents=True)
        lines = ["driver_id,label,when"] + [f"{d},{label},{t:%Y-%m-%d %H:%M:%S}" for label, (d, t, _) in cases.items()]
        (folder / "part-0.csv").write_text("\n".join(lines) + "\n")
        result = pit.build(folder, f"from_{kind}", timestamp="when")   # a timestamp column with another name
        rows = {label: {("event_timestamp" if k == "when" else k): v for k, v in row.items()}
                for label, row in by_label(result.out).items()}
        assert result.spine_version is None
    else:
        write_deltalake(str(folder), spine_table(cases))
        write_deltalake(str(folder), spine_table(cases), mode="overwrite")   # version 1
        result = pit.build(folder, f"from_{kind}")
        rows = by_label(result.out)
        assert result.spine_version == 1
    assert result.spine_format == kind
    assert rows == expected(cases)


def test_the_recorded_version_is_the_one_read(pit: PitLab, monkeypatch: pytest.MonkeyPatch) -> None:
    """A commit landing after the version was taken is not read: the views are pinned."""
    before = DeltaTable(pit.table).version()
    spine = pit.spine("pinned", {k: CASES[k] for k in ("between", "at_t2")})
    pit.run_job(events(scale=10))   # a new version with every value x10
    try:
        now = pit.build(spine, "pinned_now")
        assert now.views == {"pit_stats": before + 1}
        assert {k: r["value"] for k, r in by_label(now.out).items()} == {"between": 10.0, "at_t2": 20.0}

        chosen, views = training.select_service(pit.project, pit.settings, "pit_stats")
        as_taken_earlier = [replace(v, version=before) for v in views]
        monkeypatch.setattr(training, "select_service", lambda *a: (chosen, as_taken_earlier))
        then = pit.build(spine, "pinned_then")
        assert then.views == {"pit_stats": before}
        assert {k: r["value"] for k, r in by_label(then.out).items()} == {"between": 1.0, "at_t2": 2.0}
    finally:
        pit.run_job(events())


def test_the_python_time_zone_does_not_move_the_bounds(pit: PitLab, monkeypatch: pytest.MonkeyPatch) -> None:
    """PySpark returns TIMESTAMPs in the process's local time; Feast makes SQL bounds of them.

    The latest spine time is t2 itself: a bound 8 hours early (Los Angeles) would lose both events.
    """
    cases = {k: CASES[k] for k in ("before_t1", "at_t1", "between", "at_t2")}
    spine = pit.spine("zoned", cases)
    monkeypatch.setenv("TZ", "America/Los_Angeles")
    time.tzset()
    try:
        assert time.timezone != 0
        result = pit.build(spine, "zoned")
    finally:
        monkeypatch.undo()
        time.tzset()
    assert by_label(result.out) == expected(cases)


# --------------------------------------------------------------------------- refusals


def test_rows_of_one_key_at_one_instant_give_one_row_the_same_on_every_build(pit: PitLab) -> None:
    """Driver 4 has two rows at 08:00 (7.0 and 8.0): featurekit's join takes the one whose
    features sort last, so the spine row stays one row and a rebuild gives the same value."""
    spine = pit.spine("ties", {"between": CASES["between"], "d4": (4, T0 + 9 * H, None)})
    first, again = pit.build(spine, "ties"), pit.build(spine, "ties_again")
    assert {k: r["value"] for k, r in by_label(first.out).items()} == {"between": 1.0, "d4": 8.0}
    assert by_label(again.out) == by_label(first.out) and first.rows == 2


def test_feast_engine_refuses_duplicate_feature_rows_and_keeps_the_previous_version(pit: PitLab) -> None:
    """Feast's retrieval returns both rows for the spine row: the set is refused, nothing written."""
    spine = pit.spine("dup_ok", {"between": CASES["between"]})
    first = pit.build(spine, "dup", engine="feast")
    assert by_label(first.out) == expected({"between": CASES["between"]})
    dup = pit.spine("dup", {"between": CASES["between"], "d4": (4, T0 + 9 * H, None)})
    with pytest.raises(DataError) as info:
        pit.build(dup, "dup", engine="feast")
    assert "3 rows built for 2 spine rows; nothing was written" in str(info.value)
    table = DeltaTable(first.out)
    assert table.version() == first.out_version
    assert list(by_label(first.out)) == ["between"]


def test_unknown_service_suggests_a_close_name(pit: PitLab) -> None:
    with pytest.raises(ConfigError) as info, face(flag):   # the parameters as the CLI names them
        pit.build(pit.root / "nowhere", "never", service="pit_stat")
    assert str(info.value) == ("command line --service: unknown feature service 'pit_stat' — "
                               "did you mean 'pit_stats'? (services: pit_stats)")


def test_spine_without_the_join_key_names_it_and_lists_the_columns(pit: PitLab) -> None:
    path = pit.root / "spines" / "no_key.parquet"
    pq.write_table(pa.table({"driver": pa.array([1], pa.int64()),
                             "event_timestamp": pa.array([T1], pa.timestamp("us", tz="UTC"))}), path)
    with pytest.raises(ConfigError) as info:
        pit.build(path, "no_key")
    assert str(info.value) == ("spine columns: missing join key(s) 'driver_id' of feature view(s) pit_stats — "
                               "the spine has: driver (bigint), event_timestamp (timestamp)")
    assert not (pit.root / "out" / "no_key").exists()


def test_spine_without_a_timestamp_says_how_to_name_it(pit: PitLab) -> None:
    path = pit.root / "spines" / "no_ts.parquet"
    pq.write_table(pa.table({"driver_id": pa.array([1], pa.int64()),
                             "ts": pa.array([T1], pa.timestamp("us", tz="UTC"))}), path)
    with pytest.raises(ConfigError) as info, face(flag):
        pit.build(path, "no_ts")
    assert str(info.value) == ("spine columns: no event timestamp column 'event_timestamp' (give its name with "
                               "--timestamp) — the spine has: driver_id (bigint), ts (timestamp)")
