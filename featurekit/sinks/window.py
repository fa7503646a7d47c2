"""A time window of a Delta table version, read with delta-rs (no JVM): the rows as a stream of
Arrow batches, and their counts.

Used by materialization's ``arrow`` engine. The filter is the one the Spark engine applies:
``start <= timestamp <= end`` (inclusive, as Spark's ``between``) and no null join key. DataFusion
(inside delta-rs) prunes files by their statistics and streams the rest batch by batch, so memory
holds a few batches, not the table; the key count holds one entry per distinct key.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Iterator


@dataclass(frozen=True)
class Window:
    path: str
    version: int
    keys: list[str]
    timestamp: str
    columns: list[str]   # every column to read, keys and timestamp included
    start: datetime
    end: datetime
    storage_options: dict[str, str] | None = None


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _query(window: Window) -> tuple[Any, str]:
    """(a delta-rs query builder with the table registered as ``t``, the window's WHERE clause)."""
    from deltalake import DeltaTable, QueryBuilder

    table = DeltaTable(window.path, version=window.version, storage_options=window.storage_options or None)
    kinds = {f.name: str(getattr(f.type, "type", f.type)) for f in table.schema().fields}
    naive = kinds.get(window.timestamp) == "timestamp_ntz"  # compare like with like: UTC wall time

    def literal(ts: datetime) -> str:
        utc = ts.astimezone(UTC) if ts.tzinfo else ts
        return f"TIMESTAMP '{utc.replace(tzinfo=None).isoformat()}{'' if naive else '+00:00'}'"

    ts = _ident(window.timestamp)
    where = " AND ".join([f"{ts} >= {literal(window.start)}", f"{ts} <= {literal(window.end)}",
                          *(f"{_ident(k)} IS NOT NULL" for k in window.keys)])
    return QueryBuilder().register("t", table), where


def window_counts(window: Window) -> tuple[int, int]:
    """(rows, distinct keys) of the window."""
    import pyarrow as pa

    query, where = _query(window)
    keys = ", ".join(_ident(k) for k in window.keys)
    result = pa.table(query.execute(
        f"SELECT COUNT(*) AS keys, SUM(n) AS rows FROM (SELECT {keys}, COUNT(*) AS n FROM t WHERE {where} GROUP BY {keys})"
    ).read_all())
    return int(result.column("rows")[0].as_py() or 0), int(result.column("keys")[0].as_py() or 0)


def window_batches(window: Window, batch_rows: int) -> Iterator[Any]:
    """The window's rows as pyarrow RecordBatches of ``batch_rows`` rows (the last one fewer),
    in no particular order: a key may appear in several batches."""
    import pyarrow as pa

    query, where = _query(window)
    reader = query.execute(f"SELECT {', '.join(_ident(c) for c in window.columns)} FROM t WHERE {where}")
    pending: list[Any] = []
    held = 0
    for item in reader:
        batch = pa.record_batch(item)
        if batch.num_rows == 0:
            continue
        pending.append(batch)
        held += batch.num_rows
        while held >= batch_rows:
            table = pa.Table.from_batches(pending).combine_chunks()
            yield table.slice(0, batch_rows).to_batches()[0]
            rest = table.slice(batch_rows)
            pending, held = rest.to_batches(), rest.num_rows
    if held:
        yield pa.Table.from_batches(pending).combine_chunks().to_batches()[0]
