"""What one feature view's materialization works on (:class:`Target`) and what it found (:class:`ViewResult`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from featurekit.materialization.window import Window
from featurekit.online_store import KeyCount

# how a view's keys were found: its whole window, or from the store's marker on: the changes (from
# the Change Data Feed, or a diff of two versions), rows after its end alone (no new version), nothing
WINDOW, CHANGE_FEED, VERSION_DIFF, END_MOVED, UNCHANGED = "window", "change feed", "version diff", "end moved", "unchanged"


@dataclass(frozen=True)
class Target:
    """A feature view to materialize: its Delta table version and the columns the store holds."""

    name: str
    path: str
    version: int              # the pinned table version read
    join_keys: list[str]
    features: list[str]
    timestamp: str
    ttl: timedelta            # the span of its whole window
    fingerprint: str          # its job spec's, kept in the store's marker
    storage_options: dict[str, str] | None = None

    @property
    def columns(self) -> list[str]:
        return [*self.join_keys, *self.features, self.timestamp]

    def window(self, start: datetime, end: datetime) -> Window:
        """The rows of the pinned table version within ``[start, end]``."""
        return Window(self.path, self.version, list(self.join_keys), self.timestamp, self.columns, start, end,
                      self.storage_options)


@dataclass
class ViewResult:
    view: str
    delta_path: str
    delta_version: int
    start: datetime
    end: datetime
    rows: int = 0             # rows of the table version in the window
    keys: int = 0             # distinct entity keys among them
    written: int = 0          # rows given to the writers (spark: one per key; arrow: all of the window's)
    online: KeyCount | None = None
    seconds: float = 0.0
    lineage: str = ""
    method: str = WINDOW      # or, with --incremental and a marker: CHANGE_FEED, VERSION_DIFF, END_MOVED, UNCHANGED
    delta_version_from: int | None = None   # incremental: the changes of versions from..delta_version
    changed: int = 0          # incremental: keys with changed rows within [end - ttl, end]
    # incremental: the newest event time the store held among the keys whose value may have been
    # replaced by an older one (None: no such key); see :func:`~featurekit.materialization.readback.needs_lookup`
    replaced_newest: int | None = None
    newest_event: datetime | None = None   # the newest event time the view's keys hold after the run

    @property
    def verified(self) -> bool:
        """Every key of the window holds a value at least as new as the window's in the store
        (incremental: every key written, read back by key)."""
        if self.online is None:
            return False
        return self.online.in_window <= self.keys <= self.online.in_window + self.online.newer
