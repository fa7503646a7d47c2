"""What the validation gate costs, and how it compares with pandera-pyspark on the same checks.

Input: trip-like rows generated once with numpy/pyarrow and written as Parquet
(``trips_dirty``: about 0.8% bad rows, each breaking exactly one of the checks, so the
expected failures are known exactly; ``trips_clean``: the same rows without defects).

The job is a small, realistic prep job: Parquet -> two derived columns -> Delta, overwritten.
Variants, one SparkSession, one warm-up run each, then ``--repeat`` alternating rounds:

- ``job``: ``pipeline.run`` without a ``validate`` block (no checks: the run is its one
  pass plus the Delta commit);
- ``job+gate``: the same job with 8 row-level checks (nullable x2, ge, in_range, isin,
  str_matches, str_length, unique); bad rows go to the quarantine table with their reasons;
- ``pandera``: pandera-pyspark ``DataFrameSchema.validate`` with the same checks on the
  same frame (the job's steps, no write): one verdict per check, no row-level result;
- ``pandera+cache``: the same with pandera's ``cache_dataframe=True``;
- with ``--clean`` (default): ``job+gate (clean)`` and ``pandera (clean)`` on the data
  without defects, where pandera cannot stop at the first failing row;
- with ``--ablation``: ``job+gate (no unique)``, ``job+gate (unique only)``,
  ``plain PySpark job`` (read, derive, write Delta in one pass), ``plain PySpark + checks``
  (the same, with the gate's 7 row-level conditions filtering the rows in the pass) and
  ``plain PySpark floor`` (that, then one read of the hashed key column: the least any
  row-level gate with a shuffle-free ``unique`` must add; nothing is gathered, counted or
  reported), to attribute the cost.

Reported: median wall times, gate overhead = (job+gate)/job - 1 against the goal of
<= 15%, job+gate / pandera against the goal of < 1, and the gate's counts against the
known bad rows.

    python benchmarks/validation.py                    # 5,000,000 rows, 3 rounds
    python benchmarks/validation.py --rows 200000 --repeat 1
"""

from __future__ import annotations

import argparse
import json
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
from featurekit.config import Project  # noqa: E402
from featurekit.validation.rules import rules_for  # noqa: E402

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

CITIES = ("Amsterdam", "Berlin", "Lisbon", "Madrid", "Paris", "Warsaw")
PAYMENTS = ("card", "cash", "wallet")
# one defect kind per check; each bad row has exactly one defect
DEFECTS = ("null_driver_id", "null_event_ts", "negative_fare", "distance_out_of_range",
           "unknown_payment_type", "short_city", "malformed_trip_id", "duplicate_trip_id")
TRIP_ID_PATTERN = "t[0-9]{9}"
DERIVED = {"fare_per_km": "fare / distance_km", "event_date": "to_date(event_ts)"}

JOB = """
name: {name}
description: Trips with two derived columns (validation benchmark).
owner: benchmarks
sources:
  trips: {{format: parquet, path: "${{raw_root}}/{data}"}}
steps:
  - with_columns: {{fare_per_km: "fare / distance_km", event_date: "to_date(event_ts)"}}
{validate}
output:
  path: ${{lake_root}}/{name}
  mode: overwrite
"""

VALIDATE_NO_UNIQUE = """
validate:
  policy: quarantine
  max_bad_fraction: 0.05
  columns:
    trip_id: {type: string, checks: {str_matches: "t[0-9]{9}"}}
    driver_id: {type: long, nullable: false}
    event_ts: {type: timestamp, nullable: false}
    fare: {type: double, checks: {ge: 0}}
    distance_km: {type: double, checks: {in_range: [0, 200]}}
    payment_type: {type: string, checks: {isin: [card, cash, wallet]}}
    city: {type: string, checks: {str_length: [2, 32]}}
"""

VALIDATE_UNIQUE_ONLY = """
validate:
  policy: quarantine
  max_bad_fraction: 0.05
  columns:
    trip_id: {checks: {unique: true}}
"""

# the 8 checks: the 7 above plus `unique` on trip_id
VALIDATE = VALIDATE_NO_UNIQUE.replace('checks: {str_matches: "t[0-9]{9}"}}', 'checks: {str_matches: "t[0-9]{9}", unique: true}}')
assert VALIDATE != VALIDATE_NO_UNIQUE


# --------------------------------------------------------------------------- input

def generate(root: Path, rows: int, seed: int, dirty_fraction: float) -> dict[str, Any]:
    """Write ``trips_dirty`` and ``trips_clean`` (Parquet, 8 files each) under ``root``.

    Reused when ``root/_manifest.json`` records the same rows, seed and fraction.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    manifest = root / "_manifest.json"
    wanted = {"rows": rows, "seed": seed, "dirty_fraction": dirty_fraction}
    if manifest.exists():
        found = json.loads(manifest.read_text())
        if all(found.get(k) == v for k, v in wanted.items()):
            return found
    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    ids = rng.permutation(rows).astype(np.int64) + 1
    driver = rng.integers(100_001, 120_001, rows)
    distance = np.round(np.clip(rng.lognormal(np.log(4.5), 0.65, rows), 0.3, 60.0), 2)
    fare = np.round(3.0 + 1.6 * distance * rng.lognormal(0.0, 0.07, rows), 2)
    payment = rng.choice(len(PAYMENTS), rows, p=(0.62, 0.23, 0.15))
    city = rng.choice(len(CITIES), rows)
    end_us = 1_768_435_200_000_000  # 2026-01-15 UTC
    ts = end_us - rng.integers(0, 14 * 86_400, rows) * 1_000_000

    def table(dirty: bool) -> tuple[pa.Table, dict[str, int]]:
        trip_id = pc.binary_join_element_wise("t", pc.utf8_lpad(pc.cast(pa.array(ids), pa.string()), 9, "0"), "")
        cols = {"trip_id": trip_id.to_numpy(zero_copy_only=False).astype(object),
                "driver_id": driver.copy(), "fare": fare.copy(), "distance_km": distance.copy(),
                "payment_type": np.array(PAYMENTS, dtype=object)[payment],
                "city": np.array(CITIES, dtype=object)[city], "event_ts": ts.copy()}
        driver_null = np.zeros(rows, dtype=bool)
        ts_null = np.zeros(rows, dtype=bool)
        counts = dict.fromkeys(DEFECTS, 0)
        if dirty:
            per_kind = int(round(rows * dirty_fraction / len(DEFECTS)))
            bad = np.random.default_rng(seed + 1).choice(rows, size=per_kind * (len(DEFECTS) + 1), replace=False)
            groups = dict(zip(DEFECTS, np.split(bad[: per_kind * len(DEFECTS)], len(DEFECTS))))
            originals = bad[per_kind * len(DEFECTS):]  # clean rows whose id the duplicates reuse
            driver_null[groups["null_driver_id"]] = True
            ts_null[groups["null_event_ts"]] = True
            cols["fare"][groups["negative_fare"]] *= -1
            cols["distance_km"][groups["distance_out_of_range"]] += 250.0
            cols["payment_type"][groups["unknown_payment_type"]] = "crypto"
            cols["city"][groups["short_city"]] = ""
            cols["trip_id"][groups["malformed_trip_id"]] = [f"T-{i}" for i in ids[groups["malformed_trip_id"]]]
            cols["trip_id"][groups["duplicate_trip_id"]] = cols["trip_id"][originals]
            counts = {k: int(len(v)) for k, v in groups.items()}
        data = pa.table({
            "trip_id": pa.array(cols["trip_id"], pa.string()),
            "driver_id": pa.array(cols["driver_id"], pa.int64(), mask=driver_null),
            "fare": pa.array(cols["fare"], pa.float64()),
            "distance_km": pa.array(cols["distance_km"], pa.float64()),
            "payment_type": pa.array(cols["payment_type"], pa.string()),
            "city": pa.array(cols["city"], pa.string()),
            "event_ts": pa.array(cols["event_ts"], pa.timestamp("us", tz="UTC"), mask=ts_null),
        })
        return data, counts

    root.mkdir(parents=True, exist_ok=True)
    found: dict[str, Any] = dict(wanted)
    for name, dirty in (("trips_dirty", True), ("trips_clean", False)):
        data, counts = table(dirty)
        folder = root / name
        folder.mkdir(exist_ok=True)
        for old in folder.glob("*.parquet"):
            old.unlink()
        step = -(-rows // 8)
        for index, offset in enumerate(range(0, rows, step)):
            pq.write_table(data.slice(offset, step), folder / f"part-{index:05d}.parquet")
        found[name] = {"rows": rows, "bad_rows": sum(counts.values()), "defects": counts}
    manifest.write_text(json.dumps(found, indent=2))
    print(f"generated {rows:,} rows (dirty and clean) in {time.perf_counter() - start:.1f}s")
    return found


# --------------------------------------------------------------------------- variants

def write_jobs(project: Project) -> dict[str, str]:
    jobs = {
        "job": ("bench_trips", "trips_dirty", ""),
        "job+gate": ("bench_trips_gated", "trips_dirty", VALIDATE),
        "job+gate (clean)": ("bench_trips_gated_clean", "trips_clean", VALIDATE),
        "job+gate (no unique)": ("bench_trips_no_unique", "trips_dirty", VALIDATE_NO_UNIQUE),
        "job+gate (unique only)": ("bench_trips_unique_only", "trips_dirty", VALIDATE_UNIQUE_ONLY),
    }
    for name, data, validate in jobs.values():
        write_job(project, name, JOB.format(name=name, data=data, validate=validate))
    return {variant: name for variant, (name, _, _) in jobs.items()}


def run_featurekit(project: Project, job: str, spark: "SparkSession") -> pipeline.RunResult:
    """What ``featurekit run JOB`` does, on the benchmark's session (spec loading included)."""
    loaded, settings = pipeline.load(project, job, "local")
    return pipeline.run(project, loaded, settings, spark)


def derived(spark: "SparkSession", path: str) -> "DataFrame":
    """The job's frame in plain PySpark: the Parquet input with the two derived columns."""
    return spark.read.parquet(path).withColumns({k: _expr(v) for k, v in DERIVED.items()})


def run_plain(spark: "SparkSession", path: str, out: str) -> None:
    """The job without featurekit: read, derive, overwrite the Delta table (one pass)."""
    derived(spark, path).write.format("delta").mode("overwrite").save(out)


def run_floor(spark: "SparkSession", path: str, out: str, rules: list[Any], keys: bool) -> None:
    """The plain job with the checks filtering its rows; with ``keys``, then one read of the
    key hashes (what a pre-pass for ``unique`` reads, without sending them anywhere)."""
    bad = " OR ".join(f"coalesce({rule.failure_sql}, FALSE)" for rule in rules)
    derived(spark, path).filter(f"NOT ({bad})").write.format("delta").mode("overwrite").save(out)
    if keys:
        spark.read.parquet(path).selectExpr("xxhash64(trip_id)").write.format("noop").mode("overwrite").save()


def pandera_schema() -> Any:
    """The job's 8 checks as a pandera-pyspark DataFrameSchema."""
    import pandera.pyspark as pa
    from pyspark.sql import types as T

    return pa.DataFrameSchema(
        {
            "trip_id": pa.Column(T.StringType(), pa.Check.str_matches(TRIP_ID_PATTERN), nullable=True),
            "driver_id": pa.Column(T.LongType(), nullable=False),
            "event_ts": pa.Column(T.TimestampType(), nullable=False),
            "fare": pa.Column(T.DoubleType(), pa.Check.ge(0), nullable=True),
            "distance_km": pa.Column(T.DoubleType(), pa.Check.in_range(0, 200), nullable=True),
            "payment_type": pa.Column(T.StringType(), pa.Check.isin(list(PAYMENTS)), nullable=True),
            "city": pa.Column(T.StringType(), pa.Check.str_length(2, 32), nullable=True),
        },
        unique=["trip_id"],
    )


def run_pandera(spark: "SparkSession", path: str, cache: bool) -> list[str]:
    """pandera-pyspark on the job's frame (read + derived columns); the failed checks."""
    from pandera.config import ValidationDepth, config_context

    frame = derived(spark, path)
    with config_context(validation_depth=ValidationDepth.SCHEMA_AND_DATA, cache_dataframe=cache):
        checked = pandera_schema().validate(frame)
    failed = []
    for group in (checked.pandera.errors or {}).values():
        for items in group.values():
            for item in items:
                failed.append(f"{item.get('column', '?')}: {item.get('check', '?')}")
    return sorted(failed)


def _expr(text: str) -> Any:
    from pyspark.sql import functions as F

    return F.expr(text)


# --------------------------------------------------------------------------- main

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=5_000_000, help="rows to generate (default 5,000,000)")
    parser.add_argument("--repeat", type=int, default=3, help="measured rounds after the warm-up (default 3)")
    parser.add_argument("--seed", type=int, default=11, help="generator seed (default 11)")
    parser.add_argument("--dirty-fraction", type=float, default=0.008, help="share of bad rows (default 0.008)")
    parser.add_argument("--no-clean", dest="clean", action="store_false",
                        help="skip the variants on the data without defects")
    add_common_args(parser, "work folder (kept; input reused when rows/seed match); default: a temp folder",
                    "also write every sample and summary to this JSON file")
    parser.add_argument("--wait-quiet", type=float, default=0.0, metavar="SECONDS",
                        help="before measuring, wait up to SECONDS for the 1-minute load to drop below --max-load")
    parser.add_argument("--max-load", type=float, default=1.0, help="load considered quiet (default 1.0)")
    parser.add_argument("--ablation", action="store_true",
                        help="add the gate without its unique check, with only it, the job in plain PySpark, "
                             "and that job with the checks as a filter (+ one key read: the floor)")
    parser.add_argument("--profile", action="store_true", help="print each variant's SQL executions (last round)")
    parser.add_argument("--only", metavar="NAMES",
                        help="comma-separated variants to run (with --ablation for its variants); job, job+gate and pandera always run")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with work_folder(args.work, args.keep) as work:
        project = bench_project(work / "project", args.shuffle_partitions, args.master, args.driver_memory)
        jobs = write_jobs(project)
        raw = project.root / "data" / "raw"
        data = generate(raw, args.rows, args.seed, args.dirty_fraction)
        empty_lake(project)
        spark, _ = start_session(project)
        try:
            return _bench(args, project, spark, jobs, raw, data)
        finally:
            spark.stop()


def _bench(args: argparse.Namespace, project: Project, spark: "SparkSession", jobs: dict[str, str],
           raw: Path, data: dict[str, Any]) -> int:
    dirty, clean = str(raw / "trips_dirty"), str(raw / "trips_clean")
    variants = {
        "job": lambda: run_featurekit(project, jobs["job"], spark),
        "job+gate": lambda: run_featurekit(project, jobs["job+gate"], spark),
        "pandera": lambda: run_pandera(spark, dirty, cache=False),
        "pandera+cache": lambda: run_pandera(spark, dirty, cache=True),
    }
    if args.clean:
        variants["job+gate (clean)"] = lambda: run_featurekit(project, jobs["job+gate (clean)"], spark)
        variants["pandera (clean)"] = lambda: run_pandera(spark, clean, cache=False)
    if args.ablation:
        variants["job+gate (no unique)"] = lambda: run_featurekit(project, jobs["job+gate (no unique)"], spark)
        variants["job+gate (unique only)"] = lambda: run_featurekit(project, jobs["job+gate (unique only)"], spark)
        plain_out = str(project.root / "data" / "lake" / "bench_trips_plain")
        variants["plain PySpark job"] = lambda: run_plain(spark, dirty, plain_out)
        rules = rules_for(pipeline.load(project, jobs["job+gate"], "local")[0].spec.validation.columns)
        checked_out = str(project.root / "data" / "lake" / "bench_trips_checked")
        variants["plain PySpark + checks"] = lambda: run_floor(spark, dirty, checked_out, rules, keys=False)
        floor_out = str(project.root / "data" / "lake" / "bench_trips_floor")
        variants["plain PySpark floor"] = lambda: run_floor(spark, dirty, floor_out, rules, keys=True)
    if args.only:
        wanted = {"job", "job+gate", "pandera", *(name.strip() for name in args.only.split(","))}
        unknown = wanted - set(variants)
        if unknown:
            raise SystemExit(f"--only: no variant {', '.join(sorted(unknown))}; there are: {', '.join(variants)}")
        variants = {name: run for name, run in variants.items() if name in wanted}
    names = list(variants)
    jvm_gc = spark.sparkContext._jvm.java.lang.System  # type: ignore[union-attr]

    print(f"warm-up: one run of each variant ({args.rows:,} rows)", flush=True)
    for name in names:
        measure(spark, name, variants[name])
    load_before = wait_until_quiet(args.max_load, args.wait_quiet) if args.wait_quiet else load_average()
    print(f"measuring {args.repeat} round(s); 1-minute load {load_before:.2f}", flush=True)

    samples: list[Sample] = []
    last: dict[str, Any] = {}
    for round_no in range(args.repeat):
        order = names[round_no % len(names):] + names[:round_no % len(names)]
        for name in order:
            jvm_gc.gc()
            sample, value = measure(spark, name, variants[name], keep_plans=args.profile)
            sample.round = round_no
            if isinstance(value, pipeline.RunResult):
                sample.extra = {"durations": value.durations, "rows_written": value.rows_written,
                                "rows_quarantined": value.rows_quarantined,
                                "checks": {f"{c['column']}: {c['check']}": c["failures"] for c in (value.gate or {}).get("checks", [])}}
            else:
                sample.extra = {"failed_checks": value}
            last[name] = sample
            samples.append(sample)
            print(f"  round {round_no + 1} {name:<22} {sample.wall_s:7.2f}s  jobs={sample.spark_jobs}  load={sample.load_1m}",
                  flush=True)
    load_after = load_average()

    summary = summarize(samples, "job")
    medians = {row["variant"]: row["median_s"] for row in summary}
    for row in summary:
        row["vs_pandera"] = round(row["median_s"] / medians["pandera"], 3) if medians.get("pandera") else None
    print_table(
        f"validation: {args.rows:,} rows, median of {args.repeat} (load {load_before:.2f} -> {load_after:.2f})",
        summary,
        [("variant", "variant"), ("median_s", "median s"), ("min_s", "min s"), ("max_s", "max s"),
         ("ratio", "x job"), ("paired_ratio", "x job, paired (median)"), ("paired_min", "paired min"),
         ("paired_max", "paired max"), ("vs_pandera", "x pandera"), ("cpu_s", "CPU s"), ("cpu_ratio", "CPU x job"),
         ("spark_jobs", "Spark jobs"),
         ("sql_executions", "SQL execs"), ("jvm_peak_rss_mb", "JVM peak RSS MB")],
    )
    goals = _goals(medians)
    print_table("goals", goals, [("goal", "check"), ("measured", "measured"), ("target", "target"), ("met", "met")])

    phases = [{"variant": n, **s.extra["durations"]} for n, s in last.items() if "durations" in s.extra]
    keys = sorted({k for p in phases for k in p if k != "variant"})
    print_table("featurekit phases (last round, s)", phases, [("variant", "variant"), *((k, k) for k in keys)])

    parts = print_breakdown("where the time goes (last round, s; top-level SQL executions by kind)", last)
    counts = _count_rows(data, last)
    print_table("what each variant found (dirty data)", counts,
                [("check", "check"), ("expected", "bad rows generated"), ("gate", "gate failures"),
                 ("pandera", "pandera verdict")])
    if args.profile:
        for name in names:
            print_table(f"SQL executions of {name} (last round)", last[name].sql_executions,
                        [("id", "id"), ("root", "root"), ("seconds", "s"), ("description", "description"),
                         ("plan_head", "top of plan")])
    if args.json:
        save_json(args.json, {"benchmark": "validation", "args": {k: str(v) for k, v in vars(args).items()},
                              "machine": machine(), "input": data, "load_before": load_before, "load_after": load_after,
                              "summary": summary, "goals": goals, "phases": phases, "breakdown": parts, "found": counts, "samples": samples})
    found_right = all(row["gate"] == row["expected"] for row in counts)
    return 0 if found_right else 1


def _goals(medians: dict[str, float]) -> list[dict[str, Any]]:
    overhead = medians["job+gate"] / medians["job"] - 1
    rows = [{"goal": "gate overhead: (job+gate)/job - 1", "measured": f"{overhead:+.1%}", "target": "<= +15%",
             "met": "yes" if overhead <= 0.15 else "no"}]
    versus = medians["job+gate"] / medians["pandera"]
    rows.append({"goal": "job+gate / pandera alone", "measured": f"{versus:.2f}x", "target": "< 1.00x",
                 "met": "yes" if versus < 1 else "no"})
    if "job+gate (clean)" in medians:
        clean = medians["job+gate (clean)"] / medians["job"] - 1
        rows.append({"goal": "gate overhead on clean data: (job+gate clean)/job - 1", "measured": f"{clean:+.1%}",
                     "target": "<= +15%", "met": "yes" if clean <= 0.15 else "no"})
    if "pandera (clean)" in medians and "job+gate (clean)" in medians:
        versus = medians["job+gate (clean)"] / medians["pandera (clean)"]
        rows.append({"goal": "job+gate / pandera alone, clean data", "measured": f"{versus:.2f}x", "target": "< 1.00x",
                     "met": "yes" if versus < 1 else "no"})
    own = (medians["job+gate"] - medians["job"]) / medians["pandera"]
    rows.append({"goal": "the gate's own cost: (job+gate - job) / pandera alone", "measured": f"{own:.2f}x",
                 "target": "< 1.00x", "met": "yes" if own < 1 else "no"})
    if "plain PySpark floor" in medians and "plain PySpark job" in medians:
        floor = medians["plain PySpark floor"] / medians["plain PySpark job"] - 1
        rows.append({"goal": "for reference, the floor: checks filtered in the pass + one key read, over the plain job",
                     "measured": f"{floor:+.1%}", "target": "-", "met": "-"})
    return rows


# defect -> (the gate's "column: check", pandera's column and the start of its check name)
CHECK_OF_DEFECT = {
    "null_driver_id": ("driver_id: nullable", "driver_id", "not_nullable"),
    "null_event_ts": ("event_ts: nullable", "event_ts", "not_nullable"),
    "negative_fare": ("fare: ge", "fare", "greater_than_or_equal_to"),
    "distance_out_of_range": ("distance_km: in_range", "distance_km", "in_range"),
    "unknown_payment_type": ("payment_type: isin", "payment_type", "isin"),
    "short_city": ("city: str_length", "city", "str_length"),
    "malformed_trip_id": ("trip_id: str_matches", "trip_id", "str_matches"),
    "duplicate_trip_id": ("trip_id: unique", "None", "unique"),  # a schema-level check in pandera
}


def _count_rows(data: dict[str, Any], last: dict[str, Any]) -> list[dict[str, Any]]:
    """Per check: the bad rows generated, the gate's failure count, pandera's verdict."""
    gate = last["job+gate"].extra.get("checks", {})
    pandera = [tuple(f.split(": ", 1)) for f in last["pandera"].extra.get("failed_checks", [])]
    rows = []
    for defect, expected in data["trips_dirty"]["defects"].items():
        gate_key, column, check = CHECK_OF_DEFECT[defect]
        failed = any(c == column and name.startswith(check) for c, name in pandera)
        rows.append({"check": gate_key, "expected": expected, "gate": gate.get(gate_key, 0),
                     "pandera": "failed" if failed else "passed"})
    rows.append({"check": "rows quarantined", "expected": data["trips_dirty"]["bad_rows"],
                 "gate": last["job+gate"].extra.get("rows_quarantined"), "pandera": "-"})
    return rows


if __name__ == "__main__":
    raise SystemExit(main())
