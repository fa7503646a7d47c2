"""The ``arrow`` engine: no JVM. delta-rs counts the window's rows and keys, then streams its
rows, unsorted, to featurekit's Redis writer in this process, which keeps the newer value per key
(against what Redis holds, and within a batch): the store ends with the latest row per key, as
with Spark's reduction. Memory holds a few batches and the key count's set of keys."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

from featurekit.errors import ConfigError
from featurekit.materialization.readback import check_keys, needs_lookup, no_lookup
from featurekit.materialization.view import END_MOVED, Target, ViewResult
from featurekit.materialization.window import Window, latest_per_key, newest_present, stack_rows, window_batches, \
    window_changes, window_counts, window_rows
from featurekit.online_store import Marker, OnlineStore


def arrow_supported(state: OnlineStore, layouts: dict[str, Any]) -> None:
    """The arrow engine streams unsorted rows: only a writer of featurekit's that keeps the
    newer value per key makes the store end with each key's latest row."""
    if not state.keeps_newer or any(layout is None for layout in layouts.values()):
        raise ConfigError.single(
            f"materialize engine 'arrow' writes a plain Redis online store only (this env's is {state.kind}): it streams "
            "the window's rows unsorted and relies on the writer keeping each key's newer value; use engine 'spark'",
            file="materialize", field="engine")


def arrow_view(outcome: ViewResult, target: Target, state: OnlineStore, layout: Any, *, verify_only: bool,
               batch_rows: int) -> int:
    """Count (and unless ``verify_only``, stream into Redis) the window with delta-rs; fills
    ``outcome``, returns the rows the writer must have been given (every row of the window)."""
    window = target.window(outcome.start, outcome.end)
    outcome.rows, outcome.keys = window_counts(window)
    if not verify_only:
        outcome.written = _stream(window, state, layout, batch_rows)
    return outcome.rows


def arrow_changes(outcome: ViewResult, target: Target, base: Marker, change_data: bool, state: OnlineStore,
                  layout: Any, *, replace_until: int, batch_rows: int) -> int:
    """``--incremental`` with delta-rs, in memory that follows the changed rows: the changes'
    newest held rows, lookups, rows newer than the marker's end; the latest per key replaces
    the store's value."""
    import pyarrow as pa

    keys, ts = list(target.join_keys), target.timestamp
    window = target.window(outcome.end - target.ttl, outcome.end)
    parts = []
    if outcome.method != END_MOVED:
        per_key = newest_present(window_changes(window, base.delta_version, change_data), keys, ts)
        outcome.changed = per_key.num_rows
        lookup, outcome.replaced_newest = needs_lookup(state, layout, per_key, keys, ts) if per_key.num_rows \
            else no_lookup(per_key, keys)
        held = per_key.filter(per_key.column(ts).is_valid())
        if lookup.num_rows:
            held = held.filter(pa.array(_not_in(held, lookup, keys), pa.bool_()))
            parts.append(window_rows(window, lookup))
        parts.append(held)
    if outcome.end > base.window_end:
        newer = max(window.start, base.window_end + timedelta(microseconds=1))
        parts.append(window_rows(replace(window, start=newer)))
    rows = stack_rows([part.select(window.columns) for part in parts])
    latest = latest_per_key(rows, keys, ts)
    outcome.rows, outcome.keys = rows.num_rows, latest.num_rows
    write = state.batch_writer(layout, replace_until=replace_until)
    assert write is not None   # the arrow engine runs on stores with featurekit's writer only
    for batch in latest.to_batches(max_chunksize=batch_rows):
        write(batch)
        outcome.written += batch.num_rows
    outcome.online = check_keys(state, layout, latest, keys, ts)
    return outcome.keys


def _not_in(rows: Any, keys_table: Any, keys: list[str]) -> list[bool]:
    """Per row of ``rows``, whether its key is not among ``keys_table``'s."""
    drop = set(zip(*(keys_table.column(k).to_pylist() for k in keys)))
    return [key not in drop for key in zip(*(rows.column(k).to_pylist() for k in keys))]


def _stream(window: Window, state: OnlineStore, layout: Any, batch_rows: int) -> int:
    """Stream the window's rows into the store in this process; the rows given to the writer."""
    write = state.batch_writer(layout)
    assert write is not None   # checked by arrow_supported
    given = 0
    for batch in window_batches(window, batch_rows):
        write(batch)
        given += batch.num_rows
    return given
