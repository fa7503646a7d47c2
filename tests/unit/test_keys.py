"""Which merge keys the steps alone make unique (so the sink need not read its rows back)."""

from __future__ import annotations

from typing import Any

import pytest

from featurekit.spec.keys import merge_keys_unique, unique_columns
from featurekit.spec.models import JobSpec

AGGREGATE = {"aggregate": {"keys": ["driver_id"], "timestamp": "event_ts", "every": "1h", "windows": ["1h", "24h"],
                           "metrics": {"trips": "count(*)"}}}
DEDUP = {"dedup": {"keys": ["trip_id"], "order_by": "event_ts"}}


def job(steps: list[dict[str, Any]], keys: list[str], mode: str = "merge") -> JobSpec:
    return JobSpec.model_validate({
        "name": "j", "sources": {"trips": {"format": "parquet", "path": "/data/trips"}}, "steps": steps,
        "output": {"path": "/lake/j", "mode": mode, "keys": keys},
    })


@pytest.mark.parametrize("steps, keys, proven", [
    # the demo's hourly job: dedup, then an aggregate by driver and hour, then columns added and picked
    ([{"filter": "fare >= 0"}, DEDUP, AGGREGATE, {"with_columns": {"event_date": "to_date(event_ts)"}},
      {"select": ["driver_id", "event_ts", "event_date", "trips_1h"]}], ["driver_id", "event_ts"], True),
    ([DEDUP], ["trip_id"], True),
    ([DEDUP], ["trip_id", "driver_id"], True),          # more keys than the unique set: still one row each
    ([DEDUP, {"filter": "x > 0"}], ["TRIP_ID"], True),  # Spark's names are case-insensitive
    ([DEDUP, {"rename": {"trip_id": "id"}}], ["id"], True),
    ([DEDUP, {"select": ["*"]}], ["trip_id"], True),
    ([AGGREGATE], ["driver_id"], False),                # one row per driver and hour, not per driver
    ([], ["trip_id"], False),
    ([DEDUP, {"join": {"source": "drivers", "on": ["driver_id"]}}], ["trip_id"], False),
    ([DEDUP, {"sql": "SELECT * FROM input"}], ["trip_id"], False),
    ([DEDUP, {"union": {"source": "more"}}], ["trip_id"], False),
    ([DEDUP, {"with_columns": {"trip_id": "substr(trip_id, 1, 3)"}}], ["trip_id"], False),
    ([DEDUP, {"cast": {"trip_id": "int"}}], ["trip_id"], False),
    ([DEDUP, {"fill_null": {"trip_id": "none"}}], ["trip_id"], False),
    ([DEDUP, {"drop": ["trip_id"]}], ["trip_id"], False),
    ([DEDUP, {"select": ["driver_id", "upper(city) AS trip_id"]}], ["trip_id"], False),
    ([DEDUP, {"select": ["trip_id", "driver_id AS trip_id"]}], ["trip_id"], False),
    ([DEDUP, {"rename": {"driver_id": "trip_id", "trip_id": "old_id"}}], ["trip_id"], False),
    ([DEDUP, {"rename": {"driver_id": "trip_id"}}], ["trip_id"], False),
])
def test_merge_keys_proven_unique_by_the_steps(steps: list[dict[str, Any]], keys: list[str], proven: bool) -> None:
    assert merge_keys_unique(job(steps, keys)) is proven


def test_only_a_merge_output_asks() -> None:
    assert merge_keys_unique(job([DEDUP], ["trip_id"], mode="append")) is False


def test_the_last_grouping_step_sets_the_unique_columns() -> None:
    assert unique_columns(job([AGGREGATE, DEDUP], ["trip_id"]).steps) == {"trip_id"}
    assert unique_columns(job([DEDUP, AGGREGATE], ["trip_id"]).steps) == {"driver_id", "event_ts"}
