"""Materialization Delta -> online store: featurekit against plain Feast, rows/s and peak memory.

Input: one feature table per size, generated with Spark and written as Delta at the output path
of the job ``bench_features`` (``features:`` block: entity ``entity``, join key ``entity_id``
long, timestamp ``event_ts``, ttl 30d). The job itself is never run (its run is not what is
measured); the table has the columns it would write: ``--features`` features (doubles, plus
``n_events`` long and ``segment`` string; some nulls) and ``--rows-per-entity`` rows per entity,
all on 2026-03-01. The window materialized is that day.

Variants, each at each ``--sizes`` entity count:

- ``featurekit -> sqlite`` / ``featurekit -> redis``: ``featurekit.pipeline.materialize``
  (latest row per key in Spark, Feast's own encoding in Spark's Python workers, then the
  key-count verification);
- ``feast -> sqlite`` / ``feast -> redis``: plain ``FeatureStore.materialize`` (Feast's local
  engine reading the Delta table through its Spark offline store on the same kind of session),
  up to ``--feast-max`` entities, since it is slow.

Each variant runs in a fresh Python process (its own SparkSession), so its peak memory is its
own, not what an earlier variant left in the JVM heap. In that process it materializes twice
into the emptied store: ``cold`` (the first run: JVM not warmed up, Python workers not started,
what one ``featurekit materialize`` command pays) and ``warm`` (the same again: the steady
rate). Timed around the call only (session started and ``import feast`` done in the driver
before, for both engines): wall seconds and rows/s (entities materialized / wall). The peak RSS
of the process tree over both runs is sampled every 0.2 s: driver, JVM, Spark's Python workers
(forked workers share pages, so their sum is an upper bound). The stores: a private
``redis-server`` on a loopback port, and the project's SQLite file.

Correctness, in the same run: after every variant ~100 sampled entities (and one absent) are
read back through the Feast SDK (``get_online_features``) and compared with the table (read
with delta-rs, not Spark); featurekit's and Feast's values and raw stored bytes (Redis hashes,
SQLite rows without ``created_ts``) are compared with each other too. A mismatch exits 1.

Incremental (unless ``--changed-share 0``), after the variants above at each size, for each
featurekit engine and store, in a fresh process: the table records its changes (Change Data Feed
switched on), the store gets the whole window (``materialize --incremental`` without a marker),
one commit (an UPDATE) changes the features of ``--changed-share`` of the entities and an
incremental run follows (so its queries are compiled, as the whole window's are by then); then
one more such commit, and ``materialize --incremental`` (the changed keys only) is timed against
the whole window of the same version into a second, empty store (SQLite: another file and
registry; Redis: database 1), both warm. The two stores must end equal: every SQLite row (without Feast's ``created_ts``) or
Redis hash, compared by an order-free digest of all of them. The table then differs from the one
generated, so the next run generates it again.

Unless ``--no-breakdown``, one more featurekit process per size and store runs instrumented
(cold and warm): Feast's conversion and write calls timed inside the Python workers, the
verification timed in the driver, and two ablations (Spark's read + latest-per-key alone;
+ Arrow batches through a no-op Python function), to say where featurekit's time goes.

    python benchmarks/materialize.py                          # 20,000 and 100,000 entities
    python benchmarks/materialize.py --sizes 2000 --feast-max 2000
    python benchmarks/materialize.py --sizes 10000000 --stores redis --feast-max 0 --json m.json
    python benchmarks/materialize.py --sizes 2000 --engines featurekit,featurekit-arrow --no-breakdown
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stdout
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402  (benchmarks/ is a folder of scripts, not a package)
    REPO, add_common_args, bench_project, free_port, load_average, machine, measure, median, print_table,
    redis_server, save_json, start_session, wait_until_quiet, work_folder, write_job,
)

from featurekit import pipeline  # noqa: E402
from featurekit.config import Project, Settings, load_settings  # noqa: E402
from featurekit.materialization.writer import OnlineWriter  # noqa: E402

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

VIEW = "bench_features"
DAY = datetime(2026, 3, 1, tzinfo=UTC)
START, END = DAY, DAY + timedelta(days=1)
STORES = ("sqlite", "redis")
ARROW = "featurekit-arrow"  # featurekit's arrow engine (delta-rs -> Redis, no JVM)
ENGINES = ("featurekit", ARROW, "feast")
JOB = f"""
name: {VIEW}
description: Wide entity features for the materialization benchmark (table written by the benchmark).
owner: benchmarks
sources:
  features: {{format: parquet, path: "${{raw_root}}/{VIEW}"}}
output:
  path: ${{lake_root}}/{VIEW}
  mode: overwrite
features:
  entity: entity
  join_keys: [entity_id]
  timestamp: event_ts
  ttl: 30d
"""


def feature_names(count: int) -> list[str]:
    """``count`` feature columns: doubles ``f000``.., then ``n_events`` (long), ``segment`` (string)."""
    return [f"f{j:03d}" for j in range(count - 2)] + ["n_events", "segment"]


def variant_name(engine: str, store: str) -> str:
    return f"{engine} -> {store}"


# --------------------------------------------------------------------------- input (child)

def generate(spark: "SparkSession", path: str, entities: int, features: int, rows_per_entity: int,
             partitions: int) -> None:
    """The feature table: entity ids 1..N, ``rows_per_entity`` rows each on DAY, the last the latest."""
    from pyspark.sql import functions as F

    rows = entities * rows_per_entity
    step = 86_400 // rows_per_entity          # seconds between an entity's rows
    spread = max(1, min(3_600, step))         # entities' rows spread within a step
    entity = F.col("id") % entities
    columns: dict[str, Any] = {
        "entity_id": (entity + 1).cast("long"),
        "event_ts": F.timestamp_seconds(F.lit(int(DAY.timestamp())) + F.floor(F.col("id") / entities) * step
                                        + entity % spread),
    }
    for j, name in enumerate(feature_names(features)[:-2]):
        value = F.pmod(F.hash(F.col("id"), F.lit(j)), F.lit(1_000_003)) / F.lit(1000.0)
        columns[name] = F.when(entity % 13 != 0, value) if j == 0 else value
    columns["n_events"] = F.pmod(F.hash(F.col("id"), F.lit(-1)), F.lit(10_000)).cast("long")
    columns["segment"] = F.when(entity % 17 != 0, F.concat(F.lit("s"), (entity % 97).cast("string")))
    frame = spark.range(rows, numPartitions=partitions).select(*(c.alias(n) for n, c in columns.items()))
    frame.write.format("delta").mode("overwrite").option("overwriteSchema", "true").save(path)


# --------------------------------------------------------------------------- memory of a process tree

class TreeMemory:
    """Peak RSS of this process and all its descendants (JVM, Spark's Python workers), sampled
    every ``interval`` seconds in a thread. Parts: ``driver`` (this process), ``jvm``, ``workers``.

    A sum of RSS counts a page shared by several processes (the forked Python workers share
    their parent's libraries and imports) once per process; ``pss`` (proportional set size,
    from the kernel's smaps) splits each shared page among its sharers, so its sum over the
    tree is the tree's real footprint. Both are kept."""

    def __init__(self, interval: float = 0.2) -> None:
        self.interval = interval
        self.start_mb = 0.0
        self.peak: dict[str, float] = {"total": 0.0, "driver": 0.0, "jvm": 0.0, "workers": 0.0,
                                       "total_pss": 0.0, "jvm_pss": 0.0, "workers_pss": 0.0, "driver_pss": 0.0}
        self.max_processes = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._names: dict[int, str] = {}

    def __enter__(self) -> "TreeMemory":
        self.start_mb = self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def _sample(self) -> float:
        import psutil

        me = psutil.Process()
        parts = {"driver": 0.0, "jvm": 0.0, "workers": 0.0}
        pss = {"driver_pss": 0.0, "jvm_pss": 0.0, "workers_pss": 0.0}
        processes = [me, *me.children(recursive=True)]
        for process in processes:
            try:
                info = process.memory_full_info()  # smaps_rollup: rss and pss
                name = self._names.get(process.pid) or self._names.setdefault(process.pid, process.name())
            except psutil.Error:
                continue
            part = "driver" if process.pid == me.pid else "jvm" if name.startswith("java") else "workers"
            parts[part] += info.rss / 2**20
            pss[f"{part}_pss"] += info.pss / 2**20
        total = sum(parts.values())
        for key, value in (*parts.items(), ("total", total), *pss.items(), ("total_pss", sum(pss.values()))):
            self.peak[key] = max(self.peak[key], value)
        self.max_processes = max(self.max_processes, len(processes))
        self.samples += 1
        return total

    def result(self) -> dict[str, Any]:
        return {"start_total_mb": round(self.start_mb), **{f"peak_{k}_mb": round(v) for k, v in self.peak.items()},
                "max_processes": self.max_processes, "samples": self.samples}


# --------------------------------------------------------------------------- featurekit, instrumented

class TimedWriter(OnlineWriter):
    """featurekit's writer with the calls that do the work timed, per Spark task: featurekit's
    own columnar writer for the store if it has one (``write``; for Redis also the reads of the
    stored event times and the send of the commands), else Feast's conversion and
    ``online_write_batch``. Only what exists is timed (the writers' internals change), and only
    what that path imports anyway is imported first (timed as ``import_s``).

    The timing of each task goes to a JSON file in ``folder`` (local mode: the same machine).
    """

    def __init__(self, *args: Any, folder: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.folder = folder

    def __call__(self, batches: Iterator[Any]) -> Iterator[Any]:
        import importlib
        import time
        import uuid

        began = time.perf_counter()
        patches: list[tuple[Any, str, str]] = []
        own = {"redis": ("featurekit.online_store.redis", "RedisBatchWriter"),
               "sqlite": ("featurekit.online_store.sqlite", "SqliteBatchWriter")}
        module_name, class_name = own.get(str(self.store_config["online_store"].get("type", "sqlite")), ("", ""))
        try:
            writer = getattr(importlib.import_module(module_name), class_name) if module_name else None
        except (ImportError, AttributeError):  # a featurekit without its own writer for this store
            writer = None
        if writer is not None:
            patches += [(writer, "write", "own_write_s"), (writer, "_stored", "own_read_s"),
                        (writer, "_send", "own_send_s")]
        else:
            importlib.import_module("feast.feature_view")
            importlib.import_module("feast.infra.provider")
            patches += [(importlib.import_module("feast.utils"), "_convert_arrow_to_proto", "convert_s"),
                        (importlib.import_module("feast.infra.passthrough_provider").PassthroughProvider,
                         "online_write_batch", "write_s")]
        patches = [(owner, name, key) for owner, name, key in patches if hasattr(owner, name)]
        clock: dict[str, float] = {"import_s": time.perf_counter() - began, "input_s": 0.0, "rows": 0, "batches": 0,
                                   **{key: 0.0 for _, _, key in patches}}

        def timed(name: str, function: Any) -> Any:
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                start = time.perf_counter()
                try:
                    return function(*args, **kwargs)
                finally:
                    clock[name] += time.perf_counter() - start
            return wrapper

        def inputs() -> Iterator[Any]:
            source = iter(batches)
            while True:
                start = time.perf_counter()
                batch = next(source, None)
                clock["input_s"] += time.perf_counter() - start
                if batch is None:
                    return
                clock["rows"] += batch.num_rows
                clock["batches"] += 1
                yield batch

        originals = [(owner, name, getattr(owner, name)) for owner, name, _ in patches]
        for owner, name, key in patches:
            setattr(owner, name, timed(key, getattr(owner, name)))
        try:
            yield from OnlineWriter.__call__(self, inputs())
        finally:
            for owner, name, function in originals:
                setattr(owner, name, function)
            clock["task_s"] = time.perf_counter() - began
            Path(self.folder, f"task-{uuid.uuid4().hex}.json").write_text(json.dumps(clock))


def _count_rows(batches: Iterator[Any]) -> Iterator[Any]:
    """A no-op Python writer: Arrow batches into a worker and counted (the ablation)."""
    import pyarrow as pa

    rows = sum(batch.num_rows for batch in batches)
    yield pa.RecordBatch.from_pydict({"written": [rows]})


def instrumented(project: Project, settings: Settings, spark: "SparkSession", store: str, redis_address: str,
                 folder: Path) -> dict[str, dict[str, Any]]:
    """featurekit's materialize with timers in the workers and around the verification, cold
    (first in the process) and warm, then two ablations of its Spark side; seconds per part."""
    from functools import partial

    from pyspark.sql import functions as F

    from featurekit.online_store.redis import RedisStore
    from featurekit.online_store.sqlite import SqliteStore
    from featurekit.pipeline import materialize as module
    from featurekit.materialization.spark_window import latest_rows

    verify = {"verify_s": 0.0}
    counters = {kind: kind.count_keys for kind in (SqliteStore, RedisStore)}

    def timed_count(count_keys: Any) -> Any:
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return count_keys(*args, **kwargs)
            finally:
                verify["verify_s"] += time.perf_counter() - start
        return timed

    found: dict[str, dict[str, Any]] = {}
    for run in ("cold", "warm"):
        tasks_dir = folder / run
        shutil.rmtree(tasks_dir, ignore_errors=True)
        tasks_dir.mkdir(parents=True)
        clear_store(settings, store, redis_address)
        verify["verify_s"] = 0.0
        module.OnlineWriter = partial(TimedWriter, folder=str(tasks_dir))  # type: ignore[assignment,misc]
        for kind, count_keys in counters.items():
            kind.count_keys = timed_count(count_keys)  # type: ignore[method-assign]
        try:
            sample, result = measure(spark, f"featurekit ({run}, timed)", lambda: module.materialize(
                project, settings, views=[VIEW], start=START, end=END, spark=spark))
        finally:
            module.OnlineWriter = OnlineWriter  # type: ignore[misc]
            for kind, count_keys in counters.items():
                kind.count_keys = count_keys  # type: ignore[method-assign]
        tasks = [json.loads(p.read_text()) for p in tasks_dir.glob("task-*.json")]
        sql_s = sum(e["seconds"] or 0 for e in sample.sql_executions if e["root"] == e["id"])
        parts: dict[str, Any] = {
            "wall_s": sample.wall_s, "rows": result.views[0].keys, "spark_sql_s": round(sql_s, 3),
            "driver_outside_spark_s": round(sample.wall_s - sql_s, 3), "verify_s": round(verify["verify_s"], 3),
            "writer_tasks": len(tasks),
        }
        for key in ("import_s", "input_s", "convert_s", "write_s", "own_write_s", "own_read_s", "own_send_s",
                    "task_s"):
            parts[f"workers_{key}"] = round(sum(t.get(key, 0.0) for t in tasks), 3)
        parts["workers_writer_s"] = round(
            parts["workers_convert_s"] + parts["workers_write_s"] + parts["workers_own_write_s"], 3)
        parts["workers_setup_s"] = round(parts["workers_task_s"] - parts["workers_import_s"]
                                         - parts["workers_input_s"] - parts["workers_writer_s"], 3)
        found[run] = parts

    view = module.select_views(project, settings, [VIEW])[0]
    latest, _ = latest_rows(spark, module._window(view, START, END), f"materialize_{view.name}")
    began = time.perf_counter()
    latest.write.format("noop").mode("overwrite").save()
    found["warm"]["ablation_spark_only_s"] = round(time.perf_counter() - began, 3)
    latest, _ = latest_rows(spark, module._window(view, START, END), f"materialize_{view.name}")
    frame = latest.coalesce(1) if store == "sqlite" else latest
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(settings.feast.write_batch_rows))
    began = time.perf_counter()
    frame.mapInArrow(_count_rows, "written long").agg(F.sum("written")).collect()
    found["warm"]["ablation_arrow_to_python_s"] = round(time.perf_counter() - began, 3)
    spark.conf.unset("spark.sql.execution.arrow.maxRecordsPerBatch")
    return found


# --------------------------------------------------------------------------- one variant (child process)

def store_settings(settings: Settings, store: str, redis_address: str) -> Settings:
    """``settings`` with the online store of the variant (SQLite: the project's default file)."""
    if store == "sqlite":
        return settings
    online = {"type": "redis", "connection_string": redis_address}
    return settings.model_copy(update={"feast": settings.feast.model_copy(update={"online_store": online})})


def child(args: argparse.Namespace) -> int:
    """One task in this fresh process: generate the table, or materialize once; JSON to ``--out``."""
    project = Project(Path(args.work) / "project")
    if args.child == ARROW:
        return _child_arrow(args, project)
    if args.child.startswith(INCREMENTAL):
        return _child_incremental(args, project)
    spark, settings = start_session(project)
    try:
        if args.child == "generate":
            loaded, _ = pipeline.load(project, VIEW, "local")
            rows = args.size * args.rows_per_entity
            generate(spark, loaded.spec.output.path, args.size, args.features, args.rows_per_entity,
                     max(args.shuffle_partitions, rows // 1_000_000))
            Path(args.out).write_text(json.dumps({"entities": args.size}))
            return 0
        import feast  # noqa: F401  (in the driver before the clock starts, for both engines)
        from feast.infra.offline_stores.contrib.spark_offline_store import spark as _  # noqa: F401

        settings = store_settings(settings, args.store, args.redis)
        if args.child == "featurekit-timed":
            parts = instrumented(project, settings, spark, args.store, args.redis, Path(args.out).with_suffix(".tasks"))
            Path(args.out).write_text(json.dumps({"breakdown": parts}))
            return 0
        if args.child == "feast":
            from featurekit.pipeline.features import open_store

            store = open_store(project, settings)

            def action() -> int:
                store.materialize(START, END, feature_views=[VIEW])
                return -1  # Feast does not say; the parent counts the keys in the store
        else:
            from featurekit.pipeline.materialize import materialize

            def action() -> int:
                return materialize(project, settings, views=[VIEW], start=START, end=END, spark=spark).views[0].keys
        runs = {}
        with TreeMemory() as memory:
            for run in ("cold", "warm"):  # the first run in the process, then the same again
                clear_store(settings, args.store, args.redis)
                before = redis_cpu_s(args.redis) if args.store == "redis" else 0.0
                sample, rows = measure(spark, f"{variant_name(args.child, args.store)} ({run})", action)
                runs[f"{run}_s"], runs[f"{run}_jobs"] = sample.wall_s, sample.spark_jobs
                if args.store == "redis":  # the server's own CPU time during the run
                    runs[f"{run}_redis_cpu_s"] = round(redis_cpu_s(args.redis) - before, 3)
                runs["jvm_vmhwm_mb"] = round(max(runs.get("jvm_vmhwm_mb", 0), sample.jvm_peak_rss_mb or 0))
        Path(args.out).write_text(json.dumps({
            **runs, "rows": rows, "load_1m": sample.load_1m,
            **memory.result(),
        }))
        return 0
    finally:
        spark.stop()


def _child_arrow(args: argparse.Namespace, project: Project) -> int:
    """featurekit's arrow engine: no SparkSession in this process (so no JVM in its tree)."""
    import feast  # noqa: F401  (before the clock starts, as for the other engines)

    from featurekit.pipeline.materialize import materialize

    settings = store_settings(load_settings(project, "local"), args.store, args.redis)
    runs: dict[str, Any] = {}
    with TreeMemory() as memory:
        for run in ("cold", "warm"):
            clear_store(settings, args.store, args.redis)
            before = redis_cpu_s(args.redis) if args.store == "redis" else 0.0
            began = time.perf_counter()
            rows = materialize(project, settings, views=[VIEW], start=START, end=END, engine="arrow").views[0].keys
            runs[f"{run}_s"], runs[f"{run}_jobs"] = round(time.perf_counter() - began, 3), 0
            if args.store == "redis":
                runs[f"{run}_redis_cpu_s"] = round(redis_cpu_s(args.redis) - before, 3)
    Path(args.out).write_text(json.dumps({**runs, "rows": rows, "load_1m": round(load_average(), 2),
                                          "jvm_vmhwm_mb": 0, **memory.result()}))
    return 0


# --------------------------------------------------------------------------- incremental (child process)

INCREMENTAL = "incremental:"   # the child task "incremental:<engine>"


def fresh_settings(settings: Settings, store: str, redis_address: str, work: Path) -> Settings:
    """Another online store (and for SQLite another registry), empty, for the whole window."""
    if store == "redis":
        online = {"type": "redis", "connection_string": f"{redis_address},db=1"}
        return settings.model_copy(update={"feast": settings.feast.model_copy(update={"online_store": online})})
    online = {"type": "sqlite", "path": str(work / "fresh" / "online.db")}
    return settings.model_copy(update={"feast": settings.feast.model_copy(
        update={"online_store": online, "registry": str(work / "fresh" / "registry.db")})})


def change_entities(spark: "SparkSession", path: str, entities: int, share: float) -> int:
    """One commit changing the features of ``share`` of the entities (every ``1/share``-th id, all
    their rows: the latest row of each changes at the same event time); the entities changed."""
    every = max(1, round(1 / share))
    spark.sql(f"UPDATE delta.`{path}` SET n_events = n_events + 1, segment = concat('u', coalesce(segment, '')) "
              f"WHERE entity_id % {every} = 0")
    return entities // every


def store_digest(settings: Settings, store: str) -> tuple[int, str]:
    """(entries, digest) of everything the store holds for the view, featurekit's marker left
    out: SQLite rows without ``created_ts``, Redis hashes; the digest does not depend on order."""
    import hashlib

    total, count = 0, 0

    def add(*parts: Any) -> None:
        nonlocal total, count
        digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
        total = (total + int.from_bytes(digest, "little")) % 2**64
        count += 1

    if store == "redis":
        import redis

        client = redis.Redis.from_url("redis://" + settings.feast.online_store["connection_string"].replace(",db=", "/"))
        keys = [k for k in client.scan_iter(count=10_000) if not k.startswith(b"featurekit:")]
        for start in range(0, len(keys), 10_000):
            with client.pipeline(transaction=False) as pipe:
                for key in keys[start:start + 10_000]:
                    pipe.hgetall(key)
                for key, fields in zip(keys[start:start + 10_000], pipe.execute()):
                    add(key, sorted(fields.items()))
    else:
        with sqlite3.connect(sqlite_file(settings)) as conn:
            for row in conn.execute(f'SELECT entity_key, feature_name, value, value_text, event_ts '
                                    f'FROM "{sqlite_table(settings)}"'):
                add(*row)
    return count, f"{total:016x}"


def _child_incremental(args: argparse.Namespace, project: Project) -> int:
    """The incremental variant (see the module doc) in this fresh process; JSON to ``--out``."""
    import feast  # noqa: F401  (before the clock starts)

    from featurekit.pipeline import features
    from featurekit.pipeline.materialize import materialize

    engine = args.child[len(INCREMENTAL):]
    spark, settings = start_session(project)
    try:
        loaded, _ = pipeline.load(project, VIEW, "local")
        path = loaded.spec.output.path
        spark.sql(f"ALTER TABLE delta.`{path}` SET TBLPROPERTIES (delta.enableChangeDataFeed = true)")
        mine = store_settings(settings, args.store, args.redis)
        fresh = fresh_settings(mine, args.store, args.redis, Path(args.work))
        with redirect_stdout(io.StringIO()):
            features.apply(project, fresh)
        for each in (mine, fresh):
            clear_store(each, args.store, args.redis)
        options: dict[str, Any] = {"engine": "arrow"} if engine == ARROW else {"engine": "spark", "spark": spark}

        def run(where: Settings) -> tuple[float, Any]:
            began = time.perf_counter()
            done = materialize(project, where, views=[VIEW], incremental=True, end=END, **options).views[0]
            return round(time.perf_counter() - began, 3), done

        _, whole = run(mine)   # the whole window: the store's marker (and its query compiled, warm for `fresh`)
        change_entities(spark, path, args.size, args.changed_share)
        run(mine)              # the same for the incremental's queries
        changed = change_entities(spark, path, args.size, args.changed_share)
        incremental_s, incremental = run(mine)
        full_s, full = run(fresh)
        (count, digest), (fresh_count, fresh_digest) = store_digest(mine, args.store), store_digest(fresh, args.store)
        Path(args.out).write_text(json.dumps({
            "engine": engine, "changed_entities": changed, "first_keys": whole.keys, "method": incremental.method,
            "versions": f"{incremental.delta_version_from}..{incremental.delta_version}",
            "changed_keys": incremental.changed, "written": incremental.written, "rows": incremental.rows,
            "full_keys": full.keys, "incremental_s": incremental_s, "full_s": full_s,
            "ratio": round(incremental_s / full_s, 4), "entries": count, "fresh_entries": fresh_count,
            "equal": (count, digest) == (fresh_count, fresh_digest),
        }))
        return 0
    finally:
        spark.stop()


def run_child(args: argparse.Namespace, work: Path, task: str, size: int, store: str, redis_address: str,
              tag: str) -> dict[str, Any]:
    """Run ``task`` in a fresh Python process (its output in ``work/logs``); its JSON result."""
    logs = work / "logs"
    logs.mkdir(exist_ok=True)
    out = logs / f"{tag}.json"
    out.unlink(missing_ok=True)
    command = [sys.executable, str(Path(__file__).resolve()), "--work", str(work), "--child", task,
               "--size", str(size), "--store", store, "--redis", redis_address, "--out", str(out),
               "--features", str(args.features), "--rows-per-entity", str(args.rows_per_entity),
               "--shuffle-partitions", str(args.shuffle_partitions), "--changed-share", str(args.changed_share)]
    with (logs / f"{tag}.log").open("w") as log:
        done = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, check=False)
    if done.returncode != 0 or not out.exists():
        tail = (logs / f"{tag}.log").read_text().splitlines()[-25:]
        raise RuntimeError(f"{task} ({store}, {size:,}) failed with exit code {done.returncode}:\n" + "\n".join(tail))
    return json.loads(out.read_text())


# --------------------------------------------------------------------------- the online stores

def _redis(address: str) -> Any:
    import redis

    host, port = address.split(":")
    return redis.Redis(host=host, port=int(port))


def redis_cpu_s(address: str) -> float:
    """CPU seconds the redis-server process has used so far (user + system, all its threads)."""
    info = _redis(address).info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def sqlite_file(settings: Settings) -> Path:
    return Path(str(settings.feast.online_store["path"]))


def sqlite_table(settings: Settings) -> str:
    return f"{settings.feast.project}_{VIEW}"


def clear_store(settings: Settings, store: str, redis_address: str) -> None:
    """Empty the online store before a variant."""
    if store == "redis":
        _redis(redis_address).flushall()
        return
    with sqlite3.connect(sqlite_file(settings)) as conn:
        conn.execute(f'DELETE FROM "{sqlite_table(settings)}"')
    with sqlite3.connect(sqlite_file(settings)) as conn:
        conn.execute("VACUUM")


def keys_online(settings: Settings, store: str, redis_address: str) -> int:
    if store == "redis":
        return int(_redis(redis_address).dbsize())
    with sqlite3.connect(sqlite_file(settings)) as conn:
        return int(conn.execute(f'SELECT COUNT(DISTINCT entity_key) FROM "{sqlite_table(settings)}"').fetchone()[0])


# --------------------------------------------------------------------------- reading back

def expected_values(path: str, ids: list[int], features: list[str]) -> dict[int, dict[str, Any]]:
    """The latest row in the window of each sampled entity, from the table read with delta-rs."""
    import pyarrow.compute as pc
    from deltalake import DeltaTable

    table = DeltaTable(path).to_pyarrow_dataset().to_table(filter=pc.field("entity_id").isin(ids))
    latest: dict[int, dict[str, Any]] = {}
    for row in table.to_pylist():
        seen = latest.get(row["entity_id"])
        if START <= row["event_ts"] <= END and (seen is None or row["event_ts"] > seen["event_ts"]):
            latest[row["entity_id"]] = row
    return {i: {f: latest[i][f] if i in latest else None for f in features} for i in ids}


def sdk_values(project: Project, settings: Settings, ids: list[int], features: list[str]) -> dict[int, dict[str, Any]]:
    """What the Feast SDK serves for the sampled entities."""
    from featurekit.pipeline.features import open_store

    found = open_store(project, settings).get_online_features(
        features=[f"{VIEW}:{f}" for f in features], entity_rows=[{"entity_id": i} for i in ids]).to_dict()
    return {i: {f: found[f][n] for f in features} for n, i in enumerate(ids)}


def raw_values(settings: Settings, store: str, redis_address: str, ids: list[int]) -> dict[int, Any]:
    """The stored bytes of the sampled entities (Redis hash; SQLite rows without ``created_ts``)."""
    from feast.infra.key_encoding_utils import serialize_entity_key
    from feast.infra.online_stores.helpers import _redis_key
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    version = settings.feast.entity_key_serialization_version
    keys = {i: EntityKey(join_keys=["entity_id"], entity_values=[Value(int64_val=i)]) for i in ids}
    if store == "redis":
        with _redis(redis_address).pipeline(transaction=False) as pipe:
            for key in keys.values():
                pipe.hgetall(_redis_key(settings.feast.project, key, entity_key_serialization_version=version))
            return dict(zip(ids, pipe.execute()))
    with sqlite3.connect(sqlite_file(settings)) as conn:
        return {i: conn.execute(
            f'SELECT feature_name, value, value_text, event_ts FROM "{sqlite_table(settings)}" '
            f"WHERE entity_key = ? ORDER BY feature_name",
            (serialize_entity_key(key, entity_key_serialization_version=version),)).fetchall()
            for i, key in keys.items()}


def differences(found: dict[int, dict[str, Any]], wanted: dict[int, dict[str, Any]]) -> list[str]:
    """``entity feature: found != wanted`` for every differing value (exact, floats included)."""
    out = []
    for i, row in wanted.items():
        for name, value in row.items():
            got = found.get(i, {}).get(name)
            if got != value or type(got) is not type(value):
                out.append(f"entity {i} {name}: {got!r} != {value!r}")
    return out


# --------------------------------------------------------------------------- main

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="20000,100000", help="entity counts, comma-separated (default 20000,100000)")
    parser.add_argument("--stores", default="sqlite,redis", help="online stores, comma-separated (default sqlite,redis)")
    parser.add_argument("--engines", default=",".join(ENGINES),
                        help=f"variants, comma-separated (default {','.join(ENGINES)}; {ARROW} writes Redis only)")
    parser.add_argument("--features", type=int, default=50, help="feature columns (>= 3; default 50)")
    parser.add_argument("--rows-per-entity", type=int, default=1, help="rows per entity in the table (default 1)")
    parser.add_argument("--feast-max", type=int, default=100_000,
                        help="run plain Feast only at sizes up to this many entities (default 100,000)")
    parser.add_argument("--repeat", type=int, default=1, help="measured rounds per size (default 1)")
    parser.add_argument("--changed-share", type=float, default=0.01,
                        help="incremental variant: share of the entities one commit changes (default 0.01; 0 skips it)")
    parser.add_argument("--sample", type=int, default=100, help="entities read back per variant (default 100)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the read-back sample (default 7)")
    parser.add_argument("--no-breakdown", dest="breakdown", action="store_false",
                        help="skip the instrumented featurekit runs (where the time goes)")
    add_common_args(parser, "work folder (kept; a table of the same shape is reused); default: a temp folder",
                    "also write every result to this JSON file")
    parser.add_argument("--redis-config", action="append", metavar="'NAME VALUE'",
                        help="a setting of the private redis-server, e.g. 'hash-max-listpack-entries 0' (repeatable)")
    parser.add_argument("--wait-quiet", type=float, default=0.0, metavar="SECONDS",
                        help="before each size, wait up to SECONDS for the 1-minute load to drop below --max-load")
    parser.add_argument("--max-load", type=float, default=1.0, help="load considered quiet (default 1.0)")
    for hidden in ("--child", "--store", "--redis", "--out"):  # one variant in a child process
        parser.add_argument(hidden, help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.features < 3:
        parser.error("--features must be at least 3 (doubles, n_events, segment)")
    if not args.child:
        args.stores = [s.strip() for s in args.stores.split(",") if s.strip()]
        unknown = [s for s in args.stores if s not in STORES]
        if unknown or not args.stores:
            parser.error(f"--stores: expected some of {', '.join(STORES)}; got {', '.join(unknown) or 'none'}")
        args.engines = [e.strip() for e in args.engines.split(",") if e.strip()]
        unknown = [e for e in args.engines if e not in ENGINES]
        if unknown or not args.engines:
            parser.error(f"--engines: expected some of {', '.join(ENGINES)}; got {', '.join(unknown) or 'none'}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        return child(args)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    with work_folder(args.work, args.keep) as work:
        project = bench_project(work / "project", args.shuffle_partitions, args.master, args.driver_memory)
        write_job(project, VIEW, JOB)
        (project.root / "feature_repo").mkdir(exist_ok=True)
        shutil.copy(REPO / "feature_repo" / "features.py", project.root / "feature_repo" / "features.py")
        with redis_server(work / "redis", args.redis_config) as address:
            return _bench(args, work, project, sizes, address)


def code_version() -> dict[str, Any]:
    """The commit measured and whether ``featurekit/`` had uncommitted changes (others edit it)."""
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=False)
        return done.stdout.strip()

    return {"commit": git("rev-parse", "--short", "HEAD") or "?",
            "featurekit_dirty": bool(git("status", "--porcelain", "--", "featurekit"))}


def _table_matches(manifest: Path, shape: dict[str, int], path: str) -> bool:
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    try:
        found = json.loads(manifest.read_text())
        return found == {**shape, "version": DeltaTable(path).version()}
    except (OSError, ValueError, TableNotFoundError):
        return False


def _prepare(args: argparse.Namespace, work: Path, project: Project, settings: Settings, size: int,
             address: str) -> str:
    """The table for ``size`` entities (reused if the work folder holds it), applied to Feast."""
    from deltalake import DeltaTable

    from featurekit.pipeline import features

    loaded, _ = pipeline.load(project, VIEW, "local")
    path = loaded.spec.output.path
    manifest = project.root / "data" / f"{VIEW}.json"
    shape = {"entities": size, "features": args.features, "rows_per_entity": args.rows_per_entity}
    if not _table_matches(manifest, shape, path):
        began = time.perf_counter()
        run_child(args, work, "generate", size, "sqlite", address, f"generate-{size}")
        manifest.write_text(json.dumps({**shape, "version": DeltaTable(path).version()}))
        print(f"generated {size:,} entities x {args.features} features in {time.perf_counter() - began:.1f}s",
              flush=True)
    with redirect_stdout(io.StringIO()):  # Feast prints the whole view when its source changed
        features.apply(project, settings)
    return path


def _bench(args: argparse.Namespace, work: Path, project: Project, sizes: list[int], address: str) -> int:
    settings = load_settings(project, "local")
    names = feature_names(args.features)
    variants = [(e, s) for e in ENGINES for s in args.stores if e in args.engines and (e != ARROW or s == "redis")]
    runs: list[dict[str, Any]] = []
    checks: list[dict[str, Any]] = []
    breakdowns: dict[str, dict[str, dict[str, Any]]] = {}
    examples: list[str] = []
    incrementals: list[dict[str, Any]] = []
    load_before, code_before = load_average(), code_version()
    for size in sizes:
        path = _prepare(args, work, project, settings, size, address)
        ids = sorted(random.Random(args.seed).sample(range(1, size + 1), min(args.sample, size))) + [size + 1]
        wanted = expected_values(path, ids, names)
        chosen = [(e, s) for e, s in variants if e != "feast" or size <= args.feast_max]
        if args.wait_quiet:
            wait_until_quiet(args.max_load, args.wait_quiet)
        read: dict[tuple[str, str], tuple[dict[int, Any], dict[int, Any]]] = {}
        for round_no in range(args.repeat):
            order = chosen[round_no % len(chosen):] + chosen[:round_no % len(chosen)]
            for engine, store in order:
                mine = store_settings(settings, store, address)
                clear_store(mine, store, address)
                load_start = load_average()
                result = run_child(args, work, engine, size, store, address, f"{size}-{engine}-{store}-{round_no}")
                keys = keys_online(mine, store, address)
                sdk = sdk_values(project, mine, ids, names)
                read[(engine, store)] = (sdk, raw_values(mine, store, address, ids))
                wrong = differences(sdk, wanted)
                examples += [f"{size:,} {variant_name(engine, store)}: {w}" for w in wrong[:5]]
                rows = result["rows"] if result["rows"] >= 0 else keys
                runs.append({"size": size, "variant": variant_name(engine, store), "engine": engine, "store": store,
                             "round": round_no + 1, "load_start": round(load_start, 2), "keys_online": keys,
                             "vs_delta": len(wrong), **result, "rows": rows})
                print(f"  {size:>11,} {variant_name(engine, store):<22} cold {result['cold_s']:7.2f}s "
                      f"warm {result['warm_s']:7.2f}s {rows / result['warm_s']:>9,.0f} rows/s  "
                      f"peak {result['peak_total_mb']:,} MB  keys {keys:,}  "
                      f"vs table: {'OK' if not wrong else f'{len(wrong)} MISMATCH'}  load {load_start:.2f}", flush=True)
        for store in args.stores:
            checks.append(_check(size, store, read, wanted, examples))
        if args.breakdown:
            for store in args.stores:
                mine = store_settings(settings, store, address)
                clear_store(mine, store, address)
                result = run_child(args, work, "featurekit-timed", size, store, address, f"{size}-timed-{store}")
                for run, parts in result["breakdown"].items():
                    breakdowns.setdefault(f"{size:,}", {})[f"{store} {run}"] = parts
        if args.changed_share > 0:   # last: it changes the table
            for engine, store in [(e, s) for e, s in variants if e in ("featurekit", ARROW)]:
                result = run_child(args, work, INCREMENTAL + engine, size, store, address, f"{size}-incremental-{engine}-{store}")
                incrementals.append({"size": size, "variant": variant_name(f"{engine} --incremental", store), **result})
                print(f"  {size:>11,} {incrementals[-1]['variant']:<34} {result['changed_keys']:,} changed keys: "
                      f"{result['incremental_s']:.2f}s vs whole window {result['full_s']:.2f}s ({result['ratio']:.1%}), "
                      f"stores {'equal' if result['equal'] else 'DIFFER'}", flush=True)
    load_after, code_after = load_average(), code_version()
    summary = _summarize(runs)
    code = f"featurekit {code_before['commit']}{' (dirty)' if code_before['featurekit_dirty'] else ''}"
    if code_after != code_before:
        code += f" -> {code_after['commit']}{' (dirty)' if code_after['featurekit_dirty'] else ''}: CHANGED DURING THE RUN"
    print_table(
        f"materialize: {args.features} features, {args.rows_per_entity} row(s)/entity, median of {args.repeat} "
        f"(load {load_before:.2f} -> {load_after:.2f}; {code}"
        f"{'; redis-server ' + ', '.join(args.redis_config) if args.redis_config else ''})", summary,
        [("size", "entities"), ("variant", "variant"), ("warm_s", "warm s"), ("rows_per_s", "rows/s warm"),
         ("vs_feast", "x Feast"), ("cold_s", "cold s"), ("rows_per_s_cold", "rows/s cold"),
         ("vs_feast_cold", "x Feast cold"), ("peak_total_mb", "peak RSS MB"), ("peak_jvm_mb", "of it JVM"),
         ("peak_workers_mb", "Py workers"), ("peak_total_pss_mb", "peak PSS MB"),
         ("redis_cpu_us_per_row", "redis-server CPU us/row"), ("redis_bound_rows_per_s", "rows/s it allows, all cores"),
         ("read_back", "keys, values")])
    print_table("read-back through the Feast SDK (sampled entities x features)", checks,
                [("size", "entities"), ("store", "store"), ("cells", "cells"), ("featurekit_vs_table", "featurekit vs table"),
                 (f"{ARROW}_vs_table", "arrow engine vs table"), ("arrow_vs_spark_bytes", "arrow vs spark engine bytes"),
                 ("feast_vs_table", "Feast vs table"), ("featurekit_vs_feast", "featurekit vs Feast"),
                 ("raw_bytes", "stored bytes equal"), ("result", "result")])
    for line in examples[:20]:
        print(f"  MISMATCH {line}")
    for size_label, columns in breakdowns.items():
        _breakdown_table(size_label, columns)
    if incrementals:
        print_table(f"materialize --incremental after one commit changing {args.changed_share:.1%} of the entities, "
                    "against the whole window of the same version (both warm, same process)", incrementals,
                    [("size", "entities"), ("variant", "variant"), ("versions", "versions"), ("method", "keys from"),
                     ("changed_keys", "changed keys"), ("written", "written"), ("full_keys", "whole window keys"),
                     ("incremental_s", "incremental s"), ("full_s", "whole window s"), ("ratio", "ratio"),
                     ("equal", "stores equal")])
    goals = _goals(summary, checks, args.features) + _incremental_goals(incrementals, args.changed_share)
    print_table("goals", goals, [("goal", "check"), ("measured", "measured"), ("target", "target"), ("met", "met")])
    if args.json:
        save_json(args.json, {"benchmark": "materialize", "args": {k: str(v) for k, v in vars(args).items()},
                              "machine": machine(), "load_before": load_before, "load_after": load_after,
                              "code_before": code_before, "code_after": code_after,
                              "summary": summary, "checks": checks, "breakdown": breakdowns, "goals": goals,
                              "runs": runs, "mismatches": examples, "incremental": incrementals})
    right = all(c["result"] == "OK" for c in checks) and all(r["read_back"] == "OK" for r in summary) \
        and all(r["equal"] for r in incrementals)
    return 0 if right and not examples else 1


def _check(size: int, store: str, read: dict[tuple[str, str], tuple[dict[int, Any], dict[int, Any]]],
           wanted: dict[int, dict[str, Any]], examples: list[str]) -> dict[str, Any]:
    """featurekit's and Feast's values (last round) against the table and against each other."""
    cells = len(wanted) * len(next(iter(wanted.values())))
    row: dict[str, Any] = {"size": size, "store": store, "cells": cells}
    for engine in ENGINES:
        if (engine, store) in read:
            row[f"{engine}_vs_table"] = len(differences(read[(engine, store)][0], wanted))
    if ("featurekit", store) in read and (ARROW, store) in read:
        row["arrow_vs_spark_bytes"] = "equal" if read[("featurekit", store)][1] == read[(ARROW, store)][1] else "differ"
    both = ("featurekit", store) in read and ("feast", store) in read
    if both:
        (fk_sdk, fk_raw), (feast_sdk, feast_raw) = read[("featurekit", store)], read[("feast", store)]
        row["featurekit_vs_feast"] = len(differences(fk_sdk, feast_sdk))
        row["raw_bytes"] = "yes" if fk_raw == feast_raw else "no"
        if fk_raw != feast_raw:
            differing = [i for i in fk_raw if fk_raw[i] != feast_raw.get(i)]
            examples.append(f"{size:,} {store}: stored bytes differ for {len(differing)} entities, e.g. {differing[:3]}")
    bad = any(row.get(k) for k in ("featurekit_vs_table", f"{ARROW}_vs_table", "feast_vs_table", "featurekit_vs_feast")) \
        or row.get("raw_bytes") == "no" or row.get("arrow_vs_spark_bytes") == "differ"
    row["result"] = "MISMATCH" if bad else "OK"
    return row


def _summarize(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per size and variant: median walls (cold, warm), rows/s, peak memory (max over rounds), x Feast."""
    rows = []
    for size, variant in dict.fromkeys((r["size"], r["variant"]) for r in runs):
        mine = [r for r in runs if (r["size"], r["variant"]) == (size, variant)]
        cold, warm = median([r["cold_s"] for r in mine]), median([r["warm_s"] for r in mine])
        rows.append({
            "size": size, "variant": variant, "engine": mine[0]["engine"], "store": mine[0]["store"],
            "runs": len(mine), "warm_s": round(warm, 3), "cold_s": round(cold, 3),
            "rows_per_s": round(mine[0]["rows"] / warm), "rows_per_s_cold": round(mine[0]["rows"] / cold),
            **{k: max(r[k] for r in mine) for k in ("peak_total_mb", "peak_jvm_mb", "peak_workers_mb",
                                                   "peak_driver_mb", "start_total_mb", "peak_total_pss_mb",
                                                   "peak_jvm_pss_mb", "peak_workers_pss_mb", "peak_driver_pss_mb")},
            **_redis_bound(mine),
            "keys_online": mine[-1]["keys_online"],
            "read_back": "OK" if all(r["vs_delta"] == 0 and r["keys_online"] == size for r in mine) else "MISMATCH",
            "load": max(r["load_start"] for r in mine),
        })
    for row in rows:
        feast = next((r for r in rows if (r["size"], r["engine"], r["store"]) == (row["size"], "feast", row["store"])), None)
        if feast and row["engine"] != "feast":
            row["vs_feast"] = round(row["rows_per_s"] / feast["rows_per_s"], 1)
            row["vs_feast_cold"] = round(row["rows_per_s_cold"] / feast["rows_per_s_cold"], 1)
    return rows


def _redis_bound(mine: list[dict[str, Any]]) -> dict[str, Any]:
    """The redis-server's CPU per row written (warm, median over rounds), and the rows/s that
    cost allows if the server had every core of the machine to itself and the writers cost nothing."""
    spent = [r["warm_redis_cpu_s"] / r["rows"] for r in mine if r.get("warm_redis_cpu_s") and r["rows"] > 0]
    if not spent:
        return {}
    per_row = median(spent)
    return {"redis_cpu_us_per_row": round(per_row * 1e6, 1),
            "redis_bound_rows_per_s": round((os.cpu_count() or 1) / per_row)}


def _breakdown_table(size: str, breakdowns: dict[str, dict[str, Any]]) -> None:
    """Where featurekit's time goes at one size, one column per store and run (cold, warm)."""
    parts = [
        ("wall_s", "wall of the instrumented run, s"),
        ("spark_sql_s", "  Spark SQL executions (read, latest per key, writers), s"),
        ("driver_outside_spark_s", "  driver outside Spark SQL, s"),
        ("verify_s", "    of which verification (count_keys), s"),
        ("writer_tasks", "writer tasks"),
        ("workers_task_s", "writer task time (summed over tasks), s"),
        ("workers_import_s", "  imports (featurekit's writer, or feast), s"),
        ("workers_setup_s", "  setup (config, view, client) + output, s"),
        ("workers_input_s", "  waiting for input batches, s"),
        ("workers_own_write_s", "  featurekit's writer: write(), s"),
        ("workers_own_read_s", "    of it: read stored event times (Redis), s"),
        ("workers_own_send_s", "    of it: send commands, read replies (Redis), s"),
        ("workers_convert_s", "  Feast: _convert_arrow_to_proto, s"),
        ("workers_write_s", "  Feast: online_write_batch, s"),
        ("writer_rows_per_s", "writer rows/s per worker-second"),
        ("ablation_spark_only_s", "ablation: read + latest per key, noop sink, s"),
        ("ablation_arrow_to_python_s", "ablation: + Arrow into a no-op Python writer, s"),
    ]
    for value in breakdowns.values():
        value["writer_rows_per_s"] = round(value["rows"] / value["workers_writer_s"]) if value["workers_writer_s"] else None
    rows = [{"part": label, **{name: b.get(key) for name, b in breakdowns.items()}} for key, label in parts]
    print_table(f"where featurekit's time goes, {size} entities (instrumented; worker seconds summed over tasks)",
                rows, [("part", "part"), *((name, name) for name in breakdowns)])


def _goals(summary: list[dict[str, Any]], checks: list[dict[str, Any]], features: int) -> list[dict[str, Any]]:
    """Issue 4's goals, for each featurekit engine that ran."""
    goals: list[dict[str, Any]] = []
    ok = all(c["result"] == "OK" for c in checks)
    for engine in ("featurekit", ARROW):
        mine = [r for r in summary if r["engine"] == engine]
        if mine:
            goals += _engine_goals(engine, mine, features, ok)
    return goals


def _incremental_goals(incrementals: list[dict[str, Any]], share: float) -> list[dict[str, Any]]:
    """Per incremental variant, at its largest size: its time against the whole window's, and
    whether both stores ended equal."""
    goals = []
    for variant in dict.fromkeys(r["variant"] for r in incrementals):
        row = max((r for r in incrementals if r["variant"] == variant), key=lambda r: r["size"])
        goals.append({"goal": f"{variant}, {share:.0%} of {row['size']:,} entities changed / whole window",
                      "measured": f"{row['ratio']:.1%}", "target": "<= 10%", "met": "yes" if row["ratio"] <= 0.10 else "no"})
        goals.append({"goal": f"  the store after it equals the whole window's ({row['entries']:,} entries)",
                      "measured": "equal" if row["equal"] else "DIFFER", "target": "equal",
                      "met": "yes" if row["equal"] else "no"})
    return goals


def _engine_goals(engine: str, mine: list[dict[str, Any]], features: int, ok: bool) -> list[dict[str, Any]]:
    largest, smallest = max(r["size"] for r in mine), min(r["size"] for r in mine)
    goals = []
    redis = next((r for r in mine if r["size"] == largest and r["store"] == "redis"), None)
    if redis:
        goals.append({"goal": f"{engine} -> redis rows/s at {largest:,} entities (warm)",
                      "measured": f"{redis['rows_per_s']:,}",
                      "target": ">= 100,000", "met": "yes" if redis["rows_per_s"] >= 100_000 else "no"})
        if redis.get("redis_bound_rows_per_s"):
            goals.append({"goal": f"  bound: redis-server's own CPU ({redis['redis_cpu_us_per_row']} us/row) on all "
                                  f"{os.cpu_count()} cores, writers free",
                          "measured": f"{redis['redis_bound_rows_per_s']:,}", "target": ">= 100,000",
                          "met": "reachable" if redis["redis_bound_rows_per_s"] >= 100_000 else "not on this machine"})
    compared = [r for r in mine if r["store"] == "redis" and r.get("vs_feast")]
    if compared:
        ratio = max(compared, key=lambda r: r["size"])
        goals.append({"goal": f"{engine} / Feast rows/s into Redis at {ratio['size']:,} (warm)",
                      "measured": f"{ratio['vs_feast']}x",
                      "target": ">= 20x", "met": "yes" if ratio["vs_feast"] >= 20 else "no"})
    for key, what in (("peak_total_mb", "RSS summed"), ("peak_total_pss_mb", "PSS")):
        peak = max(r[key] for r in mine)
        goals.append({"goal": f"{engine} peak {what} over the process tree (any size, store)", "measured": f"{peak:,} MB",
                      "target": "< 1,024 MB", "met": "yes" if peak < 1024 else "no"})
        if largest > smallest:
            low = max(r[key] for r in mine if r["size"] == smallest)
            high = max(r[key] for r in mine if r["size"] == largest)
            goals.append({"goal": f"{engine} peak {what} {largest:,} vs {smallest:,} entities",
                          "measured": f"{high / low - 1:+.1%}",
                          "target": "flat (<= +10%)", "met": "yes" if high / low - 1 <= 0.10 else "no"})
    big = [r for r in mine if r["size"] >= 10_000_000 and features >= 50]
    goals.append({"goal": f"{engine}: 10M entities x {features} features materialized", "measured":
                  f"{max(r['size'] for r in big):,} x {features}" if big else "not run (--sizes 10000000)",
                  "target": "done, read back OK", "met": "yes" if big and ok else "no"})
    return goals


if __name__ == "__main__":
    raise SystemExit(main())
