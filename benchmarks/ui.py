"""How fast ``featurekit ui`` renders its pages on a real-sized project (goal: under 300 ms each).

The project is made without Spark and kept in the work folder (made again only when its sizes
change): ``--jobs`` job files (most declaring a feature view, every tenth with services over
several views), ``--runs`` run reports spread over the jobs as featurekit writes them (some failed,
some with gate checks; the first job, a busy hourly one, holds a tenth of them), a materialization
record in the run log after every tenth run, some training sets, and each view's Delta table
written with delta-rs in ``--versions`` commits (the busy job's in ten times as many) carrying
their run's ``userMetadata``, so producer lookups read real logs.

The embedded Model Registry runs on a loopback port; the run log's feature sets of one service
are linked to a model version, so the lineage tree has real nodes. Each page is asked of the app
in this process (Starlette's TestClient: no socket, the server's own time): warm-up requests, then
``--requests`` of each; the table gives p50, p95 and max in ms, the ratio of the p50 against the
stylesheet's (the cheapest route of the same app) and whether the page meets the goal (its p95).
The app is created as ``featurekit ui`` creates it (reading the project and the registry ahead
in the background at start-up); the timing starts once that is done (its time is printed), and
"first" is each page's first request, before what only that page reads is kept. "CPU" is the
process's CPU time per request (all its threads), which other programs on the machine move less
than the wall time.

    python benchmarks/ui.py                                   # 100 jobs, 10,000 runs
    python benchmarks/ui.py --work bench-ui --requests 50 --profile feature
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import random
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402  (benchmarks/ is a folder of scripts, not a package)
    REPO, free_port, load_average, machine, print_table, save_json, wait_until_quiet, work_folder,
)

GOAL_MS = 300.0
SERVICE_EVERY = 10       # every tenth view's job declares a service over it and its neighbours
PLAIN_EVERY = 5          # every fifth job declares no feature view
MODEL, MODEL_VERSION = "bench-model", "1"

JOB = """\
name: {name}
description: Hourly statistics of {entity}s, part {index} of the benchmark project.
owner: team-{team}
sources:
  stats: {{format: parquet, path: "${{raw_root}}/{name}"}}
steps:
  - filter: "{entity}_id IS NOT NULL"
  - dedup: {{keys: [{entity}_id, event_ts], order_by: event_ts}}
output:
  path: ${{lake_root}}/{name}
  mode: overwrite
"""

FEATURES = """\
features:
  entity: {entity}
  join_keys: [{entity}_id]
  timestamp: event_ts
  ttl: 1d
  description: Rates and counts per {entity}.
  tags: {{team: team-{team}}}
"""

ENTITIES = ("driver", "rider", "vehicle", "merchant", "zone")


def names(jobs: int) -> list[str]:
    return [f"view_{i:03d}" for i in range(jobs)]


def is_view(index: int) -> bool:
    return index % PLAIN_EVERY != PLAIN_EVERY - 1


def job_text(index: int, jobs: int) -> str:
    name, entity = names(jobs)[index], ENTITIES[index % len(ENTITIES)]
    text = JOB.format(name=name, entity=entity, index=index, team=index % 7)
    if not is_view(index):
        return text
    text += FEATURES.format(entity=entity, team=index % 7)
    if index % SERVICE_EVERY == 0:
        same = [j for j in range(index, min(jobs, index + SERVICE_EVERY)) if is_view(j)
                and ENTITIES[j % len(ENTITIES)] == entity][:3]
        text += "  services:\n"
        text += f"    {name}_rates: [\"{name}:conv_rate\"]\n"
        text += f"    {name}_all: [{', '.join(names(jobs)[j] for j in same)}]\n"
    return text


def build(root: Path, args: argparse.Namespace) -> dict[str, Any]:
    """The project under ``root`` (reused when its manifest matches the sizes asked for)."""
    wanted = {"jobs": args.jobs, "runs": args.runs, "versions": args.versions, "seed": args.seed, "format": 2}
    manifest = root / "_manifest.json"
    if manifest.exists() and json.loads(manifest.read_text()) == wanted:
        return wanted
    import shutil

    import pyarrow as pa
    from deltalake import CommitProperties, write_deltalake

    from featurekit.config import Project, load_settings
    from featurekit.lineage import RunLogLineage
    from featurekit.lineage.records import FeatureSetRecord, OfflineFeatureSetRecord, TrainingSetRecord
    from featurekit.pipeline.report import RunResult, StepCount, write_report
    from featurekit.spec.loader import load_job

    started = time.perf_counter()
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    shutil.copytree(REPO / "conf", root / "conf")
    (root / "conf" / "local" / "zz_benchmark.yaml").write_text(textwrap.dedent("""\
        # written by benchmarks/ui.py
        vars:
          raw_root: ${project_root}/data/raw
          lake_root: ${project_root}/data/lake
        paths:
          runs: ${project_root}/runs
        registry:
          enabled: false
        """))
    (root / "jobs").mkdir()
    all_names = names(args.jobs)
    for index, name in enumerate(all_names):
        (root / "jobs" / f"{name}.yaml").write_text(job_text(index, args.jobs))
    project = Project(root)
    settings = load_settings(project, "local")
    loaded = {n: load_job(root / "jobs" / f"{n}.yaml", settings.vars, shown_as=f"jobs/{n}.yaml") for n in all_names}

    rng = random.Random(args.seed)
    # the first job holds a tenth of the runs: the job page of a busy hourly job
    weights = [len(all_names) / 10 * 1.0] + [1.0] * (len(all_names) - 1)
    owners = rng.choices(all_names, weights=weights, k=args.runs)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    by_job: dict[str, list[str]] = {}
    for number, job_name in enumerate(owners):
        job = loaded[job_name]
        at = t0 + timedelta(minutes=7 * number)
        run_id = f"{at:%Y%m%dT%H%M%SZ}-{rng.getrandbits(32):08x}"
        failed = rng.random() < 0.08
        read, dropped = rng.randint(10_000, 2_000_000), rng.randint(0, 500)
        bad = rng.randint(1, 300) if rng.random() < 0.3 else 0
        out = read - dropped
        checks = [{"check": "in_range(0, 1)", "column": "conv_rate", "message": "conv_rate outside [0, 1]",
                   "failures": bad, "examples": [{"id": 7, "conv_rate": 1.7}]}] if bad else []
        gate = {"policy": "quarantine", "max_bad_fraction": 0.01, "rows_checked": out, "rows_good": out - bad,
                "rows_bad": bad, "rows_malformed": 0, "failed_because": "", "unique": [], "rows_released": 0,
                "schema_errors": [], "checks": checks}
        version = len(by_job.get(job_name, []))
        write_report(settings.runs_dir, RunResult(
            run_id=run_id, job=job_name, fingerprint=job.fingerprint, env="local", started_at=at.isoformat(),
            status="failed" if failed else "succeeded",
            sources=[{"name": "stats", "format": "parquet", "path": f"raw/{job_name}", "rows_read": read,
                      "rows_malformed": 0}],
            steps=[StepCount(1, "filter", read, out, dropped), StepCount(2, "dedup", out, out, 0)], rows_out=out,
            rows_written=None if failed else out - bad, rows_quarantined=None if failed else bad, gate=gate,
            output_path=job.spec.output.path, mode="overwrite", table_version=None if failed else version,
            commit_operation="" if failed else "WRITE", commit_metrics={} if failed else {"numOutputRows": out - bad},
            durations={"read": 12.5, "gate": 3.1, "write": 20.4}, exit_code=1 if failed else 0,
            error="InfraError: the lake is not reachable\nmore lines" if failed else ""))
        if not failed:
            by_job.setdefault(job_name, []).append(run_id)

    table = pa.table({"id": pa.array(range(50), pa.int64()), "conv_rate": [i / 50 for i in range(50)],
                      "trips": pa.array(range(50), pa.int32()),
                      "event_ts": pa.array(range(50), pa.timestamp("us", tz="UTC"))})
    written: dict[str, list[str]] = {}
    for index, name in enumerate(all_names):
        if not is_view(index):
            continue
        job = loaded[name]
        entity = ENTITIES[index % len(ENTITIES)]
        # successful runs wrote the table's versions, oldest first; the busy job's table has ten times more
        for run_id in by_job.get(name, [])[:args.versions * (10 if index == 0 else 1)]:
            meta = json.dumps({"job": name, "run_id": run_id, "fingerprint": job.fingerprint, "env": "local"})
            write_deltalake(job.spec.output.path, table.rename_columns([f"{entity}_id", "conv_rate", "trips",
                                                                        "event_ts"]),
                            mode="overwrite", commit_properties=CommitProperties(custom_metadata={"userMetadata": meta}))
            written.setdefault(name, []).append(run_id)

    log = RunLogLineage(settings.runs_dir)
    views = [n for n in written]
    feast_project = settings.feast.project
    for number in range(0, args.runs, 10):
        # a materialization after every tenth run, of that run's view (else of the next view in turn)
        view = owners[number] if owners[number] in written else views[(number // 10) % len(views)]
        index, job = all_names.index(view), loaded[view]
        entity = ENTITIES[index % len(ENTITIES)]
        at = t0 + timedelta(minutes=7 * number + 3)
        log.record_feature_set(FeatureSetRecord(
            run_id=f"{at:%Y%m%dT%H%M%SZ}-m{number:07d}", feast_project=feast_project, feature_view=view,
            features=["conv_rate", "trips"], job=view, spec_fingerprint=job.fingerprint,
            delta_path=job.spec.output.path, delta_version=rng.randrange(len(written[view])),
            window_start=(at - timedelta(hours=1)).isoformat(), window_end=at.isoformat(), rows=50, keys=50,
            online_store="sqlite", recorded_at=at.isoformat(),
            view_schema={"join_keys": {f"{entity}_id": "Int64"}, "timestamp": "event_ts",
                         "features": {"conv_rate": "Float64", "trips": "Int32"}}))
    for number in range(args.training_sets):
        first = views[(number * 10) % len(views)]
        at = t0 + timedelta(days=number)
        versions = {first: len(written[first]) - 1}
        job = loaded[first]
        log.record_training_set(TrainingSetRecord(
            run_id=f"{at:%Y%m%dT%H%M%SZ}-t{number:07d}", feast_project=feast_project,
            feature_service=f"{first}_rates", feature_views=versions, features=[f"{first}:conv_rate"],
            spine_path="data/spine", output_path=f"data/training/{number}", output_version=0, rows=1000,
            recorded_at=at.isoformat(),
            offline_feature_sets=[OfflineFeatureSetRecord(
                feast_project=feast_project, feature_view=first, job=first, spec_fingerprint=job.fingerprint,
                delta_path=job.spec.output.path, delta_version=versions[first], recorded_at=at.isoformat())]))
    manifest.write_text(json.dumps(wanted))
    print(f"project made in {time.perf_counter() - started:.1f} s: {root}", flush=True)
    return wanted


@contextmanager
def registry(db: Path) -> Iterator[str]:
    """The embedded Model Registry on a free loopback port: its URL."""
    import uvicorn

    from featurekit.registry import create_registry_app

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_registry_app(db), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise SystemExit(f"the embedded registry did not start on 127.0.0.1:{port}")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", help="keep the project in DIR and reuse it when the sizes match")
    parser.add_argument("--keep", action="store_true", help="keep the temporary work folder")
    parser.add_argument("--jobs", type=int, default=100, help="job files (default 100)")
    parser.add_argument("--runs", type=int, default=10_000, help="run reports (default 10,000)")
    parser.add_argument("--versions", type=int, default=3, help="Delta commits per view's table (default 3)")
    parser.add_argument("--training-sets", type=int, default=20, help="training-set records (default 20)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--requests", type=int, default=30, help="timed requests per page (default 30)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed requests per page first (default 3)")
    parser.add_argument("--profile", choices=["index", "job", "run", "feature"],
                        help="also print a cProfile of 10 renderings of that page's data (featurekit.ui.pages, "
                             "in this thread: the app runs its routes in a thread pool cProfile does not see)")
    parser.add_argument("--wait-quiet", type=float, default=0, metavar="SEC",
                        help="before timing, wait up to SEC for the 1-minute load to drop below --max-load")
    parser.add_argument("--max-load", type=float, default=1.0)
    parser.add_argument("--json", type=Path, help="write every sample and the summary to FILE")
    args = parser.parse_args()
    if args.jobs < SERVICE_EVERY or args.runs < 100:
        parser.error("--jobs must be at least 10 and --runs at least 100")

    from fastapi.testclient import TestClient

    from featurekit.config import Project, load_settings
    from featurekit.pipeline import lineage
    from featurekit.ui import create_ui

    with work_folder(args.work, args.keep) as work:
        root = work / "project"
        build(root, args)
        project = Project(root)
        plain = load_settings(project, "local")
        with registry(work / "registry.db") as url:
            conf = {"url": url, "enabled": True, "retries": 0, "backoff_s": 0.0}
            settings = plain.model_copy(update={"registry": plain.registry.model_copy(update=conf)})
            service = f"{names(args.jobs)[0]}_all"
            lineage.link(project, settings, MODEL, MODEL_VERSION, service=service)
            ui = create_ui(project, settings, warm=True)          # as `featurekit ui` serves it
            busiest = names(args.jobs)[0]
            runs_dir = settings.runs_dir
            a_run = sorted((runs_dir / busiest).glob("*.json"))[len(list((runs_dir / busiest).glob("*.json"))) // 2].stem
            view = names(args.jobs)[0]
            pages: list[tuple[str, str, Any]] = [
                ("stylesheet (baseline)", "/static/ui.css", ui),
                ("index", "/", ui),
                ("search: a hit", "/?q=conv_rate", ui),
                ("search: a miss", "/?q=nothing-like-it", ui),
                (f"job ({len(list((runs_dir / busiest).glob('*.json'))):,} runs)", f"/jobs/{busiest}", ui),
                ("run", f"/runs/{a_run}", ui),
                ("feature view", f"/features/{view}", ui),
                ("404 (unknown view)", "/features/view_0x", ui),
                ("lineage", f"/lineage/{MODEL}/{MODEL_VERSION}", ui),
            ]
            rows: list[dict[str, Any]] = []
            samples: dict[str, dict[str, list[float]]] = {}
            if args.wait_quiet:
                wait_until_quiet(args.max_load, args.wait_quiet)
            start_load = load_average()
            with ExitStack() as stack:
                clients: dict[int, TestClient] = {}

                def client_of(app: Any) -> TestClient:
                    if id(app) not in clients:
                        clients[id(app)] = stack.enter_context(TestClient(app, raise_server_exceptions=True))
                    return clients[id(app)]

                # the server's start-up: it reads the project and the registry ahead in the background
                started = time.perf_counter()
                client_of(ui)
                for thread in threading.enumerate():
                    if thread.name in ("featurekit-ui-prime", "featurekit-ui-warm"):
                        thread.join()
                ahead_ms = (time.perf_counter() - started) * 1000
                for label, path, app in pages:
                    client = client_of(app)
                    expected = 404 if label.startswith("404") else 200
                    first = time.perf_counter()
                    answer = client.get(path)                       # the page's own reads are not kept yet
                    first_ms = (time.perf_counter() - first) * 1000
                    for _ in range(args.warmup):
                        if answer.status_code != expected:
                            raise SystemExit(f"{path}: {answer.status_code}, expected {expected}: {answer.text[:500]}")
                        answer = client.get(path)
                    times, cpu = [], []
                    for _ in range(args.requests):
                        start, start_cpu = time.perf_counter(), time.process_time()
                        client.get(path)
                        times.append((time.perf_counter() - start) * 1000)
                        cpu.append((time.process_time() - start_cpu) * 1000)
                    samples[path] = {"wall_ms": times, "cpu_ms": cpu}
                    rows.append({"variant": label, "path": path, "first": first_ms, "p50": percentile(times, 0.5),
                                 "p95": percentile(times, 0.95), "max": max(times), "cpu": percentile(cpu, 0.5)})
            if args.profile:
                from featurekit.ui import pages as shown

                render = {"index": lambda: shown.index(project, settings, ""),
                          "job": lambda: shown.job(project, settings, busiest),
                          "run": lambda: shown.run(settings, a_run),
                          "feature": lambda: shown.feature(project, settings, view)}[args.profile]
                profiler = cProfile.Profile()
                profiler.enable()
                for _ in range(10):
                    render()
                profiler.disable()
                pstats.Stats(profiler).sort_stats("cumulative").print_stats(40)
            base = rows[0]["p50"]
            for row in rows:
                row["ratio"] = row["p50"] / base if base else None
                row["goal"] = "met" if row["p95"] < GOAL_MS else "NOT MET"
    print_table(f"featurekit ui, {args.jobs} jobs, {args.runs:,} runs: server time per page in ms "
                f"({args.requests} requests after {args.warmup} warm-up; goal: p95 < {GOAL_MS:.0f} ms)",
                rows, [("variant", "variant"), ("path", "path"), ("first", "first ms"), ("p50", "p50 ms"), ("p95", "p95 ms"),
                       ("max", "max ms"), ("cpu", "CPU p50 ms"), ("ratio", "× stylesheet"), ("goal", "goal")])
    print(f"read ahead at start-up (in the background, before the first request): {ahead_ms:,.0f} ms")
    print(f"load {start_load:.2f} at the start of the timing, {load_average():.2f} at its end")
    if args.json:
        save_json(args.json, {"args": vars(args) | {"json": str(args.json)}, "machine": machine(), "load_start": start_load, "read_ahead_ms": ahead_ms,
                              "rows": rows, "samples": samples})


if __name__ == "__main__":
    main()
