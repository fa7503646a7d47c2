"""What featurekit costs on a real prep job, against the same job written by hand in PySpark.

The job is the demo's ``driver_hourly_stats``: CSV with a schema -> two filters -> latest
record per ``trip_id`` -> trailing 1h/24h/7d aggregates per driver and hour (per-hour
partial aggregates combined over a range window) -> ``event_date`` -> select -> Delta,
overwritten each run (partitioned by ``event_date``) so runs stay comparable.

Variants, all in one SparkSession, on one generated input
(:func:`featurekit.demo.generate.generate_raw`):

- ``hand-written``: the plain PySpark a good engineer would write (the baseline);
- ``featurekit``: ``pipeline.run`` on the equivalent job spec, no ``validate`` block;
- ``featurekit+validate``: the same with the demo's ``validate`` block;
- with ``--ablation``: the hand-written job plus featurekit's nine row-count observations
  (``hand+observations``), plus its corrupt-record column (``hand+corrupt-column``), or both;
  and featurekit's plan alone, written by a ``DataFrameWriter`` or through featurekit's held
  Delta transaction — to attribute featurekit's cost to the pass or to the run around it.

One warm-up run of each, then ``--repeat`` rounds that alternate the variants (the order
rotates each round). Reported: median wall time, ratio to the hand-written median, the
paired ratio (median over rounds of each round's own ratio: both runs of a round see the
machine's drift alike), Spark jobs and SQL executions per run, the JVM's peak RSS during a run. The outputs are then
compared row for row; a benchmark of different results would be worthless.

    python benchmarks/prep_job.py                   # 2,000,000 rows, 3 rounds
    python benchmarks/prep_job.py --rows 200000 --repeat 1 --profile
    python benchmarks/prep_job.py --ablation --json prep_job.json
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402  (benchmarks/ is a folder of scripts, not a package)
    Sample, add_common_args, bench_project, empty_lake, load_average, machine, measure, print_breakdown,
    print_table, save_json, start_session, summarize, wait_until_quiet, work_folder, write_job,
)

from featurekit import pipeline  # noqa: E402
from featurekit.config import Project, Settings  # noqa: E402

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

TRIP_SCHEMA = ("trip_id string, driver_id long, fare double, distance_km double, city string, "
               "payment_type string, event_ts timestamp")
HOUR_US = 3_600_000_000
OUTPUT_COLUMNS = ["driver_id", "event_ts", "event_date", "trips_1h", "trips_24h", "trips_7d", "fare_sum_24h",
                  "fare_avg_1h", "fare_avg_24h", "fare_avg_7d", "km_24h", "km_7d", "cash_trips_7d"]

JOB_BODY = """
description: driver_hourly_stats for the benchmark (overwrite instead of merge).
owner: benchmarks
sources:
  trips:
    format: csv
    path: ${raw_root}/trips
    options: {header: true}
    schema: {trip_id: string, driver_id: long, fare: double, distance_km: double, city: string,
             payment_type: string, event_ts: timestamp}
steps:
  - filter: "driver_id IS NOT NULL AND event_ts IS NOT NULL"
  - filter: "fare >= 0"
  - dedup: {keys: [trip_id], order_by: event_ts}
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
  - with_columns: {event_date: "to_date(event_ts)"}
  - select: [driver_id, event_ts, event_date, trips_1h, trips_24h, trips_7d, fare_sum_24h,
             fare_avg_1h, fare_avg_24h, fare_avg_7d, km_24h, km_7d, cash_trips_7d]
"""

VALIDATE_BLOCK = """
validate:
  policy: quarantine
  max_bad_fraction: 0.01
  columns:
    driver_id: {type: long, nullable: false}
    event_ts: {type: timestamp, nullable: false}
    trips_1h: {type: long, checks: {ge: 1}}
    trips_24h: {type: long, checks: {ge: 1}}
    fare_avg_24h: {type: double, checks: {in_range: [0, 500]}}
    km_7d: {type: double, checks: {ge: 0}}
  unique: [driver_id, event_ts]
  row_count: {min: 1}
"""


def output_block(name: str) -> str:
    return f"""
output:
  path: ${{lake_root}}/{name}
  mode: overwrite
  partition_by: [event_date]
"""


JOBS = {
    "featurekit": "bench_hourly",
    "featurekit+validate": "bench_hourly_validated",
}


def write_jobs(project: Project) -> None:
    write_job(project, JOBS["featurekit"], f"name: {JOBS['featurekit']}\n{JOB_BODY}{output_block(JOBS['featurekit'])}")
    write_job(project, JOBS["featurekit+validate"],
              f"name: {JOBS['featurekit+validate']}\n{JOB_BODY}{VALIDATE_BLOCK}{output_block(JOBS['featurekit+validate'])}")


# --------------------------------------------------------------------------- the baseline

def hand_written(spark: "SparkSession", raw: str, observe: bool = False, corrupt_column: bool = False) -> "DataFrame":
    """driver_hourly_stats in plain PySpark: the result frame (not yet written).

    ``observe`` and ``corrupt_column`` add two things featurekit does, for the ablation
    (``--ablation``): the same nine row-count observations, and reading the CSV with a
    corrupt-record column whose non-null rows are split off.
    """
    from pyspark.sql import Observation, Window
    from pyspark.sql import functions as F

    def counted(frame: "DataFrame", name: str, **extra: Any) -> "DataFrame":
        if not observe:
            return frame
        return frame.observe(Observation(f"{name}_{time.monotonic_ns()}"), F.count(F.lit(1)).alias("rows"),
                             *(column.alias(key) for key, column in extra.items()))

    schema = TRIP_SCHEMA + (", _raw string" if corrupt_column else "")
    reader = spark.read.option("header", True).schema(schema)
    if corrupt_column:
        reader = reader.option("mode", "PERMISSIVE").option("columnNameOfCorruptRecord", "_raw")
    trips = reader.csv(raw)
    if corrupt_column:
        trips = counted(trips, "source", malformed=F.count_if(F.col("_raw").isNotNull()))
        trips = trips.where("_raw IS NULL").drop("_raw")
    else:
        trips = counted(trips, "source")
    kept = counted(counted(trips, "f0_in").where("driver_id IS NOT NULL AND event_ts IS NOT NULL"), "f0_out")
    clean = counted(counted(kept, "f1_in").where("fare >= 0"), "f1_out")
    newest_first = Window.partitionBy("trip_id").orderBy(F.col("event_ts").desc())
    ranked = counted(clean, "dedup_in").withColumn("rn", F.row_number().over(newest_first))
    latest = counted(ranked.where("rn = 1").drop("rn"), "dedup_out")
    latest = counted(latest, "agg_in", null_timestamp=F.count_if(F.col("event_ts").isNull()))

    micros = F.unix_micros("event_ts")
    hour_end = (micros + F.pmod(-micros, F.lit(HOUR_US))).alias("hour_end")  # right-closed hourly buckets
    hourly = latest.groupBy("driver_id", hour_end).agg(
        F.count(F.lit(1)).alias("n"),
        F.sum("fare").alias("fare_sum"),
        F.count("fare").alias("fare_n"),
        F.sum("distance_km").alias("km"),
        F.count(F.when(F.col("payment_type") == "cash", 1)).alias("cash"),
    )

    def trailing(hours: int) -> Any:
        return Window.partitionBy("driver_id").orderBy("hour_end").rangeBetween(-(hours - 1) * HOUR_US, 0)

    day, week = trailing(24), trailing(24 * 7)
    event_ts = F.timestamp_micros("hour_end")
    result = hourly.select(
        "driver_id",
        event_ts.alias("event_ts"),
        F.to_date(event_ts).alias("event_date"),
        F.col("n").alias("trips_1h"),
        F.sum("n").over(day).alias("trips_24h"),
        F.sum("n").over(week).alias("trips_7d"),
        F.sum("fare_sum").over(day).alias("fare_sum_24h"),
        (F.col("fare_sum") / F.col("fare_n")).alias("fare_avg_1h"),
        (F.sum("fare_sum").over(day) / F.sum("fare_n").over(day)).alias("fare_avg_24h"),
        (F.sum("fare_sum").over(week) / F.sum("fare_n").over(week)).alias("fare_avg_7d"),
        F.sum("km").over(day).alias("km_24h"),
        F.sum("km").over(week).alias("km_7d"),
        F.sum("cash").over(week).alias("cash_trips_7d"),
    )
    return counted(result, "agg_out")


def run_hand_written(spark: "SparkSession", raw: str, out: str, **features: bool) -> None:
    (hand_written(spark, raw, **features).write.format("delta").mode("overwrite")
     .partitionBy("event_date").save(out))


def run_plan(project: Project, spark: "SparkSession", out: str, held: bool) -> None:
    """featurekit's plan for the job (sources + steps, observations included) written without
    the rest of a run: with a plain ``DataFrameWriter``, or through featurekit's held Delta
    transaction (``prepare`` + ``commit``) — to separate the pass from the run around it."""
    from featurekit.engine.context import BuildContext
    from featurekit.engine.transform import apply_steps, read_sources
    from featurekit.sinks.delta import prepare
    from featurekit.sinks.transaction import CommitMeta

    loaded, _ = pipeline.load(project, JOBS["featurekit"], "local")
    ctx = BuildContext(spark=spark, prefix=f"plan_{time.monotonic_ns()}")
    read_sources(ctx, loaded)
    frame = apply_steps(ctx, loaded)
    output = loaded.spec.output.model_copy(update={"path": out})
    if held:
        prepare(spark, frame, output, CommitMeta("bench_plan", f"r{time.monotonic_ns()}", "", "")).commit()
    else:
        frame.write.format("delta").mode("overwrite").partitionBy(*output.partition_by).save(out)
    ctx.drop_views()


def run_featurekit(project: Project, job: str, spark: "SparkSession") -> pipeline.RunResult:
    """What ``featurekit run JOB`` does, on the benchmark's session (spec loading included)."""
    loaded, settings = pipeline.load(project, job, "local")
    return pipeline.run(project, loaded, settings, spark)


# --------------------------------------------------------------------------- checking the outputs

def compare_outputs(spark: "SparkSession", paths: dict[str, str], baseline: str) -> list[dict[str, Any]]:
    """Row-for-row comparison of each output with the baseline's.

    ``exact_diff`` counts rows present on one side only (both directions); ``diff_1e-9``
    does the same with doubles rounded to 9 significant digits, because sums of doubles
    may differ in the last bits when Spark adds them in a different order.
    """
    from pyspark.sql import functions as F
    from pyspark.sql.types import DoubleType

    def load(path: str, rounded: bool) -> "DataFrame":
        frame = spark.read.format("delta").load(path).select(*OUTPUT_COLUMNS)
        if not rounded:
            return frame
        return frame.select(*(
            F.expr(f"CAST(format_string('%.9e', {f.name}) AS DOUBLE)").alias(f.name) if isinstance(f.dataType, DoubleType)
            else F.col(f.name) for f in frame.schema.fields
        ))

    base_rows = spark.read.format("delta").load(paths[baseline]).count()
    rows = []
    for name, path in paths.items():
        if name == baseline:
            continue
        other = spark.read.format("delta").load(path)
        same_schema = other.select(*OUTPUT_COLUMNS).schema == spark.read.format("delta").load(paths[baseline]).schema
        exact = sum(load(a, False).exceptAll(load(b, False)).count() for a, b in ((path, paths[baseline]), (paths[baseline], path)))
        close = sum(load(a, True).exceptAll(load(b, True)).count() for a, b in ((path, paths[baseline]), (paths[baseline], path)))
        rows.append({"variant": name, "rows": other.count(), "baseline_rows": base_rows, "same_schema": same_schema,
                     "exact_diff": exact, "diff_1e-9": close, "identical": close == 0 and other.count() == base_rows})
    return rows


# --------------------------------------------------------------------------- main

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=2_000_000, help="raw trips to generate (default 2,000,000)")
    parser.add_argument("--repeat", type=int, default=3, help="measured rounds after the warm-up (default 3)")
    parser.add_argument("--seed", type=int, default=7, help="generator seed (default 7)")
    add_common_args(parser, "work folder (kept; input reused when rows/seed match); default: a temp folder",
                    "also write every sample and summary to this JSON file")
    parser.add_argument("--wait-quiet", type=float, default=0.0, metavar="SECONDS",
                        help="before measuring, wait up to SECONDS for the 1-minute load to drop below --max-load")
    parser.add_argument("--max-load", type=float, default=1.0, help="load considered quiet (default 1.0)")
    parser.add_argument("--ablation", action="store_true",
                        help="add hand-written variants with featurekit's row-count observations and corrupt-record column")
    parser.add_argument("--profile", action="store_true", help="print each variant's SQL executions (last round)")
    return parser.parse_args(argv)


def generate_input(root: Path, rows: int, seed: int) -> dict[str, Any]:
    """The demo's raw trips under ``root`` (reused when a manifest with the same rows/seed is there)."""
    import json

    from featurekit.demo.generate import generate_raw

    manifest = root / "_manifest.json"
    if manifest.exists():
        found = json.loads(manifest.read_text())
        if found.get("rows") == rows and found.get("seed") == seed:
            return found
    start = time.perf_counter()
    generate_raw(root, rows=rows, seed=seed)
    print(f"generated {rows:,} raw trips in {time.perf_counter() - start:.1f}s")
    return json.loads(manifest.read_text())


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with work_folder(args.work, args.keep) as work:
        project = bench_project(work / "project", args.shuffle_partitions, args.master, args.driver_memory)
        write_jobs(project)
        raw = project.root / "data" / "raw"
        lake = project.root / "data" / "lake"
        data = generate_input(raw, args.rows, args.seed)
        empty_lake(project)
        spark, settings = start_session(project)
        try:
            return _bench(args, project, settings, spark, str(raw / "trips"), lake, data)
        finally:
            spark.stop()


def _bench(args: argparse.Namespace, project: Project, settings: Settings, spark: "SparkSession",
           raw: str, lake: Path, data: dict[str, Any]) -> int:
    hand_out = str(lake / "bench_hourly_hand")
    variants = {
        "hand-written": lambda: run_hand_written(spark, raw, hand_out),
        "featurekit": lambda: run_featurekit(project, JOBS["featurekit"], spark),
        "featurekit+validate": lambda: run_featurekit(project, JOBS["featurekit+validate"], spark),
    }
    if args.ablation:
        variants["hand+observations"] = lambda: run_hand_written(spark, raw, str(lake / "bench_hourly_obs"), observe=True)
        variants["hand+corrupt-column"] = lambda: run_hand_written(spark, raw, str(lake / "bench_hourly_corrupt"),
                                                                   corrupt_column=True)
        variants["hand+both"] = lambda: run_hand_written(spark, raw, str(lake / "bench_hourly_both"),
                                                         observe=True, corrupt_column=True)
        variants["fk plan, DataFrameWriter"] = lambda: run_plan(project, spark, str(lake / "bench_hourly_plan"), held=False)
        variants["fk plan, held transaction"] = lambda: run_plan(project, spark, str(lake / "bench_hourly_held"), held=True)
    names = list(variants)
    jvm_gc = spark.sparkContext._jvm.java.lang.System  # type: ignore[union-attr]

    print(f"warm-up: one run of each variant ({data['trips_rows']:,} raw rows)", flush=True)
    for name in names:
        measure(spark, name, variants[name])
    load_before = wait_until_quiet(args.max_load, args.wait_quiet) if args.wait_quiet else load_average()
    print(f"measuring {args.repeat} round(s); 1-minute load {load_before:.2f}", flush=True)

    samples: list[Sample] = []
    results: dict[str, Any] = {}
    for round_no in range(args.repeat):
        order = names[round_no % len(names):] + names[:round_no % len(names)]
        for name in order:
            jvm_gc.gc()
            sample, value = measure(spark, name, variants[name], keep_plans=args.profile)
            sample.round = round_no
            if isinstance(value, pipeline.RunResult):
                sample.extra = {"durations": value.durations, "rows_written": value.rows_written,
                                "rows_quarantined": value.rows_quarantined, "quarantine": value.quarantine}
                results[name] = value
            samples.append(sample)
            print(f"  round {round_no + 1} {name:<20} {sample.wall_s:7.2f}s  jobs={sample.spark_jobs}  load={sample.load_1m}",
                  flush=True)
    load_after = load_average()

    summary = summarize(samples, "hand-written")
    print_table(
        f"driver_hourly_stats: {data['trips_rows']:,} raw rows, median of {args.repeat} "
        f"(load {load_before:.2f} -> {load_after:.2f})",
        summary,
        [("variant", "variant"), ("median_s", "median s"), ("min_s", "min s"), ("max_s", "max s"),
         ("ratio", "x hand-written"), ("paired_ratio", "x hand-written, paired (median)"), ("paired_min", "paired min"),
         ("paired_max", "paired max"), ("spark_jobs", "Spark jobs"), ("sql_executions", "SQL execs"),
         ("jvm_peak_rss_mb", "JVM peak RSS MB")],
    )
    phases = [{"variant": n, **{k: v for k, v in r.durations.items()}} for n, r in results.items()]
    if phases:
        keys = sorted({k for p in phases for k in p if k != "variant"})
        print_table("featurekit phases (last round, s)", phases, [("variant", "variant"), *((k, k) for k in keys)])

    last = {name: [s for s in samples if s.variant == name][-1] for name in names}
    parts = print_breakdown("where the time goes (last round, s; top-level SQL executions by kind)", last)
    if args.profile:
        for name in names:
            print_table(f"SQL executions of {name} (last round)", last[name].sql_executions,
                        [("id", "id"), ("root", "root"), ("seconds", "s"), ("description", "description"),
                         ("plan_head", "top of plan")])

    outputs = {"hand-written": hand_out, **{n: str(lake / j) for n, j in JOBS.items()}}
    if args.ablation:
        outputs.update({"hand+observations": str(lake / "bench_hourly_obs"),
                        "hand+corrupt-column": str(lake / "bench_hourly_corrupt"),
                        "hand+both": str(lake / "bench_hourly_both")})
    checks = compare_outputs(spark, outputs, "hand-written")
    print_table("outputs vs hand-written", checks,
                [("variant", "variant"), ("rows", "rows"), ("baseline_rows", "hand-written rows"),
                 ("same_schema", "same schema"), ("exact_diff", "rows differing (exact)"),
                 ("diff_1e-9", "rows differing (doubles to 1e-9)"), ("identical", "identical")])
    if args.json:
        save_json(args.json, {"benchmark": "prep_job", "args": {k: str(v) for k, v in vars(args).items()},
                              "machine": machine(), "input": data, "load_before": load_before,
                              "load_after": load_after, "summary": summary, "outputs": checks,
                              "phases": phases, "breakdown": parts, "samples": samples})
    return 0 if all(c["identical"] for c in checks) else 1


if __name__ == "__main__":
    raise SystemExit(main())
