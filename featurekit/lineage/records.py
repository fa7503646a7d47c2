"""What lineage is recorded, and the small interface that records it.

A materialization records one :class:`FeatureSetRecord` per feature view; a training set one
:class:`TrainingSetRecord`, which holds an :class:`OfflineFeatureSetRecord` per view it read: the
view's Delta table at the version read, whether or not it was ever materialized.
:class:`RunLogLineage` keeps them as JSON files in the run log (``<runs>/lineage/``); :class:`~featurekit.lineage.registry_lineage.RegistryLineage` makes them
DataSet artifacts in the Kubeflow Model Registry; :class:`BothLineage` does both.

What a store returns identifies what it recorded; a record that could not be sent yet (the
registry was unreachable) returns a marker starting with :data:`QUEUED` (see :func:`is_queued`).
Records are written with their secrets masked (:mod:`featurekit.redaction`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from featurekit.redaction import redact


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
    keys: int                   # distinct entity keys among them = keys written (incremental: the keys written)
    online_store: str           # "sqlite", "redis", ...
    recorded_at: str
    # the view's fields: {"join_keys": {col: Feast type}, "timestamp": col, "features": {col: Feast type}}
    view_schema: dict[str, Any] = field(default_factory=dict)
    # ``materialize --incremental``: the keys written are those changed in versions
    # delta_version_from..delta_version (empty when only the window's end moved), and the window
    # is the rows after the previous end; None: the whole window of delta_version
    delta_version_from: int | None = None
    # the newest event time the view's keys held in the online store after the run (ISO 8601,
    # UTC; None: none, or a record of an older featurekit); see ``materialize``'s ``_newest_event``
    newest_event: str | None = None
    kind: str = field(default="feature_set", init=False)


@dataclass(frozen=True)
class OfflineFeatureSetRecord:
    """A feature view's Delta table at the version a training set read: the feature data itself,
    with no window and no online store (its identity is the table and the version)."""

    feast_project: str
    feature_view: str
    job: str
    spec_fingerprint: str
    delta_path: str
    delta_version: int
    recorded_at: str            # when a training set first read it
    # the view's fields: {"join_keys": {col: Feast type}, "timestamp": col, "features": {col: Feast type}}
    view_schema: dict[str, Any] = field(default_factory=dict)
    kind: str = field(default="offline_feature_set", init=False)


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
    # one per view read (same views and versions as ``feature_views``); empty in records made
    # before training sets recorded them
    offline_feature_sets: list[OfflineFeatureSetRecord] = field(default_factory=list)
    as_of: str | None = None     # the views read as their tables were at this time (ISO 8601)
    start: str | None = None     # without a spine: the first view's rows from start to end
    end: str | None = None
    kind: str = field(default="training_set", init=False)

    def __post_init__(self) -> None:
        # read back from JSON (the run log, the outbox) they are mappings
        sets = [s if isinstance(s, OfflineFeatureSetRecord)
                else OfflineFeatureSetRecord(**{k: v for k, v in s.items() if k != "kind"})
                for s in self.offline_feature_sets]
        object.__setattr__(self, "offline_feature_sets", sets)


@dataclass(frozen=True)
class Producer:
    """The job run that produced a Delta table version (from its commit's ``userMetadata``), and
    what its run report says: the validation summary and the sources it read."""

    job: str
    run_id: str                                   # "" when no featurekit commit names a run
    delta_version: int                            # the commit naming the run (<= the version asked)
    operation: str = ""
    validation: dict[str, Any] = field(default_factory=dict)   # the gate's summary; {} without a report
    sources: list[dict[str, Any]] = field(default_factory=list)
    status: str = ""                              # of the run report ("succeeded"), "" without one


QUEUED = "queued in the lineage outbox"


def is_queued(marker: str) -> bool:
    """Whether a store's answer means "not sent yet, waiting in the outbox"."""
    return marker.startswith(QUEUED)


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
        tmp.write_text(json.dumps(redact(asdict(record), by_key=False), indent=2) + "\n")
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


class BothLineage:
    """The run log always, and the Model Registry: the registry's answer is returned."""

    def __init__(self, log: LineageStore, registry: LineageStore) -> None:
        self.log, self.registry = log, registry

    def record_feature_set(self, record: FeatureSetRecord) -> str:
        self.log.record_feature_set(record)
        return self.registry.record_feature_set(record)

    def record_training_set(self, record: TrainingSetRecord) -> str:
        self.log.record_training_set(record)
        return self.registry.record_training_set(record)
