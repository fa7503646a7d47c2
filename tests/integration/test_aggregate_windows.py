"""The ``aggregate`` op's trailing windows against values computed by hand.

Semantics under test (featurekit/engine/ops/aggregate.py):
- bucket end = the first multiple of ``every`` (since the epoch, UTC) at or after ts, so an
  event exactly on a boundary (11:00:00) belongs to the bucket ending then (11:00:00);
- the row stamped ``end`` has, for window W, the metric over events with end - W < ts <= end;
- one row per key per bucket that has data; null timestamps are counted and left out.

The expected rows below are written out literally; the comments show the arithmetic.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from featurekit.pipeline import StepCount
from tests.integration.helpers import Lab, lab, physical_plans, ts  # noqa: F401  (lab is a fixture)

D = "2024-01-01"   # day D
D1 = "2024-01-02"  # day D+1
D2 = "2024-01-03"  # day D+2

EVENTS = f"""
    driver_id,event_ts,fare,tip
    1,{D}T10:00:00Z,10,1
    1,{D}T10:00:01Z,20,
    1,{D}T10:59:59Z,30,2
    1,{D}T11:00:00Z,40,
    1,{D}T13:30:00Z,50,
    1,{D1}T09:00:00Z,60,3
    1,{D1}T10:30:00Z,70,
    1,,99,5
    2,{D}T10:30:00Z,100,
    2,{D}T12:00:00Z,200,
    3,{D}T23:00:00Z,1,
    3,{D2}T23:00:00Z,2,
"""
# Events of driver 1, named for the arithmetic below (bucket = end of its 1h bucket):
#   e1 D 10:00:00 fare 10 tip 1     -> bucket D 10:00 (exactly on the boundary)
#   e2 D 10:00:01 fare 20 tip -     -> bucket D 11:00
#   e3 D 10:59:59 fare 30 tip 2     -> bucket D 11:00
#   e4 D 11:00:00 fare 40 tip -     -> bucket D 11:00 (exactly on the boundary)
#   e5 D 13:30:00 fare 50 tip -     -> bucket D 14:00
#   e6 D+1 09:00  fare 60 tip 3     -> bucket D+1 09:00
#   e7 D+1 10:30  fare 70 tip -     -> bucket D+1 11:00
#   (no timestamp) fare 99 tip 5    -> left out, counted
# driver 2: f1 D 10:30 fare 100 -> D 11:00; f2 D 12:00 fare 200 -> D 12:00
# driver 3: g1 D 23:00 fare 1 -> D 23:00; g2 D+2 23:00 fare 2 -> D+2 23:00 (two days apart)

METRICS = ["trips", "fare_sum", "fare_avg", "fare_min", "fare_max", "tips", "tip_sum"]
WINDOWS = ["1h", "3h", "24h"]
N = None

# (driver, bucket end) -> metric -> (value over 1h, 3h, 24h)
EXPECTED_HOURLY: dict[tuple[int, str], dict[str, tuple[Any, Any, Any]]] = {
    # 1h (09:00,10:00] = 3h (07:00,10:00] = 24h = {e1}
    (1, f"{D} 10:00:00"): {
        "trips": (1, 1, 1), "fare_sum": (10, 10, 10), "fare_avg": (10, 10, 10),
        "fare_min": (10, 10, 10), "fare_max": (10, 10, 10), "tips": (1, 1, 1), "tip_sum": (1, 1, 1),
    },
    # 1h (10:00,11:00] = {e2,e3,e4} (e1 at 10:00 is out): 20+30+40=90, avg 30; tips: e3 -> 1, sum 2
    # 3h (08:00,11:00] = 24h = {e1..e4}: 100, avg 25, min 10; tips e1,e3 -> 2, sum 3
    (1, f"{D} 11:00:00"): {
        "trips": (3, 4, 4), "fare_sum": (90, 100, 100), "fare_avg": (30, 25, 25),
        "fare_min": (20, 10, 10), "fare_max": (40, 40, 40), "tips": (1, 2, 2), "tip_sum": (2, 3, 3),
    },
    # 1h (13:00,14:00] = 3h (11:00,14:00] = {e5} (e4 at 11:00 is out): tips 0, sum of no tip = null
    # 24h (D-1 14:00, D 14:00] = {e1..e5}: 150, avg 30; tips 2, sum 3
    (1, f"{D} 14:00:00"): {
        "trips": (1, 1, 5), "fare_sum": (50, 50, 150), "fare_avg": (50, 50, 30),
        "fare_min": (50, 50, 10), "fare_max": (50, 50, 50), "tips": (0, 0, 2), "tip_sum": (N, N, 3),
    },
    # 1h = 3h = {e6}; 24h (D 09:00, D+1 09:00] = {e1..e6}: 210, avg 35; tips e1,e3,e6 -> 3, sum 6
    (1, f"{D1} 09:00:00"): {
        "trips": (1, 1, 6), "fare_sum": (60, 60, 210), "fare_avg": (60, 60, 35),
        "fare_min": (60, 60, 10), "fare_max": (60, 60, 60), "tips": (1, 1, 3), "tip_sum": (3, 3, 6),
    },
    # 1h (10:00,11:00] = {e7}; 3h (08:00,11:00] = {e6,e7}: 130, avg 65
    # 24h (D 11:00, D+1 11:00] = {e5,e6,e7} (e4 at D 11:00 is out): 180, avg 60, min 50
    (1, f"{D1} 11:00:00"): {
        "trips": (1, 2, 3), "fare_sum": (70, 130, 180), "fare_avg": (70, 65, 60),
        "fare_min": (70, 60, 50), "fare_max": (70, 70, 70), "tips": (0, 1, 1), "tip_sum": (N, 3, 3),
    },
    # driver 2 is kept apart from driver 1's D 11:00 bucket
    (2, f"{D} 11:00:00"): {
        "trips": (1, 1, 1), "fare_sum": (100, 100, 100), "fare_avg": (100, 100, 100),
        "fare_min": (100, 100, 100), "fare_max": (100, 100, 100), "tips": (0, 0, 0), "tip_sum": (N, N, N),
    },
    # 1h (11:00,12:00] = {f2}; 3h (09:00,12:00] = 24h = {f1,f2}: 300, avg 150
    (2, f"{D} 12:00:00"): {
        "trips": (1, 2, 2), "fare_sum": (200, 300, 300), "fare_avg": (200, 150, 150),
        "fare_min": (200, 100, 100), "fare_max": (200, 200, 200), "tips": (0, 0, 0), "tip_sum": (N, N, N),
    },
    # two days apart: neither event reaches the other's 24h window
    (3, f"{D} 23:00:00"): {
        "trips": (1, 1, 1), "fare_sum": (1, 1, 1), "fare_avg": (1, 1, 1),
        "fare_min": (1, 1, 1), "fare_max": (1, 1, 1), "tips": (0, 0, 0), "tip_sum": (N, N, N),
    },
    (3, f"{D2} 23:00:00"): {
        "trips": (1, 1, 1), "fare_sum": (2, 2, 2), "fare_avg": (2, 2, 2),
        "fare_min": (2, 2, 2), "fare_max": (2, 2, 2), "tips": (0, 0, 0), "tip_sum": (N, N, N),
    },
}


def as_rows(expected: dict[tuple[int, str], dict[str, tuple[Any, ...]]], windows: list[str]) -> list[dict[str, Any]]:
    """Reshape the table above into output rows (``metric_window`` columns); no arithmetic."""
    rows = []
    for (driver, end), metrics in expected.items():
        row: dict[str, Any] = {"driver_id": driver, "event_ts": ts(end)}
        for i, window in enumerate(windows):
            for metric, values in metrics.items():
                row[f"{metric}_{window}"] = values[i]
        rows.append(row)
    return rows


@pytest.fixture(scope="module")
def hourly(lab: Lab) -> object:  # noqa: F811
    lab.csv("events", EVENTS)
    return lab.run("agg_hourly", """
        name: agg_hourly
        sources:
          events:
            format: csv
            path: ${raw_root}/events
            options: {header: true}
            schema: {driver_id: long, event_ts: timestamp, fare: double, tip: double}
        steps:
          - aggregate:
              keys: [driver_id]
              timestamp: event_ts
              every: 1h
              windows: [1h, 3h, 24h]
              metrics:
                trips: "count(*)"
                fare_sum: "sum(fare)"
                fare_avg: "avg(fare)"
                fare_min: "min(fare)"
                fare_max: "max(fare)"
                tips: "count(tip)"
                tip_sum: "sum(tip)"
        output: {path: "${lake_root}/agg_hourly", mode: overwrite}
    """)


def test_hourly_windows_match_hand_computed_rows(lab: Lab, hourly: object) -> None:  # noqa: F811
    got = lab.rows("agg_hourly", by=["driver_id", "event_ts"])
    expected = as_rows(EXPECTED_HOURLY, WINDOWS)
    assert len(got) == len(expected) == 9   # only buckets with data: no row for D 12:00 of driver 1, etc.
    for g, e in zip(got, expected):
        assert g == e, f"driver {e['driver_id']} at {e['event_ts']}"


def test_hourly_output_columns_and_types(lab: Lab, hourly: object) -> None:  # noqa: F811
    columns = lab.columns("agg_hourly")
    assert [c for c, _ in columns] == ["driver_id", "event_ts"] + [f"{m}_{w}" for w in WINDOWS for m in METRICS]
    types = dict(columns)
    assert types["event_ts"] == "timestamp" and types["driver_id"] == "long"
    assert types["trips_1h"] == types["tips_24h"] == "long"
    assert types["fare_sum_3h"] == types["fare_avg_24h"] == types["fare_min_1h"] == "double"


def test_null_timestamps_are_counted_and_left_out(hourly: object) -> None:
    # 11 events with a timestamp + 1 without go in; 9 (driver, bucket) rows come out
    assert hourly.steps == [  # type: ignore[attr-defined]
        StepCount(0, "aggregate", 12, 9, 1, "1 row(s) without a timestamp left out"),
    ]
    assert hourly.rows_out == 9  # type: ignore[attr-defined]


def test_the_aggregates_bucket_counts_count_its_input_and_the_dedup_before_it(lab: Lab) -> None:  # noqa: F811
    """No observation over every row going in: the per-bucket row counts coming out add up to
    the aggregate's input, which is also the dedup's output (one observation for the three)."""
    lab.csv("events_dup", EVENTS + "    1,2024-01-01T10:00:00Z,10,1\n    2,,7,\n")  # a duplicate of e1; a 2nd null ts
    with physical_plans(lab.spark) as plans:
        result = lab.run("agg_after_dedup", """
            name: agg_after_dedup
            sources:
              events:
                format: csv
                path: ${raw_root}/events_dup
                options: {header: true}
                schema: {driver_id: long, event_ts: timestamp, fare: double, tip: double}
            steps:
              - dedup: {keys: [driver_id, event_ts, fare]}
              - aggregate: {keys: [driver_id], timestamp: event_ts, every: 1h, windows: [1h], metrics: {trips: "count(*)"}}
            output: {path: "${lake_root}/agg_after_dedup", mode: overwrite}
        """)
    assert result.steps == [
        StepCount(0, "dedup", 14, 13, 1, ""),
        StepCount(1, "aggregate", 13, 9, 2, "2 row(s) without a timestamp left out"),  # the 9 buckets of EVENTS
    ]
    assert result.rows_written == len(lab.rows("agg_after_dedup")) == 9
    prefix = f"fk_{result.run_id.replace('-', '_')}_"
    assert {m for p in plans for m in re.findall(re.escape(prefix) + r"(\w+)", p)} == {"source_events", "step1_out"}


def test_metrics_share_their_partials_and_each_window_sum_is_computed_once(lab: Lab, hourly: object) -> None:  # noqa: F811
    """count(*) is the bucket's row count and avg(fare) is sum(fare) over count(fare): the
    partials are shared, and each partial is summed over each window once (a range window
    re-aggregates its frame for every row, so a repeated window function costs a whole one)."""
    metrics = {"trips": "count(*)", "fare_sum": "sum(fare)", "fare_avg": "avg(fare)", "tips": "count(tip)"}
    with physical_plans(lab.spark) as plans:
        lab.run("agg_shared", f"""
            name: agg_shared
            sources:
              events: {{format: csv, path: "${{raw_root}}/events", options: {{header: true}},
                       schema: {{driver_id: long, event_ts: timestamp, fare: double, tip: double}}}}
            steps:
              - aggregate: {{keys: [driver_id], timestamp: event_ts, every: 1h, windows: [1h, 3h], metrics: {metrics}}}
            output: {{path: "${{lake_root}}/agg_shared", mode: overwrite}}
        """)
    expected = {key: {m: values[m] for m in metrics} for key, values in EXPECTED_HOURLY.items()}
    assert lab.rows("agg_shared", by=["driver_id", "event_ts"]) == as_rows(expected, ["1h", "3h"])
    [written] = [p for p in plans if "Window" in p]  # the job's one pass
    sections = written.split("\n\n")  # one per plan node: "(N) Name ...", then its details
    aggregates = {re.sub(r"#\d+", "", line) for s in sections if "HashAggregate" in s.split("\n")[0]
                  for line in s.split("\n") if line.startswith("Functions")}
    windows = [re.findall(r"(\w+)\((__fk_\w+)#\d+L?\) windowspecdefinition\([^)]*RangeFrame, (-?\d+)", s)
               for s in sections if s.split("\n")[0].strip().endswith("Window")]
    assert windows and all(len(w) == len(set(w)) == 4 for w in windows)  # 3h: sum of rows, fare sums, fare counts, tips
    assert aggregates == {"Functions [4]: [partial_count(1), partial_sum(fare), partial_count(fare), partial_count(tip)]",
                          "Functions [4]: [count(1), sum(fare), count(fare), count(tip)]"}


QUARTERS = """
    driver_id,event_ts,fare
    1,2024-01-01T10:00:00Z,1
    1,2024-01-01T10:07:30Z,2
    1,2024-01-01T10:15:00Z,4
    1,2024-01-01T10:44:59Z,8
    1,2024-01-01T11:00:00Z,16
    1,2024-01-01T11:00:01Z,32
"""
# a 10:00:00 fare 1 -> bucket 10:00;  b 10:07:30 fare 2 -> 10:15;  c 10:15:00 fare 4 -> 10:15
# d 10:44:59 fare 8 -> 10:45;  e 11:00:00 fare 16 -> 11:00;  f 11:00:01 fare 32 -> 11:15
# (fares are powers of two, so each sum names its events)
EXPECTED_QUARTERS = {
    # 15m {a}; 1h (09:00,10:00] {a}
    (1, "2024-01-01 10:00:00"): {"trips": (1, 1), "fare_sum": (1, 1), "fare_max": (1, 1)},
    # 15m {b,c} = 6; 1h (09:15,10:15] {a,b,c} = 7
    (1, "2024-01-01 10:15:00"): {"trips": (2, 3), "fare_sum": (6, 7), "fare_max": (4, 4)},
    # no row for 10:30: nothing happened in (10:15, 10:30]
    # 15m {d} = 8; 1h (09:45,10:45] {a,b,c,d} = 15
    (1, "2024-01-01 10:45:00"): {"trips": (1, 4), "fare_sum": (8, 15), "fare_max": (8, 8)},
    # 15m {e} = 16; 1h (10:00,11:00] {b,c,d,e} = 30 (a at 10:00 is out)
    (1, "2024-01-01 11:00:00"): {"trips": (1, 4), "fare_sum": (16, 30), "fare_max": (16, 16)},
    # 15m {f} = 32; 1h (10:15,11:15] {d,e,f} = 56 (c at exactly 10:15 is out)
    (1, "2024-01-01 11:15:00"): {"trips": (1, 3), "fare_sum": (32, 56), "fare_max": (32, 32)},
}


def test_quarter_hour_buckets_with_15m_and_1h_windows(lab: Lab) -> None:  # noqa: F811
    lab.csv("quarters", QUARTERS)
    result = lab.run("agg_quarters", """
        name: agg_quarters
        sources:
          events: {format: csv, path: "${raw_root}/quarters", options: {header: true},
                   schema: {driver_id: long, event_ts: timestamp, fare: long}}
        steps:
          - aggregate:
              keys: [driver_id]
              timestamp: event_ts
              every: 15m
              windows: [15m, 1h]
              metrics: {trips: "count(*)", fare_sum: "sum(fare)", fare_max: "max(fare)"}
        output: {path: "${lake_root}/agg_quarters", mode: overwrite}
    """)
    assert result.steps == [StepCount(0, "aggregate", 6, 5, 0, "")]
    assert [c for c, _ in lab.columns("agg_quarters")] == [
        "driver_id", "event_ts", "trips_15m", "fare_sum_15m", "fare_max_15m", "trips_1h", "fare_sum_1h", "fare_max_1h",
    ]
    assert lab.rows("agg_quarters", by=["event_ts"]) == as_rows(EXPECTED_QUARTERS, ["15m", "1h"])
