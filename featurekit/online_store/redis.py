"""The Redis online store: Feast's hashes per entity key, written, read and counted by featurekit.

Feast keeps one hash per entity key (``serialize_entity_key`` + project) with a field per
feature (murmur3 of ``view:feature``) and ``_ts:view`` (the event time). Feast's writer builds
one protobuf per value and one redis-py command per entity; :class:`RedisBatchWriter` produces
the same bytes from whole Arrow columns and sends a batch as one buffer of Redis protocol on one
connection. As in Feast, a key whose stored event time is at least as new as the row's is left
alone (the stored times are read first, pipelined). Reads are one pipelined ``HMGET`` per view.

featurekit's markers are hashes ``featurekit:<project>:materialized:<view>``. :func:`redis_client`
is the one place a client is made, from Feast's ``connection_string``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Any

from featurekit.online_store.base import BatchWrite, KeyCount, Marker, ViewLayout, ViewRows, marker_fields, \
    parse_marker
from featurekit.online_store.keys import entity_keys, field_hash, key_serializer, nanos_datetime, \
    timestamp_datetime, timestamp_nanos, timestamp_proto, ts_field
from featurekit.online_store.values import decode


def redis_client(connection_string: str, redis_type: str = "redis", sentinel_master: str = "mymaster") -> Any:
    """A client for Feast's ``connection_string``: ``host:port[,host:port...][,db=0,ssl=true,password=...]``,
    of a plain Redis, a Redis Cluster (every ``host:port`` a startup node) or a Sentinel.

    ``${NAME}`` is taken from the environment, as Feast does when it loads feature_store.yaml
    (that is how a password reaches both without sitting in conf).
    """
    import redis

    connection_string = os.path.expandvars(connection_string)
    nodes = [dict(zip(("host", "port"), c.split(":"))) for c in connection_string.split(",") if "=" not in c]
    params: dict[str, Any] = {}
    for part in connection_string.split(","):
        if "=" in part:
            key, value = part.split("=", 1)
            try:
                params[key] = json.loads(value)
            except json.JSONDecodeError:
                params[key] = value
    kind = str(redis_type).split(".")[-1]
    if kind == "redis_cluster":
        from redis.cluster import ClusterNode, RedisCluster

        return RedisCluster(startup_nodes=[ClusterNode(n["host"], int(n.get("port", 6379))) for n in nodes], **params)
    if kind == "redis_sentinel":
        from redis.sentinel import Sentinel

        return Sentinel([(n["host"], int(n.get("port", 6379))) for n in nodes], **params).master_for(sentinel_master)
    return redis.Redis(host=nodes[0]["host"], port=int(nodes[0].get("port") or 6379), **params)


@dataclass(frozen=True)
class RedisLayout:
    """What a writer needs of a feature view and the store: plain data, picklable, no Feast objects
    (so Spark's Python workers never ``import feast``, which costs seconds per worker)."""

    project: str
    view: str
    timestamp: str
    join_keys: dict[str, str]            # column -> Feast ValueType name
    features: list[tuple[str, str]]      # (column, Feast ValueType name)
    connection_string: str
    key_ttl_seconds: int | None = None

    @classmethod
    def of(cls, project: str, view: Any, online_store: Any) -> "RedisLayout":
        """From a Feast FeatureView and RedisOnlineStoreConfig (on the driver)."""
        return cls(project=project, view=view.name, timestamp=view.batch_source.timestamp_field,
                   join_keys={c.name: c.dtype.to_value_type().name for c in view.entity_columns},
                   features=[(f.name, f.dtype.to_value_type().name) for f in view.features],
                   connection_string=online_store.connection_string,
                   key_ttl_seconds=getattr(online_store, "key_ttl_seconds", None))


def _resp_field(name: bytes, value: bytes) -> bytes:
    return b"$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(name), name, len(value), value)


class RedisBatchWriter:
    """Writes Arrow batches of one feature view into Redis (see the module doc)."""

    def __init__(self, client: Any, layout: RedisLayout) -> None:
        self.client = client
        self.project = layout.project.encode()
        self.ts_field = ts_field(layout.view)
        self.timestamp = layout.timestamp
        self.join_keys = layout.join_keys
        self.features = [(name, kind, field_hash(layout.view, name)) for name, kind in layout.features]
        self.key_ttl_seconds = layout.key_ttl_seconds

    def _stamps(self, batch: Any) -> tuple[list[bytes], list[int]]:
        """Timestamp protos (seconds, nanos) of the rows' event times, and their nanoseconds."""
        import pyarrow as pa

        column = batch.column(self.timestamp)
        nanos = column.cast(pa.timestamp("ns", tz="UTC")).cast(pa.int64()).to_numpy(zero_copy_only=False).tolist()
        return [timestamp_proto(total) for total in nanos], nanos

    def _stored(self, keys: list[bytes]) -> list[int]:
        """The event time (ns) stored for each key of this view, 0 when none."""
        return [0 if raw is None else timestamp_nanos(raw) for raw in hget_many(self.client, keys, self.ts_field)]

    def write(self, batch: Any) -> int:
        """Write one Arrow batch; the number of keys written (rows not older than the stored ones)."""
        import numpy as np

        from featurekit.online_store.encoding import fixed as fixed_block
        from featurekit.online_store.encoding import variable as variable_values

        n = batch.num_rows
        if n == 0:
            return 0
        keys = entity_keys(batch, self.join_keys, self.project)
        stamps, totals = self._stamps(batch)
        stored = self._stored(keys)
        latest: dict[bytes, int] = {}
        chosen = []
        for i, (key, total, before) in enumerate(zip(keys, totals, stored)):
            seen = max(before, latest.get(key, 0))
            if seen and total <= seen:
                continue
            latest[key] = total
            chosen.append(i)
        if not chosen:
            return 0
        fixed_parts, variable = [], []
        for name, kind, field in self.features:
            column = batch.column(name)
            block = fixed_block(column, kind)
            if block is not None:
                width = block.shape[1]
                head = np.frombuffer(b"$%d\r\n%s\r\n$%d\r\n" % (len(field), field, width), np.uint8)
                part = np.empty((n, len(head) + width + 2), np.uint8)
                part[:, :len(head)] = head
                part[:, len(head):len(head) + width] = block
                part[:, -2:] = np.frombuffer(b"\r\n", np.uint8)
                fixed_parts.append(part)
            else:
                variable.append((field, variable_values(column, kind)))
        fixed = np.hstack(fixed_parts) if fixed_parts else np.empty((n, 0), np.uint8)
        width = fixed.shape[1]
        fixed_bytes = fixed.tobytes()
        count = 2 + 2 * (len(self.features) + 1)
        commands = []
        for i in chosen:
            key = keys[i]
            pieces = [b"*%d\r\n$4\r\nHSET\r\n$%d\r\n%s\r\n" % (count, len(key), key), fixed_bytes[i * width:(i + 1) * width]]
            pieces += [_resp_field(field, values[i]) for field, values in variable]
            pieces.append(_resp_field(self.ts_field, stamps[i]))
            if self.key_ttl_seconds:
                ttl = b"%d" % self.key_ttl_seconds
                pieces.append(b"*3\r\n$6\r\nEXPIRE\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(key), key, len(ttl), ttl))
            commands.append(b"".join(pieces))
        self._send(b"".join(commands), len(chosen) * (2 if self.key_ttl_seconds else 1))
        return len(chosen)

    def _send(self, payload: bytes, replies: int) -> None:
        """Send a buffer of commands on one connection; read (and check) every reply."""
        errors = [r for r in send_packed(self.client, payload, replies) if isinstance(r, Exception)]
        if errors:
            raise RuntimeError(f"Redis refused {len(errors)} write(s): {errors[0]}")


class ReplacingRedisWriter(RedisBatchWriter):
    """featurekit's Redis writer, but a stored value is kept only when it is newer than
    ``until`` (epoch ns, the window's end): inside the window the row given replaces what the
    store holds, even an equal or newer event time. ``--incremental`` writes each changed key's
    latest row of the table version, which may be a corrected value at the same event time or
    an older row after the newest was deleted; Feast's rule (write only when newer) would keep
    the stale value there. Within the rows given, the newer per key still wins."""

    def __init__(self, client: Any, layout: RedisLayout, until: int) -> None:
        super().__init__(client, layout)
        self.until = until

    def _stored(self, keys: list[bytes]) -> list[int]:
        return [stamp if stamp > self.until else 0 for stamp in super()._stored(keys)]


def send_packed(client: Any, payload: bytes, replies: int) -> list[Any]:
    """Send a buffer of Redis protocol on one pooled connection and read ``replies`` replies
    (an error reply comes back as its exception, in its place). redis-py's pipeline builds
    Python objects per command; for many small commands that costs more than Redis does."""
    from redis.exceptions import ResponseError

    pool = client.connection_pool
    connection = pool.get_connection()
    try:
        connection.send_packed_command([payload], check_health=False)
        out: list[Any] = []
        for _ in range(replies):
            try:
                out.append(connection.read_response())
            except ResponseError as exc:
                out.append(exc)
        return out
    except BaseException:
        connection.disconnect()
        raise
    finally:
        pool.release(connection)


def hget_many(client: Any, keys: list[bytes], field: bytes, chunk: int = 10_000) -> list[bytes | None]:
    """``HGET key field`` for every key, pipelined as raw protocol; the values (None if absent).
    A client without one connection pool (Redis Cluster) gets redis-py's pipeline."""
    if getattr(client, "connection_pool", None) is None:
        with client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.hget(key, field)
            return list(pipe.execute())
    tail = b"$%d\r\n%s\r\n" % (len(field), field)
    out: list[bytes | None] = []
    for start in range(0, len(keys), chunk):
        part = keys[start:start + chunk]
        payload = b"".join(b"*3\r\n$4\r\nHGET\r\n$%d\r\n%s\r\n%s" % (len(key), key, tail) for key in part)
        for reply in send_packed(client, payload, len(part)):
            if isinstance(reply, Exception):
                raise reply
            out.append(reply)
    return out


class RedisStore:
    """The Redis online store of ``store_config`` (see the module doc)."""

    kind = "redis"
    precision_ns = 1
    single_writer = False
    keeps_newer = True

    def __init__(self, store_config: dict[str, Any], repo_path: str) -> None:
        self.online = store_config["online_store"]
        self.project = str(store_config["project"])
        self.redis_type = str(self.online.get("redis_type", "redis")).split(".")[-1]
        self.connection_string = str(self.online.get("connection_string", "localhost:6379"))
        self.version = int(store_config.get("entity_key_serialization_version", 3))
        self._key = key_serializer(self.version)
        self._fields: dict[str, list[bytes]] = {}

    @staticmethod
    def local_folders(store_config: dict[str, Any], repo_path: str) -> list[Path]:
        return []

    @cached_property
    def client(self) -> Any:
        return redis_client(self.connection_string, self.redis_type, str(self.online.get("sentinel_master", "mymaster")))

    # ------------------------------------------------------------------ writing
    def writer_layout(self, view: ViewLayout) -> RedisLayout | None:
        if self.redis_type != "redis" or self.version != 3:
            return None
        ttl = self.online.get("key_ttl_seconds")
        return RedisLayout(project=self.project, view=view.name, timestamp=view.timestamp,
                           join_keys=dict(view.join_keys), features=list(view.features.items()),
                           connection_string=self.connection_string, key_ttl_seconds=None if ttl is None else int(ttl))

    def batch_writer(self, layout: Any, replace_until: int | None = None) -> BatchWrite | None:
        client = redis_client(layout.connection_string)
        if replace_until is not None:
            return ReplacingRedisWriter(client, layout, replace_until).write
        return RedisBatchWriter(client, layout).write

    # ------------------------------------------------------------------ reading
    def read(self, view: ViewLayout, rows: list[dict[str, Any]]) -> ViewRows:
        fields = self._fields.get(view.name)
        if fields is None:
            fields = self._fields[view.name] = [field_hash(view.name, f) for f in view.features] + [ts_field(view.name)]
        project = self.project.encode()
        with self.client.pipeline(transaction=False) as pipe:
            for row in rows:
                pipe.hmget(self._key(view.join_keys, row) + project, fields)
            replies = pipe.execute()
        out = ViewRows([], [])
        for reply in replies:
            raw_ts = reply[-1]
            if raw_ts is None:
                out.timestamps.append(None)
                out.values.append(None)
                continue
            out.timestamps.append(timestamp_datetime(raw_ts))
            out.values.append({name: decode(raw) for name, raw in zip(view.features, reply) if raw is not None})
        return out

    def count_keys(self, view: str, start: datetime, end: datetime) -> KeyCount:
        project = self.project.encode()
        pattern = b"*" + b"".join(b"\\" + bytes([c]) if c in b"*?[]\\" else bytes([c]) for c in project)
        field = ts_field(view)
        low, high = start.timestamp(), end.timestamp()
        present = in_window = newer = 0
        newest: int | None = None   # epoch ns
        keys: list[bytes] = []

        def flush() -> None:
            nonlocal present, in_window, newer, newest
            for raw in hget_many(self.client, keys, field):
                if raw is None:
                    continue
                total = timestamp_nanos(raw)
                newest = total if newest is None or total > newest else newest
                whole, nanos = divmod(total, 1_000_000_000)
                seconds = whole + nanos / 1e9
                present += 1
                in_window += low <= seconds <= high
                newer += seconds > high
            keys.clear()

        for key in self.client.scan_iter(match=pattern, count=10_000):
            keys.append(key)
            if len(keys) >= 10_000:
                flush()
        flush()
        return KeyCount(present, in_window, newer, None if newest is None else nanos_datetime(newest))

    def stored_times(self, layout: Any, keys: Any) -> list[int | None]:
        wanted = entity_keys(keys, layout.join_keys, self.project.encode())
        return [None if raw is None else timestamp_nanos(raw) for raw in hget_many(self.client, wanted, ts_field(layout.view))]

    # ------------------------------------------------------------------ markers
    def _marker_key(self, view: str) -> str:
        return f"featurekit:{self.project}:materialized:{view}"

    def marker(self, view: str) -> Marker | None:
        fields = self.client.hgetall(self._marker_key(view))
        return parse_marker({k.decode(): v.decode() for k, v in fields.items()}) if fields else None

    def set_marker(self, view: str, marker: Marker | None) -> None:
        if marker is None:
            self.client.delete(self._marker_key(view))
            return
        self.client.hset(self._marker_key(view), mapping=marker_fields(marker))   # every field, in one command
