"""The arrow engine's read of a window with delta-rs: Spark's bounds (inclusive, null keys out)
on both kinds of timestamp column, batches of the asked size, and an exact distinct-key count."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from featurekit.materialization.window import DistinctKeys, Window, window_batches, window_counts

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)


@pytest.mark.parametrize("zone", ["UTC", None])
def test_a_window_is_read_with_sparks_bounds(tmp_path: Path, zone: str | None) -> None:
    from deltalake import write_deltalake

    times = [T0 - timedelta(seconds=1), T0, T0 + timedelta(hours=1), T0 + timedelta(hours=2),
             T0 + timedelta(hours=2, microseconds=1), T0 + timedelta(minutes=5), T0 + timedelta(minutes=6)]
    keys = [1, 1, 2, 1, 3, None, 2]
    stamps = [t if zone else t.replace(tzinfo=None) for t in times]  # naive: UTC wall time (timestamp_ntz)
    table = pa.table({"driver_id": pa.array(keys, pa.int64()), "event_ts": pa.array(stamps, pa.timestamp("us", tz=zone)),
                      "rate": pa.array([float(i) for i in range(len(keys))])})
    write_deltalake(str(tmp_path / "t"), table)
    window = Window(str(tmp_path / "t"), 0, ["driver_id"], "event_ts", ["driver_id", "event_ts", "rate"],
                    T0, T0 + timedelta(hours=2))
    # in: T0 and T0+2h exactly (inclusive), T0+1h, T0+6min; out: before, after by 1 µs, null key
    assert window_counts(window) == (4, 2)
    batches = list(window_batches(window, 3))
    assert [b.num_rows for b in batches] == [3, 1]
    rows = pa.Table.from_batches(batches)
    assert sorted(rows.column("rate").to_pylist()) == [1.0, 2.0, 3.0, 6.0]
    later = replace(window, start=T0 + timedelta(days=1), end=T0 + timedelta(days=2))
    assert list(window_batches(later, 3)) == [] and window_counts(later) == (0, 0)


@pytest.mark.parametrize("chunk", [7, 1_000_000])
def test_integer_keys_are_counted_exactly_across_merges(chunk: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(DistinctKeys, "CHUNK", chunk)
    values = np.random.default_rng(3).integers(-50, 50, 1_000)
    distinct = DistinctKeys()
    for start in range(0, len(values), 33):
        distinct.add(pa.record_batch({"driver_id": pa.array(values[start:start + 33], pa.int64())}))
    assert distinct.count() == len(set(values.tolist()))


def test_string_and_composite_keys_are_counted_by_their_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(DistinctKeys, "CHUNK", 3)
    cities = DistinctKeys()
    pairs = DistinctKeys()
    rows = [("lisbon", 1), ("paris", 1), ("lisbon", 2), ("lisbon", 1), ("", 0), ("paris", 1)]
    for start in range(0, len(rows), 2):
        part = rows[start:start + 2]
        names = pa.array([r[0] for r in part], pa.string())
        cities.add(pa.record_batch({"city": names}))
        pairs.add(pa.record_batch({"city": names, "zone": pa.array([r[1] for r in part], pa.int32())}))
    assert cities.count() == 3
    assert pairs.count() == len(set(rows)) == 4
    assert DistinctKeys().count() == 0
