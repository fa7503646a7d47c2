"""A fast SQLite writer for materialization, row for row what Feast's SQLite store writes.

Feast's store writes one row per (entity, feature) with ``conn.execute`` each, after building a
protobuf per value. This writer encodes whole Arrow columns (``redis_writer``'s encoders: the
same ``Value`` bytes) and upserts with one ``executemany`` per batch, in one transaction, into
the table Feast created at ``feast apply`` (``<project>_<view>``): ``entity_key`` (Feast's
serialization, without the project), ``feature_name``, ``value``, ``value_text`` (``str`` of the
value, as Feast), ``vector_value`` (null), ``event_ts``/``created_ts`` (naive UTC datetimes through
the same sqlite3 adapter Feast registers: epoch seconds). Tables with Feast's optional
``value_num`` column or vector search fall back to Feast's writer.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from featurekit.feast.redis_writer import encoded_columns, entity_keys

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


class SqliteBatchWriter:
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
