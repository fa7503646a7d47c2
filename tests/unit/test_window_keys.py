"""The arrow engine's distinct-key count: exact, across merges, for every kind of key."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from featurekit.sinks.window import DistinctKeys


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
