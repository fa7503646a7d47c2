"""Training sets: featurekit's point-in-time join against the same join written by hand in
PySpark and against Feast's Spark retrieval.

Input (kept under ``--work`` and reused when its arguments match): the demo's raw data
(:func:`featurekit.demo.generate.generate_raw`) scaled up by ``--scale`` (200,000 trips and 400
drivers per unit, 14 days), the demo's two jobs run on it (``driver_hourly_stats``: one row per
driver and hour, ttl 7d; ``driver_profile``: one row per driver, ttl 52w), Feast's definitions
applied, and a spine of ``--rows`` rows as a Delta table: ``driver_id`` (mostly known drivers,
``--unknown-share`` unknown), ``event_timestamp`` from a day before the tables' first row to ten
days after their last (so the 7-day ttl cuts some; one row in ten on a whole hour, the instant of
an hourly row), and a ``label``. The feature service is the demo's ``driver_activity`` (two
features of each view, both views on ``driver_id``).

Variants, all in one SparkSession, each writing its training set as a Delta table:

- ``hand-written`` (the baseline): the best plain PySpark for the join: the spine with a row id;
  its (id, key, time) unioned with both views' rows; one window by key ordered by time, rows
  before spine rows at one instant; the last row of each view at or before each spine row; the
  ttl; one join back to the spine on the row id;
- ``featurekit``: :func:`featurekit.pipeline.training.training_set` (the default engine, spec
  loading, service selection, spine checks and counts, the held Delta commit, lineage included);
- ``feast``: the same with ``engine="feast"``: Feast's Spark retrieval on the same tables;
- with ``--ablation``: featurekit with one window pass per view instead of one per group of
  views with the same keys (``fk: pass per view``); featurekit without pruning feature rows to
  the spine's time range (``fk: no pruning``); the hand-written join with the spine carried
  through the union as one struct instead of joined back (``hand: spine carried``, featurekit's
  shape without the run around it).

One warm-up run of each variant, then ``--repeat`` rounds in which the variants alternate (the
order rotates each round); Feast only in the first ``--feast-rounds`` rounds. Reported: median
wall time, ratio to the hand-written median and the paired ratio, CPU time (JVM and Python, all
threads), Spark jobs, peak RSS of the JVM and of this Python process. Then every output is compared with the hand-written one on all
rows (``exceptAll`` both ways, in Spark); any difference fails the run.

    python benchmarks/training_set.py --rows 100000 --repeat 1            # a quick check
    python benchmarks/training_set.py --work /tmp/fk-training --rows 1000000 --json ts_1m.json
    python benchmarks/training_set.py --work /tmp/fk-training --rows 10000000 --repeat 2 --feast-rounds 0
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402  (benchmarks/ is a folder of scripts, not a package)
    REPO, Sample, add_common_args, bench_project, load_average, machine, measure, print_table, save_json,
    start_session, summarize, wait_until_quiet, work_folder,
)

from featurekit import pipeline  # noqa: E402
from featurekit.config import Project, Settings  # noqa: E402

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

SERVICE = "driver_activity"
TRIPS_PER_SCALE = 200_000
SPINE_COLUMNS = ["driver_id", "event_timestamp", "label"]
FEATURES = {"driver_hourly_stats": ("event_ts", 7 * 86_400, ["trips_24h", "fare_avg_24h"]),
            "driver_profile": ("profile_updated_at", 52 * 7 * 86_400, ["rating", "status"])}
OUTPUT_COLUMNS = SPINE_COLUMNS + [f for _, _, names in FEATURES.values() for f in names]
UNKNOWN_DRIVERS_FROM = 900_001     # the demo's drivers are 100001, 100002, ...
HOUR_US, DAY_US = 3_600_000_000, 86_400_000_000

BASELINE, FEATUREKIT, FEAST = "hand-written", "featurekit", "feast"
PER_VIEW, NO_PRUNING, CARRIED = "fk: pass per view", "fk: no pruning", "hand: spine carried"


# --------------------------------------------------------------------------- input

def prepare_project(root: Path, args: argparse.Namespace) -> Project:
    """The benchmark's project: the repository's conf, the demo's two jobs and Feast definitions."""
    project = bench_project(root, args.shuffle_partitions, args.master, args.driver_memory)
    for name in ("__init__.py", "schemas.py", "driver_hourly_stats.yaml", "driver_profile.yaml"):
        shutil.copy(REPO / "jobs" / name, project.jobs_dir / name)
    (project.root / "feature_repo").mkdir(exist_ok=True)
    shutil.copy(REPO / "feature_repo" / "features.py", project.root / "feature_repo" / "features.py")
    return project


def _stale(manifest: Path, wanted: dict[str, Any]) -> bool:
    return not manifest.exists() or {k: v for k, v in json.loads(manifest.read_text()).items() if k in wanted} != wanted


def prepare_tables(project: Project, spark: "SparkSession", scale: int, seed: int) -> dict[str, Any]:
    """Raw demo data at ``scale``, the demo's two jobs run on it, Feast's definitions applied
    (all reused when a manifest with the same scale/seed is there)."""
    from featurekit.demo.generate import generate_raw
    from featurekit.pipeline import features

    manifest = project.root / "data" / "_tables.json"
    wanted = {"scale": scale, "seed": seed}
    if _stale(manifest, wanted):
        shutil.rmtree(project.root / "data" / "lake", ignore_errors=True)
        start = time.perf_counter()
        generate_raw(project.root / "data" / "raw", rows=TRIPS_PER_SCALE * scale, seed=seed)
        rows = {}
        for job in FEATURES:
            loaded, settings = pipeline.load(project, job, "local")
            rows[job] = pipeline.run(project, loaded, settings, spark).rows_written
        print(f"generated the raw data and ran the demo jobs in {time.perf_counter() - start:.1f}s: {rows}", flush=True)
        manifest.write_text(json.dumps({**wanted, "rows": rows}))
    _, settings = pipeline.load(project, "driver_profile", "local")
    features.apply(project, settings)
    return json.loads(manifest.read_text())


def prepare_spine(project: Project, spark: "SparkSession", rows: int, unknown_share: float, seed: int,
                  scale: int) -> tuple[str, dict[str, Any]]:
    """The spine as a Delta table (reused when rows/share/seed/scale match); its path and facts."""
    from pyspark.sql import functions as F

    path = project.root / "data" / "spine"
    manifest = project.root / "data" / "_spine.json"
    wanted = {"rows": rows, "unknown_share": unknown_share, "seed": seed, "scale": scale}
    if not _stale(manifest, wanted):
        return str(path), json.loads(manifest.read_text())
    lake = project.root / "data" / "lake"
    hourly = spark.read.format("delta").load(str(lake / "driver_hourly_stats"))
    span = hourly.agg(F.min(F.unix_micros("event_ts")), F.max(F.unix_micros("event_ts")),
                      F.min("driver_id"), F.max("driver_id")).collect()[0]
    first_us, last_us = int(span[0]) - DAY_US, int(span[1]) + 10 * DAY_US
    low, high = int(span[2]), int(span[3])
    start = time.perf_counter()
    r = F.rand(seed)
    at = F.lit(first_us) + (F.rand(seed + 1) * F.lit(last_us - first_us)).cast("long")
    on_the_hour = F.rand(seed + 2) < 0.1
    spine = spark.range(rows, numPartitions=max(2, rows // 1_000_000)).select(
        F.when(r < unknown_share, F.lit(UNKNOWN_DRIVERS_FROM) + F.col("id") % 1000)
         .otherwise(F.lit(low) + ((r - unknown_share) / (1 - unknown_share) * (high - low + 1)).cast("long"))
         .alias("driver_id"),
        F.timestamp_micros(F.when(on_the_hour, at - at % HOUR_US).otherwise(at)).alias("event_timestamp"),
        (F.rand(seed + 3) < 0.3).cast("int").alias("label"),
    )
    shutil.rmtree(path, ignore_errors=True)
    spine.write.format("delta").save(str(path))
    facts = {**wanted, "drivers": high - low + 1, "from": first_us, "to": last_us}
    manifest.write_text(json.dumps(facts))
    print(f"wrote a spine of {rows:,} rows in {time.perf_counter() - start:.1f}s", flush=True)
    return str(path), facts


# --------------------------------------------------------------------------- the baseline

def hand_written(spark: "SparkSession", spine_path: str, lake: Path, carried: bool = False) -> "DataFrame":
    """The join in plain PySpark (see the module doc); ``carried``: the spine row rides through the
    union as one struct instead of being joined back on a row id."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    spine = spark.read.format("delta").load(spine_path)
    if carried:
        spine_side = spine.select("driver_id", F.unix_micros("event_timestamp").alias("t"), F.lit(1).alias("kind"),
                                  F.struct(*SPINE_COLUMNS).alias("spine"))
    else:
        spine = spine.withColumn("row_id", F.monotonically_increasing_id())
        spine_side = spine.select("driver_id", F.unix_micros("event_timestamp").alias("t"), F.lit(1).alias("kind"),
                                  "row_id")
    union = spine_side
    for view, (ts, _, names) in FEATURES.items():
        rows = (spark.read.format("delta").load(str(lake / view))
                .where(F.col(ts).isNotNull() & F.col("driver_id").isNotNull()))
        t = F.unix_micros(ts)
        union = union.unionByName(rows.select("driver_id", t.alias("t"), F.lit(0).alias("kind"),
                                              F.struct(t.alias("at"), *names).alias(view)),
                                  allowMissingColumns=True)
    running = (Window.partitionBy("driver_id").orderBy("t", "kind")
               .rowsBetween(Window.unboundedPreceding, Window.currentRow))
    kept = union.select("t", "kind", "spine" if carried else "row_id",
                        *(F.last(view, ignorenulls=True).over(running).alias(view) for view in FEATURES))
    features = []
    for view, (_, ttl, names) in FEATURES.items():
        found = F.col("t").isNotNull() & (F.col(f"{view}.at") >= F.col("t") - F.lit(ttl * 1_000_000))
        features += [F.when(found, F.col(f"{view}.{name}")).alias(name) for name in names]
    kept = kept.where("kind = 1")
    if carried:
        return kept.select(*(F.col(f"spine.{c}").alias(c) for c in SPINE_COLUMNS), *features)
    return spine.join(kept.select("row_id", *features), "row_id").select(*OUTPUT_COLUMNS)


def run_hand_written(spark: "SparkSession", spine_path: str, lake: Path, out: str, carried: bool = False) -> None:
    hand_written(spark, spine_path, lake, carried).write.format("delta").mode("overwrite").save(out)


# --------------------------------------------------------------------------- featurekit and Feast

def run_training_set(project: Project, settings: Settings, spark: "SparkSession", spine: str, out: str,
                     engine: str = "featurekit") -> Any:
    """What ``featurekit training-set --service driver_activity --spine ... --out ...`` does,
    on the benchmark's session."""
    from featurekit.pipeline.training import training_set

    return training_set(project, settings, service=SERVICE, out=out, spine=spine, engine=engine, spark=spark)


@contextmanager
def pass_per_view() -> Iterator[None]:
    """featurekit's join with every view in a group of its own: one shuffle and sort per view."""
    with mock.patch("featurekit.engine.point_in_time._groups", lambda views: [[v] for v in views]):
        yield


@contextmanager
def no_pruning() -> Iterator[None]:
    """featurekit's join without the spine's time range: every feature row is shuffled."""
    from featurekit.engine import point_in_time

    def unbounded(spine: Any, timestamp: str, views: Any, bounds: Any = None) -> Any:
        return point_in_time.point_in_time(spine, timestamp, views, None)

    with mock.patch("featurekit.pipeline.training.point_in_time", unbounded):
        yield


def ablated(change: Callable[[], Any], run: Callable[[], Any]) -> Callable[[], Any]:
    def action() -> Any:
        with change():
            return run()
    return action


# --------------------------------------------------------------------------- checking the outputs

def compare_outputs(spark: "SparkSession", paths: dict[str, str], baseline: str) -> list[dict[str, Any]]:
    """Each output against the baseline's on all rows: rows present on one side only (both
    directions, duplicates counted), the columns in the same order and type."""
    def load(path: str) -> "DataFrame":
        return spark.read.format("delta").load(path)

    base = load(paths[baseline])
    base_rows = base.count()
    rows = []
    for name, path in paths.items():
        if name == baseline:
            continue
        other = load(path)
        same_schema = [(f.name, f.dataType) for f in other.schema] == [(f.name, f.dataType) for f in base.schema]
        mine = other.select(*(f"`{c}`" for c in base.columns))
        differing = mine.exceptAll(base).count() + base.exceptAll(mine).count()
        count = other.count()
        rows.append({"variant": name, "rows": count, "baseline_rows": base_rows, "same_schema": same_schema,
                     "differing": differing, "identical": same_schema and differing == 0 and count == base_rows})
    return rows


def spine_facts(spark: "SparkSession", out: str) -> dict[str, int]:
    """How many rows of the baseline's output found each view's features (a sanity check that the
    spine exercises both the found and the not-found cases)."""
    from pyspark.sql import functions as F

    frame = spark.read.format("delta").load(out)
    row = frame.agg(F.count(F.lit(1)), F.count("trips_24h"), F.count("rating"),
                    F.count_if(F.col("driver_id") >= UNKNOWN_DRIVERS_FROM)).collect()[0]
    return {"rows": row[0], "with_hourly_stats": row[1], "with_profile": row[2], "unknown_driver": row[3]}


# --------------------------------------------------------------------------- main

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="spine rows (default 1,000,000)")
    parser.add_argument("--scale", type=int, default=10,
                        help="feature tables: the demo's raw data times this (default 10: 2M trips, 4,000 drivers)")
    parser.add_argument("--unknown-share", type=float, default=0.05, help="spine rows of unknown drivers (0.05)")
    parser.add_argument("--repeat", type=int, default=3, help="measured rounds after the warm-up (default 3)")
    parser.add_argument("--feast-rounds", type=int, default=None,
                        help="rounds that include Feast (default: all; 0: Feast not run)")
    parser.add_argument("--no-feast-warmup", action="store_true", help="no warm-up run of Feast (its first round is cold)")
    parser.add_argument("--seed", type=int, default=7, help="generator seed (default 7)")
    add_common_args(parser, "work folder (kept; input reused when its arguments match); default: a temp folder",
                    "also write every sample and summary to this JSON file")
    parser.add_argument("--wait-quiet", type=float, default=0.0, metavar="SECONDS",
                        help="before measuring, wait up to SECONDS for the 1-minute load to drop below --max-load")
    parser.add_argument("--max-load", type=float, default=1.0, help="load considered quiet (default 1.0)")
    parser.add_argument("--ablation", action="store_true",
                        help="add featurekit with a pass per view and without pruning, and the hand-written join "
                             "with the spine carried")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with work_folder(args.work, args.keep) as work:
        project = prepare_project(work / "project", args)
        shutil.rmtree(project.root / "data" / "out", ignore_errors=True)
        spark, settings = start_session(project)
        try:
            tables = prepare_tables(project, spark, args.scale, args.seed)
            spine, facts = prepare_spine(project, spark, args.rows, args.unknown_share, args.seed, args.scale)
            return _bench(args, project, settings, spark, spine, {"tables": tables, "spine": facts})
        finally:
            spark.stop()


def _bench(args: argparse.Namespace, project: Project, settings: Settings, spark: "SparkSession", spine: str,
           data: dict[str, Any]) -> int:
    lake, out = project.root / "data" / "lake", project.root / "data" / "out"
    outputs = {name: str(out / name.replace(":", "").replace(" ", "_")) for name in
               (BASELINE, FEATUREKIT, FEAST, PER_VIEW, NO_PRUNING, CARRIED)}
    variants: dict[str, Callable[[], Any]] = {
        BASELINE: lambda: run_hand_written(spark, spine, lake, outputs[BASELINE]),
        FEATUREKIT: lambda: run_training_set(project, settings, spark, spine, outputs[FEATUREKIT]),
    }
    feast_rounds = args.repeat if args.feast_rounds is None else min(args.feast_rounds, args.repeat)
    if feast_rounds > 0:
        variants[FEAST] = lambda: run_training_set(project, settings, spark, spine, outputs[FEAST], engine="feast")
    if args.ablation:
        variants[PER_VIEW] = ablated(pass_per_view, lambda: run_training_set(project, settings, spark, spine,
                                                                             outputs[PER_VIEW]))
        variants[NO_PRUNING] = ablated(no_pruning, lambda: run_training_set(project, settings, spark, spine,
                                                                            outputs[NO_PRUNING]))
        variants[CARRIED] = lambda: run_hand_written(spark, spine, lake, outputs[CARRIED], carried=True)
    names = list(variants)
    jvm_gc = spark.sparkContext._jvm.java.lang.System  # type: ignore[union-attr]
    tables = data["tables"]["rows"]
    described = (f"{args.rows:,} spine rows; driver_hourly_stats {tables['driver_hourly_stats']:,} rows, "
                 f"driver_profile {tables['driver_profile']:,} rows")

    print(f"warm-up: one run of each variant ({described})", flush=True)
    warm: list[Sample] = []
    for name in names:
        if name == FEAST and args.no_feast_warmup:
            continue
        sample, _ = measure(spark, name, variants[name])
        warm.append(sample)
        print(f"  warm-up {name:<22} {sample.wall_s:8.2f}s  jobs={sample.spark_jobs}", flush=True)
    load_before = wait_until_quiet(args.max_load, args.wait_quiet) if args.wait_quiet else load_average()
    print(f"measuring {args.repeat} round(s); 1-minute load {load_before:.2f}", flush=True)

    samples: list[Sample] = []
    for round_no in range(args.repeat):
        here = [n for n in names if n != FEAST or round_no < feast_rounds]
        order = here[round_no % len(here):] + here[:round_no % len(here)]
        for name in order:
            jvm_gc.gc()
            sample, _ = measure(spark, name, variants[name])
            sample.round = round_no
            samples.append(sample)
            print(f"  round {round_no + 1} {name:<22} {sample.wall_s:8.2f}s  jobs={sample.spark_jobs}  "
                  f"JVM {sample.jvm_peak_rss_mb or 0:,.0f} MB  Python {sample.python_peak_rss_mb or 0:,.0f} MB  "
                  f"load={sample.load_1m}", flush=True)
    load_after = load_average()

    summary = summarize(samples, BASELINE)
    for row in summary:
        mine = [s.python_peak_rss_mb for s in samples if s.variant == row["variant"] and s.python_peak_rss_mb]
        row["python_peak_rss_mb"] = round(max(mine)) if mine else None
        row["x_faster_than_feast"] = None
    feast_median = next((r["median_s"] for r in summary if r["variant"] == FEAST), None)
    for row in summary:
        if feast_median:
            row["x_faster_than_feast"] = round(feast_median / row["median_s"], 2)
    print_table(
        f"training set of {SERVICE}: {described}; median of {args.repeat} (Feast: {feast_rounds}) "
        f"(load {load_before:.2f} -> {load_after:.2f})",
        summary,
        [("variant", "variant"), ("runs", "runs"), ("median_s", "median s"), ("min_s", "min s"), ("max_s", "max s"),
         ("ratio", "x hand-written"), ("paired_ratio", "x hand, paired"), ("paired_min", "paired min"),
         ("paired_max", "paired max"), ("cpu_s", "CPU s"), ("cpu_ratio", "CPU x hand"),
         ("x_faster_than_feast", "Feast / variant"), ("spark_jobs", "Spark jobs"),
         ("jvm_peak_rss_mb", "JVM peak RSS MB"), ("python_peak_rss_mb", "Python peak RSS MB")],
    )

    ran = {name: outputs[name] for name in names}
    checks = compare_outputs(spark, ran, BASELINE)
    print_table("outputs vs hand-written (all rows, exceptAll both ways)", checks,
                [("variant", "variant"), ("rows", "rows"), ("baseline_rows", "hand-written rows"),
                 ("same_schema", "same schema"), ("differing", "rows differing"), ("identical", "identical")])
    found = spine_facts(spark, outputs[BASELINE])
    print(f"hand-written output: {found}")
    if args.json:
        save_json(args.json, {"benchmark": "training_set", "args": {k: str(v) for k, v in vars(args).items()},
                              "machine": machine(), "input": data, "found": found, "load_before": load_before,
                              "load_after": load_after, "summary": summary, "outputs": checks, "warm_up": warm,
                              "samples": samples})
    if not all(c["identical"] for c in checks):
        print("DIFFERENT RESULTS: the variants above marked 'no' do not equal the hand-written join", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
