"""Online feature reads straight from the store, in Feast's layout, without the Feast SDK's
per-request machinery: the entity keys are serialized with Feast's own function, the Redis hash
fields (murmur3 of ``view:feature``) and SQLite tables are resolved once per view, and each
request is one pipelined ``HMGET`` per view (Redis) or one ``SELECT ... IN`` per view (SQLite).

Semantics follow ``FeatureStore.get_online_features``: a feature of an entity the view holds is
``PRESENT`` with its stored value (which may be null) and the row's event time; an entity the
view does not hold gives null, ``NOT_FOUND`` and the epoch; join keys come back as given.
"""

from __future__ import annotations

import sqlite3
import struct
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from featurekit.feast.redis_writer import key_prefix, key_value

EPOCH = "1970-01-01T00:00:00Z"
PRESENT, NOT_FOUND = "PRESENT", "NOT_FOUND"


@dataclass(frozen=True)
class ViewLayout:
    """What a reader needs of one feature view: its join keys (with value types) and features."""

    name: str
    join_keys: dict[str, str]      # column -> Feast ValueType name ("INT64", "STRING", ...)
    features: list[str]


@dataclass
class ViewRows:
    """The stored rows of one view for a list of entities (None where the view has no row)."""

    timestamps: list[datetime | None]
    values: list[dict[str, Any] | None]   # feature -> Python value


def _key_value(value: Any, value_type: str) -> Any:
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


_DOUBLE = struct.Struct("<d").unpack_from
_FLOAT = struct.Struct("<f").unpack_from


def _read_varint(raw: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = raw[at]
        value |= (byte & 0x7F) << shift
        at += 1
        if not byte & 0x80:
            return value, at
        shift += 7


def decode(raw: bytes, value_class: Any) -> Any:
    """A stored Feast ``Value`` as a Python value: the common scalar encodings read directly,
    anything else parsed by protobuf."""
    if not raw:
        return None
    tag = raw[0]
    if tag == 0x29 and len(raw) == 9:                       # double_val
        return _DOUBLE(raw, 1)[0]
    if tag in (0x20, 0x18):                                 # int64_val / int32_val
        value, end = _read_varint(raw, 1)
        if end == len(raw):
            if value >= 1 << 63:
                value -= 1 << 64
            return value
    elif tag == 0x12:                                       # string_val
        length, start = _read_varint(raw, 1)
        if start + length == len(raw):
            return raw[start:].decode("utf8")
    elif tag == 0x38 and len(raw) == 2:                     # bool_val
        return bool(raw[1])
    elif tag == 0x35 and len(raw) == 5:                     # float_val
        return _FLOAT(raw, 1)[0]
    proto = value_class()
    proto.ParseFromString(raw)
    return python_value(proto)


def python_value(proto: Any) -> Any:
    """A Feast ``Value`` proto as a plain Python value (None when unset)."""
    which = proto.WhichOneof("val")
    if which is None or which == "null_val":
        return None
    value = getattr(proto, which)
    if which.endswith("_list_val"):
        return list(value.val)
    return value


class OnlineReader:
    """Reads online feature rows of the store described by ``store_config`` (feature_store.yaml)."""

    def __init__(self, store_config: dict[str, Any], repo_path: str, views: dict[str, ViewLayout]) -> None:
        from feast.infra.key_encoding_utils import serialize_entity_key
        from feast.infra.online_stores.helpers import _mmh3
        from feast.protos.feast.types.EntityKey_pb2 import EntityKey
        from feast.protos.feast.types.Value_pb2 import Value

        self.views = views
        self.project = str(store_config["project"])
        self.kind = str(store_config["online_store"].get("type", "sqlite"))
        self.version = int(store_config.get("entity_key_serialization_version", 3))
        self._serialize, self._entity_key, self._value = serialize_entity_key, EntityKey, Value
        self._prefixes: dict[str, bytes] = {}
        if self.kind == "redis":
            from featurekit.feast.online import _config
            from feast.infra.online_stores.redis import RedisOnlineStore

            config = _config(store_config, repo_path)
            self._redis = RedisOnlineStore()._get_client(config.online_store)
            self._fields = {v.name: [_mmh3(f"{v.name}:{f}") for f in v.features] + [f"_ts:{v.name}".encode()]
                            for v in views.values()}
        elif self.kind == "sqlite":
            path = Path(str(store_config["online_store"].get("path", "data/online.db")))
            self._sqlite_path = path if path.is_absolute() else Path(repo_path) / path
            self._local = threading.local()
        else:
            raise ValueError(f"reading a {self.kind!r} online store directly is not supported (sqlite, redis)")

    def entity_key(self, view: ViewLayout, row: dict[str, Any]) -> bytes:
        if self.version == 3:
            prefix = self._prefixes.get(view.name)
            if prefix is None:
                prefix = self._prefixes[view.name] = key_prefix(view.join_keys)
            return prefix + b"".join(key_value(row[k], view.join_keys[k]) for k in sorted(view.join_keys))
        proto = self._entity_key(join_keys=list(view.join_keys),
                                 entity_values=[_key_value(row[k], t) for k, t in view.join_keys.items()])
        return self._serialize(proto, entity_key_serialization_version=self.version)

    def read(self, view_name: str, rows: list[dict[str, Any]]) -> ViewRows:
        """The stored rows of ``view_name`` for each entity row (dicts of join key -> value)."""
        view = self.views[view_name]
        keys = [self.entity_key(view, row) for row in rows]
        if self.kind == "redis":
            return self._read_redis(view, keys)
        return self._read_sqlite(view, keys)

    def _read_redis(self, view: ViewLayout, keys: list[bytes]) -> ViewRows:
        from google.protobuf.timestamp_pb2 import Timestamp

        fields = self._fields[view.name]
        project = self.project.encode()
        with self._redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.hmget(key + project, fields)
            replies = pipe.execute()
        out = ViewRows([], [])
        for reply in replies:
            raw_ts = reply[-1]
            if raw_ts is None:
                out.timestamps.append(None)
                out.values.append(None)
                continue
            stamp = Timestamp()
            stamp.ParseFromString(raw_ts)
            out.timestamps.append(stamp.ToDatetime(tzinfo=UTC))
            values: dict[str, Any] = {}
            for name, raw in zip(view.features, reply):
                if raw is not None:
                    values[name] = decode(raw, self._value)
            out.values.append(values)
        return out

    def _connection(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self._sqlite_path, check_same_thread=False)
            self._local.conn = conn
        return conn

    def _read_sqlite(self, view: ViewLayout, keys: list[bytes]) -> ViewRows:
        table = f"{self.project}_{view.name}"
        unique = list(dict.fromkeys(keys))
        found: dict[bytes, tuple[datetime | None, dict[str, Any]]] = {}
        wanted = set(view.features)
        for start in range(0, len(unique), 500):
            chunk = unique[start:start + 500]
            marks = ",".join("?" * len(chunk))
            try:
                cursor = self._connection().execute(
                    f'SELECT entity_key, feature_name, value, event_ts FROM "{table}" WHERE entity_key IN ({marks})', chunk)
            except sqlite3.OperationalError as exc:
                if "no such table" in str(exc):
                    break
                raise
            for key, feature, raw, event_ts in cursor:
                ts, values = found.setdefault(bytes(key), (None, {}))
                stamp = _sqlite_ts(event_ts)
                if ts is None or (stamp is not None and stamp > ts):
                    found[bytes(key)] = (stamp, values)
                if feature in wanted:
                    values[feature] = decode(raw, self._value)
        out = ViewRows([], [])
        for key in keys:
            hit = found.get(key)
            out.timestamps.append(hit[0] if hit else None)
            out.values.append(hit[1] if hit else None)
        return out


def _sqlite_ts(value: Any) -> datetime | None:
    """Feast's SQLite store keeps event times as epoch seconds (older files: ISO text)."""
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value, tz=UTC)
    return datetime.fromisoformat(str(value)).replace(tzinfo=UTC)
