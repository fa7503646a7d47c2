"""The online store side of materialization: writing rows in Feast's layout, counting keys back.

:class:`OnlineWriter` is shipped to Spark's Python workers (it holds only picklable data: the
store settings and the feature view as a proto) and writes Arrow batches through Feast's own
online store classes, so the key layout and value encoding are Feast's by construction and the
Feast SDK reads the values back. Memory is bounded by one Arrow batch per task.

:func:`count_keys` reads the store directly (SQLite query, Redis SCAN), independently of the
writer, so a materialization that wrote nothing or too little is caught.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Iterator


@dataclass(frozen=True)
class KeyCount:
    """Entity keys of one view in the online store, by their stored event time against a window."""

    present: int        # keys holding a value of the view
    in_window: int      # ... whose event time is within [start, end]
    newer: int          # ... whose event time is after end (a later window was written before)


def _config(store_config: dict[str, Any], repo_path: str) -> Any:
    from feast.repo_config import RepoConfig

    return RepoConfig(repo_path=Path(repo_path), **store_config)


class OnlineWriter:
    """Writes Arrow batches of latest rows (join keys, timestamp, features) into the online store.

    A plain Redis gets featurekit's columnar writer (``redis_writer``; the workers then never
    import Feast); other stores go through Feast's own ``online_write_batch``.
    """

    def __init__(self, store_config: dict[str, Any], repo_path: str, view_proto: bytes,
                 layout: Any = None) -> None:
        self.store_config = store_config
        self.repo_path = repo_path
        self.view_proto = view_proto
        self.layout = layout

    def __call__(self, batches: Iterator[Any]) -> Iterator[Any]:
        """``mapInArrow`` function: one output row per task (rows written, batches)."""
        import pyarrow as pa

        write = self._featurekit() or self._feast()
        written = count = 0
        for batch in batches:
            if batch.num_rows == 0:
                continue
            write(batch)
            written += batch.num_rows
            count += 1
        yield pa.RecordBatch.from_pydict({"written": [written], "batches": [count]})

    def _featurekit(self) -> Any:
        """featurekit's columnar writer for this store, or None (then Feast's)."""
        from featurekit.feast.redis_writer import RedisBatchWriter, RedisLayout, redis_client
        from featurekit.feast.sqlite_writer import SqliteBatchWriter, SqliteLayout

        if isinstance(self.layout, RedisLayout):
            return RedisBatchWriter(redis_client(self.layout.connection_string), self.layout).write
        if isinstance(self.layout, SqliteLayout):
            writer = SqliteBatchWriter(self.layout)
            return writer.write if writer.supported else None
        return None

    def _feast(self) -> Any:
        from feast.feature_view import FeatureView
        from feast.infra.provider import get_provider
        from feast.protos.feast.core.FeatureView_pb2 import FeatureView as FeatureViewProto
        from feast.utils import _convert_arrow_to_proto

        config = _config(self.store_config, self.repo_path)
        view_proto = FeatureViewProto()
        view_proto.ParseFromString(self.view_proto)
        view = FeatureView.from_proto(view_proto)
        join_keys = {c.name: c.dtype.to_value_type() for c in view.entity_columns}
        provider = get_provider(config)

        def write(batch: Any) -> None:
            provider.online_write_batch(config, view, _convert_arrow_to_proto(batch, view, join_keys), progress=None)

        return write


def writer_layout(store_config: dict[str, Any], repo_path: str, view: Any) -> Any:
    """The layout for featurekit's own writer (plain Redis, or SQLite without vector search), else None."""
    config = _config(store_config, repo_path)
    online = config.online_store
    kind = getattr(online, "type", "")
    if kind == "redis" and str(getattr(online, "redis_type", "redis")).split(".")[-1] == "redis":
        from featurekit.feast.redis_writer import RedisLayout

        return RedisLayout.of(str(store_config["project"]), view, online)
    if kind == "sqlite" and not getattr(online, "vector_enabled", False) \
            and not config.registry.enable_online_feature_view_versioning:
        from featurekit.feast.sqlite_writer import SqliteLayout

        path = Path(str(online.path))
        return SqliteLayout(
            path=str(path if path.is_absolute() else Path(repo_path) / path),
            table=f"{store_config['project']}_{view.name}", timestamp=view.batch_source.timestamp_field,
            join_keys={c.name: c.dtype.to_value_type().name for c in view.entity_columns},
            features=[(f.name, f.dtype.to_value_type().name) for f in view.features],
        )
    return None


def count_keys(store_config: dict[str, Any], repo_path: str, view: str, start: datetime, end: datetime) -> KeyCount:
    """How many entity keys of ``view`` the online store holds, and when their values are from."""
    kind = str(store_config["online_store"].get("type", "sqlite"))
    if kind == "sqlite":
        return _count_sqlite(store_config, repo_path, view, start, end)
    if kind == "redis":
        return _count_redis(store_config, repo_path, view, start, end)
    raise ValueError(f"counting keys in a {kind!r} online store is not supported (sqlite, redis)")


def _naive(ts: datetime) -> datetime:
    return ts.astimezone(UTC).replace(tzinfo=None) if ts.tzinfo else ts


def _count_sqlite(store_config: dict[str, Any], repo_path: str, view: str, start: datetime, end: datetime) -> KeyCount:
    path = Path(str(store_config["online_store"].get("path", "data/online.db")))
    if not path.is_absolute():
        path = Path(repo_path) / path
    table = f"{store_config['project']}_{view}"
    with sqlite3.connect(path) as conn:
        exists = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)).fetchone()
        if not exists:
            return KeyCount(0, 0, 0)
        # Feast stores naive UTC datetimes through its sqlite3 adapter, as epoch seconds
        # (``naive.timestamp()``): the bounds go through the same conversion.
        low, high = int(_naive(start).timestamp()), int(_naive(end).timestamp())
        row = conn.execute(
            f'SELECT COUNT(*), COALESCE(SUM(ts >= ? AND ts <= ?), 0), COALESCE(SUM(ts > ?), 0) '
            f'FROM (SELECT entity_key, MAX(event_ts) AS ts FROM "{table}" GROUP BY entity_key)',
            (low, high, high),
        ).fetchone()
    return KeyCount(int(row[0]), int(row[1]), int(row[2]))


def _count_redis(store_config: dict[str, Any], repo_path: str, view: str, start: datetime, end: datetime) -> KeyCount:
    from feast.infra.online_stores.redis import RedisOnlineStore
    from google.protobuf.timestamp_pb2 import Timestamp

    from featurekit.feast.redis_writer import hget_many

    config = _config(store_config, repo_path)
    client = RedisOnlineStore()._get_client(config.online_store)
    project = str(store_config["project"]).encode()
    pattern = b"*" + b"".join(b"\\" + bytes([c]) if c in b"*?[]\\" else bytes([c]) for c in project)
    ts_field = f"_ts:{view}".encode()
    low, high = start.timestamp(), end.timestamp()
    present = in_window = newer = 0
    keys: list[bytes] = []

    def flush() -> None:
        nonlocal present, in_window, newer
        for raw in hget_many(client, keys, ts_field):
            if raw is None:
                continue
            stamp = Timestamp()
            stamp.ParseFromString(raw)
            seconds = stamp.seconds + stamp.nanos / 1e9
            present += 1
            in_window += low <= seconds <= high
            newer += seconds > high
        keys.clear()

    for key in client.scan_iter(match=pattern, count=10_000):
        keys.append(key)
        if len(keys) >= 10_000:
            flush()
    flush()
    return KeyCount(present, in_window, newer)
