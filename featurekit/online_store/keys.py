"""Feast's online key layout, written by featurekit itself: entity keys, hash fields, event times.

- entity keys: ``serialize_entity_key`` version 3 (sorted join key names, then per value
  ``<I type><I length><bytes>``); Redis appends the project name. Other serialization versions
  go through Feast's own function, imported only on that path;
- Redis hash fields: murmur3 of ``view:feature`` (Feast's ``_mmh3``), and ``_ts:view`` holding
  the event time as a ``Timestamp`` proto, read and written here without protobuf.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

# Feast ValueType numbers used in entity keys
STRING, INT32, INT64, BYTES = 2, 3, 4, 1
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def varint(value: int) -> bytes:
    """A protobuf varint (two's complement for negatives, as protobuf does)."""
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


def read_varint(raw: bytes, at: int) -> tuple[int, int]:
    """The varint at ``raw[at:]`` and the position after it."""
    value = shift = 0
    while True:
        byte = raw[at]
        value |= (byte & 0x7F) << shift
        at += 1
        if not byte & 0x80:
            return value, at
        shift += 7


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
    """Feast's keys (serialize_entity_key v3, then ``project``: empty for SQLite) for every row
    of ``batch`` (a pyarrow batch or table holding the join key columns)."""
    names = sorted(join_keys)
    prefix = key_prefix(join_keys)
    columns = [[key_value(v, join_keys[name]) for v in batch.column(name).to_pylist()] for name in names]
    return [prefix + b"".join(parts) + project for parts in zip(*columns)]


def key_serializer(version: int) -> Callable[[dict[str, str], dict[str, Any]], bytes]:
    """``(join key types, row) -> entity key`` for Feast's serialization ``version``: featurekit's
    own for version 3 (prefixes kept per set of join keys), Feast's function for the others."""
    if version == 3:
        prefixes: dict[tuple[tuple[str, str], ...], bytes] = {}

        def v3(join_keys: dict[str, str], row: dict[str, Any]) -> bytes:
            shape = tuple(join_keys.items())
            prefix = prefixes.get(shape)
            if prefix is None:
                prefix = prefixes[shape] = key_prefix(join_keys)
            return prefix + b"".join(key_value(row[k], join_keys[k]) for k in sorted(join_keys))

        return v3
    from feast.infra.key_encoding_utils import serialize_entity_key
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey

    def other(join_keys: dict[str, str], row: dict[str, Any]) -> bytes:
        proto = EntityKey(join_keys=list(join_keys),
                          entity_values=[_value_proto(row[k], t) for k, t in join_keys.items()])
        return serialize_entity_key(proto, entity_key_serialization_version=version)

    return other


def _value_proto(value: Any, value_type: str) -> Any:
    from feast.protos.feast.types.Value_pb2 import Value

    if value_type == "INT64":
        return Value(int64_val=int(value))
    if value_type == "INT32":
        return Value(int32_val=int(value))
    if value_type == "STRING":
        return Value(string_val=str(value))
    if value_type == "BOOL":
        return Value(bool_val=bool(value))
    if value_type == "BYTES":
        return Value(bytes_val=value if isinstance(value, bytes) else str(value).encode())
    raise ValueError(f"join keys of type {value_type} are not supported")


def field_hash(view: str, feature: str) -> bytes:
    """Feast's hash field name: murmur3_32 of ``view:feature``, 4 bytes little-endian."""
    import mmh3

    return struct.pack("<I", mmh3.hash(f"{view}:{feature}", signed=False))


def ts_field(view: str) -> bytes:
    """The Redis hash field holding a view's event time."""
    return f"_ts:{view}".encode()


def timestamp_proto(nanos: int) -> bytes:
    """A ``Timestamp`` proto (seconds, nanos) of epoch nanoseconds, as protobuf serializes it
    (fields holding zero left out)."""
    seconds, rest = divmod(nanos, 1_000_000_000)
    return (b"\x08" + varint(seconds) if seconds else b"") + (b"\x10" + varint(rest) if rest else b"")


def timestamp_nanos(raw: bytes) -> int:
    """A stored ``Timestamp`` proto as epoch nanoseconds."""
    seconds = nanos = 0
    at = 0
    while at < len(raw):
        tag = raw[at]
        value, at = read_varint(raw, at + 1)
        if tag == 0x08:
            seconds = value - (1 << 64) if value >= 1 << 63 else value
        elif tag == 0x10:
            nanos = value
    return seconds * 1_000_000_000 + nanos


def timestamp_datetime(raw: bytes) -> datetime:
    """A stored ``Timestamp`` proto as an aware datetime (microseconds, as protobuf's ToDatetime)."""
    return nanos_datetime(timestamp_nanos(raw))


def nanos_datetime(total: int) -> datetime:
    """Epoch nanoseconds as an aware UTC datetime (microseconds, as protobuf's ToDatetime)."""
    seconds, nanos = divmod(total, 1_000_000_000)
    return EPOCH + timedelta(seconds=seconds, microseconds=nanos // 1000)
