"""featurekit's Redis writer leaves exactly the bytes Feast's own writer leaves (real Redis)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

pytestmark = pytest.mark.feast

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def view(name: str = "stats") -> Any:
    import feast.types as ft
    from feast import Entity, FeatureView, Field, FileSource, ValueType

    driver = Entity(name="driver", join_keys=["driver_id"], value_type=ValueType.INT64)
    return FeatureView(
        name=name, entities=[driver], ttl=timedelta(days=1),
        schema=[Field(name="driver_id", dtype=ft.Int64), Field(name="rate", dtype=ft.Float64),
                Field(name="small", dtype=ft.Int64), Field(name="big", dtype=ft.Int64),
                Field(name="ratio32", dtype=ft.Float32), Field(name="flag", dtype=ft.Bool),
                Field(name="city", dtype=ft.String), Field(name="sparse", dtype=ft.Float64),
                Field(name="hits", dtype=ft.Int32)],
        source=FileSource(path="unused.parquet", timestamp_field="event_ts"),
    )


def batch(n: int = 300) -> pa.RecordBatch:
    ids = list(range(1, n + 1))
    return pa.RecordBatch.from_pydict({
        "driver_id": pa.array(ids, pa.int64()),
        "event_ts": pa.array([T0 + timedelta(seconds=i, microseconds=(i % 3) * 250) for i in ids], pa.timestamp("us", tz="UTC")),
        "rate": pa.array([i / 7 for i in ids], pa.float64()),
        "small": pa.array([i % 100 for i in ids], pa.int64()),                # mixed varint widths
        "big": pa.array([(-1) ** i * i * 10**12 for i in ids], pa.int64()),   # negatives
        "ratio32": pa.array([i / 3 for i in ids], pa.float32()),
        "flag": pa.array([i % 2 == 0 for i in ids], pa.bool_()),
        "city": pa.array([None if i % 5 == 0 else ("Zürich" if i % 2 else "") for i in ids], pa.string()),
        "sparse": pa.array([None if i % 4 == 0 else (float("nan") if i % 9 == 0 else -0.0 if i % 11 == 0 else i * 1.5)
                            for i in ids], pa.float64()),
        "hits": pa.array([i - 150 for i in ids], pa.int32()),
    })


def dump(client: Any, project: str) -> dict[bytes, dict[bytes, bytes]]:
    """Every hash of the project: key without the project suffix -> fields."""
    suffix = project.encode()
    return {key[: -len(suffix)]: client.hgetall(key) for key in client.scan_iter(match=b"*" + suffix)}


def test_the_bytes_in_redis_equal_feasts(redis_server: str, tmp_path: Path) -> None:
    import redis
    from feast.infra.online_stores.redis import RedisOnlineStore
    from feast.repo_config import RepoConfig
    from feast.utils import _convert_arrow_to_proto

    from featurekit.online_store.redis import RedisBatchWriter, RedisLayout, redis_client

    host, port = redis_server.split(":")
    client = redis.Redis(host=host, port=int(port))
    client.flushall()
    fv, rows = view(), batch()
    online = {"type": "redis", "connection_string": redis_server}
    feast_config = RepoConfig(project="feastwrote", provider="local", registry=str(tmp_path / "r.db"),
                              online_store=online, entity_key_serialization_version=3, repo_path=tmp_path)
    join_keys = {"driver_id": fv.entity_columns[0].dtype.to_value_type()}
    RedisOnlineStore().online_write_batch(feast_config, fv, _convert_arrow_to_proto(rows, fv, join_keys), None)
    layout = RedisLayout.of("ourswrote", fv, feast_config.online_store)
    writer = RedisBatchWriter(redis_client(layout.connection_string), layout)
    assert writer.write(rows) == rows.num_rows
    theirs, ours = dump(client, "feastwrote"), dump(client, "ourswrote")
    assert len(ours) == rows.num_rows
    assert ours == theirs

    # a second, older batch changes nothing; a newer one replaces, as in Feast
    older = batch().set_column(1, "event_ts", pa.array([T0 - timedelta(days=1)] * rows.num_rows, pa.timestamp("us", tz="UTC")))
    assert writer.write(older) == 0
    assert dump(client, "ourswrote") == theirs
    newer = batch().set_column(1, "event_ts", pa.array([T0 + timedelta(days=1)] * rows.num_rows, pa.timestamp("us", tz="UTC")))
    assert writer.write(newer) == rows.num_rows
    RedisOnlineStore().online_write_batch(feast_config, fv, _convert_arrow_to_proto(newer, fv, join_keys), None)
    assert dump(client, "ourswrote") == dump(client, "feastwrote")


def test_the_writer_runs_without_importing_feast(redis_server: str) -> None:
    """Spark's Python workers run the writer; `import feast` would cost them seconds each."""
    import subprocess
    import sys

    code = f"""
import sys, pyarrow as pa
from featurekit.online_store.redis import RedisBatchWriter, RedisLayout, redis_client
layout = RedisLayout(project="nofeast", view="v", timestamp="ts", join_keys={{"id": "INT64"}},
                     features=[("x", "DOUBLE"), ("s", "STRING")], connection_string="{redis_server}")
batch = pa.RecordBatch.from_pydict({{"id": pa.array([1, 2], pa.int64()), "x": [0.5, None], "s": ["a", None],
                                    "ts": pa.array([1, 2], pa.timestamp("s", tz="UTC"))}})
assert RedisBatchWriter(redis_client(layout.connection_string), layout).write(batch) == 2
assert not [m for m in sys.modules if m == "feast" or m.startswith("feast.")], "feast was imported"
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_the_rows_in_sqlite_equal_feasts(tmp_path: Path) -> None:
    import sqlite3

    from feast.infra.online_stores.sqlite import SqliteOnlineStore
    from feast.repo_config import RepoConfig
    from feast.utils import _convert_arrow_to_proto

    from featurekit.online_store.sqlite import SqliteBatchWriter, SqliteLayout

    fv, rows = view(), batch()
    join_keys = {"driver_id": fv.entity_columns[0].dtype.to_value_type()}
    dumps = {}
    for project in ("feastwrote", "ourswrote"):
        config = RepoConfig(project=project, provider="local", registry=str(tmp_path / "r.db"),
                            online_store={"type": "sqlite", "path": str(tmp_path / f"{project}.db")},
                            entity_key_serialization_version=3, repo_path=tmp_path)
        store = SqliteOnlineStore()
        store.update(config, tables_to_delete=[], tables_to_keep=[fv], entities_to_delete=[], entities_to_keep=[],
                     partial=False)
        if project == "feastwrote":
            store.online_write_batch(config, fv, _convert_arrow_to_proto(rows, fv, join_keys), None)
        else:
            layout = SqliteLayout(str(tmp_path / f"{project}.db"), f"{project}_stats", "event_ts",
                                  {"driver_id": "INT64"},
                                  [(f.name, f.dtype.to_value_type().name) for f in fv.features])
            writer = SqliteBatchWriter(layout)
            assert writer.supported and writer.write(rows) == rows.num_rows
        with sqlite3.connect(tmp_path / f"{project}.db") as conn:
            dumps[project] = sorted(conn.execute(f'SELECT * FROM "{project}_stats"').fetchall())
    assert len(dumps["ourswrote"]) == rows.num_rows * len(fv.features)
    assert dumps["ourswrote"] == dumps["feastwrote"]


def test_the_reader_decodes_and_keys_like_feast() -> None:
    """featurekit's direct decoding and key serialization equal Feast's, value by value."""
    from feast.infra.key_encoding_utils import serialize_entity_key
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value
    from feast.type_map import feast_value_type_to_python_type

    from featurekit.online_store.keys import key_prefix, key_value
    from featurekit.online_store.values import decode

    samples = [Value(double_val=0.1), Value(double_val=-0.0), Value(int64_val=-5), Value(int64_val=2**40),
               Value(int32_val=-1), Value(string_val="Zürich"), Value(string_val=""), Value(bool_val=False),
               Value(float_val=1.5), Value(), Value(int64_list_val={"val": [1, 2]}), Value(unix_timestamp_val=17)]
    for proto in samples:
        assert decode(proto.SerializeToString(), Value) == (
            None if proto.WhichOneof("val") is None else
            list(proto.int64_list_val.val) if proto.WhichOneof("val") == "int64_list_val" else
            getattr(proto, proto.WhichOneof("val"))), proto
    keys = {"driver_id": "INT64", "city": "STRING"}
    ours = key_prefix(keys) + key_value("Paris", "STRING") + key_value(7, "INT64")
    theirs = serialize_entity_key(EntityKey(join_keys=["driver_id", "city"],
                                            entity_values=[Value(int64_val=7), Value(string_val="Paris")]), 3)
    assert ours == theirs
    assert feast_value_type_to_python_type(Value(double_val=0.1)) == decode(Value(double_val=0.1).SerializeToString(), Value)
