"""Shared pieces of the integration tests: a throw-away project ("lab") to run jobs in,
tiny input files written by plain Python/pyarrow, and Delta tables read back with
delta-rs (``deltalake``), a reader independent of the Spark that wrote them.

The fixtures here are imported explicitly by the test modules that use them
(``from tests.integration.helpers import lab``); the session-scoped ``spark`` fixture of
``conftest.py`` is the one SparkSession every run uses.
"""

from __future__ import annotations

import json
import shutil
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

from featurekit import pipeline
from featurekit.config import Project, Settings, load_settings
from featurekit.config.settings import ConcurrencySettings
from featurekit.errors import FeaturekitError
from featurekit.pipeline import features
from featurekit.pipeline.training import TrainingSetResult, training_set
from tests.conftest import REPO
from tests.integration.conftest import with_test_conf


def ts(text: str) -> datetime:
    """``"2024-01-01 10:00:00"`` as an aware UTC datetime (how delta-rs returns timestamps)."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def sort_rows(rows: list[dict[str, Any]], by: list[str] | None = None) -> list[dict[str, Any]]:
    """Rows in a stable order: by the ``by`` columns (default: all, in column order), nulls last."""

    def key(row: dict[str, Any]) -> tuple[Any, ...]:
        return tuple((row[c] is None, row[c]) for c in (by or list(row)))

    return sorted(rows, key=key)


@contextmanager
def physical_plans(spark: object) -> Iterator[list[str]]:
    """The physical plans of the SQL executions run inside the block (from Spark's SQL status
    store, which is kept with the UI disabled too)."""
    store = spark._jsparkSession.sharedState().statusStore()  # type: ignore[attr-defined]

    def executions() -> list[object]:
        found, it = [], store.executionsList().iterator()
        while it.hasNext():
            found.append(it.next())
        return found

    seen = max((e.executionId() for e in executions()), default=-1)
    plans: list[str] = []
    yield plans
    plans += [e.physicalPlanDescription() for e in executions() if e.executionId() > seen]


@contextmanager
def no_size_based_broadcast(spark: object) -> Iterator[None]:
    """Spark's own size-based broadcasting off inside the block, as for tables too big to
    broadcast: only a hint (``broadcast``) makes a broadcast join there."""
    conf = spark.conf  # type: ignore[attr-defined]
    previous = conf.get("spark.sql.autoBroadcastJoinThreshold")
    conf.set("spark.sql.autoBroadcastJoinThreshold", "-1")
    try:
        yield
    finally:
        conf.set("spark.sql.autoBroadcastJoinThreshold", previous)


class Lab:
    """A project folder (the repository's ``conf/`` plus a ``jobs/`` folder) to run jobs in."""

    def __init__(self, root: Path, spark: object) -> None:
        self.root = root
        self.spark = spark
        shutil.copytree(REPO / "conf", root / "conf", dirs_exist_ok=True)
        (root / "jobs").mkdir(parents=True, exist_ok=True)
        self.raw.mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------------ paths
    @property
    def raw(self) -> Path:
        return self.root / "data" / "raw"

    @property
    def lake(self) -> Path:
        return self.root / "data" / "lake"

    @property
    def runs(self) -> Path:
        return self.root / ".featurekit" / "runs"

    # ------------------------------------------------------------------ inputs
    def _folder(self, name: str) -> Path:
        folder = self.raw / name
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        return folder

    def csv(self, name: str, text: str) -> Path:
        """``raw/<name>/part-0.csv`` holding ``text`` (dedented); replaces the folder."""
        folder = self._folder(name)
        (folder / "part-0.csv").write_text(textwrap.dedent(text).lstrip())
        return folder

    def jsonl(self, name: str, rows: list[dict[str, Any]]) -> Path:
        folder = self._folder(name)
        (folder / "part-0.json").write_text("".join(json.dumps(r) + "\n" for r in rows))
        return folder

    def parquet(self, name: str, table: pa.Table) -> Path:
        folder = self._folder(name)
        pq.write_table(table, folder / "part-0.parquet")
        return folder

    # ------------------------------------------------------------------ runs
    def write_job(self, name: str, text: str) -> Path:
        path = self.root / "jobs" / f"{name}.yaml"
        path.write_text(textwrap.dedent(text).lstrip())
        return path

    def run(self, name: str, text: str, retries: int | None = None) -> pipeline.RunResult:
        """Write ``jobs/<name>.yaml`` and run it on the shared session (``retries``: after a
        write conflict, instead of the env's ``concurrency.retries``)."""
        self.write_job(name, text)
        project = Project(self.root)
        loaded, settings = pipeline.load(project, name, "local")
        settings = with_test_conf(settings)
        if retries is not None:
            settings = settings.model_copy(update={"concurrency": ConcurrencySettings(retries=retries)})
        return pipeline.run(project, loaded, settings, self.spark)  # type: ignore[arg-type]

    def run_fails(self, name: str, text: str, error: type[FeaturekitError]) -> FeaturekitError:
        """Run a job that must fail with exactly ``error`` (not a subclass); return the error."""
        with pytest.raises(FeaturekitError) as info:
            self.run(name, text)
        assert type(info.value) is error, f"expected {error.__name__}, got {type(info.value).__name__}: {info.value}"
        return info.value

    def reports(self, job: str) -> list[dict[str, Any]]:
        """Every run report of ``job``, oldest first."""
        files = sorted((self.runs / job).glob("*.json"), key=lambda p: p.stat().st_mtime_ns)
        return [json.loads(p.read_text()) for p in files]

    # ------------------------------------------------------------------ tables (delta-rs)
    def table(self, name: str) -> DeltaTable:
        return DeltaTable(str(self.lake / name))

    def rows(self, name: str, by: list[str] | None = None, version: int | None = None) -> list[dict[str, Any]]:
        """The table's rows read by delta-rs, sorted (see :func:`sort_rows`)."""
        table = DeltaTable(str(self.lake / name), version=version)
        return sort_rows(table.to_pyarrow_table().to_pylist(), by)

    def columns(self, name: str) -> list[tuple[str, str]]:
        """``[(column, delta type)]`` in table order, e.g. ``("id", "long")``."""
        return [(f.name, f.type.type) for f in self.table(name).schema().fields]


class TrainingLab(Lab):
    """A project whose jobs serve features, to build training sets in: a Feast repository
    (applied on demand, for ``engine="feast"``), the env's settings for the tests, and training
    sets of ``service`` written under ``out/`` on the shared session."""

    def __init__(self, root: Path, spark: object, service: str) -> None:
        super().__init__(root, spark)
        self.service = service
        (root / "feature_repo").mkdir(exist_ok=True)
        shutil.copy(REPO / "feature_repo" / "features.py", root / "feature_repo" / "features.py")
        self.project = Project(root)
        self.settings: Settings = with_test_conf(load_settings(self.project, "local"))

    def apply_feast(self) -> None:
        """Feast's registry of the jobs' views and services, as ``engine="feast"`` needs it."""
        features.apply(self.project, self.settings)

    def out(self, name: str) -> Path:
        return self.root / "out" / name

    def build(self, spine: Path | str | None, out: str, **kwargs: Any) -> TrainingSetResult:
        """The training set of ``service`` (unless given) for ``spine`` (None: give ``start`` and
        ``end``) into ``out/<out>``."""
        return training_set(self.project, self.settings, spine=None if spine is None else str(spine),
                            out=str(self.out(out)), spark=self.spark,  # type: ignore[arg-type]
                            **{"service": self.service, **kwargs})

    def out_rows(self, out: str, by: list[str] | None = None) -> list[dict[str, Any]]:
        """A training set's rows read by delta-rs, sorted (see :func:`sort_rows`)."""
        return sort_rows(DeltaTable(str(self.out(out))).to_pyarrow_table().to_pylist(), by)


@pytest.fixture(scope="module")
def lab(spark: object, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """One project per test module: tests give their jobs and tables distinct names."""
    yield Lab(tmp_path_factory.mktemp("lab"), spark)


@pytest.fixture
def fresh_lab(spark: object, tmp_path: Path) -> Lab:
    """A project of its own, for tests where the other jobs of the project matter."""
    return Lab(tmp_path / "project", spark)


def online_newest(settings: Settings, view: str) -> str | None:
    """The newest event time the online store holds for ``view`` (ISO 8601, UTC; None when it
    holds none), read from the store itself, not through featurekit's port: SQLite's
    ``MAX(event_ts)`` of Feast's table (epoch seconds), or every Redis hash's ``_ts:<view>``
    field, parsed by protobuf."""
    import sqlite3

    online = settings.feast.online_store
    project = settings.feast.project
    if online.get("type", "sqlite") == "sqlite":
        with sqlite3.connect(online["path"]) as conn:
            (newest,) = conn.execute(f'SELECT MAX(event_ts) FROM "{project}_{view}"').fetchone()
        return None if newest is None else datetime.fromtimestamp(newest, UTC).isoformat()
    import redis
    from google.protobuf.timestamp_pb2 import Timestamp

    address, _, db = online["connection_string"].partition(",db=")
    host, port = address.split(":")
    client = redis.Redis(host=host, port=int(port), db=int(db or 0))
    times = []
    for key in client.scan_iter():
        raw = client.hget(key, f"_ts:{view}") if key.endswith(project.encode()) else None
        if raw is not None:
            stamp = Timestamp()
            stamp.ParseFromString(raw)
            times.append(stamp.ToDatetime(tzinfo=UTC))
    return max(times).isoformat() if times else None
