"""The newest online value's event time a materialization records, decided against a real
SQLite online store (a file in Feast's table layout): a whole window's scan, an incremental
run's marker and read-back keys, and the scan it falls back to when those cannot say."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from featurekit.materialization.view import CHANGE_FEED, ViewResult
from featurekit.online_store import KeyCount, Marker, OnlineStore, open_online_store
from featurekit.pipeline.materialize import _newest_event

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)


def ns(ts: datetime) -> int:
    return int(ts.timestamp()) * 1_000_000_000


@pytest.fixture
def store(tmp_path: Path) -> OnlineStore:
    """Keys k1..k3 of view v as they are after the run: k1 was given an older row (it held T0)."""
    path = tmp_path / "online.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE p_v (entity_key BLOB, feature_name TEXT, value BLOB, event_ts timestamp, "
                     "created_ts timestamp, PRIMARY KEY (entity_key, feature_name))")
        conn.executemany("INSERT INTO p_v VALUES (?, 'x', x'', ?, NULL)",
                         [(b"k1", int((T0 - timedelta(hours=2)).timestamp())),
                          (b"k2", int((T0 - timedelta(hours=1)).timestamp())),
                          (b"k3", int((T0 - timedelta(hours=3)).timestamp()))])
    return open_online_store({"project": "p", "online_store": {"type": "sqlite", "path": str(path)}}, str(tmp_path))


def outcome(written_newest: datetime, replaced: datetime | None = None) -> ViewResult:
    """An incremental run that wrote one key, read back holding ``written_newest``."""
    done = ViewResult("v", "/lake/v", 4, T0 - timedelta(days=1), T0, method=CHANGE_FEED, delta_version_from=4,
                      online=KeyCount(1, 1, 0, written_newest))
    done.replaced_newest = None if replaced is None else ns(replaced)
    return done


def marker(newest: datetime | None) -> Marker:
    return Marker(3, T0 - timedelta(days=1), "id", "fp", newest)


def test_a_whole_window_takes_its_scan(store: OnlineStore) -> None:
    whole = ViewResult("v", "/lake/v", 4, T0 - timedelta(days=1), T0, online=KeyCount(3, 3, 0, T0 - timedelta(hours=1)))
    assert _newest_event(store, whole, None) == T0 - timedelta(hours=1)
    assert _newest_event(store, ViewResult("v", "/lake/v", 4, T0, T0), None) is None   # nothing read back


def test_an_incremental_run_keeps_the_newer_of_the_marker_and_the_keys_written(store: OnlineStore) -> None:
    # k3 written at T0 - 3h; the marker says the store held T0 - 1h (k2, untouched)
    assert _newest_event(store, outcome(T0 - timedelta(hours=3)), marker(T0 - timedelta(hours=1))) \
        == T0 - timedelta(hours=1)
    assert _newest_event(store, outcome(T0 + timedelta(hours=1)), marker(T0 - timedelta(hours=1))) \
        == T0 + timedelta(hours=1)
    # a changed key that held less than the marker's newest may get an older row: no scan needed
    assert _newest_event(store, outcome(T0 - timedelta(hours=2), replaced=T0 - timedelta(hours=3)),
                         marker(T0 - timedelta(hours=1))) == T0 - timedelta(hours=1)


def test_the_store_is_scanned_when_the_newest_key_got_an_older_row_or_the_marker_does_not_say(
        store: OnlineStore) -> None:
    # k1 held the marker's newest (T0) and now holds T0 - 2h: the store's newest is k2's T0 - 1h
    assert _newest_event(store, outcome(T0 - timedelta(hours=2), replaced=T0), marker(T0)) == T0 - timedelta(hours=1)
    # a marker of an older featurekit
    assert _newest_event(store, outcome(T0 - timedelta(hours=3)), marker(None)) == T0 - timedelta(hours=1)
