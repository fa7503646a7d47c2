"""``materialize --incremental`` on real Spark + Delta, Feast's SQLite store and a real Redis.

The promise: after a full materialization, an incremental run of the job (new rows, a
correction, a driver's newest rows deleted) and ``materialize --incremental``, the online store
holds exactly what a fresh store materialized from the whole window of the new version holds,
value for value and timestamp for timestamp; only the keys with changed rows were written, and
the lineage record names the version range. Tables without a change data feed get the same
store through a diff of the two versions (and a warning); the arrow engine does the same on Redis.
"""

from __future__ import annotations

import shutil
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from featurekit import pipeline
from featurekit.config import Project, Settings
from featurekit.feast import store as feast_store
from featurekit.online_store import open_online_store as online_state
from featurekit.lineage import RunLogLineage
from featurekit.pipeline import features
from featurekit.pipeline.features import feast_session_conf
from featurekit.pipeline.materialize import CHANGE_FEED, UNCHANGED, VERSION_DIFF, WINDOW, MaterializeResult, materialize
from tests.conftest import REPO
from tests.integration.conftest import with_test_conf
from tests.integration.helpers import Lab, online_newest

pytestmark = pytest.mark.feast

T0 = datetime(2026, 3, 1, tzinfo=UTC)
FIRST_END, SECOND_END = T0 + timedelta(hours=20), T0 + timedelta(hours=26)
VIEW = "driver_stats"

JOB = """
name: driver_stats
owner: mobility-data
sources:
  stats: {{format: parquet, path: "${{raw_root}}/stats"}}
incremental: {{time_column: event_ts, lookback: 6h}}
steps:
  - filter: "driver_id IS NOT NULL"
output:
  path: ${{lake_root}}/driver_stats
  mode: merge
  keys: [driver_id, event_ts]
{properties}features:
  entity: driver
  join_keys: [driver_id]
  timestamp: event_ts
  ttl: 7d
"""
NO_CHANGE_FEED = '  properties: {delta.enableChangeDataFeed: "false"}\n'


def hours(n: float) -> datetime:
    return T0 + timedelta(hours=n)


def first_rows() -> dict[tuple[int, datetime], tuple[float, int, str | None]]:
    """Drivers 1-10 only before the second run's lookback (14:00), 11-20 with rows inside it (the
    newest at 18:00), 21-30 with their newest at 15:00."""
    rows: dict[tuple[int, datetime], tuple[float, int, str | None]] = {}
    for d in range(1, 11):
        rows[(d, hours(2))] = (d / 100, d, "Lisbon")
        rows[(d, hours(8))] = (d / 10, d + 1, None if d == 3 else "Paris")
    for d in range(11, 21):
        rows[(d, hours(8))] = (d / 100, d, "Madrid")
        rows[(d, hours(16))] = (d / 50, d + 2, "Rome")
        rows[(d, hours(18))] = (d / 25, d + 3, "Berlin")
    for d in range(21, 31):
        rows[(d, hours(10))] = (d / 100, d, "Porto")
        rows[(d, hours(15))] = (d / 20, d + 1, "Faro")
    return rows


def second_rows() -> dict[tuple[int, datetime], tuple[float, int, str | None]]:
    """What the source holds for the second run: new rows (11-13 at 22:00, a new driver 31 at
    21:00), corrections at the same event time (14's 16:00 row, under its unchanged 18:00 row; 21's
    newest row), driver 15's newest row gone (its 16:00 row is then its latest), 16's rows inside
    the lookback gone (its 08:00 row, outside it, is then its latest)."""
    rows = first_rows()
    for d in (11, 12, 13):
        rows[(d, hours(22))] = (d / 5, d + 9, "Vienna")
    rows[(31, hours(21))] = (0.31, 31, "Oslo")
    rows[(14, hours(16))] = (0.99, 99, "Corrected")
    rows[(21, hours(15))] = (0.77, 77, None)
    del rows[(15, hours(18))]
    del rows[(16, hours(16))], rows[(16, hours(18))]
    return rows


def source(rows: dict[tuple[int, datetime], tuple[float, int, str | None]]) -> pa.Table:
    ordered = sorted(rows.items())
    return pa.table({
        "driver_id": pa.array([k[0] for k, _ in ordered], pa.int64()),
        "event_ts": pa.array([k[1] for k, _ in ordered], pa.timestamp("us", tz="UTC")),
        "conv_rate": pa.array([v[0] for _, v in ordered], pa.float64()),
        "trips": pa.array([v[1] for _, v in ordered], pa.int64()),
        "city": pa.array([v[2] for _, v in ordered], pa.string()),
    })


# the drivers whose rows the second run changed: by the table's change data feed, every driver
# with a row in the interval it replaced (after 20:00 - 6h lookback) in either version; by a diff
# of the versions, those whose rows differ
CHANGED = {CHANGE_FEED: set(range(11, 32)), VERSION_DIFF: {11, 12, 13, 14, 15, 16, 21, 31}}


@dataclass
class World:
    lab: Lab
    project: Project
    settings: Settings           # the online store under test (materialized fully, then incrementally)
    fresh: Settings              # another store and registry, for the whole window of the new version


def with_store(settings: Settings, online: dict[str, Any], registry: Path | None = None) -> Settings:
    update: dict[str, Any] = {"online_store": online}
    if registry is not None:
        update["registry"] = str(registry)
    return settings.model_copy(update={"feast": settings.feast.model_copy(update=update)})


def world(root: Path, spark: object, online: dict[str, Any], fresh_online: dict[str, Any],
          properties: str = "") -> World:
    """The job's first incremental run (up to 20:00), applied to Feast in both stores."""
    lab = Lab(root, spark)
    (root / "feature_repo").mkdir()
    shutil.copy(REPO / "feature_repo" / "features.py", root / "feature_repo" / "features.py")
    lab.parquet("stats", source(first_rows()))
    lab.write_job(VIEW, JOB.format(properties=properties))
    run_job(lab, FIRST_END)
    project = Project(root)
    _, settings = pipeline.load(project, VIEW, "local")
    settings = with_store(with_test_conf(settings), online)
    fresh = with_store(settings, fresh_online, root / "fresh" / "registry.db")
    features.apply(project, settings)
    return World(lab, project, settings, fresh)


def run_job(lab: Lab, end: datetime) -> pipeline.RunResult:
    project = Project(lab.root)
    loaded, settings = pipeline.load(project, VIEW, "local")
    return pipeline.run(project, loaded, with_test_conf(settings), lab.spark, end=end)  # type: ignore[arg-type]


def second_run(w: World) -> int:
    """The job's second incremental run; the table version it made."""
    w.lab.parquet("stats", source(second_rows()))
    done = run_job(w.lab, SECOND_END)
    assert done.incremental["kind"] == "incremental"
    return w.lab.table(VIEW).version()


def store_config(w: World, settings: Settings) -> dict[str, Any]:
    return feast_store.store_config(w.project, settings, feast_session_conf(settings))


def marker(w: World, settings: Settings) -> Any:
    return online_state(store_config(w, settings), str(feast_store.repo_dir(settings))).marker(VIEW)


def content(w: World, settings: Settings) -> dict[Any, Any]:
    """Everything the online store holds for the project, featurekit's markers left out: SQLite
    rows (without Feast's created_ts, the time of writing), Redis hashes."""
    online = settings.feast.online_store
    if online["type"] == "sqlite":
        with sqlite3.connect(online["path"]) as conn:
            rows = conn.execute(f'SELECT entity_key, feature_name, value, value_text, event_ts '
                                f'FROM "featurekit_{VIEW}" ORDER BY entity_key, feature_name').fetchall()
        return {(row[0], row[1]): row[2:] for row in rows}
    import redis

    address, _, db = online["connection_string"].partition(",db=")
    host, port = address.split(":")
    client = redis.Redis(host=host, port=int(port), db=int(db or 0))
    return {key: client.hgetall(key) for key in client.scan_iter() if not key.startswith(b"featurekit:")}


def latest_rows(w: World, end: datetime) -> dict[int, dict[str, Any]]:
    """The latest row per driver within [end - 7d, end] of the table now, read with delta-rs."""
    latest: dict[int, dict[str, Any]] = {}
    for row in w.lab.rows(VIEW):
        if end - timedelta(days=7) <= row["event_ts"] <= end:
            seen = latest.get(row["driver_id"])
            if seen is None or row["event_ts"] > seen["event_ts"]:
                latest[row["driver_id"]] = row
    return latest


def check_incremental(w: World, done: MaterializeResult, before: int, after: int, method: str,
                      engine: str = "spark") -> None:
    """The incremental run wrote the changed keys only, verified them, recorded the range, and
    left the store equal to a fresh one materialized from the whole window of ``after``."""
    (view,) = done.views
    assert (view.method, view.delta_version_from, view.delta_version) == (method, before + 1, after)
    assert (view.start, view.end) == (FIRST_END, SECOND_END)
    changed = len(CHANGED[method])
    assert view.changed == changed and view.keys == view.written == changed
    assert view.verified and view.online is not None and view.online.present == changed
    assert marker(w, w.settings).delta_version == after and marker(w, w.settings).window_end == SECOND_END
    record = RunLogLineage(w.settings.runs_dir).records()[-1]
    assert (record["run_id"], record["delta_version_from"], record["delta_version"]) == (done.run_id, before + 1, after)
    assert (record["keys"], record["window_start"]) == (changed, FIRST_END.isoformat())
    # the newest value held after the run: drivers 11-13's new 22:00 rows (the run also gave
    # drivers 15 and 16, who held the newest before, older rows)
    assert record["newest_event"] == online_newest(w.settings, VIEW) == hours(22).isoformat()
    assert marker(w, w.settings).newest_event == hours(22)

    features.apply(w.project, w.fresh)
    whole = materialize(w.project, w.fresh, incremental=True, end=SECOND_END, spark=w.lab.spark, engine=engine).views[0]
    assert (whole.method, whole.keys, whole.start) == (WINDOW, 31, SECOND_END - timedelta(days=7))
    assert content(w, w.settings) == content(w, w.fresh)
    assert len(content(w, w.settings)) in (31, 31 * 3)          # Redis: one hash per key; SQLite: a row per feature
    # the corrections, the deletions and the new rows, through Feast's SDK
    found = features.open_store(w.project, w.settings).get_online_features(
        features=[f"{VIEW}:conv_rate", f"{VIEW}:trips", f"{VIEW}:city"],
        entity_rows=[{"driver_id": d} for d in (11, 14, 15, 16, 21, 31, 5)]).to_dict()
    latest = latest_rows(w, SECOND_END)
    assert found["trips"] == [latest[d]["trips"] for d in (11, 14, 15, 16, 21, 31, 5)]
    assert found["trips"] == [20, 17, 17, 16, 77, 31, 6]
    assert found["city"][4] is None and found["conv_rate"][1] == 14 / 25


def test_incremental_after_an_incremental_run_equals_a_whole_window(spark: object, tmp_path: Path) -> None:
    online = {"type": "sqlite", "path": str(tmp_path / "project" / "data" / "online.db")}
    fresh = {"type": "sqlite", "path": str(tmp_path / "project" / "fresh" / "online.db")}
    incremental_equals_whole_window(world(tmp_path / "project", spark, online, fresh))


def test_incremental_into_redis_equals_a_whole_window(redis_server: str, spark: object, tmp_path: Path) -> None:
    online, fresh = ({"type": "redis", "connection_string": f"{redis_server},db={db}"} for db in (2, 3))
    _flush(redis_server, 2, 3)
    incremental_equals_whole_window(world(tmp_path / "project", spark, online, fresh))


def incremental_equals_whole_window(w: World) -> None:
    spark = w.lab.spark
    before = w.lab.table(VIEW).version()
    assert w.lab.table(VIEW).metadata().configuration["delta.enableChangeDataFeed"] == "true"
    first = materialize(w.project, w.settings, start=T0 - timedelta(days=7), end=FIRST_END, spark=spark).views[0]
    assert first.keys == 30 and marker(w, w.settings).delta_version == before
    assert RunLogLineage(w.settings.runs_dir).records()[-1]["newest_event"] == online_newest(w.settings, VIEW) \
        == hours(18).isoformat()
    after = second_run(w)
    done = materialize(w.project, w.settings, incremental=True, end=SECOND_END, spark=spark)
    assert not [m for m in done.warnings if "whole window" in m or "does not record" in m]
    check_incremental(w, done, before, after, CHANGE_FEED)


def test_without_a_marker_the_whole_window_then_nothing_new(spark: object, tmp_path: Path) -> None:
    online = {"type": "sqlite", "path": str(tmp_path / "project" / "data" / "online.db")}
    w = world(tmp_path / "project", spark, online, online)
    version = w.lab.table(VIEW).version()
    assert marker(w, w.settings) is None
    first = materialize(w.project, w.settings, incremental=True, end=FIRST_END, spark=spark).views[0]
    assert (first.method, first.start, first.keys, first.delta_version_from) == (WINDOW, FIRST_END - timedelta(days=7), 30, None)
    held = marker(w, w.settings)
    assert (held.delta_version, held.window_end) == (version, FIRST_END)
    records = len(RunLogLineage(w.settings.runs_dir).records())

    # the same version and end again: nothing to write, nothing recorded
    again = materialize(w.project, w.settings, incremental=True, end=FIRST_END, spark=spark).views[0]
    assert (again.method, again.changed, again.keys, again.written, again.verified) == (UNCHANGED, 0, 0, 0, True)
    assert len(RunLogLineage(w.settings.runs_dir).records()) == records
    # ... and the newest value the marker keeps still is the store's
    assert held.newest_event == marker(w, w.settings).newest_event == again.newest_event == hours(18)
    assert online_newest(w.settings, VIEW) == hours(18).isoformat()

    # a window shorter than the ttl leaves keys it does not cover as they were: no marker after it
    materialize(w.project, w.settings, start=FIRST_END - timedelta(hours=1), end=FIRST_END, spark=spark)
    assert marker(w, w.settings) is None
    # a store emptied behind featurekit's back (Feast's table made again) is not trusted either
    materialize(w.project, w.settings, incremental=True, end=FIRST_END, spark=spark)
    assert marker(w, w.settings) is not None
    with sqlite3.connect(online["path"]) as conn:
        conn.execute(f'DELETE FROM "featurekit_{VIEW}"')
    assert marker(w, w.settings) is None
    # another job spec (here: the view's ttl) means the whole window again, with a warning
    materialize(w.project, w.settings, incremental=True, end=FIRST_END, spark=spark)
    w.lab.write_job(VIEW, JOB.format(properties="").replace("ttl: 7d", "ttl: 8d"))
    features.apply(w.project, w.settings)
    done = materialize(w.project, w.settings, incremental=True, end=FIRST_END, spark=spark)
    assert done.views[0].method == WINDOW and done.views[0].start == FIRST_END - timedelta(days=8)
    assert any("the whole window is materialized, not the changes: the job's spec changed" in m for m in done.warnings)


def test_a_table_without_change_data_feed_is_diffed(spark: object, tmp_path: Path) -> None:
    online = {"type": "sqlite", "path": str(tmp_path / "project" / "data" / "online.db")}
    fresh = {"type": "sqlite", "path": str(tmp_path / "project" / "fresh" / "online.db")}
    w = world(tmp_path / "project", spark, online, fresh, properties=NO_CHANGE_FEED)
    assert w.lab.table(VIEW).metadata().configuration["delta.enableChangeDataFeed"] == "false"
    before = w.lab.table(VIEW).version()
    materialize(w.project, w.settings, incremental=True, end=FIRST_END, spark=spark)
    after = second_run(w)
    with sqlite3.connect(online["path"]) as conn:   # the marker as an older featurekit left it: no newest value
        conn.execute('UPDATE "_featurekit_materialized" SET newest_event = NULL')
    assert marker(w, w.settings).newest_event is None
    done = materialize(w.project, w.settings, incremental=True, end=SECOND_END, spark=spark)
    (warning,) = [m for m in done.warnings if "does not record its changes" in m]
    assert f"for versions {before + 1}..{after}" in warning and "reads them whole" in warning
    check_incremental(w, done, before, after, VERSION_DIFF)


@pytest.mark.parametrize("properties", ["", NO_CHANGE_FEED], ids=["change feed", "version diff"])
def test_the_arrow_engine_on_redis(properties: str, redis_server: str, spark: object, tmp_path: Path) -> None:
    """No JVM in the materializations: delta-rs reads the change feed (or both versions), the
    lookups and the newer rows; the store ends as the whole window leaves a fresh one."""
    online, fresh = ({"type": "redis", "connection_string": f"{redis_server},db={db}"} for db in (4, 5))
    _flush(redis_server, 4, 5)
    w = world(tmp_path / "project", spark, online, fresh, properties=properties)
    before = w.lab.table(VIEW).version()
    materialize(w.project, w.settings, incremental=True, end=FIRST_END, engine="arrow")
    after = second_run(w)
    context = spark.sparkContext  # type: ignore[attr-defined]
    context.setLocalProperty("spark.jobGroup.id", "arrow-incremental")
    try:
        done = materialize(w.project, w.settings, incremental=True, end=SECOND_END, engine="arrow")
    finally:
        context.setLocalProperty("spark.jobGroup.id", None)
    assert list(context.statusTracker().getJobIdsForGroup("arrow-incremental")) == []
    assert done.engine == "arrow"
    check_incremental(w, done, before, after, VERSION_DIFF if properties else CHANGE_FEED, engine="arrow")


def _flush(address: str, *dbs: int) -> None:
    import redis

    host, port = address.split(":")
    for db in dbs:
        redis.Redis(host=host, port=int(port), db=db).flushdb()
