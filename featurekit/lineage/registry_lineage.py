"""Lineage as DataSet artifacts in the Kubeflow Model Registry, with an outbox for bad days.

A feature set (one view materialized from one Delta table version for one window) becomes a
``dataset-artifact``:

- ``uri`` = ``<Delta path>@v<version>``, ``digest`` = the version, ``sourceType`` = ``delta``;
- ``source`` = ``featurekit://jobs/<job>/runs/<run id>``: the job run whose commit made that
  table version (:class:`Producer`, found by the caller from the commit's ``userMetadata``);
- ``schema`` = JSON of the view's fields, ``profile`` = JSON of that run's validation summary;
- ``customProperties``: Feast project, view, features, window, rows, keys, online store, spec
  fingerprint, materialization run id, the producing run and its sources (counts and versions
  as strings: they may outgrow the API's 32-bit ``int_value``); for ``materialize
  --incremental``, ``delta_version_from``: the keys written are those changed in versions
  ``delta_version_from``..``delta_version``; ``newest_event``: the newest event time the view's
  keys held in the online store after the run (left out when it held none, and by older featurekits).

A training set becomes one too, naming the feature data it read in ``feature_sets``: for each
view, an offline feature set (:func:`offline_feature_set_artifact`), the view's Delta table at
the version read (``uri`` ``<Delta path>@v<version>``, the producing job run as for a feature
set, no window, no online store), made with the training set or found when another training
set read the same version. A materialization of that version, if any, is a record of what went
online, not of what the training set read, and is not named. (A training-set record made before
offline feature sets existed, replayed from the outbox or the run log, names the newest
materialized feature set of each view at the version read, as it did then.)

Every artifact has a deterministic ``externalId`` (:func:`feature_set_external_id`,
:func:`offline_feature_set_external_id`, :func:`training_set_external_id`), unique in the
registry: recording twice, or replaying the outbox after a half-finished attempt, finds the
first artifact instead of making a second.

Outbox: when the registry is unreachable or answers 5xx after the client's retries, the record
(with the producer already resolved, so a replay says what was true when it was recorded) is
written as one JSON file to the outbox folder and the caller gets a marker (:func:`is_queued`);
later records of the same store go straight to the outbox. A record the registry refuses for
want of a valid token (401/403) is queued too before the error is raised, so that fixing the
token and flushing sends it. :meth:`RegistryLineage.flush` replays the files, feature sets
first, deleting each one only after the registry holds it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from featurekit.lineage.client import (
    DATASET,
    RegistryAuthError,
    RegistryClient,
    RegistryError,
    RegistryUnavailable,
    tagged,
)
from featurekit.lineage.records import QUEUED, FeatureSetRecord, OfflineFeatureSetRecord, Producer, TrainingSetRecord
from featurekit.redaction import redact

FEATURE_SET, OFFLINE_FEATURE_SET, TRAINING_SET = "feature_set", "offline_feature_set", "training_set"
KIND = "featurekit_kind"           # the customProperty telling featurekit's artifacts apart
MAX_EXTERNAL_ID = 255              # MLMD keeps external ids in a VARCHAR(255)
OUTBOX_FORMAT = 1


def _external_id(kind: str, parts: list[str]) -> str:
    text = ":".join(["featurekit", kind, *parts])
    if len(text) <= MAX_EXTERNAL_ID:
        return text
    return f"featurekit:{kind}:sha256:{hashlib.sha256(text.encode()).hexdigest()}"


def feature_set_external_id(record: FeatureSetRecord) -> str:
    """``featurekit:feature-set:<project>:<view>:<Delta version>:<window start>:<window end>``
    (hashed past 255 characters): the same data in the same window is the same feature set."""
    return _external_id("feature-set", [record.feast_project, record.feature_view, str(record.delta_version),
                                        record.window_start, record.window_end])


def offline_feature_set_external_id(record: OfflineFeatureSetRecord) -> str:
    """``featurekit:offline-feature-set:<project>:<view>:<Delta version>:<Delta path>`` (hashed past
    255 characters): the same table version is the same feature data, whichever training set read it."""
    return _external_id("offline-feature-set", [record.feast_project, record.feature_view,
                                                str(record.delta_version), record.delta_path])


def training_set_external_id(record: TrainingSetRecord) -> str:
    """``featurekit:training-set:<project>:<run id>``: one artifact per training-set build."""
    return training_set_id(record.feast_project, record.run_id)


def training_set_id(feast_project: str, run_id: str) -> str:
    return _external_id("training-set", [feast_project, run_id])


def job_source(job: str, run_id: str) -> str:
    return f"featurekit://jobs/{job}/runs/{run_id}" if run_id else f"featurekit://jobs/{job}"


def feature_set_artifact(record: FeatureSetRecord, producer: Producer | None) -> dict[str, Any]:
    """The DataSet artifact of a feature set (see the module doc)."""
    producer = producer or Producer(job=record.job, run_id="", delta_version=record.delta_version)
    schema = record.view_schema or {"features": record.features}
    return {
        "artifactType": DATASET,
        "name": f"{record.feast_project}.{record.feature_view}@v{record.delta_version}",
        "description": (f"Feature view {record.feature_view} (Feast project {record.feast_project}) from Delta "
                        f"{record.delta_path} version {record.delta_version}, materialized into "
                        f"{record.online_store} for {record.window_start} .. {record.window_end}"
                        + ("" if record.delta_version_from is None else
                           f" (incremental: the keys changed in versions {record.delta_version_from}.."
                           f"{record.delta_version})")),
        "externalId": feature_set_external_id(record),
        "uri": f"{record.delta_path}@v{record.delta_version}",
        "digest": str(record.delta_version),
        "sourceType": "delta",
        "source": job_source(producer.job or record.job, producer.run_id),
        "schema": json.dumps(schema, sort_keys=True),
        "profile": json.dumps(producer.validation, sort_keys=True),
        "state": "LIVE",
        "customProperties": tagged({
            KIND: FEATURE_SET,
            "feast_project": record.feast_project,
            "feast_view": record.feature_view,
            "features": record.features,
            "window_start": record.window_start,
            "window_end": record.window_end,
            "rows": str(record.rows),
            "keys": str(record.keys),
            "online_store": record.online_store,
            "spec_fingerprint": record.spec_fingerprint,
            "materialization_run_id": record.run_id,
            "delta_path": record.delta_path,
            "delta_version": str(record.delta_version),
            "delta_version_from": None if record.delta_version_from is None else str(record.delta_version_from),
            "newest_event": record.newest_event,
            **_producer_properties(producer, record.job),
            "recorded_at": record.recorded_at,
        }),
    }


def _producer_properties(producer: Producer, job: str) -> dict[str, Any]:
    """The customProperties naming the job run that made a Delta version (empty values left out)."""
    return {
        "job": producer.job or job,
        "job_run_id": producer.run_id or None,
        "job_delta_version": str(producer.delta_version) if producer.run_id else None,
        "job_operation": producer.operation or None,
        "job_status": producer.status or None,
        "job_sources": producer.sources or None,
    }


def offline_feature_set_artifact(record: OfflineFeatureSetRecord, producer: Producer | None) -> dict[str, Any]:
    """The DataSet artifact of a view's Delta table at the version a training set read (module doc)."""
    producer = producer or Producer(job=record.job, run_id="", delta_version=record.delta_version)
    features = list((record.view_schema or {}).get("features") or {})
    return {
        "artifactType": DATASET,
        "name": f"{record.feast_project}.{record.feature_view}@v{record.delta_version} offline",
        "description": (f"Feature view {record.feature_view} (Feast project {record.feast_project}) as read "
                        f"offline: Delta {record.delta_path} version {record.delta_version}"),
        "externalId": offline_feature_set_external_id(record),
        "uri": f"{record.delta_path}@v{record.delta_version}",
        "digest": str(record.delta_version),
        "sourceType": "delta",
        "source": job_source(producer.job or record.job, producer.run_id),
        "schema": json.dumps(record.view_schema, sort_keys=True),
        "profile": json.dumps(producer.validation, sort_keys=True),
        "state": "LIVE",
        "customProperties": tagged({
            KIND: OFFLINE_FEATURE_SET,
            "feast_project": record.feast_project,
            "feast_view": record.feature_view,
            "features": features,
            "spec_fingerprint": record.spec_fingerprint,
            "delta_path": record.delta_path,
            "delta_version": str(record.delta_version),
            **_producer_properties(producer, record.job),
            "recorded_at": record.recorded_at,
        }),
    }


def training_set_artifact(record: TrainingSetRecord, feature_sets: dict[str, dict[str, Any] | None]) -> dict[str, Any]:
    """The DataSet artifact of a training set; ``feature_sets``: view -> the artifact of the feature
    data read (its offline feature set; for an older record, the materialized feature set at the
    Delta version read, None when there was none)."""
    paths = {s.feature_view: s.delta_path for s in record.offline_feature_sets}
    refs: list[dict[str, Any]] = []
    for view, version in record.feature_views.items():
        found = feature_sets.get(view)
        refs.append({"view": view, "delta_version": version, **({"delta_path": paths[view]} if view in paths else {}),
                     "id": found["id"] if found else None, "externalId": found.get("externalId") if found else None})
    return {
        "artifactType": DATASET,
        "name": f"{record.feast_project}.{record.feature_service} training set {record.run_id}",
        "description": (f"Training set of feature service {record.feature_service} (Feast project "
                        f"{record.feast_project}): {record.rows:,} rows, Delta {record.output_path} "
                        f"version {record.output_version}"),
        "externalId": training_set_external_id(record),
        "uri": f"{record.output_path}@v{record.output_version}",
        "digest": str(record.output_version),
        "sourceType": "delta",
        "source": f"featurekit://training-sets/{record.feature_service}/runs/{record.run_id}",
        "schema": json.dumps({"features": record.features}, sort_keys=True),
        "profile": json.dumps({"rows": record.rows, "spine": record.spine_path,
                               "spine_version": record.spine_version, "as_of": record.as_of,
                               "start": record.start, "end": record.end}, sort_keys=True),
        "state": "LIVE",
        "customProperties": tagged({
            KIND: TRAINING_SET,
            "feast_project": record.feast_project,
            "feature_service": record.feature_service,
            "feature_views": {view: str(version) for view, version in record.feature_views.items()},
            "features": record.features,
            "feature_sets": refs,
            "feature_set_ids": ",".join(str(r["id"]) for r in refs if r["id"]) or None,
            "spine_path": record.spine_path,
            "spine_version": None if record.spine_version is None else str(record.spine_version),
            "as_of": record.as_of,
            "start": record.start,
            "end": record.end,
            "rows": str(record.rows),
            "delta_path": record.output_path,
            "delta_version": str(record.output_version),
            "training_set_run_id": record.run_id,
            "recorded_at": record.recorded_at,
        }),
    }


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def feature_set_query(project: str, view: str, delta_version: int | None = None) -> str:
    """The ``filterQuery`` of a view's feature-set artifacts (at one Delta version, if given)."""
    terms = [f"{KIND}.string_value = {_quoted(FEATURE_SET)}", f"feast_project.string_value = {_quoted(project)}",
             f"feast_view.string_value = {_quoted(view)}"]
    if delta_version is not None:
        terms.append(f"delta_version.string_value = {_quoted(str(delta_version))}")
    return " AND ".join(terms)


def latest_feature_set(client: RegistryClient, project: str, view: str,
                       delta_version: int | None = None) -> dict[str, Any] | None:
    """The feature-set artifact of ``view`` recorded last (at ``delta_version``, if given)."""
    found = client.artifacts(feature_set_query(project, view, delta_version), limit=1)
    return found[0] if found else None


@dataclass
class FlushResult:
    sent: list[str] = field(default_factory=list)        # artifact URLs, one per outbox file sent
    created: int = 0                                     # of those, artifacts this flush created
    failed: list[str] = field(default_factory=list)      # "<file>: <why>" (the files stay)
    remaining: int = 0                                   # files still in the outbox


class RegistryLineage:
    """:class:`~featurekit.lineage.records.LineageStore` over the Model Registry (module doc).

    ``producer`` finds the job run behind the Delta version of a feature set or an offline
    feature set (the caller knows Delta and the run reports; this adapter only talks to the
    registry).
    """

    def __init__(self, client: RegistryClient, outbox: Path,
                 producer: Callable[[FeatureSetRecord | OfflineFeatureSetRecord], Producer | None] | None = None) -> None:
        self.client, self.outbox, self._producer = client, Path(outbox), producer
        self._down = ""   # why the registry was unreachable: later records go straight to the outbox

    # -- LineageStore ----------------------------------------------------------------------

    def record_feature_set(self, record: FeatureSetRecord) -> str:
        producer = self._producer(record) if self._producer else None
        return self._record(self._entry(FEATURE_SET, feature_set_external_id(record), asdict(record), producer))

    def record_training_set(self, record: TrainingSetRecord) -> str:
        producers = {s.feature_view: self._producer(s) for s in record.offline_feature_sets} if self._producer else {}
        return self._record(self._entry(TRAINING_SET, training_set_external_id(record), asdict(record), None,
                                        producers))

    # -- sending ---------------------------------------------------------------------------

    @staticmethod
    def _entry(kind: str, external_id: str, record: dict[str, Any], producer: Producer | None,
               producers: dict[str, Producer | None] | None = None) -> dict[str, Any]:
        """An outbox entry; ``producers``: a training set's, of each view's offline feature set."""
        entry = {"format": OUTBOX_FORMAT, "kind": kind, "external_id": external_id, "record": record,
                 "producer": asdict(producer) if producer else None}
        if producers:
            entry["producers"] = {view: asdict(found) if found else None for view, found in producers.items()}
        return entry

    def _record(self, entry: dict[str, Any]) -> str:
        if not self._down:
            try:
                artifact, _ = self.send(entry)
                return self.client.api_url(f"/artifacts/{artifact['id']}")
            except RegistryUnavailable as exc:
                self._down = str(exc)
            except RegistryAuthError as exc:   # kept for a flush once the token is right, then said
                path = self._queue(entry, exc.message)
                raise RegistryAuthError(f"{exc.message}; the record waits in the lineage outbox ({path}): "
                                        "`featurekit lineage flush` sends it once the token is right",
                                        exc.status, exc.token_env) from None
        path = self._queue(entry, self._down)
        return f"{QUEUED} ({path}): {self._down}; `featurekit lineage flush` sends it"

    def send(self, entry: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """Create (or find, by externalId) the artifact of an outbox entry: (artifact, created)."""
        fields = {k: v for k, v in entry["record"].items() if k != "kind"}
        if entry["kind"] == FEATURE_SET:
            producer = Producer(**entry["producer"]) if entry.get("producer") else None
            return self.client.artifact(feature_set_artifact(FeatureSetRecord(**fields), producer))
        if entry["kind"] == TRAINING_SET:
            record = TrainingSetRecord(**fields)
            existing = self.client.find_artifact(training_set_external_id(record))
            if existing is not None:
                return existing, False
            sets: dict[str, dict[str, Any] | None]
            if record.offline_feature_sets:
                producers = entry.get("producers") or {}
                sets = {s.feature_view: self.client.artifact(offline_feature_set_artifact(
                            s, Producer(**producers[s.feature_view]) if producers.get(s.feature_view) else None))[0]
                        for s in record.offline_feature_sets}
            else:   # recorded before training sets named their offline feature sets: as it was then
                sets = {view: latest_feature_set(self.client, record.feast_project, view, version)
                        for view, version in record.feature_views.items()}
            return self.client.artifact(training_set_artifact(record, sets))
        raise ValueError(f"unknown lineage record kind {entry['kind']!r}")

    # -- the outbox ------------------------------------------------------------------------

    def _queue(self, entry: dict[str, Any], reason: str) -> Path:
        """Write ``entry`` to the outbox (one file per externalId: queueing again replaces it)."""
        self.outbox.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256(entry["external_id"].encode()).hexdigest()[:16]
        path = self.outbox / f"{entry['kind']}-{digest}.json"
        queued = redact({**entry, "queued_at": datetime.now(UTC).isoformat(), "reason": reason}, by_key=False)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(queued, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        tmp.replace(path)   # a flush never reads half a file
        return path

    def queued(self) -> list[Path]:
        """The outbox files, in replay order: feature sets first (training sets name them), oldest first."""
        files = []
        for path in self.outbox.glob("*.json") if self.outbox.is_dir() else []:
            try:
                entry = json.loads(path.read_text(encoding="utf-8"))
                order = (entry.get("kind") != FEATURE_SET, str(entry.get("queued_at", "")), path.name)
            except (OSError, ValueError):
                order = (True, "", path.name)
            files.append((order, path))
        return [path for _, path in sorted(files)]

    def flush(self) -> FlushResult:
        """Send every outbox file; exactly once per record through its externalId.

        A file is deleted only once the registry holds its artifact. When the registry is
        unreachable the flush stops (the rest waits); a record the registry refuses stays, with
        the reason in ``failed``, and the flush goes on.
        """
        result = FlushResult()
        for path in self.queued():
            try:
                entry = json.loads(path.read_text(encoding="utf-8"))
            except FileNotFoundError:
                continue   # sent by a concurrent flush
            except (OSError, ValueError) as exc:
                result.failed.append(f"{path}: not a readable outbox entry ({exc})")
                continue
            try:
                artifact, created = self.send(entry)
            except RegistryUnavailable as exc:
                result.failed.append(f"{path}: {exc}")
                break
            except (RegistryError, KeyError, TypeError, ValueError) as exc:
                result.failed.append(f"{path}: {exc}")
                continue
            path.unlink(missing_ok=True)
            result.sent.append(self.client.api_url(f"/artifacts/{artifact['id']}"))
            result.created += int(created)
        result.remaining = len(self.queued())
        return result
