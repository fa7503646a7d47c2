"""The online-store port: what featurekit writes, reads and keeps in an online store.

One implementation per store (``sqlite.py``, ``redis.py``), chosen once from
``online_store.type`` by :func:`featurekit.online_store.open_online_store`. Both write and read
Feast's own layout (``keys.py``, ``values.py``), so plain Feast reads what featurekit wrote and
the other way round. Besides Feast's values a store keeps the :class:`Marker` of the Delta
version each view was last materialized from, so that a wiped store has none and gets the
whole window again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol


@dataclass(frozen=True)
class ViewLayout:
    """What the store needs of one feature view: its join keys and features (each with its Feast
    ValueType name: "INT64", "STRING", ...) and, for writers, its event time column."""

    name: str
    join_keys: dict[str, str]
    features: dict[str, str]
    timestamp: str = ""


@dataclass
class ViewRows:
    """The stored rows of one view for a list of entities (None where the view has no row)."""

    timestamps: list[datetime | None]
    values: list[dict[str, Any] | None]   # feature -> Python value


@dataclass(frozen=True)
class KeyCount:
    """Entity keys of one view in the online store, by their stored event time against a window."""

    present: int        # keys holding a value of the view
    in_window: int      # ... whose event time is within [start, end]
    newer: int          # ... whose event time is after end (a later window was written before)
    newest: datetime | None = None   # the newest event time any of them holds (None: no key)


@dataclass(frozen=True)
class Marker:
    """What a verified materialization leaves in the online store for one view: every key holds
    a value at least as new as its latest row of ``[window_end - ttl, window_end]`` in Delta
    version ``delta_version`` of the table with id ``table_id``, built by the job spec with
    ``fingerprint``. ``--incremental`` continues from it; without one it writes the whole window.
    ``newest_event``: the newest event time the view's keys held when it was set (None: none, or
    a marker of an older featurekit, which did not keep it)."""

    delta_version: int
    window_end: datetime
    table_id: str
    fingerprint: str
    newest_event: datetime | None = None


BatchWrite = Callable[[Any], int]   # an Arrow batch in, the keys written out


class OnlineStore(Protocol):
    """One online store: Feast's values (written and read in Feast's layout), and featurekit's
    key counts, stored times and markers for materialization."""

    kind: str
    precision_ns: int   # the resolution of the stored event times (SQLite keeps seconds)
    single_writer: bool  # writes must come from one task at a time (a file database)
    keeps_newer: bool   # featurekit's writer keeps each key's newer value, so rows may come unsorted

    @staticmethod
    def local_folders(store_config: dict[str, Any], repo_path: str) -> list[Path]:
        """Folders the store's files live in, which must exist before Feast opens it."""

    def writer_layout(self, view: ViewLayout) -> Any:
        """The picklable layout featurekit's writer needs for ``view``; None where this store's
        settings need Feast's own writer (Redis Cluster, SQLite with vector search, ...)."""

    def batch_writer(self, layout: Any, replace_until: int | None = None) -> BatchWrite | None:
        """featurekit's writer for ``layout``, or None (then Feast's). ``replace_until`` (epoch
        ns): inside the window the row given replaces the stored one, even an equal or newer
        one (``--incremental``); None keeps the newer value, as Feast."""

    def read(self, view: ViewLayout, rows: list[dict[str, Any]]) -> ViewRows:
        """The stored rows of ``view`` for each entity row (dicts of join key -> value)."""

    def count_keys(self, view: str, start: datetime, end: datetime) -> KeyCount: ...

    def stored_times(self, layout: Any, keys: Any) -> list[int | None]:
        """The stored event time (epoch ns) of each key (a pyarrow Table of the join key
        columns) for the view of ``layout``, None where absent."""

    def marker(self, view: str) -> Marker | None: ...

    def set_marker(self, view: str, marker: Marker | None) -> None:
        """Keep ``marker`` for ``view`` (None removes it)."""


def local_path(value: Any, repo_path: str) -> Path:
    """A path of the store's settings: relative ones are inside the feature repository."""
    path = Path(str(value))
    return path if path.is_absolute() else Path(repo_path) / path


def marker_fields(marker: Marker) -> dict[str, str]:
    """A marker as the text fields both stores keep."""
    return {"delta_version": str(marker.delta_version), "window_end": marker.window_end.astimezone(UTC).isoformat(),
            "table_id": marker.table_id, "fingerprint": marker.fingerprint,
            "newest_event": "" if marker.newest_event is None else marker.newest_event.astimezone(UTC).isoformat(),
            "recorded_at": datetime.now(UTC).isoformat()}


def parse_marker(fields: dict[str, str]) -> Marker | None:
    try:
        newest = fields.get("newest_event") or None
        return Marker(int(fields["delta_version"]), datetime.fromisoformat(fields["window_end"]),
                      fields["table_id"], fields["fingerprint"], datetime.fromisoformat(newest) if newest else None)
    except (KeyError, ValueError):
        return None   # unreadable: as if there were none (the whole window is written again)
