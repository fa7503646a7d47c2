"""The SQLite online store: Feast's table per view, written and read row for row as Feast does.

Feast keeps one row per (entity, feature) in ``<project>_<view>`` (made at ``feast apply``):
``entity_key`` (Feast's serialization, without the project), ``feature_name``, ``value`` (the
``Value`` proto), ``value_text`` (``str`` of the value), ``vector_value`` (null),
``event_ts``/``created_ts`` (naive UTC datetimes through the sqlite3 adapter Feast registers:
epoch seconds). Feast's store writes each row with its own ``execute`` after building a
protobuf per value; :class:`SqliteBatchWriter` encodes whole Arrow columns and upserts with one
``executemany`` per batch, in one transaction. Tables with Feast's optional ``value_num``
column, vector search or versioned views fall back to Feast's writer.

featurekit's markers live in ``_featurekit_materialized`` in the same file (a name no Feast
project can make).
"""

from __future__ import annotations

import sqlite3
import threading
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from featurekit.online_store.base import BatchWrite, KeyCount, Marker, ViewLayout, ViewRows, local_path, \
    marker_fields, parse_marker
from featurekit.online_store.keys import entity_keys, key_serializer
from featurekit.online_store.values import decode

TEXT_KINDS = {"STRING", "INT64", "INT32", "DOUBLE", "FLOAT", "BOOL"}


@dataclass(frozen=True)
class SqliteLayout:
    """What the writer needs of a feature view and the store (plain data, picklable)."""

    path: str
    table: str
    timestamp: str
    join_keys: dict[str, str]
    features: list[tuple[str, str]]


def _epoch(ts: datetime) -> int:
    # Feast: to_naive_utc(ts), then its sqlite3 adapter int(naive.timestamp())
    return int(ts.astimezone(UTC).replace(tzinfo=None).timestamp())


def _naive(ts: datetime) -> datetime:
    return ts.astimezone(UTC).replace(tzinfo=None) if ts.tzinfo else ts


def _sqlite_ts(value: Any) -> datetime | None:
    """Feast's SQLite store keeps event times as epoch seconds (older files: ISO text)."""
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value, tz=UTC)
    return datetime.fromisoformat(str(value)).replace(tzinfo=UTC)


class SqliteBatchWriter:
    """Writes Arrow batches of one feature view into its table (see the module doc)."""

    def __init__(self, layout: SqliteLayout) -> None:
        self.layout = layout
        self.conn = sqlite3.connect(layout.path, timeout=60)
        columns = [row[1] for row in self.conn.execute(f'PRAGMA table_info("{layout.table}")')]
        if not columns:
            raise RuntimeError(f"the online store has no table {layout.table}: run `featurekit feast apply` first")
        self.supported = "value_num" not in columns
        self.sql = (f'INSERT INTO "{layout.table}" (entity_key, feature_name, value, value_text, event_ts, created_ts) '
                    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(entity_key, feature_name) DO UPDATE SET "
                    "value = excluded.value, value_text = excluded.value_text, "
                    "event_ts = excluded.event_ts, created_ts = excluded.created_ts")

    def write(self, batch: Any) -> int:
        from featurekit.online_store.encoding import encoded_columns

        n = batch.num_rows
        if n == 0:
            return 0
        keys = entity_keys(batch, self.layout.join_keys, b"")
        stamps = [_epoch(ts) for ts in batch.column(self.layout.timestamp).to_pylist()]
        values = encoded_columns(batch, self.layout.features)
        texts = []
        for (name, kind), encoded in zip(self.layout.features, values):
            if kind in TEXT_KINDS:
                texts.append([None if raw == b"" else str(v) for v, raw in zip(batch.column(name).to_pylist(), encoded)])
            else:
                texts.append([None] * n)
        names = [name for name, _ in self.layout.features]

        def rows() -> Any:
            for i in range(n):
                key, stamp = keys[i], stamps[i]
                for f in range(len(names)):
                    yield key, names[f], values[f][i], texts[f][i], stamp, None

        with self.conn:
            self.conn.executemany(self.sql, rows())
        return n


class SqliteStore:
    """The SQLite online store of ``store_config`` (see the module doc)."""

    kind = "sqlite"
    MARKERS = "_featurekit_materialized"
    precision_ns = 1_000_000_000
    single_writer = True
    keeps_newer = False   # an upsert: the last row written wins

    def __init__(self, store_config: dict[str, Any], repo_path: str) -> None:
        online = store_config["online_store"]
        self.project = str(store_config["project"])
        self.path = local_path(online.get("path", "data/online.db"), repo_path)
        self.version = int(store_config.get("entity_key_serialization_version", 3))
        registry = store_config.get("registry")
        versioned = isinstance(registry, dict) and bool(registry.get("enable_online_feature_view_versioning"))
        self.own_writer = not online.get("vector_enabled", False) and not versioned
        self._key = key_serializer(self.version)
        self._local = threading.local()

    @staticmethod
    def local_folders(store_config: dict[str, Any], repo_path: str) -> list[Path]:
        path = store_config["online_store"].get("path")
        return [local_path(path, repo_path).parent] if isinstance(path, str) else []

    # ------------------------------------------------------------------ writing
    def writer_layout(self, view: ViewLayout) -> SqliteLayout | None:
        if not self.own_writer or self.version != 3:
            return None
        return SqliteLayout(path=str(self.path), table=f"{self.project}_{view.name}", timestamp=view.timestamp,
                            join_keys=dict(view.join_keys), features=list(view.features.items()))

    def batch_writer(self, layout: Any, replace_until: int | None = None) -> BatchWrite | None:
        # an upsert always replaces: replace_until needs nothing more here
        writer = SqliteBatchWriter(layout)
        return writer.write if writer.supported else None

    # ------------------------------------------------------------------ reading
    def _connection(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, check_same_thread=False)
            self._local.conn = conn
        return conn

    def read(self, view: ViewLayout, rows: list[dict[str, Any]]) -> ViewRows:
        keys = [self._key(view.join_keys, row) for row in rows]
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
                    values[feature] = decode(raw)
        out = ViewRows([], [])
        for key in keys:
            hit = found.get(key)
            out.timestamps.append(hit[0] if hit else None)
            out.values.append(hit[1] if hit else None)
        return out

    def count_keys(self, view: str, start: datetime, end: datetime) -> KeyCount:
        table = f"{self.project}_{view}"
        with closing(sqlite3.connect(self.path)) as conn:
            exists = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)).fetchone()
            if not exists:
                return KeyCount(0, 0, 0)
            # Feast stores naive UTC datetimes through its sqlite3 adapter, as epoch seconds
            # (``naive.timestamp()``): the bounds go through the same conversion.
            low, high = int(_naive(start).timestamp()), int(_naive(end).timestamp())
            row = conn.execute(
                f'SELECT COUNT(*), COALESCE(SUM(ts >= ? AND ts <= ?), 0), COALESCE(SUM(ts > ?), 0), MAX(ts) '
                f'FROM (SELECT entity_key, MAX(event_ts) AS ts FROM "{table}" GROUP BY entity_key)',
                (low, high, high),
            ).fetchone()
        return KeyCount(int(row[0]), int(row[1]), int(row[2]), _sqlite_ts(row[3]))

    def stored_times(self, layout: Any, keys: Any) -> list[int | None]:
        wanted = entity_keys(keys, layout.join_keys, b"")
        found: dict[bytes, int] = {}
        with closing(sqlite3.connect(self.path, timeout=60)) as conn:
            for at in range(0, len(wanted), 500):
                part = wanted[at:at + 500]
                found.update(conn.execute(
                    f'SELECT entity_key, MAX(event_ts) FROM "{layout.table}" WHERE entity_key IN '
                    f'({", ".join("?" * len(part))}) GROUP BY entity_key', part).fetchall())
        return [None if found.get(key) is None else int(found[key]) * self.precision_ns for key in wanted]

    # ------------------------------------------------------------------ markers
    def marker(self, view: str) -> Marker | None:
        """The view's marker, if the store holds one and any value of the view (a table Feast
        emptied or made again means the values are gone, whatever the marker says)."""
        if not self.path.exists():
            return None
        with closing(sqlite3.connect(self.path, timeout=60)) as conn:
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            values = f"{self.project}_{view}"
            if self.MARKERS not in tables or values not in tables \
                    or conn.execute(f'SELECT 1 FROM "{values}" LIMIT 1').fetchone() is None:
                return None
            cursor = conn.execute(f'SELECT * FROM "{self.MARKERS}" WHERE project = ? AND view = ?',
                                  (self.project, view))   # every column: an older featurekit's table lacks some
            row = cursor.fetchone()
            names = [column[0] for column in cursor.description]
        if row is None:
            return None
        return parse_marker({name: "" if value is None else str(value) for name, value in zip(names, row)})

    def set_marker(self, view: str, marker: Marker | None) -> None:
        with closing(sqlite3.connect(self.path, timeout=60)) as conn, conn:
            conn.execute(f'CREATE TABLE IF NOT EXISTS "{self.MARKERS}" (project TEXT NOT NULL, view TEXT NOT NULL, '
                         "delta_version INTEGER NOT NULL, window_end TEXT NOT NULL, table_id TEXT NOT NULL, "
                         "fingerprint TEXT NOT NULL, recorded_at TEXT NOT NULL, newest_event TEXT, "
                         "PRIMARY KEY (project, view))")
            columns = {row[1] for row in conn.execute(f'PRAGMA table_info("{self.MARKERS}")')}
            if "newest_event" not in columns:   # a table an older featurekit made
                conn.execute(f'ALTER TABLE "{self.MARKERS}" ADD COLUMN newest_event TEXT')
            if marker is None:
                conn.execute(f'DELETE FROM "{self.MARKERS}" WHERE project = ? AND view = ?', (self.project, view))
                return
            fields = marker_fields(marker)
            conn.execute(f'INSERT INTO "{self.MARKERS}" (project, view, {", ".join(fields)}) '
                         f'VALUES (?, ?, {", ".join("?" * len(fields))}) ON CONFLICT (project, view) DO UPDATE SET '
                         + ", ".join(f"{name} = excluded.{name}" for name in fields),
                         (self.project, view, *fields.values()))
