"""What lineage is recorded, and the small interface that records it.

A materialization records one :class:`FeatureSetRecord` per feature view; a training set one
:class:`TrainingSetRecord`. :class:`RunLogLineage` keeps them as JSON files in the run log
(``<runs>/lineage/``); the Model Registry implementation (DataSet artifacts linked to model
versions) implements the same :class:`LineageStore` protocol.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class FeatureSetRecord:
    """One feature view materialized into the online store from one Delta table version."""

    run_id: str
    feast_project: str
    feature_view: str
    features: list[str]
    job: str
    spec_fingerprint: str
    delta_path: str
    delta_version: int
    window_start: str           # ISO 8601, UTC
    window_end: str
    rows: int                   # rows of the table version within the window
    keys: int                   # distinct entity keys among them = keys written
    online_store: str           # "sqlite", "redis", ...
    recorded_at: str
    kind: str = field(default="feature_set", init=False)


@dataclass(frozen=True)
class TrainingSetRecord:
    """A point-in-time correct training set built from feature views over Delta table versions."""

    run_id: str
    feast_project: str
    feature_service: str
    feature_views: dict[str, int]   # view -> Delta version read
    features: list[str]
    spine_path: str
    output_path: str
    output_version: int
    rows: int
    recorded_at: str
    spine_version: int | None = None   # when the spine is a Delta table
    kind: str = field(default="training_set", init=False)


class LineageStore(Protocol):
    """Where lineage records go; each method returns an identifier of what it recorded."""

    def record_feature_set(self, record: FeatureSetRecord) -> str: ...

    def record_training_set(self, record: TrainingSetRecord) -> str: ...


class RunLogLineage:
    """Lineage records as JSON files under ``<runs>/lineage/`` (one file per record, by run id)."""

    def __init__(self, runs_dir: Path) -> None:
        self.folder = Path(runs_dir) / "lineage"

    def _write(self, name: str, record: FeatureSetRecord | TrainingSetRecord) -> str:
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{name}.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(asdict(record), indent=2) + "\n")
        tmp.replace(path)  # a reader never sees half a record; a retry overwrites the same file
        return str(path)

    def record_feature_set(self, record: FeatureSetRecord) -> str:
        return self._write(f"feature_set-{record.run_id}-{record.feature_view}", record)

    def record_training_set(self, record: TrainingSetRecord) -> str:
        return self._write(f"training_set-{record.run_id}", record)

    def records(self) -> list[dict]:
        """Every record kept, oldest first."""
        if not self.folder.is_dir():
            return []
        found = [json.loads(p.read_text()) for p in self.folder.glob("*.json")]
        return sorted(found, key=lambda r: r["recorded_at"])
