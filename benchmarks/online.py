"""Online lookups: featurekit's paths against Feast's, on the same Redis, in one run.

Set-up (no Spark): a Delta table of ``--entities`` entities x ``--features`` float features is
written with delta-rs, its job declares ``features:``, ``featurekit feast apply`` registers the
view and a service, and featurekit's Redis writer loads every row (Feast's exact layout). A
private ``redis-server`` on loopback holds the store.

Variants, each for 1 entity and for ``--batch`` entities per request (random keys):

- ``raw redis-py HMGET`` (floor): one pipelined HMGET of Feast's keys and fields, no decoding;
- ``featurekit Python`` (``OnlineFeatures.get``): the same reads plus decoding to Python values;
- ``Feast SDK``: ``FeatureStore.get_online_features(...).to_dict()``;
- ``featurekit serve`` / ``feast serve`` over HTTP, sequential requests on one keep-alive client;
- the two servers with ``--clients`` concurrent clients (threads), for ``--seconds`` each.

Before timing, featurekit's and the SDK's answers are compared for the same keys (they must be
equal). Latencies are wall times per request (p50 / p99), throughput = requests / s.

    python benchmarks/online.py                       # 10,000 entities x 50 features
    python benchmarks/online.py --requests 300 --seconds 5
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import REPO, free_port, load_average, print_table, redis_server, save_json, work_folder  # noqa: E402

JOB = """
name: bench_online
description: Wide entity features for the online benchmark (table written by the benchmark).
owner: benchmarks
sources:
  features: {format: delta, path: "${lake_root}/bench_online"}
output:
  path: ${lake_root}/bench_online
  mode: overwrite
features:
  entity: entity
  join_keys: [entity_id]
  timestamp: event_ts
  ttl: 30d
  services:
    bench_service: [bench_online]
"""


def wait_http(url: str, seconds: float = 60) -> None:
    import httpx

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer in {seconds}s")


def build(root: Path, entities: int, n_features: int, redis_url: str) -> tuple[Any, Any]:
    """The project, its table, the applied view and the loaded Redis store; (project, settings)."""
    import numpy as np
    import pyarrow as pa
    from deltalake import write_deltalake

    from featurekit.config import Project, load_settings
    from featurekit.feast.catalog import view_layout
    from featurekit.feast.store import online_config, repo_dir
    from featurekit.online_store import open_online_store
    from featurekit.pipeline import features

    for folder in ("conf", "jobs", "feature_repo"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    shutil.copytree(REPO / "conf", root / "conf", dirs_exist_ok=True)
    shutil.copy(REPO / "feature_repo" / "features.py", root / "feature_repo" / "features.py")
    (root / "conf" / "local" / "zz_benchmark.yaml").write_text(
        "vars:\n  lake_root: ${project_root}/data/lake\n"
        f"feast:\n  online_store: {{type: redis, connection_string: \"{redis_url}\"}}\n"
        "registry:\n  enabled: false\n")
    (root / "jobs" / "bench_online.yaml").write_text(JOB.lstrip())
    rng = np.random.default_rng(7)
    columns: dict[str, Any] = {
        "entity_id": pa.array(np.arange(1, entities + 1), pa.int64()),
        "event_ts": pa.array([datetime(2026, 1, 1, tzinfo=UTC)] * entities, pa.timestamp("us", tz="UTC")),
    }
    for i in range(n_features):
        columns[f"f{i:02d}"] = pa.array(rng.random(entities))
    table = pa.table(columns)
    write_deltalake(str(root / "data" / "lake" / "bench_online"), table, mode="overwrite")
    project = Project(root)
    settings = load_settings(project, "local")
    features.apply(project, settings)
    store = features.open_store(project, settings)
    view = store.get_feature_view("bench_online")
    online = open_online_store(online_config(project, settings), str(repo_dir(settings)))
    write = online.batch_writer(online.writer_layout(view_layout(view)))
    assert write is not None
    for batch in table.to_batches(max_chunksize=10_000):
        write(batch)
    return project, settings


def timed(call: Callable[[], Any], requests: int) -> list[float]:
    for _ in range(min(50, requests)):
        call()
    out = []
    for _ in range(requests):
        start = time.perf_counter()
        call()
        out.append(time.perf_counter() - start)
    return out


def concurrent(make_call: Callable[[], Callable[[], Any]], clients: int, seconds: float) -> tuple[float, list[float]]:
    latencies: list[float] = []
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def worker() -> None:
        call = make_call()
        mine = []
        while time.monotonic() < stop:
            start = time.perf_counter()
            call()
            mine.append(time.perf_counter() - start)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    began = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return len(latencies) / (time.perf_counter() - began), latencies


def row(variant: str, entities: int, latencies: list[float], rps: float | None = None) -> dict[str, Any]:
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return {"variant": variant, "entities": entities, "requests": len(latencies),
            "p50_ms": round(statistics.median(ordered) * 1000, 3), "p99_ms": round(p99 * 1000, 3),
            "rps": round(rps if rps is not None else len(latencies) / sum(latencies), 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entities", type=int, default=10_000)
    parser.add_argument("--features", type=int, default=50)
    parser.add_argument("--batch", type=int, default=100, help="Entities per request in the batch variants.")
    parser.add_argument("--requests", type=int, default=2000, help="Sequential requests per variant (1 entity).")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--serve-workers", type=int, default=2, help="featurekit serve --workers (feast serve: -w).")
    parser.add_argument("--seconds", type=float, default=10.0, help="Duration of each concurrent variant.")
    parser.add_argument("--work", help="Work folder (default: a temporary one).")
    parser.add_argument("--json", type=Path, help="Write the results here.")
    parser.add_argument("--no-clean", action="store_true")
    args = parser.parse_args(argv)

    import httpx
    import redis

    results: list[dict[str, Any]] = []
    with work_folder(args.work, args.no_clean) as work, redis_server(work / "redis") as redis_address:
        port = int(redis_address.split(":")[1])
        servers: list[subprocess.Popen[bytes]] = []
        try:
            client = redis.Redis(port=port)
            client.flushall()
            began = time.perf_counter()
            project, settings = build(work / "project", args.entities, args.features, f"127.0.0.1:{port}")
            print(f"loaded {args.entities:,} entities x {args.features} features into Redis in "
                  f"{time.perf_counter() - began:.1f}s (load {load_average():.2f})", flush=True)

            from featurekit.online import OnlineFeatures
            from featurekit.pipeline import features

            ours = OnlineFeatures(project=project, settings=settings)
            store = features.open_store(project, settings)
            service = store.get_feature_service("bench_service")
            rng = random.Random(11)

            def keys(n: int) -> list[int]:
                return [rng.randint(1, args.entities) for _ in range(n)]

            sample = keys(args.batch)
            mine = ours.get({"entity_id": sample}, service="bench_service")
            theirs = store.get_online_features(features=service, entity_rows=[{"entity_id": k} for k in sample]).to_dict()
            same = all(mine[k] == theirs[k] for k in mine) and set(mine) == set(theirs)
            print(f"featurekit's values equal the Feast SDK's for {len(sample)} entities: {same}", flush=True)

            # the floor: Feast's keys and fields, one pipelined HMGET, no decoding
            from featurekit.online_store.keys import field_hash, key_serializer, ts_field

            layout = ours.layouts["bench_online"]
            fields = [field_hash(layout.name, f) for f in layout.features] + [ts_field(layout.name)]
            entity_key = key_serializer(3)
            project_bytes = settings.feast.project.encode()

            def raw(n: int) -> Callable[[], Any]:
                def call() -> Any:
                    with client.pipeline(transaction=False) as pipe:
                        for k in keys(n):
                            pipe.hmget(entity_key(layout.join_keys, {"entity_id": k}) + project_bytes, fields)
                        return pipe.execute()
                return call

            fk_port, feast_port = free_port(), free_port()
            env = {**os.environ, "FEATUREKIT_ENV": "local"}
            fk_cli = str(Path(sys.executable).with_name("featurekit"))
            fk = subprocess.Popen([fk_cli, "--project", str(project.root), "serve",
                                   "--port", str(fk_port), "--workers", str(args.serve_workers)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            servers.append(fk)
            feast_cli = str(Path(sys.executable).with_name("feast"))
            fe = subprocess.Popen([feast_cli, "-c", str(project.root / "feature_repo"), "serve", "-p", str(feast_port),
                                   "--no-access-log", "-w", str(args.serve_workers)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            servers.append(fe)
            wait_http(f"http://127.0.0.1:{fk_port}/health")
            wait_http(f"http://127.0.0.1:{feast_port}/health")

            def http(port_: int, n: int) -> Callable[[], Callable[[], Any]]:
                def make() -> Callable[[], Any]:
                    session = httpx.Client(base_url=f"http://127.0.0.1:{port_}", timeout=30,
                                           headers={"content-type": "application/json"})

                    def call() -> Any:
                        response = session.post("/get-online-features", content=json.dumps(
                            {"feature_service": "bench_service", "entities": {"entity_id": keys(n)}}))
                        response.raise_for_status()
                        return response.content
                    return call
                return make

            answers = [httpx.post(f"http://127.0.0.1:{p}/get-online-features", timeout=30,
                                  json={"feature_service": "bench_service", "entities": {"entity_id": sample}}).json()
                       for p in (fk_port, feast_port)]
            by_name = [dict(zip(a["metadata"]["feature_names"], (r["values"] for r in a["results"]))) for a in answers]
            print(f"featurekit serve's values equal feast serve's: {by_name[0] == by_name[1]}", flush=True)

            for n in (1, args.batch):
                count = args.requests if n == 1 else max(100, args.requests // 10)
                results.append(row("raw redis-py HMGET (floor)", n, timed(raw(n), count)))
                results.append(row("featurekit Python", n, timed(
                    lambda: ours.get({"entity_id": keys(n)}, service="bench_service"), count)))
                results.append(row("Feast SDK", n, timed(
                    lambda: store.get_online_features(features=service,
                                                      entity_rows=[{"entity_id": k} for k in keys(n)]).to_dict(), count)))
                results.append(row("featurekit serve, sequential", n, timed(http(fk_port, n)(), count)))
                results.append(row("feast serve, sequential", n, timed(http(feast_port, n)(), count)))
                for name, port_ in (("featurekit serve", fk_port), ("feast serve", feast_port)):
                    rps, latencies = concurrent(http(port_, n), args.clients, args.seconds)
                    results.append(row(f"{name}, {args.clients} clients", n, latencies, rps))
                print(f"done: {n} entit{'y' if n == 1 else 'ies'} per request (load {load_average():.2f})", flush=True)
        finally:
            for process in reversed(servers):
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
    print_table(f"online lookups, {args.features} float features, Redis on loopback",
                results, [("variant", "variant"), ("entities", "entities/request"), ("requests", "requests"),
                          ("p50_ms", "p50 ms"), ("p99_ms", "p99 ms"), ("rps", "requests/s")])
    if args.json:
        save_json(args.json, {"args": vars(args) | {"json": str(args.json)}, "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
