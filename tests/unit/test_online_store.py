"""The online-store port's own encodings and choices, without a store or Feast."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from featurekit.errors import ConfigError
from featurekit.feast.catalog import Catalog, registry_file
from featurekit.online_store import ViewLayout, local_folders, open_online_store
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
