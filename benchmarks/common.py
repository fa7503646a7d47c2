"""Shared pieces of the benchmarks: a throw-away featurekit project, one SparkSession,
timing with Spark job and SQL-execution counts, peak RSS, machine facts, rich tables.

Everything lives under a work folder (``--work DIR`` or a temporary one); nothing here
knows a machine path. The Delta jars come from the repository's cache
(``FEATUREKIT_JARS_DIR`` wins), as for ``make test``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from featurekit.config import Project, Settings, load_settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

REPO = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- work folder

@contextmanager
def work_folder(work: str | None, keep: bool) -> Iterator[Path]:
    """``work`` if given (kept), else a temporary folder removed at the end unless ``keep``."""
    if work:
        path = Path(work).resolve()
        path.mkdir(parents=True, exist_ok=True)
        yield path
        return
    path = Path(tempfile.mkdtemp(prefix="featurekit-bench-"))
    try:
        yield path
    finally:
        if keep:
            print(f"work folder kept: {path}")
        else:
            shutil.rmtree(path, ignore_errors=True)


def add_common_args(parser: "argparse.ArgumentParser", work_help: str, json_help: str) -> None:
    """The arguments every Spark benchmark takes: its work folder, Spark's settings, the JSON record."""
    parser.add_argument("--work", help=work_help)
    parser.add_argument("--keep", action="store_true", help="keep the temporary work folder")
    parser.add_argument("--shuffle-partitions", type=int, default=8, help="spark.sql.shuffle.partitions (default 8)")
    parser.add_argument("--master", default="local[*]", help="Spark master (default local[*])")
    parser.add_argument("--driver-memory", default="4g", help="spark.driver.memory (default 4g)")
    parser.add_argument("--json", type=Path, help=json_help)


def bench_project(root: Path, shuffle_partitions: int, master: str, driver_memory: str) -> Project:
    """A featurekit project under ``root``: the repository's conf/ plus a benchmark override.

    ``${raw_root}`` and ``${lake_root}`` point inside ``root``; jobs are written by the caller.
    """
    root.mkdir(parents=True, exist_ok=True)
    shutil.copytree(REPO / "conf", root / "conf", dirs_exist_ok=True)
    (root / "jobs").mkdir(exist_ok=True)
    jars = os.environ.get("FEATUREKIT_JARS_DIR") or str(REPO / ".featurekit" / "jars")
    override = textwrap.dedent(f"""\
        # written by benchmarks/common.py: small shuffles, no UI, the repository's jar cache
        vars:
          raw_root: ${{project_root}}/data/raw
          lake_root: ${{project_root}}/data/lake
        spark:
          master: "{master}"
          log_level: ERROR
          conf:
            spark.sql.shuffle.partitions: {shuffle_partitions}
            spark.default.parallelism: {shuffle_partitions}
            spark.driver.memory: {driver_memory}
            spark.sql.session.timeZone: UTC
            spark.ui.enabled: false
            spark.ui.showConsoleProgress: false
            spark.databricks.delta.snapshotPartitions: 2
        paths:
          runs: ${{project_root}}/runs
          jars: {jars}
        registry:
          enabled: false
        """)
    (root / "conf" / "local" / "zz_benchmark.yaml").write_text(override)
    return Project(root)


def empty_lake(project: Project) -> None:
    """Remove every table a previous run of the benchmark left under ``data/lake``.

    Each variant then writes its table from version 0, one commit per run, so in every
    round all variants commit the same version: Delta's checkpoint (every 10th commit,
    0.5-1 s) and the log replayed since the last one fall in the same round for all of them.
    """
    shutil.rmtree(project.root / "data" / "lake", ignore_errors=True)


def write_job(project: Project, name: str, text: str) -> None:
    (project.jobs_dir / f"{name}.yaml").write_text(textwrap.dedent(text).lstrip())


def start_session(project: Project) -> tuple["SparkSession", Settings]:
    """The one SparkSession of a benchmark run (Delta configured by featurekit)."""
    from featurekit import pipeline

    settings = load_settings(project, "local")
    return pipeline.session(settings, "featurekit-benchmarks"), settings


# --------------------------------------------------------------------------- measuring

@dataclass
class Sample:
    """One timed run of one variant."""

    variant: str
    wall_s: float
    spark_jobs: int
    sql_executions: list[dict[str, Any]] = field(default_factory=list)
    jvm_peak_rss_mb: float | None = None
    python_peak_rss_mb: float | None = None
    load_1m: float | None = None  # the 1-minute load average right after the run
    cpu_s: float | None = None  # CPU time of the JVM and this Python process during the run (all threads)
    extra: dict[str, Any] = field(default_factory=dict)
    round: int | None = None  # the measured round it belongs to (every variant runs once per round)


def _reset_peak(pid: int) -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) of ``pid``; False where not allowed."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _peak_rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of process ``pid`` so far, all its threads (``/proc/PID/stat``)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _cpu_now(pid: int) -> float | None:
    jvm = cpu_seconds(pid)
    if jvm is None:
        return None
    mine = os.times()
    return jvm + mine.user + mine.system


def jvm_pid(spark: "SparkSession") -> int:
    return int(spark.sparkContext._jvm.java.lang.ProcessHandle.current().pid())  # type: ignore[union-attr]


def _sql_executions(spark: "SparkSession") -> list[Any]:
    """Spark's SQL executions so far (the status store is kept with the UI disabled)."""
    store = spark._jsparkSession.sharedState().statusStore()  # type: ignore[attr-defined]
    found, it = [], store.executionsList().iterator()
    while it.hasNext():
        found.append(it.next())
    return found


def _describe(execution: Any) -> dict[str, Any]:
    start = execution.submissionTime()
    end = execution.completionTime()
    done = end.isDefined()
    plan = str(execution.physicalPlanDescription())
    return {
        "id": int(execution.executionId()),
        "root": int(execution.rootExecutionId()),
        "description": str(execution.description())[:120],
        "seconds": round((end.get().getTime() - start) / 1000, 3) if done else None,
        "plan_head": next((line.strip() for line in plan.splitlines() if line.strip() and not line.startswith("==")), "")[:120],
        "quarantine": "LeftAnti" in plan and "LocalTableScan" in plan,
        "plan": plan,
    }


def measure(spark: "SparkSession", variant: str, action: Callable[[], Any], keep_plans: bool = False) -> tuple[Sample, Any]:
    """Run ``action`` once: wall time, Spark jobs it started, its SQL executions, peak RSS."""
    sc = spark.sparkContext
    group = f"bench-{variant}-{time.monotonic_ns()}"
    pid = jvm_pid(spark)
    jvm_reset, py_reset = _reset_peak(pid), _reset_peak(os.getpid())
    seen = max((int(e.executionId()) for e in _sql_executions(spark)), default=-1)
    sc.setLocalProperty("spark.jobGroup.id", group)  # a group without a description: Spark's call sites stay visible
    cpu_start = _cpu_now(pid)
    start = time.perf_counter()
    try:
        value = action()
    finally:
        wall = time.perf_counter() - start
        cpu_end = _cpu_now(pid)
        sc.setLocalProperty("spark.jobGroup.id", None)  # type: ignore[arg-type]
    jobs = len(sc.statusTracker().getJobIdsForGroup(group))
    executions = [_describe(e) for e in _sql_executions(spark) if int(e.executionId()) > seen]
    executions.sort(key=lambda e: e["id"])
    if not keep_plans:
        for e in executions:
            e.pop("plan")
    sample = Sample(
        variant=variant, wall_s=round(wall, 3), spark_jobs=jobs, sql_executions=executions,
        jvm_peak_rss_mb=_peak_rss_mb(pid) if jvm_reset else None,
        python_peak_rss_mb=_peak_rss_mb(os.getpid()) if py_reset else None,
        load_1m=round(load_average(), 2),
        cpu_s=round(cpu_end - cpu_start, 2) if cpu_start is not None and cpu_end is not None else None,
    )
    return sample, value


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def summarize(samples: list[Sample], baseline: str) -> list[dict[str, Any]]:
    """Per variant: median wall time, spread, ratio to the baseline's median, jobs, peak RSS.

    ``paired_ratio``: the median over rounds of the variant's time over the baseline's time
    in the same round. On a machine whose speed drifts from minute to minute, the two runs
    of one round see the same drift, so this ratio varies less than the ratio of medians.
    ``cpu_ratio``: the median CPU time (JVM and Python, all threads) over the baseline's:
    the work done. On a machine whose slow minutes are slow per CPU second too, it moves
    with wall time; it tells work from waiting.
    """
    variants = list(dict.fromkeys(s.variant for s in samples))
    base = median([s.wall_s for s in samples if s.variant == baseline])
    base_by_round = {s.round: s.wall_s for s in samples if s.variant == baseline and s.round is not None}
    base_cpus = [s.cpu_s for s in samples if s.variant == baseline and s.cpu_s is not None]
    base_cpu = median(base_cpus) if base_cpus else None
    rows = []
    for name in variants:
        mine = [s for s in samples if s.variant == name]
        walls = [s.wall_s for s in mine]
        jvm = [s.jvm_peak_rss_mb for s in mine if s.jvm_peak_rss_mb is not None]
        paired = [s.wall_s / base_by_round[s.round] for s in mine if s.round in base_by_round]
        cpu = [s.cpu_s for s in mine if s.cpu_s is not None]
        rows.append({
            "variant": name,
            "runs": len(mine),
            "median_s": round(median(walls), 3),
            "min_s": round(min(walls), 3),
            "max_s": round(max(walls), 3),
            "ratio": round(median(walls) / base, 3) if base else None,
            "paired_ratio": round(median(paired), 3) if paired else None,
            "paired_min": round(min(paired), 3) if paired else None,
            "paired_max": round(max(paired), 3) if paired else None,
            "cpu_s": round(median(cpu), 2) if cpu else None,
            "cpu_ratio": round(median(cpu) / base_cpu, 3) if cpu and base_cpu else None,
            "spark_jobs": int(median([s.spark_jobs for s in mine])),
            "sql_executions": int(median([len(s.sql_executions) for s in mine])),
            "jvm_peak_rss_mb": round(max(jvm)) if jvm else None,
        })
    return rows


def _category(execution: dict[str, Any]) -> str:
    """Which part of a run a top-level SQL execution belongs to (by its call site and plan)."""
    where, plan = execution["description"], execution["plan_head"]
    if execution.get("quarantine"):
        return "quarantine append (new row hashes only)"
    if "MergeIntoCommand" in plan:
        return "MERGE"
    if any(k in where for k in ("Compute snapshot", "Filtering files", "recordDeltaOperation", "getHistory")) \
            or "DescribeDeltaDetail" in plan:
        return "Delta log (snapshots, file lists)"
    if "SaveIntoDataSourceCommand" in plan or where.startswith(("write at", "save at")):
        return "the pass: compute + write data files"
    if "CreateViewCommand" in plan:
        return "temp views"
    if where.startswith("toArrow at") and "validation/unique.py" in where:
        return "gate pre-pass: key hashes"
    if "quarantine.py" in where:
        return "quarantine append (new row hashes only)"
    if where.startswith(("localCheckpoint at", "writeFiles at")) or ("featurekit/validation/" in where):
        return "gate: gathered rows (rank, counts, examples, late write, quarantine rows)"
    if where.startswith(("collect at", "count at")):
        return "gate examples, small reads"
    return "other Spark"


def breakdown(sample: Sample) -> dict[str, float]:
    """Seconds per part of the run: top-level SQL executions by category, the rest is driver time."""
    parts: dict[str, float] = {}
    for execution in sample.sql_executions:
        if execution["root"] != execution["id"] or execution["seconds"] is None:
            continue
        key = _category(execution)
        if key == "other Spark" and sample.variant.startswith("pandera"):
            key = "pandera checks"  # pyspark shows pandera's calls as `count at <unknown>:0`
        parts[key] = round(parts.get(key, 0.0) + execution["seconds"], 3)
    parts["driver (outside SQL executions)"] = round(sample.wall_s - sum(parts.values()), 3)
    return parts


def print_breakdown(title: str, samples: dict[str, Sample]) -> list[dict[str, Any]]:
    """A table: one row per category, one column per variant (seconds)."""
    per_variant = {name: breakdown(sample) for name, sample in samples.items()}
    categories = list(dict.fromkeys(k for parts in per_variant.values() for k in parts))
    rows = [{"check": c, **{n: parts.get(c) for n, parts in per_variant.items()}} for c in categories]
    rows.append({"check": "wall", **{n: s.wall_s for n, s in samples.items()}})
    print_table(title, rows, [("check", "part"), *((n, n) for n in samples)])
    return rows


# --------------------------------------------------------------------------- the machine

def load_average() -> float:
    return os.getloadavg()[0]


def wait_until_quiet(max_load: float, max_wait_s: float, poll_s: float = 30.0) -> float:
    """Sleep while the 1-minute load is above ``max_load`` (at most ``max_wait_s``); the load then."""
    deadline = time.monotonic() + max_wait_s
    while load_average() > max_load and time.monotonic() < deadline:
        print(f"load {load_average():.2f} > {max_load}; waiting ...", flush=True)
        time.sleep(poll_s)
    return load_average()


def machine() -> dict[str, Any]:
    """Cores, memory, load and versions, for the record."""
    import pyspark

    memory_kb = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            memory_kb = int(line.split()[1])
    try:
        java = subprocess.run(["java", "-version"], capture_output=True, text=True, check=False).stderr.splitlines()[0]
    except (OSError, IndexError):
        java = "?"
    return {
        "cores": os.cpu_count(),
        "memory_gib": round(memory_kb / 1024 / 1024, 1),
        "load_1_5_15": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "pyspark": pyspark.__version__,
        "java": java,
        "cpu": _cpu_model(),
    }


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "?"


# --------------------------------------------------------------------------- output

def print_table(title: str, rows: list[dict[str, Any]], columns: list[tuple[str, str]]) -> None:
    """A rich table of ``rows`` showing ``columns`` as (key, header)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for _, header in columns:
        table.add_column(header, justify="left" if header in {"variant", "check"} else "right")
    for row in rows:
        table.add_row(*(_cell(row.get(key)) for key, _ in columns))
    Console(width=None if sys.stdout.isatty() else 160).print(table)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.3f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def save_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=lambda o: asdict(o) if hasattr(o, "__dataclass_fields__") else str(o)))


# --------------------------------------------------------------------------- services

def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def redis_server(folder: Path, config: list[str] | None = None) -> Iterator[str]:
    """A private ``redis-server`` on a free loopback port (no persistence): ``host:port``.
    ``config``: more server settings, as ``name value`` strings."""
    import redis

    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed (apt-get install redis-server)")
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    process = subprocess.Popen(
        [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
         "--dir", str(folder), "--protected-mode", "yes",
         *(f"--{part}" if index == 0 else part for item in config or [] for index, part in enumerate(item.split()))],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        client, deadline = redis.Redis(host="127.0.0.1", port=port), time.monotonic() + 20
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"redis-server did not start on 127.0.0.1:{port}") from None
                time.sleep(0.05)
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=20)
