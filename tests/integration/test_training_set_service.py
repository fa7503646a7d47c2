"""A feature service that takes some features of a view: featurekit's join returns those
features only, in the service's order, as Feast's retrieval does."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

from featurekit import pipeline
from featurekit.config import Project
from featurekit.pipeline.training import training_set
from tests.integration.conftest import with_test_conf
from tests.integration.helpers import Lab

pytestmark = pytest.mark.spark

T = datetime(2026, 3, 1, 10, tzinfo=UTC)

JOB = """
name: svc_stats
sources:
  events: {format: parquet, path: "${raw_root}/svc_events"}
steps:
  - select: [driver_id, event_ts, alpha, beta, gamma]
output: {path: "${lake_root}/svc_stats", mode: overwrite}
features:
  entity: driver
  join_keys: [driver_id]
  timestamp: event_ts
  ttl: 1d
  services:
    svc_picked: ["svc_stats:gamma", "svc_stats:alpha"]
"""


def test_a_service_gets_only_its_features_in_its_order(spark: Any, tmp_path: Path) -> None:
    lab = Lab(tmp_path / "project", spark)
    stamp = pa.array([T], pa.timestamp("us", tz="UTC"))
    lab.parquet("svc_events", pa.table({"driver_id": pa.array([1], pa.int64()), "event_ts": stamp,
                                        "alpha": [1.0], "beta": [2.0], "gamma": ["g"]}))
    lab.run("svc_stats", JOB)
    project = Project(lab.root)
    _, settings = pipeline.load(project, "svc_stats", "local")
    spine = tmp_path / "spine.parquet"
    pq.write_table(pa.table({"driver_id": pa.array([1, 2], pa.int64()),
                             "event_timestamp": pa.array([T, T], pa.timestamp("us", tz="UTC"))}), spine)

    result = training_set(project, with_test_conf(settings), service="svc_picked", spine=str(spine),
                          out=str(tmp_path / "out"), spark=spark)

    assert result.columns == ["driver_id", "event_timestamp", "gamma", "alpha"]
    assert result.features == ["svc_stats:gamma", "svc_stats:alpha"]
    rows = sorted(DeltaTable(result.out).to_pyarrow_table().to_pylist(), key=lambda r: r["driver_id"])
    assert [(r["driver_id"], r["gamma"], r["alpha"]) for r in rows] == [(1, "g", 1.0), (2, None, None)]
