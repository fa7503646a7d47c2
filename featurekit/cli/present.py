"""How the commands show their results: rich tables, the plan, report lines.

Every function takes a result of the library and prints it; none computes anything a notebook
user would not get from the library itself. Whatever the consoles print has its secrets masked
(:mod:`featurekit.redaction`): a source's options, a spark-submit line, an error's URL.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from rich.console import Console
from rich.table import Table

from featurekit.errors import named
from featurekit.redaction import redact_text

if TYPE_CHECKING:
    from featurekit.lineage.tree import Node
    from featurekit.pipeline import RunResult
    from featurekit.pipeline.incremental import BackfillResult
    from featurekit.pipeline.lineage import LinkResult
    from featurekit.pipeline.materialize import MaterializeResult
    from featurekit.pipeline.training import TrainingSetResult
    from featurekit.sinks.inspect import TableView
    from featurekit.spec.loader import LoadedJob



class RedactedStream:
    """``sys.stdout`` or ``sys.stderr``, whichever is current when written to (so a test's
    capture sees it too), with every secret masked on the way."""

    def __init__(self, name: str) -> None:
        self._name = name

    @property
    def stream(self) -> Any:
        return getattr(sys, self._name)

    def write(self, text: str) -> int:
        return int(self.stream.write(redact_text(text)) or 0)

    def __getattr__(self, attribute: str) -> Any:   # isatty, fileno, flush, encoding: the stream's
        return getattr(self.stream, attribute)


out = Console(file=RedactedStream("stdout"), highlight=False, soft_wrap=True)
err = Console(file=RedactedStream("stderr"), highlight=False, soft_wrap=True)


def number(value: Optional[int]) -> str:
    return "-" if value is None else f"{value:,}"


def cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if hasattr(value, "isoformat"):
        return value.isoformat()  # type: ignore[union-attr]
    return str(value)


def flag(param: str) -> str:
    """A parameter of the library as the CLI spells it: ``training_set`` -> ``--training-set``."""
    return "--" + param.replace("_", "-")


def flagged(text: str) -> str:
    """A message of the library with the parameters it names (:func:`featurekit.errors.arg`) as flags."""
    return named(text, flag)


def warn(messages: list[str]) -> None:
    for warning in messages:
        err.print(f"warning: {flagged(warning)}", markup=False, style="yellow")


def plan(loaded: LoadedJob, shown_path: str, env: str, submit: str) -> None:
    """The resolved job, step by step, and the spark-submit command that runs it."""
    spec = loaded.spec
    out.print(f"[bold]{spec.name}[/]  {spec.description}".rstrip())
    out.print(f"file: {shown_path}   env: {env}   fingerprint: {loaded.fingerprint}")
    table = Table(title="sources", title_justify="left")
    for column in ("name", "format", "path", "options"):
        table.add_column(column)
    for name, source in spec.sources.items():
        table.add_row(name, source.format, source.path, ", ".join(f"{k}={v}" for k, v in source.options.items()))
    out.print(table)
    inc = spec.incremental
    if inc is not None and inc.by == "arrival":
        out.print(f"[bold]incremental[/] by arrival: only what reached {spec.first_source!r} since the last run, "
                  "merged newest-wins")
    elif inc is not None:
        from featurekit.spec.durations import format_duration
        from featurekit.spec.intervals import grain, reach

        out.print(f"[bold]incremental[/] by {inc.time_column}: each run recomputes (watermark - {inc.lookback or '0s'}, "
                  f"end], reading {spec.first_source!r} from {format_duration(int(reach(spec).total_seconds()))} "
                  f"before it; buckets of {format_duration(int(grain(spec).total_seconds()))}")
    out.print("[bold]steps[/]")
    for index, step in enumerate(spec.steps):
        out.print(f"  {index}. {_describe(step)}")
    o = spec.output
    out.print(f"[bold]output[/] {o.path}  mode={o.mode}"
              + (f" keys={','.join(o.keys)}" if o.keys else "")
              + (f" partition_by={','.join(o.partition_by)}" if o.partition_by else ""))
    out.print("[bold]spark-submit[/]")
    out.print(submit, markup=False)


def _describe(step: object) -> str:
    from featurekit.spec.models import step_op

    op = step_op(step) or "?"
    value = getattr(step, op)
    text = value if isinstance(value, str) else (
        value.model_dump_json(exclude_defaults=True) if hasattr(value, "model_dump_json") else str(value)
    )
    return f"{op}: {text}"


def run(result: RunResult) -> None:
    """The run summary: the row arithmetic first, then where the rows went."""
    table = Table(title=f"run {result.run_id}  job {result.job}  ({result.status})", title_justify="left")
    table.add_column("what")
    table.add_column("rows", justify="right")
    table.add_column("detail", overflow="fold")
    inc = result.incremental
    if inc.get("kind") == "arrival":
        since = (f"files modified after {inc['files_since']}" if inc.get("files_since")
                 else f"changes after version {inc['after_version']}" if inc.get("after_version") is not None
                 else "everything (no earlier run)")
        table.add_row("arrived since the last run", "", since + (f"; {inc['note']}" if inc.get("note") else ""))
        if inc.get("kept_newer"):
            table.add_row("  older than the table's", number(inc["kept_newer"]), "late versions of a key: the newer row stays")
    elif inc:
        table.add_row(f"{inc['kind']} interval", "", f"{inc['interval']}, events read from {inc['read_from'] or 'the start'}; "
                      f"watermark {inc['watermark_before'] or '-'} -> {inc['watermark_after']}")
    for source in result.sources:
        detail = f"{source['format']} {source['path']}"
        if source["delta_version"] is not None:
            detail += f" @ v{source['delta_version']}"
        if source.get("files") is not None:
            detail += f" ({source['files_read']:,} of {source['files']:,} files read)"
        table.add_row(f"read {source['name']}", number(source["rows_read"]), detail)
        if source.get("rows_malformed"):
            table.add_row(f"  malformed in {source['name']}", number(source["rows_malformed"]), "quarantined with their raw text")
    for step in result.steps:
        if step.dropped or step.note:
            table.add_row(f"  step {step.index} ({step.op})", number(step.dropped) if step.dropped else "",
                          step.note or f"dropped: {number(step.rows_in)} in, {number(step.rows_out)} out")
    table.add_row("checked by the gate", number(result.rows_out), "")
    for check in (result.gate or {}).get("checks", []):
        table.add_row(f"  refused: {check['column']} {check['check']}", number(check["failures"]), check["message"])
    if result.quarantine:
        q = result.quarantine
        table.add_row("quarantined", number(q.get("rows")), f"{q['path']} v{q['version']}"
                      + (f" ({q['already_quarantined']:,} already there from earlier runs)" if q.get("already_quarantined") else ""))
    table.add_row("written", number(result.rows_written),
                  f"{result.output_path} v{result.table_version} ({result.commit_operation}, mode {result.mode})")
    out.print(table)
    for warning in result.warnings:
        err.print(f"warning: {warning}", markup=False, style="yellow")
    out.print("durations: " + ", ".join(f"{k} {v:.1f}s" for k, v in result.durations.items()))


@contextmanager
def backfill_progress(job: str, disabled: bool) -> Iterator[Callable[[int, int, object], None]]:
    """A progress bar on stderr over the chunks; yields the callback the backfill reports to."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    with Progress(TextColumn("backfill {task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("chunks"),
                  TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(), console=err,
                  disable=disabled) as bar:
        task = bar.add_task(job, total=None)

        def progress(done: int, total: int, result: object) -> None:
            if result is None:  # the chunks an earlier attempt committed: done, not timed
                bar.update(task, total=total - done, completed=0)
            else:
                bar.advance(task)

        yield progress


def backfill(job: str, result: BackfillResult) -> None:
    """One row per chunk: done before, planned (a dry run) or committed by this backfill."""
    from featurekit.spec.intervals import iso

    table = Table(title=f"backfill {job} ({result.start:%Y-%m-%d %H:%M}, {result.end:%Y-%m-%d %H:%M}] "
                        f"in {len(result.chunks)} chunk(s) of {result.batch}", title_justify="left")
    for column in ("chunk", "interval", "status", "run id", "written", "v"):
        table.add_column(column, justify="right" if column in ("chunk", "written", "v") else "left")
    runs = {run.incremental.get("end"): run for run in result.runs}
    for index, (lo, hi) in enumerate(result.chunks):
        run = runs.get(iso(hi))
        status = "done before" if index < result.done_before else ("planned" if run is None else "committed")
        table.add_row(str(index + 1), f"({lo:%Y-%m-%d %H:%M}, {hi:%Y-%m-%d %H:%M}]", status,
                      run.run_id if run else "", number(run.rows_written) if run else "",
                      str(run.table_version) if run else "")
    out.print(table)


def table_view(view: TableView) -> None:
    """A Delta table: its version, recent commits, and the first rows one per column."""
    out.print(f"[bold]{view.path}[/]  version {view.version}, {view.rows:,} rows, properties {view.properties}")
    commits = Table(title="recent commits", title_justify="left")
    for column in ("version", "operation", "run_id", "fingerprint"):
        commits.add_column(column)
    for commit in view.commits:
        commits.add_row(*(str(commit.get(c, "")) for c in ("version", "operation", "run_id", "fingerprint")))
    out.print(commits)
    rows = Table(title=f"first {len(view.head)} rows (one per column)", title_justify="left")
    rows.add_column("column")
    for index in range(len(view.head)):
        rows.add_column(f"row {index + 1}")
    for column in view.columns:
        rows.add_row(column, *(cell(row[column]) for row in view.head))
    out.print(rows)


def runs(runs_dir: Path, reports: list[dict[str, Any]]) -> None:
    """Recent runs, one line each; an interval column only where a run has one."""
    table = Table(title=f"recent runs in {runs_dir}", title_justify="left")
    intervals = any(report.get("incremental") for report in reports)
    for column in ("run id", "job", "status", *(["interval"] if intervals else []), "read", "written", "bad", "v"):
        table.add_column(column, no_wrap=True, justify="left" if column in {"run id", "job", "status", "interval"} else "right")
    for report in reports:
        read = sum(s.get("rows_read") or 0 for s in report.get("sources", []))
        malformed = sum(s.get("rows_malformed") or 0 for s in report.get("sources", []))
        status = "ok" if report.get("status") == "succeeded" else f"{report.get('status', '?')} {report.get('exit_code') or ''}".strip()
        version = report.get("table_version")
        interval = [(report.get("incremental") or {}).get("interval", "")] if intervals else []
        table.add_row(report.get("run_id", ""), report.get("job", ""), status, *interval, number(read),
                      number(report.get("rows_written")), number((report.get("rows_quarantined") or 0) + malformed),
                      "" if version is None else str(version))
    out.print(table)


def report(document: dict[str, Any]) -> None:
    """One run report, as the JSON it is stored in."""
    out.print_json(json.dumps(document))


def materialized(result: MaterializeResult, env: str, verify_only: bool) -> None:
    """Per feature view: the Delta versions read, how the keys were chosen, and the counts."""
    verb = "verified" if verify_only else "materialized"
    table = Table(title=f"{verb} into {result.online_store} (run {result.run_id}, env {env}, engine {result.engine})",
                  title_justify="left")
    numbers = ("rows", "keys", "changed", "written", "verified", "s")
    for column in ("feature view", "Delta version", "keys from", "window", *numbers, "newest value"):
        table.add_column(column, justify="right" if column in numbers else "left")
    for view in result.views:
        window = view.method == "window"
        online = view.online
        # a whole window: its keys holding a value from it; incremental: the keys read back at least as new
        verified = 0 if online is None else online.in_window if window else online.in_window + online.newer
        first = view.delta_version_from
        versions = f"v{first}..v{view.delta_version}" if first is not None and first <= view.delta_version \
            else f"v{view.delta_version}"
        table.add_row(view.view, versions, view.method,
                      f"{view.start:%Y-%m-%d %H:%M} .. {view.end:%Y-%m-%d %H:%M}", number(view.rows), number(view.keys),
                      "-" if window else number(view.changed), "-" if verify_only else number(view.written),
                      number(verified), f"{view.seconds:.1f}",
                      # the event time the view's newest online value has ("-": none recorded, or none held)
                      f"{view.newest_event:%Y-%m-%d %H:%M:%S}" if view.newest_event else "-")
    out.print(table)
    warn(result.warnings)


def online_features(rows: list[dict[str, Any]], title: str) -> None:
    """Online features, one column per entity."""
    table = Table(title=title, title_justify="left")
    table.add_column("feature")
    for i in range(len(rows)):
        table.add_column(f"#{i + 1}", justify="right")
    for name in rows[0] if rows else []:
        table.add_row(name, *(cell(row[name]) for row in rows))
    out.print(table)


def training_set(result: TrainingSetResult, env: str) -> None:
    """Where a training set came from and where it went."""
    table = Table(title=f"training set {result.service} (run {result.run_id}, env {env})", title_justify="left")
    table.add_column("what")
    table.add_column("detail", overflow="fold")
    if result.spine:
        table.add_row("spine", f"{result.spine_format} {result.spine}"
                      + (f" @ v{result.spine_version}" if result.spine_version is not None else ""))
    else:
        table.add_row("rows of", f"view {next(iter(result.views))} from {result.start} to {result.end}")
    for view, version in result.views.items():
        table.add_row(f"view {view}", f"Delta v{version}" + (f" (as of {result.as_of})" if result.as_of else ""))
    if result.engine != "featurekit":
        table.add_row("join", f"{result.engine}'s point-in-time retrieval")
    table.add_row("rows", f"{result.rows:,}" + (f" ({result.rows_without_timestamp:,} without a timestamp: null features)"
                                                 if result.rows_without_timestamp else ""))
    table.add_row("written", f"{result.out} v{result.out_version} ({len(result.features)} feature(s), "
                  f"{result.seconds:.1f}s)")
    table.add_row("lineage", result.lineage)
    out.print(table)
    warn(result.warnings)


def feast_definitions(project_name: str, env: str, views: list[Any], services: list[Any]) -> None:
    """The feature views and services a `feast apply` registered (``pipeline.features.definitions``)."""
    table = Table(title=f"feast project {project_name} (env {env})", title_justify="left")
    for column in ("feature view", "entity", "features", "Delta version", "skipped columns"):
        table.add_column(column, overflow="fold")
    for view in views:
        table.add_row(view.name, f"{view.entity} ({', '.join(view.join_keys)})", str(len(view.features)),
                      str(view.version), ", ".join(f"{k} ({t})" for k, t in view.skipped.items()))
    out.print(table)
    out.print("feature services: " + ", ".join(s.name for s in services))


def valid_jobs(jobs: list[LoadedJob], shown: Callable[[Path], str]) -> None:
    for job in jobs:
        out.print(f"[green]ok[/] {shown(job.path)}  ({job.name}, fingerprint {job.fingerprint})")
    out.print(f"{len(jobs)} job(s) valid")


def linked(result: LinkResult) -> None:
    """The model version and the dataset artifacts now attached to it."""
    out.print(f"model {result.model['name']} version {result.version['name']} "
              f"(model version {result.version['id']}): {len(result.artifacts)} dataset artifact(s) linked", markup=False)
    for artifact, url in zip(result.artifacts, result.urls):
        out.print(f"  {artifact.get('name') or artifact['id']}  {url}", markup=False)


def lineage_tree(tree: Node, fmt: str, out_file: Optional[Path]) -> None:
    """The tree in the terminal (a rich tree for text), or drawn into ``out_file``."""
    from featurekit.lineage.tree import render, rich_tree

    if out_file is None:
        if fmt == "text":
            out.print(rich_tree(tree), soft_wrap=False)   # long lines wrap in the tree, not cropped
        else:
            out.print(render(tree, fmt), markup=False)
        return
    drawing = render(tree, fmt)
    if isinstance(drawing, bytes):
        out_file.write_bytes(drawing)
    else:
        out_file.write_text(drawing, encoding="utf-8")
    out.print(f"wrote {out_file} ({fmt})", markup=False)
