"""Reading written keys back from the online store, by key: what ``--incremental`` verifies
with, and how it finds the changed keys whose latest row may be an untouched one."""

from __future__ import annotations

from typing import Any

from featurekit.online_store import KeyCount, OnlineStore
from featurekit.online_store.keys import nanos_datetime


def needs_lookup(state: OnlineStore, layout: Any, probe: Any, keys: list[str], timestamp: str) -> tuple[Any, int | None]:
    """The changed keys (``probe``: keys and the newest held changed row's time, null if none)
    whose latest row may be an untouched one: no held changed row, or the store holds a newer
    value than that row (at the store's time resolution); a pyarrow Table of their keys. And the
    newest event time (epoch ns) the store holds among them (None: none): these keys alone may
    get an older value than they hold (a deleted or back-dated row), which may lower the newest
    event time of the whole view."""
    import pyarrow as pa

    stored = state.stored_times(layout, probe.select(keys))
    candidates = _nanos(probe.column(timestamp))
    step = state.precision_ns
    need = [c is None or (s is not None and s > c - c % step) for s, c in zip(stored, candidates)]
    replaced = [s for s, n in zip(stored, need) if n and s is not None]
    return probe.select(keys).filter(pa.array(need, pa.bool_())), max(replaced, default=None)


def no_lookup(probe: Any, keys: list[str]) -> tuple[Any, None]:
    """:func:`needs_lookup` of no changed keys."""
    return probe.select(keys), None


def check_keys(state: OnlineStore, layout: Any, expected: Any, keys: list[str], timestamp: str) -> KeyCount:
    """Read back the keys written: (keys present, holding the row's time, holding a newer one)."""
    stored = state.stored_times(layout, expected.select(keys))
    step = state.precision_ns
    wanted = [None if c is None else c - c % step for c in _nanos(expected.column(timestamp))]
    present = sum(s is not None for s in stored)
    same = sum(s is not None and w is not None and s == w for s, w in zip(stored, wanted))
    newer = sum(s is not None and w is not None and s > w for s, w in zip(stored, wanted))
    newest = max((s for s in stored if s is not None), default=None)
    return KeyCount(present, same, newer, None if newest is None else nanos_datetime(newest))


def _nanos(column: Any) -> list[int | None]:
    """A pyarrow timestamp column as epoch nanoseconds."""
    import pyarrow as pa

    return column.cast(pa.timestamp("ns", tz="UTC")).cast(pa.int64()).to_pylist()
