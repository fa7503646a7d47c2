"""featurekit's incremental run against a full rebuild, and against the same increment by hand.

The job is the demo's ``driver_hourly_stats`` made incremental: CSV with a schema -> two
filters -> latest record per ``trip_id`` -> trailing 1h/24h/7d aggregates per driver and hour
with expiry rows -> ``event_date`` -> Delta (``merge`` on ``[driver_id, event_ts]``,
partitioned by ``event_date``), with ``incremental: {time_column: event_ts, lookback: 2d,
partition_column: event_date}``.

Input (:func:`featurekit.demo.generate.generate_raw`, laid out again): ``--rows`` raw trips
over ``--days`` days up to 2026-01-15 00:00 UTC (T0), as Hive-style date folders
``trips/event_date=YYYY-MM-DD/part-K.csv`` (the generator's CSV text, split by the date of each
row's ``event_ts``; rows whose time does not parse go to ``event_date=__HIVE_DEFAULT_PARTITION__``,
which Spark reads as a null date: every incremental run scans that folder and takes the rows of
the files modified since the previous run; featurekit reads them as malformed records and
quarantines them). Then the increment:
``rows / 100`` new trips after T0 (``days * 24 / 100`` hours of them, so as dense as the base
set, ending at T1), ``rows / 1000`` late rows in the 6 hours before T0, and the generator's
dirty kinds at its dirty fraction, as ``inc-00001.csv`` in their date folders. The increment's
files are taken out of ``trips/`` while the base state is built and put back (with a fresh
modification time) afterwards.

The base state is one full run over the base set up to T0 (not timed); every round, each
variant's table starts as a copy of it. Variants, all in one SparkSession:

- ``full`` (baseline): ``pipeline.run(..., end=T1, full=True)``: the whole table rebuilt from
  every file;
- ``featurekit incremental``: ``pipeline.run(..., end=T1)``: the interval
  ``(T0 - 2d, T1]`` recomputed from the date folders it needs, replaced in one commit;
- ``hand-written increment`` (the floor): the same increment in plain PySpark: the date folders
  of ``(T0 - 2d - 7d, T1]`` read with the schema, the same filters, latest record per trip, hourly
  partials, expiry rows and range windows, filtered to the interval and written into the table
  with Delta's ``replaceWhere`` (and the watermark as Delta's ``txnAppId``) in one write.

A warm-up run of each incremental variant (the base state's run is the full one's), then
``--repeat`` rounds that rotate the order. The outputs of the last
round are compared row for row with the full run's (joined on the keys; doubles equal within a
relative 1e-9), the runs' reports are checked against the rows of the files (every row read,
each dropped row counted by its step), and the run fails if anything differs.

Then (unless ``--skip-backfill``) a backfill of the last ``--backfill-days`` days up to T1 (30,
or half of ``--days`` if less) in 1-day chunks (:func:`featurekit.pipeline.incremental.backfill`,
one incremental commit each, into an empty table) against one full run of the same range (the
job with ``incremental.start`` at the range's start, into an empty table); both outputs must
equal the full run's rows of that range.

    python benchmarks/incremental.py                                   # 10,000,000 rows, 60 days, 2 rounds
    python benchmarks/incremental.py --rows 200000 --days 20 --repeat 1  # a quick check
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402  (benchmarks/ is a folder of scripts, not a package)
    Sample, add_common_args, bench_project, empty_lake, load_average, machine, measure, median, print_breakdown,
    print_table, save_json, start_session, summarize, wait_until_quiet, work_folder, write_job,
)

from featurekit import pipeline  # noqa: E402
from featurekit.config import Project, Settings  # noqa: E402
from featurekit.pipeline.incremental import backfill  # noqa: E402
from featurekit.spec.loader import LoadedJob  # noqa: E402

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import DataFrame, SparkSession

T0 = datetime(2026, 1, 15, tzinfo=UTC)  # the base set's end
LOOKBACK = timedelta(days=2)
REACH = timedelta(days=7)  # the longest window: how far before the interval the windows read
HOUR_S = 3600
HOUR_US = HOUR_S * 1_000_000
DEFAULT_PARTITION = "__HIVE_DEFAULT_PARTITION__"  # Spark's folder name for a null partition value
INCREMENT_FILE = "inc-00001.csv"
LAYOUT_VERSION = 1
JOB = "bench_incremental"
FULL, INCREMENTAL, HAND = "full", "featurekit incremental", "hand-written increment"

TRIP_SCHEMA = ("trip_id string, driver_id long, fare double, distance_km double, city string, "
               "payment_type string, event_ts timestamp")
OUTPUT_COLUMNS = ["driver_id", "event_ts", "event_date", "trips_1h", "trips_24h", "trips_7d", "fare_sum_24h",
                  "fare_avg_1h", "fare_avg_24h", "fare_avg_7d", "km_24h", "km_7d", "cash_trips_7d"]

JOB_TEXT = """
name: {name}
description: driver_hourly_stats for the incremental benchmark (a date-partitioned CSV source).
owner: benchmarks
sources:
  trips:
    format: csv
    path: ${{raw_root}}/trips
    options: {{header: true}}
    schema: {{trip_id: string, driver_id: long, fare: double, distance_km: double, city: string,
             payment_type: string, event_ts: timestamp, event_date: date}}
incremental: {{time_column: event_ts, lookback: 2d, partition_column: event_date}}
steps:
  - filter: "driver_id IS NOT NULL AND event_ts IS NOT NULL"
  - filter: "fare >= 0"
  - dedup: {{keys: [trip_id], order_by: event_ts}}
  - aggregate:
      keys: [driver_id]
      timestamp: event_ts
      every: 1h
      windows: [1h, 24h, 7d]
      metrics:
        trips: "count(*)"
        fare_sum: "sum(fare)"
        fare_avg: "avg(fare)"
        km: "sum(distance_km)"
        cash_trips: "count(CASE WHEN payment_type = 'cash' THEN 1 END)"
      expire: true
  - with_columns: {{event_date: "to_date(event_ts)"}}
  - select: [driver_id, event_ts, event_date, trips_1h, trips_24h, trips_7d, fare_sum_24h,
             fare_avg_1h, fare_avg_24h, fare_avg_7d, km_24h, km_7d, cash_trips_7d]
{validate}output:
  path: ${{lake_root}}/{name}
  mode: merge
  keys: [driver_id, event_ts]
  partition_by: [event_date]
"""

VALIDATE_BLOCK = """validate:
  policy: quarantine
  max_bad_fraction: 0.01
  columns:
    driver_id: {type: long, nullable: false}
    event_ts: {type: timestamp, nullable: false}
    trips_1h: {type: long, checks: {ge: 0}}
    trips_24h: {type: long, checks: {ge: 0}}
    fare_avg_24h: {type: double, checks: {in_range: [0, 500]}}
    km_7d: {type: double, checks: {ge: 0}}
  unique: [driver_id, event_ts]
  row_count: {min: 1}
"""


# --------------------------------------------------------------------------- the input

def increment_hours(days: int) -> int:
    """The increment's span: 1% of the base set's, in whole hours (at least one)."""
    return max(1, round(days * 24 / 100))


def backfill_days(days: int) -> int:
    """30 days, or half the base set's if that is less."""
    return max(1, min(30, days // 2))


def _day_folder(day: int) -> str:
    return f"event_date={DEFAULT_PARTITION}" if day < 0 else f"event_date={date(1970, 1, 1) + timedelta(days=day)}"


def lay_out(table: "pa.Table", root: Path, name: str, tally: dict[str, Any]) -> list[str]:
    """Write ``table`` (the generator's text columns) as ``root/event_date=D/name``, one file
    per date of ``event_ts``; rows whose time does not parse (not the generator's exact
    ``YYYY-MM-DD HH:MM:SS`` of a real instant) go to the null partition. ``tally`` gathers
    rows per right-closed hour (``ceil(epoch / 3600)``) and rows without a time. Returns the
    files written, relative to ``root``."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from featurekit.demo.generate import write_trips_csv

    text = table.column("event_ts")
    parsed = pc.strptime(text, format="%Y-%m-%d %H:%M:%S", unit="s", error_is_null=True)
    # the text must be what the instant prints back as: "2026-02-30 12:00:00" may parse as 2 March
    timed = pc.fill_null(pc.equal(pc.cast(parsed, pa.string()), text), False).to_numpy(zero_copy_only=False)
    seconds = pc.fill_null(pc.cast(parsed, pa.int64()), 0).to_numpy(zero_copy_only=False)
    day = np.where(timed, seconds // 86_400, -1)
    hours, counts = np.unique(-(-seconds[timed] // HOUR_S), return_counts=True)
    for hour, count in zip(hours.tolist(), counts.tolist()):
        tally["hours"][str(hour)] = tally["hours"].get(str(hour), 0) + count
    tally["untimed"] += int((~timed).sum())
    tally["rows"] += table.num_rows
    order = np.argsort(day, kind="stable")
    days, starts = np.unique(day[order], return_index=True)
    ordered = table.take(pa.array(order))
    written = []
    for index, value in enumerate(days.tolist()):
        stop = starts[index + 1] if index + 1 < len(starts) else len(order)
        relative = f"{_day_folder(value)}/{name}"
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        write_trips_csv(ordered.slice(int(starts[index]), int(stop - starts[index])), root / relative)
        written.append(relative)
    return written


def build_increment(manifest: dict[str, Any], new_rows: int, late_rows: int,
                    hours: int) -> tuple["pa.Table", dict[str, Any]]:
    """``new_rows`` trips in ``(T0, T0 + hours]``, ``late_rows`` in the 6 hours before T0, and the
    base set's dirty kinds at its dirty fraction (corrections of new trips, null driver ids,
    negative fares, unparsable times; late rows stay clean), rendered as the generator renders
    trips. As in the generator's arrivals: trip ids continue the base set's, and every tenth
    driver has stopped, so windows expire."""
    import numpy as np

    from featurekit.demo.arrivals import LATE_WINDOW_S, STOPPED_EVERY
    from featurekit.demo.generate import (
        DIRTY_KINDS, add_dirty_rows, base_drivers, draw_drivers, draw_rides, render_trips, sample_timestamps,
        split_dirty_counts,
    )

    rng, rng_dirty = (np.random.default_rng(s) for s in np.random.SeedSequence([manifest["seed"], 99]).spawn(2))
    n_drivers, fraction = manifest["drivers"], manifest["dirty_fraction"]
    fresh = new_rows + late_rows
    rows = fresh  # the corrections count among the rows the dirty fraction applies to
    while (total := fresh + split_dirty_counts(rows, fraction)[3]) != rows:
        rows = total
    kinds = split_dirty_counts(rows, fraction)
    start_s = int(T0.timestamp())
    end_s = start_s + hours * HOUR_S
    home_city, activity = base_drivers(manifest["seed"], n_drivers)
    stopped = np.arange(n_drivers) % STOPPED_EVERY == 0
    driver, city = draw_drivers(rng, fresh, np.where(stopped, 0.0, activity), home_city)
    ts = np.concatenate([sample_timestamps(rng, new_rows, start_s + 1, end_s + 1),
                         sample_timestamps(rng, late_rows, start_s - LATE_WINDOW_S, start_s)])
    trips = {"driver": driver, "city": city, "ts": ts, **draw_rides(rng, city, ts)}
    first_no = manifest["trips_rows"] - manifest["duplicate_trip_id"] + 1
    trip_no = np.empty(fresh, dtype=np.int64)
    trip_no[np.argsort(ts, kind="stable")] = np.arange(first_no, first_no + fresh)
    trips["trip_no"] = trip_no
    on_time = np.arange(fresh) < new_rows
    table = render_trips(add_dirty_rows(rng_dirty, trips, kinds, end_s, on_time))
    return table, {"trips_rows": table.num_rows, "new_rows": new_rows, "late_rows": late_rows, "span_hours": hours,
                   **dict(zip(DIRTY_KINDS, kinds))}


def prepare_input(raw: Path, rows: int, days: int, seed: int) -> dict[str, Any]:
    """The laid-out base set under ``raw/trips`` and the increment under ``raw/increment``
    (reused when ``raw/_layout.json`` has the same rows, days and seed)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    from featurekit.demo.generate import TRIP_COLUMNS, generate_raw

    record = raw / "_layout.json"
    wanted = {"rows": rows, "days": days, "seed": seed, "layout_version": LAYOUT_VERSION}
    if record.exists():
        found = json.loads(record.read_text())
        if {k: found.get(k) for k in wanted} == wanted:
            return found
    started = time.perf_counter()
    shutil.rmtree(raw, ignore_errors=True)
    generated = raw.parent / "generated"
    generate_raw(generated, rows=rows, days=days, end=T0, seed=seed)
    base_manifest = json.loads((generated / "_manifest.json").read_text())
    strings = pacsv.ConvertOptions(column_types={c: pa.string() for c in TRIP_COLUMNS},
                                   strings_can_be_null=False, quoted_strings_can_be_null=False)
    base = {"rows": 0, "untimed": 0, "hours": {}}
    base_files = []
    for part in sorted((generated / "trips").glob("part-*.csv")):
        table = pacsv.read_csv(part, convert_options=strings)
        base_files += lay_out(table, raw / "trips", part.name, base)
    increment_table, increment = build_increment(base_manifest, rows // 100, rows // 1000, increment_hours(days))
    tally = {"rows": 0, "untimed": 0, "hours": {}}
    increment_files = lay_out(increment_table, raw / "increment", INCREMENT_FILE, tally)
    increment.update(tally)
    shutil.rmtree(generated)
    layout = {**wanted, "base": {**base_manifest, **base, "files": len(base_files)},
              "increment": {**increment, "files": increment_files},
              "t0": T0.isoformat(), "t1": (T0 + timedelta(hours=increment["span_hours"])).isoformat()}
    record.write_text(json.dumps(layout, indent=1))
    print(f"generated and laid out {base['rows']:,} + {increment['rows']:,} raw trips "
          f"in {time.perf_counter() - started:.1f}s", flush=True)
    return layout


def withdraw_increment(raw: Path, layout: dict[str, Any]) -> None:
    """Take the increment's files out of the source folder (the base set alone remains)."""
    for relative in layout["increment"]["files"]:
        landed, kept = raw / "trips" / relative, raw / "increment" / relative
        if landed.exists():
            kept.parent.mkdir(parents=True, exist_ok=True)
            landed.replace(kept)
            if not any(landed.parent.iterdir()):
                landed.parent.rmdir()


def land_increment(raw: Path, layout: dict[str, Any]) -> None:
    """Put the increment's files into the source folder, modified now (they arrive after the
    base state's run: its rows without a time are new to the next run)."""
    for relative in layout["increment"]["files"]:
        kept, landed = raw / "increment" / relative, raw / "trips" / relative
        if kept.exists():
            landed.parent.mkdir(parents=True, exist_ok=True)
            kept.replace(landed)
        os.utime(landed)


def rows_between(tally: dict[str, Any], lo: datetime | None, hi: datetime) -> int:
    """Rows of ``tally`` with a time in ``(lo, hi]`` (bounds on whole hours)."""
    first = -1 if lo is None else int(lo.timestamp()) // HOUR_S
    last = int(hi.timestamp()) // HOUR_S
    return sum(n for hour, n in tally["hours"].items() if first < int(hour) <= last)


# --------------------------------------------------------------------------- the floor

def _sql_ts(moment: datetime) -> str:
    return f"TIMESTAMP '{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S}+00:00'"


def hand_increment(spark: "SparkSession", source: Path, out: str, start: datetime, end: datetime) -> int:
    """The interval ``(start, end]`` of driver_hourly_stats in plain PySpark, replaced in the
    table at ``out`` in one Delta write (with its watermark); returns the files it read."""
    frame, files = hand_frame(spark, source, start, end)
    interval = f"event_ts > {_sql_ts(start)} AND event_ts <= {_sql_ts(end)}"
    (frame.where(interval).write.format("delta").mode("overwrite").option("replaceWhere", interval)
     .option("txnAppId", "benchmarks/hand/watermark").option("txnVersion", int(end.timestamp()))
     .partitionBy("event_date").save(out))
    return files


def hand_frame(spark: "SparkSession", source: Path, start: datetime, end: datetime) -> tuple["DataFrame", int]:
    """driver_hourly_stats in plain PySpark for the output rows of ``(start, end]`` and the
    lead-in of their windows (not yet filtered to the interval), and the files it reads.

    Only the date folders of ``(start - 7d, end]`` are read. The latest record per trip is a
    hash aggregate (``max_by`` of each column needed, by ``event_ts``; corrections are strictly
    later than the trip they correct, so there are no ties). One shuffle by driver then serves
    the hourly partials, the expiry rows (each bucket with data also names its ends ``b + W``,
    up to ``end``, with empty partials; all combined per driver and hour) and the windows.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    read_from = start - REACH
    days = [(read_from + timedelta(days=i)).date() for i in range((end.date() - read_from.date()).days + 1)]
    folders = [str(source / f"event_date={d}") for d in days if (source / f"event_date={d}").is_dir()]
    trips = spark.read.option("header", True).schema(TRIP_SCHEMA).csv(folders)
    ts = F.col("event_ts")
    rows = (trips.where((ts > F.expr(_sql_ts(read_from))) & (ts <= F.expr(_sql_ts(end))))
            .where("driver_id IS NOT NULL AND fare >= 0")
            .select("trip_id", "driver_id", "fare", "distance_km", "event_ts",
                    F.expr("CASE WHEN payment_type = 'cash' THEN 1 ELSE 0 END").alias("cash")))
    latest = rows.groupBy("trip_id").agg(
        *(F.max_by(c, "event_ts").alias(c) for c in ("driver_id", "fare", "distance_km", "cash")),
        F.max("event_ts").alias("event_ts"))

    micros = F.unix_micros("event_ts")
    hourly = (latest.repartition("driver_id")
              .groupBy("driver_id", (micros + F.pmod(-micros, F.lit(HOUR_US))).alias("bucket"))
              .agg(F.count(F.lit(1)).alias("n"), F.sum("fare").alias("fare_sum"), F.count("fare").alias("fare_n"),
                   F.sum("distance_km").alias("km"), F.sum("cash").alias("cash")))
    end_us = int(end.timestamp()) * 1_000_000
    shift = F.explode(F.array(*(F.lit(h * HOUR_US) for h in (0, 1, 24, 24 * 7)))).alias("shift")
    own = F.col("shift") == 0
    combined = (hourly.select("*", shift)
                .select("driver_id", (F.col("bucket") + F.col("shift")).alias("bucket"),
                        *(F.when(own, F.col(c)).otherwise(0).alias(c) for c in ("n", "fare_n", "cash")),
                        *(F.when(own, F.col(c)).alias(c) for c in ("fare_sum", "km")))
                .where(F.col("bucket") <= end_us)
                .groupBy("driver_id", "bucket").agg(*(F.sum(c).alias(c) for c in ("n", "fare_sum", "fare_n", "km", "cash"))))

    def trailing(hours: int) -> Any:
        return Window.partitionBy("driver_id").orderBy("bucket").rangeBetween(-(hours - 1) * HOUR_US, 0)

    def average(total: Any, n: Any) -> Any:
        return F.when(n > 0, total / n)

    day, week = trailing(24), trailing(24 * 7)
    event_ts = F.timestamp_micros("bucket")
    result = combined.select(
        "driver_id",
        event_ts.alias("event_ts"),
        F.to_date(event_ts).alias("event_date"),
        F.col("n").alias("trips_1h"),
        F.sum("n").over(day).alias("trips_24h"),
        F.sum("n").over(week).alias("trips_7d"),
        F.sum("fare_sum").over(day).alias("fare_sum_24h"),
        average(F.col("fare_sum"), F.col("fare_n")).alias("fare_avg_1h"),
        average(F.sum("fare_sum").over(day), F.sum("fare_n").over(day)).alias("fare_avg_24h"),
        average(F.sum("fare_sum").over(week), F.sum("fare_n").over(week)).alias("fare_avg_7d"),
        F.sum("km").over(day).alias("km_24h"),
        F.sum("km").over(week).alias("km_7d"),
        F.sum("cash").over(week).alias("cash_trips_7d"),
    )
    return result, len(trips.inputFiles())


# --------------------------------------------------------------------------- checks

def differences(spark: "SparkSession", frames: dict[str, "DataFrame"], baseline: str) -> list[dict[str, Any]]:
    """Each frame against the baseline's, row for row, joined on the output's keys
    (``driver_id``, ``event_ts``): rows on one side only, rows with any value not equal, and
    rows with a value not equal within a relative 1e-9 (sums of doubles added in another
    order differ in the last bits; rounding both to 9 digits would split exact ties such as
    an average of 128 fares, 14.296953125 against 14.296953124999998)."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import DoubleType

    keys = ["driver_id", "event_ts"]
    base = frames[baseline].select(*OUTPUT_COLUMNS)
    values = [c for c in OUTPUT_COLUMNS if c not in keys]
    doubles = {f.name for f in base.schema.fields if isinstance(f.dataType, DoubleType)}
    base_rows = base.count()
    out = []
    for name, frame in frames.items():
        if name == baseline:
            continue
        frame = frame.select(*OUTPUT_COLUMNS)
        mine, theirs = frame.select(*keys, *(F.col(c).alias(f"a_{c}") for c in values), F.lit(True).alias("a")), \
            base.select(*keys, *(F.col(c).alias(f"b_{c}") for c in values), F.lit(True).alias("b"))
        joined = mine.join(theirs, keys, "full_outer")

        def unequal(column: str, close: bool) -> Any:
            a, b = F.col(f"a_{column}"), F.col(f"b_{column}")
            if close and column in doubles:
                return ~(a.eqNullSafe(b) | (F.abs(a - b) <= F.lit(1e-9) * F.greatest(F.abs(a), F.abs(b))))
            return ~a.eqNullSafe(b)

        both = F.col("a").isNotNull() & F.col("b").isNotNull()
        counts = joined.agg(
            F.count_if(F.col("b").isNull()).alias("only_here"),
            F.count_if(F.col("a").isNull()).alias("only_there"),
            F.count_if(both & F.greatest(*(unequal(c, False) for c in values))).alias("exact"),
            F.count_if(both & F.greatest(*(unequal(c, True) for c in values))).alias("close"),
        ).first()
        assert counts is not None
        rows = frame.count()
        missing = counts["only_here"] + counts["only_there"]
        same_schema = frame.schema == base.schema
        out.append({"variant": name, "against": baseline, "rows": rows, "baseline_rows": base_rows,
                    "same_schema": same_schema, "one_side_only": missing, "exact_diff": counts["exact"],
                    "diff_1e-9": counts["close"],
                    "identical": same_schema and missing == 0 and counts["close"] == 0 and rows == base_rows})
    return out


def accounting(name: str, result: pipeline.RunResult, expected: dict[str, int | None]) -> dict[str, Any]:
    """A run's row arithmetic from its report, beside what the files hold."""
    source = result.sources[0]
    steps = {f"{s.index}:{s.op}": s for s in result.steps}
    row: dict[str, Any] = {"run": name, "rows_read": source["rows_read"], "rows_read_expected": expected.get("rows_read"),
                           "malformed": source["rows_malformed"],
                           "files": f"{source.get('files_read', '-')}/{source.get('files', '-')}"}
    for key, step in steps.items():
        row[key] = step.dropped if step.dropped is not None else f"{step.rows_in}->{step.rows_out}"
    row["written"] = result.rows_written
    row["quarantined"] = (result.quarantine or {}).get("rows", 0)
    checks = [(row["rows_read"], expected.get("rows_read"))]
    for key, value in expected.items():
        if key != "rows_read":
            checks.append((row.get(key), value))
    row["adds_up"] = all(want is None or got == want for got, want in checks)
    return row


def expected_full(layout: dict[str, Any], parts: list[str], end: datetime) -> dict[str, int | None]:
    """What a full run over ``parts`` of the input (``base``, ``increment``) must report."""
    sets = [layout[p] for p in parts]
    return {
        "rows_read": sum(rows_between(s, None, end) + s["untimed"] for s in sets),
        "malformed": sum(s["bad_timestamp"] for s in sets),  # the time does not parse: the record is malformed
        "0:filter": sum(s["null_driver_id"] for s in sets),
        "1:filter": sum(s["negative_fare"] for s in sets),
        "2:dedup": sum(s["duplicate_trip_id"] for s in sets),
    }


# --------------------------------------------------------------------------- main

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000, help="raw trips of the base set (default 10,000,000)")
    parser.add_argument("--days", type=int, default=60, help="days of the base set (default 60)")
    parser.add_argument("--repeat", type=int, default=2, help="measured rounds after the warm-up (default 2)")
    parser.add_argument("--seed", type=int, default=7, help="generator seed (default 7)")
    parser.add_argument("--validate", action="store_true", help="give the job the demo's validate block")
    parser.add_argument("--skip-backfill", action="store_true", help="leave out the backfill comparison")
    parser.add_argument("--backfill-days", type=int,
                        help="days backfilled up to T1, in 1-day chunks (default: 30, or half of --days if fewer)")
    add_common_args(parser, "work folder (kept; input reused when rows/days/seed match); default: a temp folder",
                    "also write every sample, check and summary to this JSON file")
    parser.add_argument("--wait-quiet", type=float, default=0.0, metavar="SECONDS",
                        help="before measuring, wait up to SECONDS for the 1-minute load to drop below --max-load")
    parser.add_argument("--max-load", type=float, default=1.0, help="load considered quiet (default 1.0)")
    parser.add_argument("--profile", action="store_true", help="print each variant's SQL executions (last round)")
    return parser.parse_args(argv)


def at(job: LoadedJob, path: str, start: datetime | None = None) -> LoadedJob:
    """The same job writing to ``path`` (its watermark lives in that table), optionally with
    ``incremental.start``: one job, several tables, so each variant starts from its own copy."""
    spec = job.spec.model_copy(update={"output": job.spec.output.model_copy(update={"path": path})})
    if start is not None:
        assert spec.incremental is not None
        spec = spec.model_copy(update={"incremental": spec.incremental.model_copy(update={"start": start})})
    return replace(job, spec=spec)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with work_folder(args.work, args.keep) as work:
        project = bench_project(work / "project", args.shuffle_partitions, args.master, args.driver_memory)
        write_job(project, JOB, JOB_TEXT.format(name=JOB, validate=VALIDATE_BLOCK if args.validate else ""))
        raw = project.root / "data" / "raw"
        layout = prepare_input(raw, args.rows, args.days, args.seed)
        empty_lake(project)
        spark, settings = start_session(project)
        try:
            return _bench(args, project, settings, spark, raw, project.root / "data" / "lake", layout)
        finally:
            spark.stop()


def _bench(args: argparse.Namespace, project: Project, settings: Settings, spark: "SparkSession",
           raw: Path, lake: Path, layout: dict[str, Any]) -> int:
    job, _ = pipeline.load(project, JOB, "local")
    t1 = datetime.fromisoformat(layout["t1"])
    start = T0 - LOOKBACK
    base_state = lake / "_base_state"
    paths = {FULL: str(lake / f"{JOB}_full"), INCREMENTAL: job.spec.output.path, HAND: str(lake / f"{JOB}_hand")}
    full_job = at(job, paths[FULL])
    problems: list[str] = []
    base, increment = layout["base"], layout["increment"]
    print(f"input: {base['rows']:,} raw trips over {args.days} days to {T0:%Y-%m-%d %H:%M}, in {base['files']} files; "
          f"increment {increment['rows']:,} rows ({increment['late_rows']:,} late) to {t1:%Y-%m-%d %H:%M}", flush=True)

    withdraw_increment(raw, layout)
    began = time.perf_counter()
    base_run = pipeline.run(project, job, settings, spark, end=T0, full=True)
    print(f"base state: a full run to {T0:%Y-%m-%d %H:%M} in {time.perf_counter() - began:.1f}s, "
          f"{base_run.rows_written:,} rows", flush=True)
    quarantined = Path(job.spec.quarantine_path)  # the base set's malformed records
    for table in (base_state, Path(f"{base_state}_quarantine")):
        shutil.rmtree(table, ignore_errors=True)
    Path(job.spec.output.path).replace(base_state)
    if quarantined.exists():
        quarantined.replace(f"{base_state}_quarantine")
    land_increment(raw, layout)

    def fresh(path: str) -> None:
        """The table at ``path`` (and its quarantine table) back to the base state; Delta's
        cached logs forgotten, so every variant reads its tables' logs from disk, as a run in
        its own process does."""
        for source, target in ((base_state, path), (Path(f"{base_state}_quarantine"), f"{path}_quarantine")):
            shutil.rmtree(target, ignore_errors=True)
            if source.exists() and (path != paths[HAND] or source == base_state):
                shutil.copytree(source, target)
        spark._jvm.org.apache.spark.sql.delta.DeltaLog.clearCache()  # type: ignore[union-attr]

    variants = {
        FULL: lambda: pipeline.run(project, full_job, settings, spark, end=t1, full=True),
        INCREMENTAL: lambda: pipeline.run(project, job, settings, spark, end=t1),
        HAND: lambda: hand_increment(spark, raw / "trips", paths[HAND], start, t1),
    }
    names = list(variants)
    jvm_gc = spark.sparkContext._jvm.java.lang.System  # type: ignore[union-attr]
    print("warm-up: one run of each incremental variant (the base state's run was a full one)", flush=True)
    for name in names[1:]:
        fresh(paths[name])
        measure(spark, name, variants[name])
    load_before = wait_until_quiet(args.max_load, args.wait_quiet) if args.wait_quiet else load_average()
    print(f"measuring {args.repeat} round(s); 1-minute load {load_before:.2f}", flush=True)

    samples: list[Sample] = []
    results: dict[str, Any] = {}
    for round_no in range(args.repeat):
        order = names[round_no % len(names):] + names[:round_no % len(names)]
        for name in order:
            fresh(paths[name])
            jvm_gc.gc()
            sample, value = measure(spark, name, variants[name], keep_plans=args.profile)
            sample.round = round_no
            results[name] = value
            if isinstance(value, pipeline.RunResult):
                sample.extra = {"durations": value.durations, "rows_written": value.rows_written,
                                "incremental": value.incremental, "sources": value.sources}
            samples.append(sample)
            print(f"  round {round_no + 1} {name:<24} {sample.wall_s:7.2f}s  jobs={sample.spark_jobs}  load={sample.load_1m}",
                  flush=True)
    load_after = load_average()

    # --- the reports: the interval, the files and every row
    report = results[INCREMENTAL].incremental
    if (report["start"], report["end"]) != (_iso(start), _iso(t1)):
        problems.append(f"featurekit's interval {report['interval']} is not ({_iso(start)}, {_iso(t1)}]")
    expected_incremental = rows_between(base, start - REACH, t1) + rows_between(increment, start - REACH, t1) \
        + increment["untimed"]
    rows = [
        accounting("base state (full to T0)", base_run, expected_full(layout, ["base"], T0)),
        accounting(FULL, results[FULL], expected_full(layout, ["base", "increment"], t1)),
        accounting(INCREMENTAL, results[INCREMENTAL], {"rows_read": expected_incremental,
                                                       "malformed": increment["untimed"]}),
    ]
    step_keys = list(dict.fromkeys(k for r in rows for k in r if ":" in k))
    print_table("row accounting from the run reports (a step's rows dropped; expected: from the files)", rows,
                [("run", "run"), ("rows_read", "rows read"), ("rows_read_expected", "rows in range (files)"),
                 ("malformed", "malformed"), ("files", "files read/of source"), *((k, k) for k in step_keys),
                 ("written", "written"), ("quarantined", "to quarantine"), ("adds_up", "as expected")])
    problems += [f"{r['run']}: the report's rows differ from the files' (see the table)" for r in rows if not r["adds_up"]]

    # --- timing
    summary = summarize(samples, FULL)
    versus_hand = {r["variant"]: r for r in summarize(samples, HAND)}
    hand_files = results[HAND]
    for row in summary:
        hand = versus_hand[row["variant"]]
        row["x_hand"], row["x_hand_paired"] = hand["ratio"], hand["paired_ratio"]
        value = results[row["variant"]]
        if isinstance(value, pipeline.RunResult):
            row["rows_read"] = value.sources[0]["rows_read"]
            row["files"] = f"{value.sources[0].get('files_read', '-')}/{value.sources[0].get('files', '-')}"
            row["rows_written"] = value.rows_written
        else:
            row["rows_read"] = rows_between(base, start - REACH, t1) + rows_between(increment, start - REACH, t1)
            row["files"] = f"{hand_files}/{base['files'] + len(increment['files'])}"
    print_table(
        f"incremental run: {base['rows']:,} + {increment['rows']:,} raw rows, median of {args.repeat} "
        f"(load {load_before:.2f} -> {load_after:.2f})",
        summary,
        [("variant", "variant"), ("median_s", "median s"), ("min_s", "min s"), ("max_s", "max s"),
         ("ratio", "x full"), ("paired_ratio", "x full, paired"), ("x_hand", "x hand-written"),
         ("x_hand_paired", "x hand-written, paired"), ("rows_read", "rows read"), ("files", "files read/of source"),
         ("rows_written", "rows written"), ("spark_jobs", "Spark jobs"), ("jvm_peak_rss_mb", "JVM peak RSS MB")],
    )
    phases = [{"variant": n, **r.durations} for n, r in results.items() if isinstance(r, pipeline.RunResult)]
    keys = sorted({k for p in phases for k in p if k != "variant"})
    print_table("featurekit phases (last round, s)", phases, [("variant", "variant"), *((k, k) for k in keys)])
    last = {name: [s for s in samples if s.variant == name][-1] for name in names}
    parts = print_breakdown("where the time goes (last round, s; top-level SQL executions by kind)", last)
    if args.profile:
        for name in names:
            print_table(f"SQL executions of {name} (last round)", last[name].sql_executions,
                        [("id", "id"), ("root", "root"), ("seconds", "s"), ("description", "description"),
                         ("plan_head", "top of plan")])

    # --- the outputs
    read = lambda path: spark.read.format("delta").load(path)  # noqa: E731
    checks = differences(spark, {n: read(p) for n, p in paths.items()}, FULL)

    by_name = {r["variant"]: r for r in summary}
    backfill_record: dict[str, Any] = {}
    if not args.skip_backfill:
        backfill_record, more = _backfill(args, project, settings, spark, job, lake, t1, read(paths[FULL]),
                                          by_name[FULL]["median_s"])
        checks += more
    print_table("outputs, row for row", checks,
                [("variant", "variant"), ("against", "against"), ("rows", "rows"), ("baseline_rows", "its rows"),
                 ("same_schema", "same schema"), ("one_side_only", "keys on one side only"),
                 ("exact_diff", "rows differing (exact)"), ("diff_1e-9", "rows differing (doubles, relative 1e-9)"),
                 ("identical", "identical")])
    problems += [f"{c['variant']} differs from {c['against']}" for c in checks if not c["identical"]]

    goals = [
        {"goal": "featurekit incremental / full <= 0.10", "paired": by_name[INCREMENTAL]["paired_ratio"],
         "medians": by_name[INCREMENTAL]["ratio"], "met": (by_name[INCREMENTAL]["paired_ratio"] or 9) <= 0.10},
        {"goal": "hand-written increment / full (the floor)", "paired": by_name[HAND]["paired_ratio"],
         "medians": by_name[HAND]["ratio"], "met": None},
        {"goal": "featurekit incremental / hand-written <= 1.2", "paired": by_name[INCREMENTAL]["x_hand_paired"],
         "medians": by_name[INCREMENTAL]["x_hand"], "met": (by_name[INCREMENTAL]["x_hand_paired"] or 9) <= 1.2},
    ]
    if backfill_record:
        goals.append({"goal": f"backfill {backfill_record['days']}d in 1d chunks / full run of the range",
                      "paired": None, "medians": backfill_record["ratio"], "met": None})
        goals.append({"goal": f"backfill {backfill_record['days']}d in 1d chunks / full run (whole table)",
                      "paired": None, "medians": backfill_record["x_full"], "met": None})
        if backfill_record["range_refused"]:
            problems.append(f"the full run of the backfill's range was refused: {backfill_record['range_refused']}")
    print_table("goals", goals, [("goal", "goal"), ("paired", "paired ratio"), ("medians", "ratio of medians"),
                                 ("met", "met")])
    if args.json:
        save_json(args.json, {"benchmark": "incremental", "args": {k: str(v) for k, v in vars(args).items()},
                              "machine": machine(), "input": {k: v for k, v in layout.items() if k not in ("base", "increment")}
                              | {"base": _brief(base), "increment": _brief(increment)},
                              "load_before": load_before, "load_after": load_after, "summary": summary,
                              "accounting": rows, "outputs": checks, "goals": goals, "phases": phases,
                              "breakdown": parts, "backfill": backfill_record, "samples": samples})
    for problem in problems:
        print(f"FAILED: {problem}", file=sys.stderr)
    return 1 if problems else 0


def _brief(tally: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in tally.items() if k != "hours"}


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _backfill(args: argparse.Namespace, project: Project, settings: Settings, spark: "SparkSession", job: LoadedJob,
              lake: Path, end: datetime, full: "DataFrame", full_s: float) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The last days up to ``end`` in 1-day chunks, and one full run of the same range, each
    into an empty table; both against the full run's rows of the range (``full``; its median
    wall time ``full_s``)."""
    from featurekit.pipeline.core import GateFailed

    days = args.backfill_days or backfill_days(args.days)
    start = end - timedelta(days=days)
    paths = {"backfill": str(lake / f"{JOB}_backfill"), "range": str(lake / f"{JOB}_range")}
    for path in paths.values():
        shutil.rmtree(path, ignore_errors=True)
    chunks: list[float] = []
    mark = [time.perf_counter()]

    def progress(done: int, total: int, _: Any) -> None:
        now = time.perf_counter()
        if done:
            chunks.append(round(now - mark[0], 3))
            print(f"  chunk {done}/{total} {chunks[-1]:6.2f}s", flush=True)
        mark[0] = now

    print(f"backfill of ({start:%Y-%m-%d %H:%M}, {end:%Y-%m-%d %H:%M}] in 1-day chunks, and one full run of it", flush=True)
    samples, reads, refused = [], [], ""
    try:
        whole, ranged = measure(spark, "full run of the range",
                                lambda: pipeline.run(project, at(job, paths["range"], start), settings, spark, end=end,
                                                     full=True))
        samples.append(whole)
        reads.append((1, ranged.sources[0]["rows_read"]))
    except GateFailed as exc:  # it takes every malformed record of every file, against the rows of its range
        refused = str(exc).splitlines()[0]
        print(f"  full run of the range refused: {refused}", flush=True)
    spark._jvm.org.apache.spark.sql.delta.DeltaLog.clearCache()  # type: ignore[union-attr]
    chunked, result = measure(spark, "backfill, 1-day chunks",
                              lambda: backfill(project, at(job, paths["backfill"]), settings, start, end, batch="1d",
                                               spark=spark, progress=progress))
    samples.append(chunked)
    reads.append((len(result.runs), sum(r.sources[0]["rows_read"] for r in result.runs)))
    base_s = samples[0].wall_s if not refused else None
    rows = [{"variant": s.variant, "wall_s": s.wall_s, "runs": n, "spark_jobs": s.spark_jobs, "rows_read": read,
             "ratio": round(s.wall_s / base_s, 3) if base_s else None, "x_full": round(s.wall_s / full_s, 3)}
            for s, (n, read) in zip(samples, reads)]
    rows.append({"variant": "per chunk (median)", "wall_s": median(chunks), "runs": 1})
    print_table(f"backfill: {days} days up to T1", rows,
                [("variant", "variant"), ("wall_s", "wall s"), ("runs", "runs"), ("ratio", "x full run of the range"),
                 ("x_full", "x full run (median)"), ("rows_read", "rows read (sum)"), ("spark_jobs", "Spark jobs")])
    interval = f"event_ts > {_sql_ts(start)} AND event_ts <= {_sql_ts(end)}"
    read = lambda path: spark.read.format("delta").load(path)  # noqa: E731
    frames = {"full (its range)": full.where(interval), "backfill": read(paths["backfill"])}
    if not refused:
        frames["full run of the range"] = read(paths["range"])
    checks = differences(spark, frames, "full (its range)")
    record = {"days": days, "start": _iso(start), "end": _iso(end), "rows": rows,
              "ratio": rows[-2]["ratio"], "x_full": rows[-2]["x_full"], "range_refused": refused,
              "chunk_s": chunks, "samples": samples}
    return record, checks


if __name__ == "__main__":
    raise SystemExit(main())
