"""Feast over the Delta tables: definitions from the job specs, `feast apply` (the real CLI),
materialization into SQLite and Redis verified against the table, incremental windows and ttl,
the count check catching a broken materialization, online lookups."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from featurekit import pipeline
from featurekit.config import Project, Settings
from featurekit.errors import ConfigError, DataError, SpecError
from featurekit.lineage import RunLogLineage
from featurekit.pipeline import features
from featurekit.pipeline.materialize import materialize
from featurekit.online import OnlineFeatures
from tests.conftest import REPO
from tests.integration.conftest import with_test_conf
from tests.integration.helpers import Lab, online_newest

pytestmark = pytest.mark.feast

T0 = datetime(2026, 3, 1, tzinfo=UTC)

STATS_JOB = """
name: driver_stats
owner: mobility-data
sources:
  stats: {format: parquet, path: "${raw_root}/stats"}
steps:
  - with_columns: {event_date: "to_date(event_ts)"}
output:
  path: ${lake_root}/driver_stats
  mode: overwrite
features:
  entity: driver
  join_keys: [driver_id]
  timestamp: event_ts
  ttl: 1d
  tags: {team: mobility}
  services:
    driver_rates: ["driver_stats:conv_rate", "driver_stats:active"]
"""


def stats_table() -> pa.Table:
    """Driver 1 twice (the 12:00 row is its latest), 2 and 4 once, 3 long ago, 5 after 12:30."""
    rows = [
        (1, T0 + timedelta(hours=10), 0.1, 1, "Lisbon", True),
        (1, T0 + timedelta(hours=12), 0.2, 2, "Lisbon", False),
        (2, T0 + timedelta(hours=9), 0.5, 5, "Paris", True),
        (3, T0 - timedelta(days=9), 0.9, 9, "Madrid", True),
        (4, T0 + timedelta(hours=11), 0.4, 4, None, None),
        (5, T0 + timedelta(hours=13), 0.6, 6, "Berlin", True),
    ]
    names = ["driver_id", "event_ts", "conv_rate", "trips", "city", "active"]
    columns = list(zip(*rows))
    types = [pa.int64(), pa.timestamp("us", tz="UTC"), pa.float64(), pa.int64(), pa.string(), pa.bool_()]
    return pa.table({n: pa.array(c, t) for n, c, t in zip(names, columns, types)})


def feature_lab(root: Path, spark: object, online: dict[str, Any] | None = None,
                table: pa.Table | None = None) -> tuple[Lab, Project, Settings]:
    """A project with the driver_stats job run (on ``table``, default ``stats_table()``) and its
    feature repository applied."""
    lab = Lab(root, spark)
    (root / "feature_repo").mkdir()
    shutil.copy(REPO / "feature_repo" / "features.py", root / "feature_repo" / "features.py")
    lab.parquet("stats", stats_table() if table is None else table)
    lab.run("driver_stats", STATS_JOB)
    project = Project(root)
    _, settings = pipeline.load(project, "driver_stats", "local")
    settings = with_test_conf(settings)
    if online is not None:
        settings = settings.model_copy(update={"feast": settings.feast.model_copy(update={"online_store": online})})
    features.apply(project, settings)
    return lab, project, settings


def expected_latest(lab: Lab, start: datetime, end: datetime) -> dict[int, dict[str, Any]]:
    """The latest row per driver within [start, end], from delta-rs (not Spark, not Feast)."""
    latest: dict[int, dict[str, Any]] = {}
    for row in lab.rows("driver_stats"):
        if start <= row["event_ts"] <= end:
            seen = latest.get(row["driver_id"])
            if seen is None or row["event_ts"] > seen["event_ts"]:
                latest[row["driver_id"]] = row
    return latest


def online_values(project: Project, settings: Settings, drivers: list[int]) -> dict[int, dict[str, Any]]:
    """featurekit's reader and the Feast SDK on the same store: they must agree; featurekit's rows."""
    client = OnlineFeatures(project=project, settings=settings)
    refs = client.view_refs("driver_stats")
    ours = client.get({"driver_id": drivers}, features=refs)
    feast = features.open_store(project, settings).get_online_features(
        features=refs, entity_rows=[{"driver_id": d} for d in drivers]).to_dict()
    assert ours == {k: feast[k] for k in ours} and set(ours) == set(feast)
    return {d: {k: ours[k][i] for k in ours} for i, d in enumerate(drivers)}


@pytest.fixture
def sqlite_lab(spark: object, tmp_path: Path) -> tuple[Lab, Project, Settings]:
    return feature_lab(tmp_path / "project", spark)


def test_definitions_follow_the_job_spec(sqlite_lab: tuple[Lab, Project, Settings]) -> None:
    lab, project, settings = sqlite_lab
    held = features.registry_objects(features.open_store(project, settings))
    assert held["entities"] == {"driver": "driver_id"}
    assert held["views"] == {"driver_stats": {
        "driver_id": "Int64", "conv_rate": "Float64", "trips": "Int64", "city": "String", "active": "Bool"}}
    assert held["services"] == {
        "driver_stats": {"driver_stats": ["conv_rate", "trips", "city", "active"]},
        "driver_rates": {"driver_stats": ["conv_rate", "active"]},
    }
    view = features.open_store(project, settings).get_feature_view("driver_stats")
    loaded, _ = pipeline.load(project, "driver_stats")
    assert view.ttl == timedelta(days=1)
    assert view.tags["team"] == "mobility"
    assert view.tags["featurekit.fingerprint"] == loaded.fingerprint
    assert view.tags["featurekit.skipped"] == "event_date:date"  # Feast has no date type


def test_plain_feast_apply_in_a_copy_of_the_repo(sqlite_lab: tuple[Lab, Project, Settings], tmp_path: Path) -> None:
    lab, project, settings = sqlite_lab
    copy = tmp_path / "copy"
    shutil.copytree(lab.root, copy, ignore=shutil.ignore_patterns(".featurekit", "registry.db", "online.db"))
    copied = Project(copy)
    _, copy_settings = pipeline.load(copied, "driver_stats")
    features.render(copied, with_test_conf(copy_settings))
    feast = Path(sys.executable).with_name("feast")
    done = subprocess.run([str(feast), "apply"], cwd=copy / "feature_repo", capture_output=True, text=True,
                          timeout=300, env={**os.environ, "FEATUREKIT_ENV": "local"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Created feature view driver_stats" in done.stdout
    held = features.registry_objects(features.open_store(copied, with_test_conf(copy_settings)))
    assert held["entities"] == {"driver": "driver_id"}
    assert set(held["views"]["driver_stats"]) == {"driver_id", "conv_rate", "trips", "city", "active"}
    assert set(held["services"]) == {"driver_stats", "driver_rates"}


def test_a_view_whose_table_is_not_written_names_the_job_to_run(spark: object, tmp_path: Path) -> None:
    lab = Lab(tmp_path / "project", spark)
    (lab.root / "feature_repo").mkdir()
    shutil.copy(REPO / "feature_repo" / "features.py", lab.root / "feature_repo" / "features.py")
    lab.write_job("driver_stats", STATS_JOB)
    project = Project(lab.root)
    _, settings = pipeline.load(project, "driver_stats")
    with pytest.raises(ConfigError) as info:
        features.apply(project, with_test_conf(settings))
    assert "has not been written yet: run `featurekit run driver_stats --env local` first" in str(info.value)
    # plain feast gets the same one-line message, not a traceback
    features.render(project, with_test_conf(settings))
    feast = Path(sys.executable).with_name("feast")
    done = subprocess.run([str(feast), "apply", "--skip-source-validation"], cwd=lab.root / "feature_repo",
                          capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    assert "run `featurekit run driver_stats --env local` first" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_service_naming_an_unknown_feature_is_a_spec_error(spark: object, tmp_path: Path) -> None:
    lab, project, settings = feature_lab(tmp_path / "project", spark)
    lab.write_job("driver_stats", STATS_JOB.replace("driver_stats:active", "driver_stats:actve"))
    with pytest.raises(SpecError) as info:
        features.apply(project, settings)
    assert "view 'driver_stats' has no feature 'actve' — did you mean 'active'?" in str(info.value)
    assert "jobs/driver_stats.yaml:" in str(info.value)


def test_materialize_into_sqlite_equals_the_latest_rows_of_the_window(sqlite_lab: tuple[Lab, Project, Settings],
                                                                      spark: object) -> None:
    lab, project, settings = sqlite_lab
    start, end = T0, T0 + timedelta(hours=12, minutes=30)
    result = materialize(project, settings, start=start, end=end, spark=spark)
    (view,) = result.views
    expected = expected_latest(lab, start, end)
    assert sorted(expected) == [1, 2, 4]
    assert (view.rows, view.keys, view.written) == (4, 3, 3)
    assert view.delta_version == lab.table("driver_stats").version()
    assert view.online is not None and view.online.in_window == 3
    found = online_values(project, settings, [1, 2, 3, 4, 5])
    for driver, row in expected.items():
        assert {k: found[driver][k] for k in ("conv_rate", "trips", "city", "active")} == \
               {k: row[k] for k in ("conv_rate", "trips", "city", "active")}
    assert found[1]["conv_rate"] == 0.2                      # the later of driver 1's two rows
    assert found[3]["conv_rate"] is None and found[5]["conv_rate"] is None   # outside the window
    record = RunLogLineage(settings.runs_dir).records()[-1]
    assert record["feature_view"] == "driver_stats" and record["delta_version"] == view.delta_version
    assert (record["rows"], record["keys"], record["online_store"]) == (4, 3, "sqlite")
    # the newest value the store holds after the run: driver 1's 12:00 row
    assert record["newest_event"] == online_newest(settings, "driver_stats") == (T0 + timedelta(hours=12)).isoformat()


def test_incremental_starts_at_end_minus_ttl_then_continues(sqlite_lab: tuple[Lab, Project, Settings],
                                                             spark: object) -> None:
    lab, project, settings = sqlite_lab
    first_end = T0 + timedelta(hours=12, minutes=30)
    first = materialize(project, settings, incremental=True, end=first_end, spark=spark).views[0]
    assert first.start == first_end - timedelta(days=1)       # no earlier run: end - ttl
    assert first.keys == 3                                      # driver 3 is older than the ttl
    second = materialize(project, settings, incremental=True, end=T0 + timedelta(hours=14), spark=spark).views[0]
    assert second.start == first_end                            # continues from the registry
    assert (second.rows, second.keys) == (1, 1)                 # driver 5
    # the same table version, the end moved: the marker's newest value (12:00) or the keys written (13:00)
    first_record, second_record = RunLogLineage(settings.runs_dir).records()[-2:]
    assert first_record["newest_event"] == (T0 + timedelta(hours=12)).isoformat()
    assert second_record["newest_event"] == online_newest(settings, "driver_stats") == (T0 + timedelta(hours=13)).isoformat()
    found = online_values(project, settings, [3, 5])
    assert found[5]["conv_rate"] == 0.6 and found[3]["conv_rate"] is None


def test_the_count_check_catches_a_broken_materialization(sqlite_lab: tuple[Lab, Project, Settings],
                                                         spark: object) -> None:
    lab, project, settings = sqlite_lab
    end = T0 + timedelta(hours=12, minutes=30)
    materialize(project, settings, start=T0, end=end, spark=spark)
    ok = materialize(project, settings, start=T0, end=end, verify_only=True, spark=spark).views[0]
    assert ok.verified and ok.keys == 3
    # the online store loses a key behind featurekit's back (a failed or partial writer)
    online_db = Path(settings.feast.online_store["path"])
    with sqlite3.connect(online_db) as conn:
        key = conn.execute("SELECT entity_key FROM featurekit_driver_stats LIMIT 1").fetchone()[0]
        conn.execute("DELETE FROM featurekit_driver_stats WHERE entity_key = ?", (key,))
    with pytest.raises(DataError) as info:
        materialize(project, settings, start=T0, end=end, verify_only=True, spark=spark)
    text = str(info.value)
    assert "materialization of driver_stats not verified" in text
    assert "expected 3 keys (4 rows in the window)" in text and "2 with a value from the window" in text
    # a window the store was never materialized for
    with pytest.raises(DataError):
        materialize(project, settings, start=T0, end=T0 + timedelta(hours=14), verify_only=True, spark=spark)


def test_materialize_refuses_views_the_registry_does_not_hold(sqlite_lab: tuple[Lab, Project, Settings],
                                                             spark: object) -> None:
    lab, project, settings = sqlite_lab
    lab.write_job("driver_stats", STATS_JOB.replace("tags: {team: mobility}", "tags: {team: pricing}"))
    with pytest.raises(ConfigError) as info:
        materialize(project, settings, start=T0, end=T0 + timedelta(hours=1), spark=spark)
    assert "run `featurekit feast apply --env local` first" in str(info.value)
    with pytest.raises(ConfigError) as info:
        materialize(project, settings, views=["driver_stat"], start=T0, end=T0 + timedelta(hours=1), spark=spark)
    assert "did you mean 'driver_stats'" in str(info.value)


def test_materialize_into_redis(redis_server: str, spark: object, tmp_path: Path) -> None:
    import redis

    host, port = redis_server.split(":")
    redis.Redis(host=host, port=int(port)).flushall()
    lab, project, settings = feature_lab(tmp_path / "project", spark,
                                         online={"type": "redis", "connection_string": redis_server})
    start, end = T0, T0 + timedelta(hours=12, minutes=30)
    view = materialize(project, settings, start=start, end=end, spark=spark).views[0]
    assert (view.keys, view.written) == (3, 3)
    assert view.online is not None and (view.online.present, view.online.in_window) == (3, 3)
    expected = expected_latest(lab, start, end)
    found = online_values(project, settings, [1, 2, 3, 4])
    for driver, row in expected.items():
        assert {k: found[driver][k] for k in ("conv_rate", "trips", "city", "active")} == \
               {k: row[k] for k in ("conv_rate", "trips", "city", "active")}
    assert found[3]["trips"] is None
    assert view.newest_event is not None and view.newest_event.isoformat() == online_newest(settings, "driver_stats") \
        == (T0 + timedelta(hours=12)).isoformat()
    # Redis keeps the newer value when an older window is written afterwards
    later = materialize(project, settings, start=T0, end=T0 + timedelta(hours=14), spark=spark).views[0]
    assert later.keys == 4
    earlier = materialize(project, settings, start=T0, end=T0 + timedelta(hours=10), spark=spark).views[0]
    assert earlier.verified and earlier.online is not None and earlier.online.newer >= 1
    # what the store holds, not the window's end: driver 5's 13:00 value stays
    record = RunLogLineage(settings.runs_dir).records()[-1]
    assert record["newest_event"] == online_newest(settings, "driver_stats") == (T0 + timedelta(hours=13)).isoformat()
    assert online_values(project, settings, [1])[1]["conv_rate"] == 0.2


def test_the_arrow_engine_streams_into_redis_what_spark_writes(redis_server: str, spark: object, tmp_path: Path) -> None:
    """No JVM: delta-rs streams the window's rows unsorted, one row per batch, newest first;
    the writer keeps each key's newer value, so Redis ends byte for byte as the Spark engine
    (latest row per key, reduced in Spark) leaves it."""
    import redis

    host, port = redis_server.split(":")
    client = redis.Redis(host=host, port=int(port))
    client.flushall()
    newest_first = stats_table().sort_by([("event_ts", "descending")])
    lab, project, settings = feature_lab(tmp_path / "project", spark,
                                         online={"type": "redis", "connection_string": redis_server}, table=newest_first)
    start, end = T0, T0 + timedelta(hours=12, minutes=30)
    by_spark = materialize(project, settings, start=start, end=end, spark=spark, engine="spark").views[0]
    stored = {key: client.hgetall(key) for key in client.scan_iter()}
    assert len(stored) == 3
    client.flushall()

    context = spark.sparkContext  # type: ignore[attr-defined]
    context.setLocalProperty("spark.jobGroup.id", "arrow-engine")  # any Spark job from here on lands in it
    one_row = settings.model_copy(update={"feast": settings.feast.model_copy(
        update={"write_batch_rows": 1, "materialize_engine": "arrow"})})
    result = materialize(project, one_row, start=start, end=end)
    (view,) = result.views
    assert result.engine == "arrow" and view.verified
    assert (view.rows, view.keys, view.written) == (by_spark.rows, by_spark.keys, 4) == (4, 3, 4)
    assert view.delta_version == by_spark.delta_version
    assert {key: client.hgetall(key) for key in client.scan_iter()} == stored
    assert online_values(project, settings, [1])[1]["conv_rate"] == 0.2   # 12:00 came first, 10:00 was kept out
    # a later window through the same engine: driver 5 arrives; an earlier one changes nothing
    later = materialize(project, one_row, start=T0, end=T0 + timedelta(hours=14)).views[0]
    assert (later.rows, later.keys, later.written) == (5, 4, 5) and later.verified
    earlier = materialize(project, one_row, start=T0, end=T0 + timedelta(hours=10)).views[0]
    assert earlier.verified and earlier.online is not None and earlier.online.newer >= 1
    found = online_values(project, settings, [1, 5])
    assert found[1]["conv_rate"] == 0.2 and found[5]["conv_rate"] == 0.6
    checked = materialize(project, one_row, start=T0, end=T0 + timedelta(hours=14), verify_only=True).views[0]
    assert checked.verified and (checked.rows, checked.keys, checked.written) == (5, 4, 0)
    context.setLocalProperty("spark.jobGroup.id", None)
    assert list(context.statusTracker().getJobIdsForGroup("arrow-engine")) == []  # no JVM work at all


def test_the_arrow_engine_refuses_a_store_it_cannot_keep_right(sqlite_lab: tuple[Lab, Project, Settings]) -> None:
    lab, project, settings = sqlite_lab
    with pytest.raises(ConfigError) as info:
        materialize(project, settings, start=T0, end=T0 + timedelta(hours=1), engine="arrow")
    assert "engine 'arrow' writes a plain Redis online store only (this env's is sqlite)" in str(info.value)
    assert "use engine 'spark'" in str(info.value)
    with pytest.raises(ConfigError) as info:
        materialize(project, settings, start=T0, end=T0 + timedelta(hours=1), engine="flink")
    assert "unknown materialize engine 'flink' (spark, arrow)" in str(info.value)


def test_serve_answers_in_feasts_json(sqlite_lab: tuple[Lab, Project, Settings], spark: object) -> None:
    import threading

    import httpx
    import uvicorn
    from feast import proto_json
    from feast.feature_server import convert_response_to_dict

    from featurekit.online.http import create_app
    from tests.conftest import _free_port

    lab, project, settings = sqlite_lab
    materialize(project, settings, start=T0, end=T0 + timedelta(hours=12, minutes=30), spark=spark)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(OnlineFeatures(project=project, settings=settings)),
                                           host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            for _ in range(200):
                try:
                    if http.get("/health").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                threading.Event().wait(0.05)
            body = {"feature_service": "driver_rates", "entities": {"driver_id": [1, 2, 3]}}
            got = http.post("/get-online-features", json=body)
            assert got.status_code == 200
            ours = got.json()
            proto_json.patch()
            store = features.open_store(project, settings)
            sdk = store.get_online_features(features=store.get_feature_service("driver_rates"),
                                            entity_rows=[{"driver_id": d} for d in (1, 2, 3)])
            theirs = convert_response_to_dict(sdk.proto)

            def by_name(response: dict[str, Any]) -> dict[str, Any]:
                return dict(zip(response["metadata"]["feature_names"], response["results"]))

            assert by_name(ours) == by_name(theirs)
            assert by_name(ours)["conv_rate"]["values"] == [0.2, 0.5, None]
            assert by_name(ours)["conv_rate"]["statuses"] == ["PRESENT", "PRESENT", "NOT_FOUND"]
            # the same by feature references
            refs = {"features": ["driver_stats:trips", "driver_stats:city"], "entities": {"driver_id": [4]}}
            assert by_name(http.post("/get-online-features", json=refs).json())["city"]["values"] == [None]
            # unknown names and bad bodies are 4xx with the reason, not 500
            unknown = http.post("/get-online-features", json={"features": ["driver_stats:trip"], "entities": {"driver_id": [1]}})
            assert unknown.status_code == 404 and "did you mean 'trips'" in unknown.json()["detail"]
            no_key = http.post("/get-online-features", json={"feature_service": "driver_rates", "entities": {"rider_id": [1]}})
            assert no_key.status_code == 404 and "missing driver_id" in no_key.json()["detail"]
            assert http.post("/get-online-features", content=b"{not json").status_code == 422
            assert http.post("/get-online-features", json={"feature_service": "nope", "entities": {}}).status_code == 404
    finally:
        server.should_exit = True
        thread.join(timeout=10)
