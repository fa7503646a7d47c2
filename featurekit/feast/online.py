"""The online store side of materialization: writing rows in Feast's layout, counting keys back.

:class:`OnlineWriter` is shipped to Spark's Python workers (it holds only picklable data: the
store settings and the feature view as a proto) and writes Arrow batches through Feast's own
online store classes, so the key layout and value encoding are Feast's by construction and the
Feast SDK reads the values back. Memory is bounded by one Arrow batch per task.

:func:`count_keys` reads the store directly (SQLite query, Redis SCAN), independently of the
writer, so a materialization that wrote nothing or too little is caught.

:func:`online_state` is the one place that tells the stores apart for what materialization keeps
beside Feast's values: the key count above, the stored event times of given keys (read with the
writers' own key layout, so ``--incremental`` verifies just the keys it wrote), and the
:class:`Marker` of the Delta version each view was last materialized from, kept in the store
itself (SQLite: a table ``_featurekit_materialized`` in the same file, a name no Feast project
can make; Redis: a hash ``featurekit:<project>:materialized:<view>``) so that a wiped store has
none and gets the whole window again.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any, Iterator, Protocol

from featurekit.errors import ConfigError
from featurekit.feast.redis_writer import RedisBatchWriter


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
                 layout: Any = None, replace_until: int | None = None) -> None:
        self.store_config = store_config
        self.repo_path = repo_path
        self.view_proto = view_proto
        self.layout = layout
        self.replace_until = replace_until   # see ReplacingRedisWriter; None: keep the newer value, as Feast

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
            client = redis_client(self.layout.connection_string)
            if self.replace_until is not None:
                return ReplacingRedisWriter(client, self.layout, self.replace_until).write
            return RedisBatchWriter(client, self.layout).write
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
    return online_state(store_config, repo_path).count_keys(view, start, end)


class ReplacingRedisWriter(RedisBatchWriter):
    """featurekit's Redis writer, but a stored value is kept only when it is newer than
    ``until`` (epoch ns, the window's end): inside the window the row given replaces what the
    store holds, even an equal or newer event time. ``--incremental`` writes each changed key's
    latest row of the table version, which may be a corrected value at the same event time or
    an older row after the newest was deleted; Feast's rule (write only when newer) would keep
    the stale value there. Within the rows given, the newer per key still wins."""

    def __init__(self, client: Any, layout: Any, until: int) -> None:
        super().__init__(client, layout)
        self.until = until

    def _stored(self, keys: list[bytes]) -> list[int]:
        return [stamp if stamp > self.until else 0 for stamp in super()._stored(keys)]


@dataclass(frozen=True)
class Marker:
    """What a verified materialization leaves in the online store for one view: every key holds
    a value at least as new as its latest row of ``[window_end - ttl, window_end]`` in Delta
    version ``delta_version`` of the table with id ``table_id``, built by the job spec with
    ``fingerprint``. ``--incremental`` continues from it; without one it writes the whole window."""

    delta_version: int
    window_end: datetime
    table_id: str
    fingerprint: str


class OnlineState(Protocol):
    """What materialization reads and keeps in one online store besides Feast's values."""

    precision_ns: int   # the resolution of the stored event times (SQLite keeps seconds)

    def count_keys(self, view: str, start: datetime, end: datetime) -> KeyCount: ...

    def stored_times(self, layout: Any, keys: Any) -> list[int | None]:
        """The stored event time (epoch ns) of each key (a pyarrow Table of the join key
        columns) for the view of ``layout`` (featurekit's writer layout), None where absent."""

    def marker(self, view: str) -> Marker | None: ...

    def set_marker(self, view: str, marker: Marker | None) -> None:
        """Keep ``marker`` for ``view`` (None removes it)."""


def online_state(store_config: dict[str, Any], repo_path: str) -> OnlineState:
    """The :class:`OnlineState` of the store ``store_config`` names: the one switch on its type."""
    kind = str(store_config["online_store"].get("type", "sqlite"))
    if kind == "sqlite":
        return SqliteState(store_config, repo_path)
    if kind == "redis":
        return RedisState(store_config, repo_path)
    raise ConfigError.single(f"materialize reads back and keeps its state in sqlite and redis online stores only "
                             f"(this env's is {kind!r})", file="conf", field="feast.online_store.type")


def _sqlite_path(store_config: dict[str, Any], repo_path: str) -> Path:
    path = Path(str(store_config["online_store"].get("path", "data/online.db")))
    return path if path.is_absolute() else Path(repo_path) / path


def _marker_fields(marker: Marker) -> dict[str, str]:
    return {"delta_version": str(marker.delta_version), "window_end": marker.window_end.astimezone(UTC).isoformat(),
            "table_id": marker.table_id, "fingerprint": marker.fingerprint,
            "recorded_at": datetime.now(UTC).isoformat()}


def _marker(fields: dict[str, str]) -> Marker | None:
    try:
        return Marker(int(fields["delta_version"]), datetime.fromisoformat(fields["window_end"]),
                      fields["table_id"], fields["fingerprint"])
    except (KeyError, ValueError):
        return None   # unreadable: as if there were none (the whole window is written again)


class SqliteState:
    """The SQLite online store: Feast's table per view, and ``_featurekit_materialized``."""

    MARKERS = "_featurekit_materialized"
    precision_ns = 1_000_000_000

    def __init__(self, store_config: dict[str, Any], repo_path: str) -> None:
        self.store_config, self.repo_path = store_config, repo_path
        self.project = str(store_config["project"])
        self.path = _sqlite_path(store_config, repo_path)

    def count_keys(self, view: str, start: datetime, end: datetime) -> KeyCount:
        return _count_sqlite(self.store_config, self.repo_path, view, start, end)

    def stored_times(self, layout: Any, keys: Any) -> list[int | None]:
        from featurekit.feast.redis_writer import entity_keys

        wanted = entity_keys(keys, layout.join_keys, b"")
        found: dict[bytes, int] = {}
        with closing(sqlite3.connect(self.path, timeout=60)) as conn:
            for at in range(0, len(wanted), 500):
                part = wanted[at:at + 500]
                found.update(conn.execute(
                    f'SELECT entity_key, MAX(event_ts) FROM "{layout.table}" WHERE entity_key IN '
                    f'({", ".join("?" * len(part))}) GROUP BY entity_key', part).fetchall())
        return [None if found.get(key) is None else int(found[key]) * self.precision_ns for key in wanted]

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
            row = conn.execute(f'SELECT delta_version, window_end, table_id, fingerprint FROM "{self.MARKERS}" '
                               "WHERE project = ? AND view = ?", (self.project, view)).fetchone()
        if row is None:
            return None
        return _marker(dict(zip(("delta_version", "window_end", "table_id", "fingerprint"), map(str, row))))

    def set_marker(self, view: str, marker: Marker | None) -> None:
        with closing(sqlite3.connect(self.path, timeout=60)) as conn, conn:
            conn.execute(f'CREATE TABLE IF NOT EXISTS "{self.MARKERS}" (project TEXT NOT NULL, view TEXT NOT NULL, '
                         "delta_version INTEGER NOT NULL, window_end TEXT NOT NULL, table_id TEXT NOT NULL, "
                         "fingerprint TEXT NOT NULL, recorded_at TEXT NOT NULL, PRIMARY KEY (project, view))")
            if marker is None:
                conn.execute(f'DELETE FROM "{self.MARKERS}" WHERE project = ? AND view = ?', (self.project, view))
                return
            fields = _marker_fields(marker)
            conn.execute(f'INSERT INTO "{self.MARKERS}" (project, view, {", ".join(fields)}) '
                         f'VALUES (?, ?, {", ".join("?" * len(fields))}) ON CONFLICT (project, view) DO UPDATE SET '
                         + ", ".join(f"{name} = excluded.{name}" for name in fields),
                         (self.project, view, *fields.values()))


class RedisState:
    """The Redis online store: Feast's hashes per entity key, and one marker hash per view."""

    precision_ns = 1

    def __init__(self, store_config: dict[str, Any], repo_path: str) -> None:
        self.store_config, self.repo_path = store_config, repo_path
        self.project = str(store_config["project"])

    @cached_property
    def client(self) -> Any:
        from feast.infra.online_stores.redis import RedisOnlineStore

        return RedisOnlineStore()._get_client(_config(self.store_config, self.repo_path).online_store)

    def _key(self, view: str) -> str:
        return f"featurekit:{self.project}:materialized:{view}"

    def count_keys(self, view: str, start: datetime, end: datetime) -> KeyCount:
        return _count_redis(self.store_config, self.repo_path, view, start, end)

    def stored_times(self, layout: Any, keys: Any) -> list[int | None]:
        from featurekit.feast.redis_writer import entity_keys, hget_many

        wanted = entity_keys(keys, layout.join_keys, self.project.encode())
        return [None if raw is None else _nanos(raw) for raw in hget_many(self.client, wanted, f"_ts:{layout.view}".encode())]

    def marker(self, view: str) -> Marker | None:
        fields = self.client.hgetall(self._key(view))
        return _marker({k.decode(): v.decode() for k, v in fields.items()}) if fields else None

    def set_marker(self, view: str, marker: Marker | None) -> None:
        if marker is None:
            self.client.delete(self._key(view))
            return
        self.client.hset(self._key(view), mapping=_marker_fields(marker))   # every field, in one command


def _nanos(raw: bytes) -> int:
    """A stored ``Timestamp`` proto as epoch nanoseconds."""
    from google.protobuf.timestamp_pb2 import Timestamp

    stamp = Timestamp()
    stamp.ParseFromString(raw)
    return stamp.seconds * 1_000_000_000 + stamp.nanos


def _naive(ts: datetime) -> datetime:
    return ts.astimezone(UTC).replace(tzinfo=None) if ts.tzinfo else ts


def _count_sqlite(store_config: dict[str, Any], repo_path: str, view: str, start: datetime, end: datetime) -> KeyCount:
    path = _sqlite_path(store_config, repo_path)
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
