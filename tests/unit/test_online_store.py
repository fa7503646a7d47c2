"""The online-store port's own encodings and choices, without a store server or Feast (SQLite
files made here with the tables Feast and older featurekits make)."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from featurekit.errors import ConfigError
from featurekit.feast.catalog import Catalog, registry_file
from featurekit.online_store import Marker, ViewLayout, local_folders, open_online_store
from featurekit.online_store.keys import timestamp_datetime, timestamp_nanos, timestamp_proto


@pytest.mark.parametrize("nanos", [0, 1, 1_767_225_600_000_000_000, 1_767_225_600_123_456_789, -1_000_000_000,
                                   -86_400_000_000_001])
def test_event_times_are_protobuf_timestamps(nanos: int) -> None:
    seconds, rest = divmod(nanos, 1_000_000_000)
    theirs = Timestamp(seconds=seconds, nanos=rest)
    assert timestamp_proto(nanos) == theirs.SerializeToString()
    assert timestamp_nanos(theirs.SerializeToString()) == nanos
    assert timestamp_datetime(theirs.SerializeToString()) == theirs.ToDatetime(tzinfo=UTC)


def test_the_store_is_chosen_once_from_its_type(tmp_path: Path) -> None:
    sqlite = open_online_store({"project": "p", "online_store": {"type": "sqlite", "path": "data/online.db"}},
                               str(tmp_path))
    redis = open_online_store({"project": "p", "online_store": {"type": "redis"}}, str(tmp_path))
    assert (sqlite.kind, sqlite.single_writer, sqlite.keeps_newer) == ("sqlite", True, False)
    assert (redis.kind, redis.single_writer, redis.keeps_newer) == ("redis", False, True)
    view = ViewLayout("v", {"id": "INT64"}, {"x": "DOUBLE"}, "ts")
    assert sqlite.writer_layout(view).path == str(tmp_path / "data" / "online.db")
    assert redis.writer_layout(view).connection_string == "localhost:6379"   # Feast's default
    cluster = open_online_store({"project": "p", "online_store": {"type": "redis", "redis_type": "redis_cluster"}},
                                str(tmp_path))
    assert cluster.writer_layout(view) is None   # Feast's own writer
    assert local_folders({"online_store": {"type": "sqlite", "path": "data/online.db"}}, str(tmp_path)) \
        == [tmp_path / "data"]
    assert local_folders({"online_store": {"type": "dynamodb"}}, str(tmp_path)) == []
    with pytest.raises(ConfigError) as info:
        open_online_store({"project": "p", "online_store": {"type": "dynamodb"}}, str(tmp_path))
    assert info.value.problems[0].message == ("featurekit reads, verifies and keeps its state in sqlite and redis "
                                              "online stores only (this env's is 'dynamodb')")


def test_the_catalog_keeps_only_local_registry_files(tmp_path: Path) -> None:
    assert registry_file({"registry": {"registry_type": "file", "path": "data/registry.db"}}, str(tmp_path)) \
        == tmp_path / "data" / "registry.db"
    assert registry_file({"registry": "/abs/registry.db"}, str(tmp_path)) == Path("/abs/registry.db")
    assert registry_file({"registry": {"registry_type": "file", "path": "s3://bucket/registry.db"}}, str(tmp_path)) is None
    assert registry_file({"registry": {"registry_type": "sql", "path": "postgresql://db"}}, str(tmp_path)) is None


def test_the_catalog_round_trips_through_json() -> None:
    catalog = Catalog({"v": ViewLayout("v", {"id": "INT64"}, {"x": "DOUBLE", "s": "STRING"}, "ts")},
                      {"svc": [("v", ["s", "x"])]})
    assert Catalog.from_json(catalog.to_json()) == catalog


def test_sqlite_markers_of_an_older_featurekit_gain_the_newest_event_time(tmp_path: Path) -> None:
    """A marker table made before markers kept the newest event time: read as unknown, then
    widened by the next marker written; the key count's newest is the table's MAX(event_ts)."""
    path = tmp_path / "online.db"
    t0 = datetime(2026, 3, 1, 12, tzinfo=UTC)
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE p_v (entity_key BLOB, feature_name TEXT, value BLOB, event_ts timestamp, "
                     "created_ts timestamp, PRIMARY KEY (entity_key, feature_name))")
        conn.executemany("INSERT INTO p_v VALUES (?, ?, x'', ?, NULL)",
                         [(b"k1", "x", int(t0.timestamp())), (b"k1", "y", int(t0.timestamp()) - 60),
                          (b"k2", "x", int(t0.timestamp()) - 3600)])
        conn.execute("CREATE TABLE _featurekit_materialized (project TEXT NOT NULL, view TEXT NOT NULL, "
                     "delta_version INTEGER NOT NULL, window_end TEXT NOT NULL, table_id TEXT NOT NULL, "
                     "fingerprint TEXT NOT NULL, recorded_at TEXT NOT NULL, PRIMARY KEY (project, view))")
        conn.execute("INSERT INTO _featurekit_materialized VALUES ('p', 'v', 3, ?, 'id', 'fp', ?)",
                     (t0.isoformat(), t0.isoformat()))
    store = open_online_store({"project": "p", "online_store": {"type": "sqlite", "path": str(path)}}, str(tmp_path))
    assert store.marker("v") == Marker(3, t0, "id", "fp", None)
    count = store.count_keys("v", t0 - timedelta(minutes=30), t0 + timedelta(hours=1))
    assert (count.present, count.in_window, count.newer, count.newest) == (2, 1, 0, t0)
    store.set_marker("v", Marker(4, t0, "id", "fp", t0))
    assert store.marker("v") == Marker(4, t0, "id", "fp", t0)
    store.set_marker("v", Marker(5, t0, "id", "fp", None))   # a store holding none
    assert store.marker("v") == Marker(5, t0, "id", "fp", None)
    assert open_online_store({"project": "p", "online_store": {"type": "sqlite", "path": str(path)}},
                             str(tmp_path)).count_keys("w", t0, t0).newest is None   # no table of the view
