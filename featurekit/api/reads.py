"""What the metadata API answers, read from the project's files on every request: job specs,
run reports and the run log's lineage records. Plain functions over a project and its settings;
an unknown or ambiguous name is an :class:`ApiError` carrying its HTTP status.

A project of a hundred jobs and thousands of runs is read on every request, so what is costly to
read is kept between requests and read again only when its file changes (its size or
modification time): parsed job files, lineage records, a job's Spark operator manifest, which run
made a Delta table version and a table's current version (local tables; a table on object storage
is read each time, since nothing cheap says it changed).

Nothing secret leaves here: everything returned (specs, reports, records, messages) goes through
:mod:`featurekit.redaction` (values under secret-looking keys, passwords in URLs and connection
strings, the values of secret environment variables).
"""

from __future__ import annotations

import glob
import json
import os
from pathlib import Path
from typing import Any

from featurekit.api.models import (
    FeaturesSummary,
    FeatureSetDetail,
    FeatureSetSummary,
    JobDetail,
    JobSummary,
    Materialization,
    OutputSummary,
    RunSummary,
    TrainingSetUse,
)
from featurekit.config import Project, Settings
from featurekit.errors import ConfigError, FeaturekitError, Problem
from featurekit.pipeline.report import list_runs, settle
from featurekit.redaction import redact, redact_text
from featurekit.spec.loader import LoadedJob, load_jobs
from featurekit.yamlconf.names import did_you_mean

RECENT_RUNS = 10
# The run log keeps lineage records next to the jobs' report folders.
_LINEAGE_FOLDER = "lineage"


class ApiError(FeaturekitError):
    """An answer other than 200: the HTTP status and one readable line."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status, self.detail = status, detail


# -- jobs -------------------------------------------------------------------------------------


_PARSED: dict[tuple[Any, ...], tuple[list[LoadedJob], list[Problem]]] = {}
_PARSED_MAX = 4096   # file versions kept; past it the cache starts over (as every cache here)


def _stamp(path: Path | str) -> tuple[int, int] | None:
    """(modification time in ns, size) of a file or folder; None when it cannot be read."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size


def _keep(cache: dict[Any, Any], key: Any, value: Any) -> Any:
    if len(cache) >= _PARSED_MAX:
        cache.clear()
    cache[key] = value
    return value


def _load_jobs(paths: list[Path], variables: dict[str, str], base: Path) -> tuple[list[LoadedJob], list[Problem]]:
    """:func:`load_jobs`, each file parsed once per (version of the file, variables). A spec's
    ``schema_model`` (a Python class) is imported when parsed, so a change to it alone shows after the
    job file changes or the process restarts."""
    loaded: list[LoadedJob] = []
    problems: list[Problem] = []
    given = tuple(sorted(variables.items()))
    for path in paths:
        try:
            stat = path.stat()
        except OSError:
            found = load_jobs([path], variables, base=base)      # says what is wrong with it
        else:
            # the path as given, not resolved: resolving a hundred paths costs more than the lookups
            key = (os.path.abspath(path), stat.st_mtime_ns, stat.st_size, given, str(base))
            found = _PARSED.get(key) or _keep(_PARSED, key, load_jobs([path], variables, base=base))
        loaded += found[0]
        problems += found[1]
    return loaded, problems


def jobs(project: Project, settings: Settings) -> tuple[list[LoadedJob], list[str]]:
    """The jobs that load, and one line per problem of those that do not."""
    loaded, problems = _load_jobs(project.job_files(), settings.vars, project.root)
    return loaded, [redact_text(str(p)) for p in problems]


def job_summary(job: LoadedJob) -> JobSummary:
    spec = job.spec
    features = None
    if spec.features is not None:
        f = spec.features
        features = FeaturesSummary(entity=f.entity, join_keys=list(f.join_keys), timestamp=f.timestamp, ttl=str(f.ttl),
                                   online=f.online, services=[job.name, *(s for s in f.services if s != job.name)])
    output = OutputSummary(path=redact_text(spec.output.path), mode=spec.output.mode, keys=list(spec.output.keys),
                           partition_by=list(spec.output.partition_by))
    return JobSummary(name=job.name, description=spec.description, owner=spec.owner, file=job.shown_path,
                      fingerprint=job.fingerprint, output=output, features=features)


def job_detail(project: Project, settings: Settings, name: str) -> JobDetail:
    # a job's name is its file's name (the spec checks it), so only that file is parsed
    files = {p.stem: p for p in project.job_files()}
    if name not in files:
        raise ApiError(404, f"unknown job {name!r}" + _hint(name, sorted(files), "jobs"))
    loaded, problems = _load_jobs([files[name]], settings.vars, project.root)
    if not loaded:
        mine = [redact_text(str(p)) for p in problems]
        raise ApiError(422, f"job {name!r} does not load: " + "; ".join(mine[:5])
                       + (f" (and {len(mine) - 5} more)" if len(mine) > 5 else ""))
    job = loaded[0]
    spec = job.spec.model_dump(mode="json", by_alias=True, exclude_none=True)
    recent = [run_summary(r) for r in _runs(settings.runs_dir, name, RECENT_RUNS)]
    return JobDetail(**job_summary(job).model_dump(), spec=redact(spec), recent_runs=recent)


_MANIFESTS: dict[tuple[Any, ...], tuple[str, str] | FeaturekitError] = {}


def job_manifest(project: Project, settings: Settings, name: str) -> tuple[str, str]:
    """(environment, YAML): the SparkApplication of job ``name`` as ``render sparkapp`` writes it, for
    ``settings``' environment or, when that one has no ``kubernetes:`` settings (a local env), for the
    first environment that has them. A :class:`ConfigError` when none can render it.

    Rendered again only when what it is made of changes: the job file, a file under ``conf/``, or
    the environment variables (settings and masking read them)."""
    try:
        job_file = project.job_path(name)
    except FeaturekitError:
        job_file = project.jobs_dir / f"{name}.yaml"
    conf = sorted((str(p), _stamp(p)) for p in project.conf_dir.rglob("*"))
    key = (str(project.root), settings.env, settings.model_dump_json(), name, str(job_file), _stamp(job_file),
           tuple(conf), tuple(sorted(os.environ.items())))
    found = _MANIFESTS.get(key)
    if found is None:
        try:
            found = _render_manifest(project, settings, name)
        except FeaturekitError as exc:
            found = exc
        _keep(_MANIFESTS, key, found)
    if isinstance(found, FeaturekitError):
        raise found.with_traceback(None)      # the same error each time, not a traceback that grows
    return found


def _render_manifest(project: Project, settings: Settings, name: str) -> tuple[str, str]:
    from featurekit.config import load_settings
    from featurekit.deploy.sparkapp import kubernetes_of, render_jobs, to_yaml
    from featurekit.spec.loader import load_job

    target = settings
    if settings.kubernetes is None:
        for env in project.environments():
            try:
                other = load_settings(project, env)
            except FeaturekitError:
                continue
            if other.kubernetes is not None:
                target = other
                break
    kubernetes_of(project, target)           # the error names what to add when no env has them
    path = project.job_path(name)
    job = load_job(path, target.vars, shown_as=project.shown(path))
    return target.env, redact_text(to_yaml(render_jobs(project, target, [job])))


def _hint(word: str, known: list[str], what: str) -> str:
    """`` — did you mean 'x'?`` when one is close, else the known names."""
    close = did_you_mean(word, known)
    if close:
        return close
    return f" ({what}: {', '.join(known)})" if known else f" (no {what})"


# -- runs -------------------------------------------------------------------------------------


def _runs(runs_dir: Path, job: str | None, limit: int) -> list[dict[str, Any]]:
    """Run reports, newest first, secrets masked; the run log's lineage records are not runs."""
    if job is not None and not (runs_dir / job).is_dir():
        return []
    try:
        return list_runs(runs_dir, job, limit)
    except ConfigError:
        return []


def run_reports(settings: Settings, job: str, limit: int) -> list[dict[str, Any]]:
    """The ``limit`` newest reports of ``job`` as written (secrets masked), for what a summary leaves
    out: the steps' counts, the gate, the durations."""
    return _runs(settings.runs_dir, job, limit)           # list_runs masks them


def run_summary(report: dict[str, Any]) -> RunSummary:
    sources = report.get("sources") or []
    read = [s["rows_read"] for s in sources if isinstance(s, dict) and isinstance(s.get("rows_read"), int)]
    error = str(report.get("error") or "").strip()
    return RunSummary(
        run_id=str(report.get("run_id", "")), job=str(report.get("job", "")), status=str(report.get("status", "")),
        env=str(report.get("env", "")), started_at=str(report.get("started_at", "")),
        fingerprint=str(report.get("fingerprint", "")),
        rows_read=sum(read) if read else None,
        rows_written=report.get("rows_written"), rows_quarantined=report.get("rows_quarantined"),
        table_version=report.get("table_version"), exit_code=int(report.get("exit_code") or 0),
        error=redact_text(error.splitlines()[0]) if error else "",
    )


def runs(project: Project, settings: Settings, job: str | None, limit: int) -> list[RunSummary]:
    """Recent runs (of ``job``); a job neither in ``jobs/`` nor in the run log is a 404."""
    runs_dir = settings.runs_dir
    if job is not None:
        known = {p.stem for p in project.job_files()}
        if runs_dir.is_dir():
            known |= {p.name for p in runs_dir.iterdir() if p.is_dir() and p.name != _LINEAGE_FOLDER}
        if job not in known:
            raise ApiError(404, f"unknown job {job!r}" + _hint(job, sorted(known), "jobs"))
    return [run_summary(r) for r in _runs(runs_dir, job, limit)]


def run_report(settings: Settings, run_id: str) -> dict[str, Any]:
    """The report of a run by its id or a unique prefix of it (as ``featurekit runs show``)."""
    runs_dir = settings.runs_dir
    matches = [p for p in sorted(runs_dir.glob(f"*/{glob.escape(run_id)}*.json"))
               if p.parent.name != _LINEAGE_FOLDER] if run_id else []
    exact = [p for p in matches if p.stem == run_id]
    if len(exact) == 1:
        matches = exact
    if not matches:
        raise ApiError(404, f"unknown run {run_id!r}: no run id starts with it")
    if len(matches) > 1:
        shown = ", ".join(p.stem for p in matches[:5]) + (", ..." if len(matches) > 5 else "")
        raise ApiError(409, f"run id {run_id!r} is ambiguous: {len(matches)} runs start with it ({shown}); "
                            "give more of it")
    try:
        report = json.loads(matches[0].read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ApiError(500, f"the report of run {matches[0].stem} cannot be read: {type(exc).__name__}") from None
    return redact(settle(report, matches[0]) if isinstance(report, dict) else report)


QUARANTINE_EXAMPLES = 20


def quarantine_examples(settings: Settings, report: dict[str, Any],
                        limit: int = QUARANTINE_EXAMPLES) -> tuple[list[dict[str, Any]], str]:
    """(rows, problem): up to ``limit`` rows the run put in its job's quarantine table, each with its
    ``reasons`` (``check column: message``) and its values (secrets masked), read with delta-rs at the
    version the run committed; no rows and one line saying why when the table cannot be read."""
    import pyarrow.compute as pc
    from deltalake import DeltaTable

    from featurekit.sinks.quarantine import AT, ERRORS, HASH, RAW, RUN_ID, SOURCE

    held = report.get("quarantine") or {}
    if not held.get("path") or not report.get("run_id"):
        return [], ""
    try:
        table = DeltaTable(str(held["path"]), version=held.get("version"),
                           storage_options=settings.storage_options or None)
        found = table.to_pyarrow_dataset().head(limit, filter=pc.field(RUN_ID) == str(report["run_id"])).to_pylist()
    except Exception as exc:  # gone, vacuumed, or storage that cannot be read from here
        return [], redact_text(f"the quarantine table {held['path']} cannot be read: {type(exc).__name__}")
    rows = []
    for row in found:
        reasons = [f"{e.get('check')} {e.get('column')}: {e.get('message')}" for e in row.get(ERRORS) or []
                   if isinstance(e, dict)]
        values = {k: v for k, v in row.items() if k not in (ERRORS, HASH, RUN_ID, AT, SOURCE, RAW)}
        if row.get(RAW) is not None:          # a source record that did not parse: its text is the row
            values = {"source": row.get(SOURCE), "record": row.get(RAW)}
        rows.append({"reasons": reasons, "values": redact(values)})
    return rows, ""


# -- feature sets -----------------------------------------------------------------------------


_RECORDS: dict[tuple[str, int, int], dict[str, Any] | None] = {}


def lineage_records(runs_dir: Path) -> list[dict[str, Any]]:
    """The run log's lineage records (as :meth:`RunLogLineage.records`, oldest first), each file
    read again only when it changes; an unreadable file is left out. The dicts are shared between
    requests: read them, never change them."""
    from featurekit.lineage import RunLogLineage

    folder = RunLogLineage(runs_dir).folder
    try:
        entries = [e for e in os.scandir(folder) if e.name.endswith(".json")]
    except OSError:
        return []
    found = []
    for entry in entries:
        try:
            stat = entry.stat()
        except OSError:
            continue
        key = (entry.path, stat.st_mtime_ns, stat.st_size)
        if key in _RECORDS:
            record = _RECORDS[key]
        else:
            try:
                record = json.loads(Path(entry.path).read_text(encoding="utf-8"))
            except (OSError, ValueError):
                record = None
            record = _keep(_RECORDS, key, record if isinstance(record, dict) and "recorded_at" in record else None)
        if record is not None:
            found.append(record)
    return sorted(found, key=lambda r: str(r["recorded_at"]))


def _local_log(delta_path: str) -> Path | None:
    """The ``_delta_log`` folder of a table on a local file system; None for object storage."""
    if "://" in delta_path and not delta_path.startswith("file://"):
        return None
    return Path(delta_path.removeprefix("file://")) / "_delta_log"


_PRODUCERS: dict[tuple[Any, ...], str] = {}


def producer_runs(settings: Settings, delta_path: str, versions: list[int], job: str) -> dict[int, str]:
    """By version of the table, the id of the run whose commit made it ("" when none says so). A
    commit never changes, so a local table's answer is kept while that version's commit file stays
    the same (a table deleted and written again has new ones); the log is read once for the rest."""
    from featurekit.pipeline.lineage import find_producers

    log = _local_log(delta_path)
    found: dict[int, str] = {}
    keys: dict[int, tuple[Any, ...]] = {}
    for version in versions:
        stamp = _stamp(log / f"{version:020d}.json") if log is not None else None
        if stamp is not None:
            keys[version] = key = (str(settings.runs_dir), delta_path, version, job, stamp)
            if key in _PRODUCERS:
                found[version] = _PRODUCERS[key]
    missing = [v for v in versions if v not in found]
    for version, producer in find_producers(settings.runs_dir, delta_path, missing, job,
                                            settings.storage_options).items():
        found[version] = producer.run_id
        if version in keys:
            _keep(_PRODUCERS, keys[version], producer.run_id)
    return found


_TABLE_VERSIONS: dict[tuple[Any, ...], int | None] = {}


class _Views:
    """The views the jobs declare and those the run log has records of, in one place."""

    def __init__(self, project: Project, settings: Settings) -> None:
        self.settings = settings
        self.loaded, self.problems = jobs(project, settings)
        loaded = self.loaded
        self.declared = {job.name: job for job in loaded if job.spec.features is not None}
        feast_project = settings.feast.project
        records = [r for r in lineage_records(settings.runs_dir) if r.get("feast_project") == feast_project]
        records.sort(key=lambda r: str(r.get("recorded_at", "")), reverse=True)
        self.feature_sets: dict[str, list[dict[str, Any]]] = {}
        self.training_sets = [r for r in records if r.get("kind") == "training_set"]
        for record in records:
            if record.get("kind") == "feature_set":
                self.feature_sets.setdefault(str(record["feature_view"]), []).append(record)

    @property
    def names(self) -> list[str]:
        return sorted({*self.declared, *self.feature_sets})

    def summary(self, view: str) -> FeatureSetSummary:
        job = self.declared.get(view)
        found = self.feature_sets.get(view, [])
        latest = found[0] if found else {}
        schema = latest.get("view_schema") or {}
        features = job.spec.features if job is not None else None
        return FeatureSetSummary(
            view=view, job=job.name if job is not None else str(latest.get("job", "")),
            feast_project=self.settings.feast.project, declared=job is not None,
            entity=features.entity if features is not None else None,
            join_keys=list(features.join_keys) if features is not None else list(schema.get("join_keys") or []),
            online=features.online if features is not None else None,
            ttl=features.ttl if features is not None else None,
            table_path=redact_text(job.spec.output.path) if job is not None else latest.get("delta_path"),
            delta_versions=sorted({int(r["delta_version"]) for r in found}, reverse=True),
            materialization_count=len(found), latest=materialization(latest) if latest else None,
        )

    def detail(self, view: str) -> FeatureSetDetail:
        if view not in self.names:
            raise ApiError(404, f"unknown feature view {view!r}" + _hint(view, self.names, "feature views"))
        summary = self.summary(view)
        records = self.feature_sets.get(view, [])
        tables: dict[tuple[str, str], set[int]] = {}
        for record in records:
            tables.setdefault((str(record["delta_path"]), str(record.get("job", view))), set()).add(
                int(record["delta_version"]))
        producers = {(path, job, version): run_id for (path, job), versions in tables.items()
                     for version, run_id in producer_runs(self.settings, path, sorted(versions), job).items()}
        materializations = [materialization(r, producers[(str(r["delta_path"]), str(r.get("job", view)),
                                                          int(r["delta_version"]))] or None) for r in records]
        uses = [TrainingSetUse(run_id=r["run_id"], feature_service=r["feature_service"],
                               delta_version=int(r["feature_views"][view]), output_path=redact_text(r["output_path"]),
                               output_version=int(r["output_version"]), rows=int(r["rows"]),
                               recorded_at=str(r["recorded_at"]))
                for r in self.training_sets if view in (r.get("feature_views") or {})]
        return FeatureSetDetail(**summary.model_dump(exclude={"latest"}), latest=summary.latest,
                                table_version=self.table_version(view), materializations=materializations,
                                training_sets=uses)

    def schema(self, view: str) -> dict[str, str]:
        """The view's features and their Feast types as last materialized (types unknown: empty)."""
        found = self.feature_sets.get(view)
        if not found:
            return {}
        fields = (found[0].get("view_schema") or {}).get("features")
        if isinstance(fields, dict):
            return {str(k): str(v) for k, v in fields.items()}
        return {str(name): "" for name in found[0].get("features") or []}

    def table_version(self, view: str) -> int | None:
        """The current version of the view's table; a local table's is read again only when its
        log's listing changes (a commit adds a file to it)."""
        from featurekit.feast.definitions import table_schema

        job = self.declared.get(view)
        if job is None:
            return None
        log = _local_log(job.spec.output.path)
        key = (job.spec.output.path, _stamp(log)) if log is not None else None
        if key is not None and key[1] is not None and key in _TABLE_VERSIONS:
            return _TABLE_VERSIONS[key]
        try:
            version: int | None = table_schema(job, self.settings)[0]
        except Exception:  # not written yet, or storage that cannot be read from here
            version = None
        if key is not None and key[1] is not None:
            _keep(_TABLE_VERSIONS, key, version)
        return version


def materialization(record: dict[str, Any], job_run_id: str | None = None) -> Materialization:
    fields = {k: record[k] for k in Materialization.model_fields if k in record}
    return Materialization(**redact(fields), job_run_id=job_run_id)


def feature_sets(project: Project, settings: Settings) -> tuple[list[FeatureSetSummary], list[str]]:
    views = _Views(project, settings)
    return [views.summary(name) for name in views.names], views.problems


def feature_view_names(project: Project, settings: Settings) -> list[str]:
    """The names of the views the jobs declare or the run log has records of (no summary made)."""
    return _Views(project, settings).names


def prime(project: Project, settings: Settings) -> list[str]:
    """Read ahead what is kept between requests (every job file, the run log's lineage records,
    each view's table version and the producers of its materializations) and the libraries the
    pages import, so the first page a server is asked for does not pay for it: the views read."""
    import pyarrow.compute  # noqa: F401  (a run page's quarantine rows)

    views = _Views(project, settings)
    for name in views.names:
        views.detail(name)
    return views.names


def feature_set(project: Project, settings: Settings, view: str) -> FeatureSetDetail:
    return _Views(project, settings).detail(view)


def catalog(project: Project, settings: Settings) -> tuple[list[JobSummary], list[FeatureSetSummary],
                                                           dict[str, dict[str, str]], list[str]]:
    """Jobs, feature views, each view's features with their types (as last materialized) and the
    problems of job files that do not load: what the UI's index lists, from one reading of the files."""
    views = _Views(project, settings)
    summaries = [views.summary(name) for name in views.names]
    return ([job_summary(job) for job in views.loaded], summaries, {v: views.schema(v) for v in views.names},
            views.problems)


def feature_set_page(project: Project, settings: Settings, view: str) -> tuple[FeatureSetDetail, dict[str, str],
                                                                        dict[str, LoadedJob]]:
    """A view's detail, its features and types, and the jobs that declare feature views (for the
    services that include it), from one reading of the files.

    Types are those of the last materialization (Feast types), else the columns of the view's Delta
    table (Delta types) other than its join keys and timestamp; empty when neither can be read."""
    from featurekit.feast.definitions import table_schema

    views = _Views(project, settings)
    detail = views.detail(view)
    types = views.schema(view)
    job = views.declared.get(view)
    if not types and job is not None and job.spec.features is not None:
        skip = {*job.spec.features.join_keys, job.spec.features.timestamp}
        try:
            columns = table_schema(job, settings)[1]
        except Exception:  # not written yet, or storage that cannot be read from here
            columns = []
        types = {name: kind if isinstance(kind, str) else json.dumps(kind) for name, kind in columns if name not in skip}
    return detail, types, views.declared
