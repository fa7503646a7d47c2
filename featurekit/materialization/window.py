"""A time window of a Delta table version, read with delta-rs (no JVM): the rows as a stream of
Arrow batches, and their counts.

Used by materialization's ``arrow`` engine. The filter is the one the Spark engine applies:
``start <= timestamp <= end`` (inclusive, as Spark's ``between``) and no null join key. DataFusion
(inside delta-rs) prunes files by their statistics and streams the rest batch by batch: memory
holds the row group being read and a few batches, not the table; the key count holds 8 bytes per
distinct key (see ``DistinctKeys``).

For ``materialize --incremental`` it also reads what changed in a window between two versions
(:func:`window_changes`: the Change Data Feed, or a diff of the two versions where the table
does not record it), the rows of given keys (:func:`window_rows`), and reduces rows to the
latest per key in memory: these follow the changed keys, not the table.
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


# One partition: DataFusion reads one file at a time, so the stream's memory follows the files'
# row-group size, not the table's size or the machine's core count.
SESSION = {"datafusion.execution.target_partitions": "1"}


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _table(window: Window, version: int | None = None) -> Any:
    from deltalake import DeltaTable

    return DeltaTable(window.path, version=window.version if version is None else version,
                      storage_options=window.storage_options or None)


def _query(window: Window) -> tuple[Any, str]:
    """(a delta-rs query builder with the table registered as ``t``, the window's WHERE clause)."""
    from deltalake import QueryBuilder

    table = _table(window)
    return QueryBuilder(SESSION).register("t", table), _where(window, table)


def _where(window: Window, table: Any) -> str:
    """The window's filter as SQL over ``table`` (a DeltaTable)."""
    kinds = {f.name: str(getattr(f.type, "type", f.type)) for f in table.schema().fields}
    naive = kinds.get(window.timestamp) == "timestamp_ntz"  # compare like with like: UTC wall time

    def literal(ts: datetime) -> str:
        utc = ts.astimezone(UTC) if ts.tzinfo else ts
        return f"TIMESTAMP '{utc.replace(tzinfo=None).isoformat()}{'' if naive else '+00:00'}'"

    ts = _ident(window.timestamp)
    return " AND ".join([f"{ts} >= {literal(window.start)}", f"{ts} <= {literal(window.end)}",
                         *(f"{_ident(k)} IS NOT NULL" for k in window.keys)])


def window_counts(window: Window) -> tuple[int, int]:
    """(rows, distinct keys) of the window, streaming its key columns."""
    import pyarrow as pa

    query, where = _query(window)
    reader = query.execute(f"SELECT {', '.join(_ident(k) for k in window.keys)} FROM t WHERE {where}")
    distinct = DistinctKeys()
    rows = 0
    for item in reader:
        batch = pa.record_batch(item)
        rows += batch.num_rows
        distinct.add(batch)
    return rows, distinct.count()


class DistinctKeys:
    """An exact count of distinct keys in 8 bytes per key held, about 30 at the peak of a merge
    (measured: +90 MB for 3.2 million keys; DataFusion's GROUP BY took ~170 per key). One integer key is kept
    as its values; other keys as a 64-bit hash of the key's values, where two keys sharing a
    hash would count once (at 10 million keys, odds of about 3 in a million; the verification
    would then fail the run, never pass a bad one). The keys seen are one sorted array; new
    ones are merged in every million rows."""

    CHUNK = 1_000_000

    def __init__(self) -> None:
        import numpy as np

        self._seen = np.empty(0, np.int64)
        self._parts: list[Any] = []
        self._held = 0

    def add(self, batch: Any) -> None:
        import numpy as np
        import pyarrow as pa

        if batch.num_columns == 1 and pa.types.is_integer(batch.column(0).type):
            codes = batch.column(0).to_numpy(zero_copy_only=False).astype(np.int64)  # a copy: no Arrow buffer kept
        else:
            columns = [c.to_pylist() for c in batch.columns]
            codes = np.fromiter((hash(key) for key in zip(*columns)), np.int64, count=batch.num_rows)
        self._parts.append(codes)
        self._held += len(codes)
        if self._held >= self.CHUNK:
            self._merge()

    def _merge(self) -> None:
        import numpy as np

        if not self._parts:
            return
        part = np.unique(np.concatenate(self._parts))
        self._parts, self._held = [], 0
        seen = self._seen
        if len(seen):
            at = np.searchsorted(seen, part)
            known = seen[np.minimum(at, len(seen) - 1)] == part
            part = part[~known]
        merged = np.concatenate([seen, part])
        merged.sort(kind="stable")  # two sorted runs: merged in linear time
        self._seen = merged

    def count(self) -> int:
        self._merge()
        return len(self._seen)


def window_batches(window: Window, batch_rows: int) -> Iterator[Any]:
    """The window's rows as pyarrow RecordBatches of ``batch_rows`` rows (the last one fewer),
    in no particular order: a key may appear in several batches."""
    import pyarrow as pa

    query, where = _query(window)
    reader = query.execute(f"SELECT {', '.join(_ident(c) for c in window.columns)} FROM t WHERE {where}")
    rest = None  # the rows read and not yielded yet (slices are views: only a batch's own rows are copied)
    for item in reader:
        batch = pa.Table.from_batches([pa.record_batch(item)])
        rest = batch if rest is None else pa.concat_tables([rest, batch])
        while rest.num_rows >= batch_rows:
            yield rest.slice(0, batch_rows).combine_chunks().to_batches()[0]
            rest = rest.slice(batch_rows)
    if rest is not None and rest.num_rows:
        yield rest.combine_chunks().to_batches()[0]


# --------------------------------------------------------------------------- changes between versions

ADDED = "__fk_added"        # change rows: True for a row the change added (insert, update post-image)
VERSION = "__fk_version"    # change rows: the version of the commit that made the change


class VersionGone(Exception):
    """A version of a table that can no longer be read (its log was cleaned up, or no table)."""


@dataclass(frozen=True)
class TableInfo:
    """What materialization needs of a Delta table version besides its rows."""

    id: str                 # the table's id (metaData.id): a table made again at the same path has another
    change_data: bool       # whether commits after this version record their changes (Change Data Feed)


def table_info(path: str, version: int, storage_options: dict[str, str] | None = None) -> TableInfo:
    """The id of the table at ``path`` and whether it records its changes, as of ``version``
    (:class:`VersionGone` if the table's log no longer has that version)."""
    from deltalake import DeltaTable
    from deltalake.exceptions import DeltaError

    try:
        metadata = DeltaTable(path, version=version, storage_options=storage_options or None).metadata()
    except DeltaError as exc:
        raise VersionGone(f"version {version} of {path} cannot be read: {exc}") from None
    enabled = str(metadata.configuration.get("delta.enableChangeDataFeed", "false")).strip().lower() == "true"
    return TableInfo(str(metadata.id), enabled)


def window_changes(window: Window, since: int, change_data: bool) -> Any:
    """The rows of the window that changed after version ``since`` up to ``window.version``, as a
    pyarrow Table of the window's columns with :data:`ADDED` and :data:`VERSION`.

    With ``change_data``, the table's Change Data Feed (reads the change range's files only);
    otherwise the two versions' windows compared (rows of the new one EXCEPT ALL those of the old
    one are added, the reverse removed, all as one change at ``window.version``): the same
    answer, read from both windows whole."""
    import pyarrow as pa
    import pyarrow.compute as pc
    from deltalake import QueryBuilder

    table = _table(window)
    where = _where(window, table)
    if change_data:
        reader = table.load_cdf(starting_version=since + 1, ending_version=window.version,
                                columns=[*window.columns, "_change_type", "_commit_version"], predicate=where)
        found = _plain(pa.table(reader))
        added = pc.is_in(found.column("_change_type"), pa.array(["insert", "update_postimage"]))
        return (found.select(window.columns).append_column(ADDED, added)
                .append_column(VERSION, found.column("_commit_version").cast(pa.int64())))
    old = _table(window, since)
    query = QueryBuilder(SESSION).register("n", table).register("o", old)
    columns = ", ".join(_ident(c) for c in window.columns)
    now, before = f"SELECT {columns} FROM n WHERE {where}", f"SELECT {columns} FROM o WHERE {_where(window, old)}"
    parts = []
    for sql, flag in ((f"{now} EXCEPT ALL {before}", True), (f"{before} EXCEPT ALL {now}", False)):
        rows = _plain(pa.table(query.execute(sql)))
        parts.append(rows.append_column(ADDED, pa.array([flag] * rows.num_rows, pa.bool_()))
                     .append_column(VERSION, pa.array([window.version] * rows.num_rows, pa.int64())))
    return stack_rows(parts)


def window_rows(window: Window, keys: Any = None) -> Any:
    """The window's rows (only those of the keys in ``keys``, a pyarrow Table of the key
    columns, if given) as one pyarrow Table."""
    import pyarrow as pa

    query, where = _query(window)
    if keys is not None:
        if keys.num_rows == 0:
            where += " AND FALSE"
        for name in window.keys:  # each key column's values (a superset for composite keys; exact below)
            values = sorted(set(keys.column(name).to_pylist()))
            where += f" AND {_ident(name)} IN ({', '.join(_literal(v) for v in values) or 'NULL'})"
    found = _plain(pa.table(query.execute(f"SELECT {', '.join(_ident(c) for c in window.columns)} FROM t WHERE {where}")))
    if keys is not None and len(window.keys) > 1:
        wanted = set(zip(*(keys.column(k).to_pylist() for k in window.keys)))
        found = found.filter(pa.array([key in wanted for key in zip(*(found.column(k).to_pylist() for k in window.keys))],
                                      pa.bool_()))
    return found.select(window.columns)


def latest_per_key(rows: Any, keys: list[str], timestamp: str) -> Any:
    """One row per key of ``rows`` (a pyarrow Table): the one with the latest ``timestamp`` (rows
    without one are left out)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    rows = rows.filter(pc.is_valid(rows.column(timestamp)))
    if rows.num_rows == 0:
        return rows
    ordered = rows.sort_by([*((k, "ascending") for k in keys), (timestamp, "descending")])
    return ordered.filter(pa.array(_starts(ordered, keys)))


def newest_present(changes: Any, keys: list[str], timestamp: str) -> Any:
    """Per key in ``changes`` (from :func:`window_changes`), its newest row that the table still
    holds at the window's version, or nulls where none of its changed rows is left.

    A row (key, timestamp) is still held when the last commit that changed it added it: a later
    delete or update of the same row removes it again."""
    import numpy as np
    import pyarrow as pa

    columns = [c for c in changes.column_names if c not in (ADDED, VERSION)]
    ordered = changes.sort_by([*((k, "ascending") for k in [*keys, timestamp]), (VERSION, "descending")])
    versions = ordered.column(VERSION).to_numpy()
    starts = np.flatnonzero(_starts(ordered, [*keys, timestamp]))
    group = np.repeat(np.arange(len(starts)), np.diff(np.append(starts, ordered.num_rows)))
    last = versions[starts][group]    # the last version that changed each row's (key, timestamp)
    held = ordered.column(ADDED).to_numpy(zero_copy_only=False) & (versions == last)
    newest = latest_per_key(ordered.filter(pa.array(held)).select(columns), keys, timestamp)
    changed = changes.group_by(keys).aggregate([]).select(keys)
    gone = changed.join(newest.select(keys), keys, join_type="left anti")
    nulls = pa.table({c: gone.column(c) if c in keys else pa.nulls(gone.num_rows, changes.schema.field(c).type)
                      for c in columns})
    return stack_rows([newest, nulls.cast(newest.schema)])


def _starts(ordered: Any, columns: list[str]) -> Any:
    """A numpy mask of the rows of ``ordered`` (sorted by ``columns``) where a new group begins."""
    import numpy as np
    import pyarrow.compute as pc

    n = ordered.num_rows
    first = np.zeros(n, dtype=bool)
    if n:
        first[0] = True
    for name in columns:
        column = ordered.column(name).combine_chunks()
        differs = pc.fill_null(pc.not_equal(column.slice(1), column.slice(0, n - 1)), True) if n > 1 else None
        if differs is not None:
            first[1:] |= differs.to_numpy(zero_copy_only=False)
    return first


def _literal(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        raise ValueError(f"a join key value of {type(value).__name__} cannot be looked up")
    if isinstance(value, int):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


def _plain(table: Any) -> Any:
    """``table`` with view types (string_view, binary_view: what DataFusion returns) as plain ones,
    so tables from delta-rs, the change feed and pyarrow concatenate and compare alike."""
    import pyarrow as pa

    def plain(kind: Any) -> Any:
        if pa.types.is_string_view(kind):
            return pa.string()
        if pa.types.is_binary_view(kind):
            return pa.binary()
        if pa.types.is_list_view(kind) or pa.types.is_large_list(kind) or pa.types.is_list(kind):
            return pa.list_(plain(kind.value_type))
        return kind

    schema = pa.schema([pa.field(f.name, plain(f.type), f.nullable) for f in table.schema])
    return table if schema == table.schema else table.cast(schema)


def stack_rows(tables: list[Any]) -> Any:
    """The rows of pyarrow Tables of the same columns, as one Table (types of the first one)."""
    import pyarrow as pa

    return pa.concat_tables([t.cast(tables[0].schema) for t in tables])
