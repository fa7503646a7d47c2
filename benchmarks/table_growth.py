"""What a run costs once its tables have grown: the comparisons whose input is a whole table.

A job that runs every hour keeps adding to three things it reads back on every run: the
feature table it merges into, its quarantine table, and the run log. Each variant pairs what
featurekit does with the plain way to do the same, on the same table, in one SparkSession:

- ``merge: new or changed rows``: which of a run's rows (half unchanged, half new) the
  MERGE must see. featurekit broadcasts the run's rows and probes them with one scan of the
  table (``probe``); the baseline is ``EXCEPT ALL`` against the table, which shuffles all of it
  (featurekit's own fallback for a large result, the same function with a zero size limit).
- ``quarantine: rows not there yet``: which of a run's refused rows (a few thousand, new)
  the quarantine table does not hold. featurekit probes the table with the rows' hashes
  broadcast (``probe``); the baseline is the anti-join of the rows with the whole table's
  hashes, which Spark plans as a sort-merge join once the table is too big to broadcast.
- ``runs: the newest 20 reports``: ``featurekit runs`` over a run log of N reports;
  the baseline reads and parses every report, then sorts them.

Each comparison's result is counted (the same count on both sides, or the run fails).
One warm-up of each variant, then ``--repeat`` rounds alternating them; the table gives the
median wall time and the ratio against the baseline's, plain and paired.

    python benchmarks/table_growth.py                      # 10M-row table, 5M quarantined rows, 20k reports
    python benchmarks/table_growth.py --table-rows 1000000 --quarantine-rows 500000 --repeat 1
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402  (benchmarks/ is a folder of scripts, not a package)
    Sample, add_common_args, bench_project, load_average, machine, measure, print_table, save_json, start_session,
    summarize, work_folder,
)

from featurekit.pipeline import list_runs  # noqa: E402
from featurekit.sinks.delta import _new_or_changed  # noqa: E402
from featurekit.sinks.quarantine import ERRORS, HASH, RUN_ID, SOURCE, _seen  # noqa: E402

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

METRICS = 10  # double columns of the feature table, as the demo's hourly stats


def feature_rows(spark: "SparkSession", start: int, count: int) -> "DataFrame":
    """Hourly rows of 20,000 drivers from row ``start`` on: keys, timestamp, date, metrics."""
    hour = "timestamp_seconds(1700000000 + (id DIV 20000) * 3600)"
    return spark.range(start, start + count, numPartitions=8).selectExpr(
        "id % 20000 AS driver_id", f"{hour} AS event_ts", f"to_date({hour}) AS event_date",
        *(f"CAST((id * {i + 7}) % 1000 AS DOUBLE) AS m{i}" for i in range(METRICS)))


def quarantined_rows(spark: "SparkSession", start: int, count: int) -> "DataFrame":
    """Rows in the quarantine table's layout, each with its own row hash."""
    reason = "array(named_struct('check', 'ge', 'column', 'fare', 'message', 'fare >= 0'))"
    return spark.range(start, start + count, numPartitions=8).selectExpr(
        "id AS trip_id", "-1.0D AS fare", f"{reason} AS {ERRORS}", f"CAST(NULL AS STRING) AS {SOURCE}",
        "CAST(NULL AS STRING) AS _fk_raw", f"sha2(CAST(id AS STRING), 256) AS {HASH}",
        f"'bench' AS {RUN_ID}", "current_timestamp() AS _fk_quarantined_at")


def build(spark: "SparkSession", root: Path, args: argparse.Namespace) -> dict[str, Any]:
    """The grown tables and run log under ``root`` (reused when the sizes match)."""
    manifest = root / "_manifest.json"
    wanted = {"table_rows": args.table_rows, "quarantine_rows": args.quarantine_rows, "reports": args.reports}
    if manifest.exists() and json.loads(manifest.read_text()) == wanted:
        return wanted
    start = time.perf_counter()
    feature_rows(spark, 0, args.table_rows).write.format("delta").mode("overwrite") \
        .partitionBy("event_date").save(str(root / "features"))
    quarantined_rows(spark, 0, args.quarantine_rows).write.format("delta").mode("overwrite") \
        .save(str(root / "quarantine"))
    report = {"status": "succeeded", "sources": [{"name": "trips", "rows_read": 2_000_000}] * 2,
              "steps": [{"index": i, "op": "filter", "rows_in": 1, "rows_out": 1} for i in range(6)],
              "gate": {"checks": [{"check": "ge", "column": "fare", "failures": 3, "examples": [{"fare": -1.0}] * 5}] * 6}}
    rng = random.Random(5)
    for index in range(args.reports):
        job = f"job_{index % 4}"
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(1_700_000_000 + index * 900))
        run_id = f"{stamp}-{rng.getrandbits(32):08x}"
        folder = root / "runs" / job
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{run_id}.json").write_text(json.dumps({"run_id": run_id, "job": job, **report}, indent=2))
    manifest.write_text(json.dumps(wanted))
    print(f"built the grown tables and run log in {time.perf_counter() - start:.1f}s", flush=True)
    return wanted


def all_reports(runs: Path, limit: int) -> list[dict[str, Any]]:
    """The baseline listing: every report read and parsed, then sorted."""
    reports = [json.loads(p.read_text()) for p in runs.glob("*/*.json")]
    reports.sort(key=lambda r: r.get("run_id", ""), reverse=True)
    return reports[:limit]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--table-rows", type=int, default=10_000_000, help="rows of the feature table (10,000,000)")
    parser.add_argument("--run-rows", type=int, default=70_000, help="rows a run merges, half unchanged (70,000)")
    parser.add_argument("--quarantine-rows", type=int, default=5_000_000, help="rows of the quarantine table (5,000,000)")
    parser.add_argument("--refused-rows", type=int, default=2_500, help="rows a run quarantines (2,500)")
    parser.add_argument("--reports", type=int, default=20_000, help="reports in the run log (20,000)")
    parser.add_argument("--repeat", type=int, default=3, help="measured rounds after the warm-up (3)")
    add_common_args(parser, "work folder (kept; tables reused when the sizes match); default: a temp folder",
                    "also write every sample and summary to this JSON file")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with work_folder(args.work, args.keep) as work:
        project = bench_project(work / "project", args.shuffle_partitions, args.master, args.driver_memory)
        spark, _ = start_session(project)
        try:
            return _bench(args, spark, work)
        finally:
            spark.stop()


def _bench(args: argparse.Namespace, spark: "SparkSession", work: Path) -> int:
    from pyspark.sql import functions as F

    grown = work / "grown"
    sizes = build(spark, grown, args)
    features, quarantine, runs = str(grown / "features"), str(grown / "quarantine"), grown / "runs"
    half = args.run_rows // 2
    # a run's rows, staged as Parquet as a MERGE's are: the table's last `half` rows unchanged, then `half` new ones
    staged = str(work / "staged")
    feature_rows(spark, args.table_rows - half, half).unionByName(feature_rows(spark, 10**12, half)) \
        .write.mode("overwrite").parquet(staged)
    run = spark.read.parquet(staged)
    refused = quarantined_rows(spark, 10**12, args.refused_rows).drop("_fk_quarantined_at").localCheckpoint()
    on = refused[SOURCE].eqNullSafe(F.col("__s")) & (refused[HASH] == F.col("__h"))
    whole = spark.read.format("delta").load(quarantine).select(F.col(SOURCE).alias("__s"), F.col(HASH).alias("__h"))
    groups = {
        "merge: new or changed rows": {
            "probe": lambda: _new_or_changed(spark, run, features).count(),
            "EXCEPT ALL": lambda: _new_or_changed(spark, run, features, probe_max_bytes=0).count(),
        },
        "quarantine: rows not there yet": {
            "probe": lambda: refused.join(_seen(spark, quarantine, refused), on, "left_anti").count(),
            "anti-join of the whole table": lambda: refused.join(whole, on, "left_anti").count(),
        },
        "runs: the newest 20 reports": {
            "sorted names, newest read": lambda: [r["run_id"] for r in list_runs(runs, None, 20)],
            "every report read": lambda: [r["run_id"] for r in all_reports(runs, 20)],
        },
    }
    expected = {"merge: new or changed rows": half, "quarantine: rows not there yet": args.refused_rows}
    load_before = load_average()
    summaries, samples, same = [], [], True
    for group, variants in groups.items():
        names = list(variants)
        print(f"{group}: warm-up", flush=True)
        values = {name: measure(spark, name, variants[name])[1] for name in names}
        agreed = len({json.dumps(v) for v in values.values()}) == 1 and values[names[0]] == expected.get(group, values[names[0]])
        same = same and agreed
        mine: list[Sample] = []
        for round_no in range(args.repeat):
            for name in names[round_no % 2:] + names[:round_no % 2]:
                sample, _ = measure(spark, name, variants[name])
                sample.round = round_no
                mine.append(sample)
                print(f"  round {round_no + 1} {name:<30} {sample.wall_s:7.3f}s", flush=True)
        baseline = names[1]
        for row in summarize(mine, baseline):
            summaries.append({"comparison": group, "result": "same" if agreed else "DIFFERENT", **row})
        samples += mine
    print_table(
        f"tables grown to {args.table_rows:,} feature rows, {args.quarantine_rows:,} quarantined rows, "
        f"{args.reports:,} reports; median of {args.repeat} (load {load_before:.2f} -> {load_average():.2f})",
        summaries,
        [("comparison", "comparison"), ("variant", "variant"), ("median_s", "median s"), ("min_s", "min s"),
         ("max_s", "max s"), ("ratio", "x baseline"), ("paired_ratio", "x baseline, paired"), ("result", "result")],
    )
    if args.json:
        save_json(args.json, {"benchmark": "table_growth", "args": {k: str(v) for k, v in vars(args).items()},
                              "machine": machine(), "sizes": sizes, "summary": summaries, "samples": samples})
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
