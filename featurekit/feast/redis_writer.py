"""A fast Redis writer for materialization, byte-for-byte in Feast's layout.

Feast's Redis store builds one protobuf per value and one redis-py command per entity; most of
its time goes there. This writer produces the same bytes from whole Arrow columns:

- entity keys: Feast's ``serialize_entity_key`` v3 layout (sorted join key names, then per value
  ``<I type><I length><bytes>``), plus the project name, as in ``_redis_key``;
- values: Feast's ``Value`` proto encodings, written directly (``double_val`` = ``0x29`` + 8
  bytes little-endian, ``int64_val`` = ``0x20`` + varint, ...); a null (or NaN, as Feast turns
  NaN into an empty ``Value``) is the empty string Feast stores for an empty proto; types not
  listed here go through Feast's own converter, column by column;
- hash fields: murmur3 of ``view:feature`` (Feast's ``_mmh3``) and ``_ts:view`` holding the
  event time as a ``Timestamp`` proto.

Null-free fixed-width columns are laid out for all rows at once with numpy; the whole batch is
one buffer of Redis protocol sent on one connection. As in Feast, a key whose stored event time
is at least as new as the row's is left alone (the stored times are read first, pipelined).
Tests compare the bytes in Redis with what Feast's own writer leaves for the same rows.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

# Feast ValueType numbers used in entity keys
STRING, INT32, INT64, BYTES, UNIX_TIMESTAMP = 2, 3, 4, 1, 8
# proto tag bytes of Value's oneof fields
TAG_BYTES, TAG_STRING, TAG_INT32, TAG_INT64, TAG_DOUBLE, TAG_FLOAT, TAG_BOOL = 0x0A, 0x12, 0x18, 0x20, 0x29, 0x35, 0x38


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _varints(values: np.ndarray) -> list[bytes]:
    """Varints of int64 values (two's complement for negatives, as protobuf does)."""
    unsigned = values.astype(np.int64).view(np.uint64)
    return [_varint(int(v)) for v in unsigned]


def _fixed(column: Any, kind: str) -> np.ndarray | None:
    """(n, width) uint8 array of the proto encoding of a null-free fixed-width column, else None."""
    import pyarrow as pa

    if column.null_count:
        return None
    n = len(column)
    if kind == "DOUBLE":
        values = column.to_numpy(zero_copy_only=False).astype("<f8")
        if np.isnan(values).any():
            return None
        out = np.empty((n, 9), np.uint8)
        out[:, 0] = TAG_DOUBLE
        out[:, 1:] = values.view(np.uint8).reshape(n, 8)
        return out
    if kind == "FLOAT":
        values = column.to_numpy(zero_copy_only=False).astype("<f4")
        if np.isnan(values).any():
            return None
        out = np.empty((n, 5), np.uint8)
        out[:, 0] = TAG_FLOAT
        out[:, 1:] = values.view(np.uint8).reshape(n, 4)
        return out
    if kind == "BOOL":
        out = np.empty((n, 2), np.uint8)
        out[:, 0] = TAG_BOOL
        out[:, 1] = column.to_numpy(zero_copy_only=False).astype(np.uint8)
        return out
    if kind == "INT64" and pa.types.is_integer(column.type) and n:
        values = column.to_numpy(zero_copy_only=False).astype(np.int64)
        low, high = int(values.min()), int(values.max())
        # fixed width only when every value's varint has the same length
        k = max(1, (high.bit_length() + 6) // 7)
        if low < 0 or max(1, (low.bit_length() + 6) // 7) != k:
            return None
        out = np.empty((n, k + 1), np.uint8)
        out[:, 0] = TAG_INT64
        rest = values.astype(np.uint64)
        for i in range(k):
            out[:, i + 1] = (rest & np.uint64(0x7F)).astype(np.uint8) | (0x80 if i < k - 1 else 0)
            rest = rest >> np.uint64(7)
        return out
    return None


def _variable(column: Any, kind: str) -> list[bytes]:
    """The proto encoding of each value of a column, as Feast would serialize it."""
    values = column.to_pylist()
    if kind == "STRING":
        out = []
        for v in values:
            if v is None:
                out.append(b"")
            else:
                raw = v.encode("utf8")
                out.append(bytes([TAG_STRING]) + _varint(len(raw)) + raw)
        return out
    if kind == "INT64" and all(v is None or isinstance(v, int) for v in values):
        return [b"" if v is None else bytes([TAG_INT64]) + _varint(v) for v in values]
    if kind == "DOUBLE":
        return [b"" if v is None or v != v else struct.pack("<Bd", TAG_DOUBLE, v) for v in values]
    if kind == "BOOL":
        return [b"" if v is None else bytes([TAG_BOOL, int(v)]) for v in values]
    if kind == "INT32" and all(v is None or isinstance(v, int) for v in values):
        return [b"" if v is None else bytes([TAG_INT32]) + _varint(v) for v in values]
    if kind == "FLOAT":
        return [b"" if v is None or v != v else struct.pack("<Bf", TAG_FLOAT, v) for v in values]
    # anything else (arrays, bytes, timestamps): Feast's own converter, imported only here
    from feast.type_map import python_values_to_proto_values
    from feast.value_type import ValueType

    protos = python_values_to_proto_values(column.to_numpy(zero_copy_only=False), ValueType[kind])
    return [p.SerializeToString() for p in protos]


def _resp_field(name: bytes, value: bytes) -> bytes:
    return b"$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(name), name, len(value), value)


def key_prefix(join_keys: dict[str, str]) -> bytes:
    """Feast's serialize_entity_key v3 up to the values: key count, then each sorted key name."""
    names = sorted(join_keys)
    return struct.pack("<I", len(names)) + b"".join(
        struct.pack("<II", STRING, len(k.encode())) + k.encode() for k in names)


def key_value(value: Any, value_type: str) -> bytes:
    """One join key value as serialize_entity_key v3 writes it: <I type><I length><bytes>."""
    if value_type == "INT64":
        return struct.pack("<IIq", INT64, 8, int(value))
    if value_type == "INT32":
        return struct.pack("<IIi", INT32, 4, int(value))
    if value_type == "STRING":
        raw = str(value).encode("utf8")
        return struct.pack("<II", STRING, len(raw)) + raw
    if value_type == "BYTES":
        raw = value if isinstance(value, bytes) else str(value).encode()
        return struct.pack("<II", BYTES, len(raw)) + raw
    raise ValueError(f"join keys of type {value_type} are not supported")


def entity_keys(batch: Any, join_keys: dict[str, str], project: bytes) -> list[bytes]:
    """Feast's Redis keys (serialize_entity_key v3 + project) for every row of ``batch``."""
    names = sorted(join_keys)
    prefix = key_prefix(join_keys)
    columns = [[key_value(v, join_keys[name]) for v in batch.column(name).to_pylist()] for name in names]
    return [prefix + b"".join(parts) + project for parts in zip(*columns)]


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


def redis_client(connection_string: str) -> Any:
    """A client for Feast's ``connection_string`` of a plain Redis: ``host:port[,db=0,ssl=true,password=...]``.

    ``${NAME}`` is taken from the environment, as Feast does when it loads feature_store.yaml
    (that is how a password reaches both without sitting in conf).
    """
    import os

    import redis

    connection_string = os.path.expandvars(connection_string)
    nodes = [c for c in connection_string.split(",") if "=" not in c]
    params: dict[str, Any] = {}
    for part in connection_string.split(","):
        if "=" in part:
            key, value = part.split("=", 1)
            try:
                params[key] = json.loads(value)
            except json.JSONDecodeError:
                params[key] = value
    host, _, port = nodes[0].partition(":")
    return redis.Redis(host=host, port=int(port or 6379), **params)


def field_hash(view: str, feature: str) -> bytes:
    """Feast's hash field name: murmur3_32 of ``view:feature``, 4 bytes little-endian."""
    import mmh3

    return struct.pack("<I", mmh3.hash(f"{view}:{feature}", signed=False))


class RedisBatchWriter:
    """Writes Arrow batches of one feature view into Redis (see the module doc)."""

    def __init__(self, client: Any, layout: RedisLayout) -> None:
        self.client = client
        self.project = layout.project.encode()
        self.ts_field = f"_ts:{layout.view}".encode()
        self.timestamp = layout.timestamp
        self.join_keys = layout.join_keys
        self.features = [(name, kind, field_hash(layout.view, name)) for name, kind in layout.features]
        self.key_ttl_seconds = layout.key_ttl_seconds

    def _stamps(self, batch: Any) -> tuple[list[bytes], list[int]]:
        """Timestamp protos (seconds, nanos) of the rows' event times, and their nanoseconds."""
        import pyarrow as pa

        column = batch.column(self.timestamp)
        nanos = column.cast(pa.timestamp("ns", tz="UTC")).cast(pa.int64()).to_numpy(zero_copy_only=False)
        protos, totals = [], []
        for total in nanos.tolist():
            seconds, rest = divmod(total, 1_000_000_000)
            protos.append(b"\x08" + _varint(seconds) + (b"\x10" + _varint(rest) if rest else b""))
            totals.append(total)
        return protos, totals

    def _stored(self, keys: list[bytes]) -> list[int]:
        """The event time (ns) stored for each key of this view, 0 when none."""
        from google.protobuf.timestamp_pb2 import Timestamp

        replies = hget_many(self.client, keys, self.ts_field)
        out = []
        for raw in replies:
            if raw is None:
                out.append(0)
                continue
            stamp = Timestamp()
            stamp.ParseFromString(raw)
            out.append(stamp.seconds * 1_000_000_000 + stamp.nanos)
        return out

    def write(self, batch: Any) -> int:
        """Write one Arrow batch; the number of keys written (rows not older than the stored ones)."""
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
            block = _fixed(column, kind)
            if block is not None:
                width = block.shape[1]
                head = np.frombuffer(b"$%d\r\n%s\r\n$%d\r\n" % (len(field), field, width), np.uint8)
                part = np.empty((n, len(head) + width + 2), np.uint8)
                part[:, :len(head)] = head
                part[:, len(head):len(head) + width] = block
                part[:, -2:] = np.frombuffer(b"\r\n", np.uint8)
                fixed_parts.append(part)
            else:
                variable.append((field, _variable(column, kind)))
        fixed = np.hstack(fixed_parts) if fixed_parts else np.empty((n, 0), np.uint8)
        width = fixed.shape[1]
        fixed_bytes = fixed.tobytes()
        count = 2 + 2 * (len(self.features) + 1)
        ttl = b""
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


def encoded_columns(batch: Any, features: list[tuple[str, str]]) -> list[list[bytes]]:
    """Per feature, the Feast ``Value`` proto bytes of every row (b"" for null, as Feast)."""
    out = []
    for name, kind in features:
        column = batch.column(name)
        block = _fixed(column, kind)
        if block is None:
            out.append(_variable(column, kind))
        else:
            raw, width = block.tobytes(), block.shape[1]
            out.append([raw[i:i + width] for i in range(0, len(raw), width)])
    return out
