"""Cross-field checks that pydantic's per-field validation cannot make.

Columns are followed through the steps wherever they are knowable without a JVM (declared
source schemas, ``with_columns``, ``aggregate``, ``select`` ...); a reference to a column
that is known not to exist is reported with the closest existing name. Where a step makes
the columns unknowable (``sql``, a source without a schema) checking resumes at the next
step that fixes them again.
"""

from __future__ import annotations

import re
from pathlib import Path

from featurekit.errors import Problem
from featurekit.spec.durations import parse_duration
from featurekit.spec.models import (
    AggregateStep,
    CastStep,
    CsvSource,
    DedupStep,
    DropStep,
    FillNullStep,
    FilterStep,
    JobSpec,
    JoinStep,
    JsonSource,
    RenameStep,
    SelectStep,
    SqlStep,
    UnionStep,
    WithColumnsStep,
    parse_metric,
    step_op,
)
from featurekit.spec.names import IDENTIFIER, did_you_mean
from featurekit.spec.sqlcheck import query_problem, syntax_problem
from featurekit.yamlconf.positions import KeyPath, Positions

Columns = list[str] | None  # None: not knowable without running Spark
_ALIAS = re.compile(r"(?is)^.+\s+as\s+`?([A-Za-z_][A-Za-z0-9_]*)`?\s*$")


class _Checker:
    def __init__(self, spec: JobSpec, positions: Positions, data: object = None) -> None:
        self.spec = spec
        self.positions = positions
        self.data = data
        self.problems: list[Problem] = []

    def report(self, path: KeyPath, message: str, at_value: bool = True) -> None:
        self.problems.append(self.positions.problem(path, message, at_value=at_value))

    def sql(self, text: str, path: KeyPath) -> None:
        """Report a syntax error in the SQL expression ``text`` at its value."""
        problem = syntax_problem(text)
        if problem:
            self.report(path, problem)

    def need(self, columns: Columns, names: list[str], path: KeyPath, index_paths: bool = True,
             keyed: bool = False, where: str = "at this point") -> None:
        """Report each name in ``names`` that ``columns`` (when known) lacks.

        The problem is located at ``path[i]`` (a list), ``path.name`` (``keyed``: a
        mapping keyed by column) or ``path`` itself.
        """
        if columns is None:
            return
        lowered = {c.lower() for c in columns}
        for i, name in enumerate(names):
            if name.lower() not in lowered:
                spot = (*path, name) if keyed else (*path, i) if index_paths else path
                self.report(
                    spot,
                    f"column {name!r} does not exist {where}" + did_you_mean(name, columns)
                    + f" (columns: {', '.join(columns)})",
                    at_value=not keyed,
                )


def source_columns(spec: JobSpec, name: str) -> Columns:
    source = spec.sources.get(name)
    schema = getattr(source, "schema_", None)
    return list(schema) if schema else None


def _select_name(entry: str) -> str | None:
    if IDENTIFIER.match(entry.strip("` ")):
        return entry.strip("` ")
    match = _ALIAS.match(entry)
    return match.group(1) if match else None


def check_job(spec: JobSpec, positions: Positions, file: Path | None, data: object = None) -> list[Problem]:
    """Every cross-field problem of one parsed job (``data``: the YAML as written)."""
    c = _Checker(spec, positions, data)
    if file is not None and spec.name != file.stem:
        c.report(("name",), f"must equal the file name {file.stem!r}; got {spec.name!r}")
    for name, source in spec.sources.items():
        if name.lower() == "input":
            c.report(("sources", name), "the name 'input' is reserved: sql steps use it for the running frame",
                     at_value=False)
        if isinstance(source, (CsvSource, JsonSource)):
            mode = next((v for k, v in source.options.items() if k.lower() == "mode"), None)
            if mode is not None and mode.upper() == "DROPMALFORMED":
                c.report(("sources", name, "options", "mode"),
                         "DROPMALFORMED drops rows without counting them; use PERMISSIVE (the default) "
                         "and a declared filter, or FAILFAST")
    columns = source_columns(spec, spec.first_source)
    for index, step in enumerate(spec.steps):
        columns = _check_step(c, step, ("steps", index, step_op(step) or ""), columns)
    out = spec.output
    if out.mode == "merge" and not out.keys:
        c.report(("output", "mode"), "mode 'merge' needs output.keys (the columns that identify a row)")
    if out.mode == "replace_partitions" and not out.partition_by:
        c.report(("output", "mode"), "mode 'replace_partitions' needs output.partition_by")
    c.need(columns, out.keys, ("output", "keys"))
    c.need(columns, out.partition_by, ("output", "partition_by"))
    if spec.incremental is not None:
        _check_incremental(c, columns)
    if spec.validation is not None:
        v = spec.validation
        c.need(columns, [n for n, rule in v.columns.items() if rule.required], ("validate", "columns"), keyed=True)
        if v.unique is not None:
            c.need(columns, v.unique.keys, ("validate", "unique", "keys")
                   if isinstance(_raw(c, ("validate", "unique")), dict) else ("validate", "unique"))
            c.need(columns, v.unique.order_by, ("validate", "unique", "order_by"))
    if spec.features is not None:
        f = spec.features
        c.need(columns, f.join_keys, ("features", "join_keys"))
        c.need(columns, [f.timestamp], ("features", "timestamp"), index_paths=False)
        if f.timestamp.lower() in {k.lower() for k in f.join_keys}:
            c.report(("features", "timestamp"), "the timestamp column cannot also be a join key")
    return c.problems


def _check_step(c: _Checker, step: object, path: KeyPath, columns: Columns) -> Columns:
    spec = c.spec
    if isinstance(step, SqlStep):
        problem = query_problem(step.sql) or syntax_problem(step.sql, query=True)
        if problem:
            c.report(path, problem)
        return None
    if isinstance(step, FilterStep):
        c.sql(step.filter, path)
        return columns
    if isinstance(step, WithColumnsStep):
        for name, text in step.with_columns.items():
            c.sql(text, (*path, name))
        return None if columns is None else _merge(columns, list(step.with_columns))
    if isinstance(step, DedupStep):
        c.need(columns, step.dedup.keys, (*path, "keys"))
        order = step.dedup.order_by or []
        written_as_list = isinstance(_raw(c, (*path, "order_by")), list)
        c.need(columns, order, (*path, "order_by"), index_paths=written_as_list)
        return columns
    if isinstance(step, JoinStep):
        join = step.join
        right = _source(c, join.source, (*path, "source"))
        c.need(columns, join.on, (*path, "on"), where="in the running frame")
        c.need(right, join.on, (*path, "on"), where=f"in source {join.source!r}")
        if join.how in {"semi", "anti"}:
            return columns
        if columns is None or right is None:
            return None
        keys = {o.lower() for o in join.on}
        left = {col.lower() for col in columns}
        for col in right:
            if col.lower() in left and col.lower() not in keys:
                c.report((*path, "source"), f"column {col!r} is on both sides and not a join key: the result "
                         "would have it twice (rename or drop it on one side first)")
        return _merge(columns, [col for col in right if col.lower() not in keys])
    if isinstance(step, UnionStep):
        right = _source(c, step.union.source, (*path, "source"))
        if columns is not None and right is not None and step.union.by_name and not step.union.allow_missing:
            if {x.lower() for x in columns} != {x.lower() for x in right}:
                c.report((*path, "source"),
                         f"columns differ: running frame has {', '.join(columns)}; "
                         f"{step.union.source!r} has {', '.join(right)} (set allow_missing: true to fill nulls)")
        return columns
    if isinstance(step, AggregateStep):
        return _check_aggregate(c, step, path, columns)
    if isinstance(step, SelectStep):
        for i, entry in enumerate(step.select):
            c.sql(entry, (*path, i))
        names = [_select_name(entry) for entry in step.select]
        seen: set[str] = set()
        for i, (name, entry) in enumerate(zip(names, step.select)):
            if name is not None and name == entry.strip("` "):
                c.need(columns, [name], (*path, i), index_paths=False)
            if name is not None and name.lower() in seen:
                c.report((*path, i), f"column {name!r} is selected twice")
            seen.add((name or "").lower())
        return None if any(n is None for n in names) else [n for n in names if n]
    if isinstance(step, RenameStep):
        c.need(columns, list(step.rename), path, keyed=True)
        if columns is None:
            return None
        mapping = {k.lower(): v for k, v in step.rename.items()}
        renamed = [mapping.get(col.lower(), col) for col in columns]
        for old, new in step.rename.items():
            if sum(col.lower() == new.lower() for col in renamed) > 1:
                c.report((*path, old), f"renaming {old!r} to {new!r} would make two columns named {new!r}")
        return renamed
    if isinstance(step, (CastStep, FillNullStep)):
        names = list(step.cast if isinstance(step, CastStep) else step.fill_null)
        c.need(columns, names, path, keyed=True)
        return columns
    if isinstance(step, DropStep):
        c.need(columns, step.drop, path)
        if columns is None:
            return None
        gone = {d.lower() for d in step.drop}
        return [col for col in columns if col.lower() not in gone]
    return columns  # filter keeps the columns


def _raw(c: _Checker, path: KeyPath) -> object:
    """The value at ``path`` as written in the YAML (before parsing), or None."""
    node: object = c.data
    for part in path:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            return None
    return node


def _source(c: _Checker, name: str, path: KeyPath) -> Columns:
    if name not in c.spec.sources:
        known = list(c.spec.sources)
        c.report(path, f"unknown source {name!r}" + did_you_mean(name, known) + f" (sources: {', '.join(known)})")
        return None
    return source_columns(c.spec, name)


def _check_aggregate(c: _Checker, step: AggregateStep, path: KeyPath, columns: Columns) -> Columns:
    agg = step.aggregate
    c.need(columns, agg.keys, (*path, "keys"))
    c.need(columns, [agg.timestamp], (*path, "timestamp"), index_paths=False)
    every = parse_duration(agg.every)
    for i, window in enumerate(agg.windows):
        seconds = parse_duration(window)
        if seconds % every:
            c.report((*path, "windows", i), f"window {window!r} must be a whole multiple of every ({agg.every!r})")
    spans: dict[int, str] = {}
    for i, window in enumerate(agg.windows):
        seconds = parse_duration(window)
        if seconds in spans:
            c.report((*path, "windows", i), f"window {window!r} repeats {spans[seconds]!r}")
        spans.setdefault(seconds, window)
    if len(spans) != len(agg.windows):
        return [*agg.keys, agg.timestamp, *(f"{m}_{w}" for m in agg.metrics for w in dict.fromkeys(agg.windows))]
    for name, text in agg.metrics.items():
        try:
            _function, argument = parse_metric(text)
        except ValueError as exc:
            c.report((*path, "metrics", name), str(exc))
            continue
        if argument != "*":
            c.sql(argument, (*path, "metrics", name))
    produced = [*agg.keys, agg.timestamp, *(f"{m}_{w}" for m in agg.metrics for w in agg.windows)]
    seen: set[str] = set()
    for name in produced:
        if name.lower() in seen:
            c.report((*path, "metrics"), f"output column {name!r} would appear twice "
                     "(a metric_window name equals a key, the timestamp or another metric_window)")
        seen.add(name.lower())
    return produced


_TIME_TYPES = ("timestamp", "timestamp_ntz")


def _check_incremental(c: _Checker, columns: Columns) -> None:
    """The time column exists where it must (first source, output, merge keys, each
    aggregate's timestamp) and the output mode replaces rows by interval."""
    spec, inc = c.spec, c.spec.incremental
    assert inc is not None
    if inc.by == "arrival":
        _check_arrival(c)
        return
    time = inc.time_column
    path = ("incremental", "time_column")
    if time is None:
        c.report(("incremental",), "by: event_time needs time_column (a timestamp column of the first source)",
                 at_value=False)
        return
    out = spec.output
    if out.mode not in ("merge", "replace_partitions"):
        c.report(("output", "mode"), "with incremental, output.mode must be 'merge' (keys that include the time "
                 f"column) or 'replace_partitions': a run replaces the rows of its interval; got {out.mode!r}")
    schema = getattr(spec.sources[spec.first_source], "schema_", None)
    if schema:
        declared = {name.lower(): kind for name, kind in schema.items()}
        if time.lower() not in declared:
            c.report(path, f"column {time!r} is not in the first source {spec.first_source!r}"
                     + did_you_mean(time, list(schema)) + f" (columns: {', '.join(schema)})")
            return  # one mistake, one message: the output, keys and aggregates cannot have it either
        elif declared[time.lower()] not in _TIME_TYPES:
            c.report(path, f"column {time!r} of source {spec.first_source!r} is {declared[time.lower()]}; "
                     "expected timestamp or timestamp_ntz")
        if inc.partition_column and inc.partition_column.lower() in declared and \
                declared[inc.partition_column.lower()] not in ("date", "string"):
            c.report(("incremental", "partition_column"), f"column {inc.partition_column!r} is "
                     f"{declared[inc.partition_column.lower()]}; expected date (or a yyyy-MM-dd string)")
    mismatched = False
    for index, step in enumerate(spec.steps):
        if isinstance(step, AggregateStep) and step.aggregate.timestamp.lower() != time.lower():
            mismatched = True
            c.report(("steps", index, "aggregate", "timestamp"),
                     f"an incremental job's aggregate buckets its time column: expected {time!r} "
                     f"(incremental.time_column); got {step.aggregate.timestamp!r}")
    if not mismatched:
        c.need(columns, [time], path, index_paths=False, where="in the output")
    if out.mode == "merge" and out.keys and time.lower() not in {k.lower() for k in out.keys}:
        c.report(("output", "keys"), f"with incremental, the merge keys must include the time column {time!r}")


def _check_arrival(c: _Checker) -> None:
    """A latest-state job: no event-time keys, a merge on the keys of a dedup that orders
    versions, and the ordering columns still in the output (the merge compares them)."""
    spec, inc = c.spec, c.spec.incremental
    assert inc is not None
    for key in ("time_column", "lookback", "start", "partition_column"):
        if getattr(inc, key) is not None:
            c.report(("incremental", key), f"{key} is for by: event_time; by: arrival reads what arrived since the last run")
    for index, step in enumerate(spec.steps):
        if isinstance(step, AggregateStep):
            c.report(("steps", index, "aggregate"), "by: arrival merges the newest row per key; an aggregate "
                     "recomputes windows of event time: use by: event_time", at_value=False)
    if spec.output.mode != "merge":
        c.report(("output", "mode"), f"with incremental by: arrival, output.mode must be 'merge' (the newest row per "
                 f"key wins); got {spec.output.mode!r}")
        return
    found = newest_columns(spec)
    if isinstance(found, str):
        c.report(("incremental", "by"), found)


def newest_columns(spec: JobSpec) -> tuple[list[str], bool] | str:
    """For a ``by: arrival`` job: the output columns that order a key's versions (the dedup's
    ``order_by`` after later renames) and whether the greatest wins; or why there are none."""
    keys = {k.lower() for k in spec.output.keys}
    dedups = [(i, s) for i, s in enumerate(spec.steps)
              if isinstance(s, DedupStep) and {k.lower() for k in s.dedup.keys} == keys]
    if not dedups or dedups[-1][1].dedup.order_by is None:
        return ("by: arrival needs a dedup step on the merge keys (" + ", ".join(spec.output.keys) + ") with "
                "order_by: the column(s) that tell which version of a key is newest")
    index, dedup = dedups[-1]
    names = list(dedup.dedup.order_by or [])
    for step in spec.steps[index + 1:]:
        lowered = {n.lower() for n in names}
        if isinstance(step, RenameStep):
            mapping = {old.lower(): new for old, new in step.rename.items()}
            names = [mapping.get(n.lower(), n) for n in names]
        elif isinstance(step, WithColumnsStep) and lowered & {k.lower() for k in step.with_columns}:
            return f"the dedup's order_by ({', '.join(names)}) is replaced by a later with_columns; the merge compares it"
        elif isinstance(step, DropStep) and lowered & {d.lower() for d in step.drop}:
            return f"the dedup's order_by ({', '.join(names)}) is dropped later; keep it in the output: the merge compares it"
        elif isinstance(step, (SqlStep, SelectStep)):
            kept = [_select_name(e) for e in step.select] if isinstance(step, SelectStep) else []
            if not lowered <= {k.lower() for k in kept if k}:
                return (f"the dedup's order_by ({', '.join(names)}) must reach the output by name; a later "
                        f"{step_op(step)} step may drop or change it")
    return names, dedup.dedup.keep == "last"


def _merge(columns: list[str], added: list[str]) -> list[str]:
    lowered = {col.lower() for col in columns}
    return columns + [a for a in added if a.lower() not in lowered]
