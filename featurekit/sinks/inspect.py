"""Reading a committed table back without Spark (delta-rs), for people and tests."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from featurekit.errors import ConfigError


@dataclass(frozen=True)
class TableView:
    path: str
    version: int
    rows: int
    properties: dict[str, str]
    commits: list[dict[str, Any]]
    head: list[dict[str, Any]]
    columns: list[str]


def inspect_table(path: str, limit: int = 5, history: int = 5, storage_options: dict[str, str] | None = None) -> TableView:
    """Version, row count, recent commits (with featurekit's metadata) and the first rows."""
    import pyarrow as pa
    from deltalake import DeltaTable, QueryBuilder
    from deltalake.exceptions import TableNotFoundError

    try:
        table = DeltaTable(path, storage_options=storage_options or None)
    except TableNotFoundError as exc:
        raise ConfigError.single(f"no Delta table at {path} (has the job run?)", file="output", field="path") from exc
    commits = []
    for entry in table.history(history):
        meta = entry.get("userMetadata")
        try:
            meta = json.loads(meta) if meta else {}
        except ValueError:
            meta = {"userMetadata": meta}
        commits.append({"version": entry.get("version"), "operation": entry.get("operation"),
                        "timestamp": entry.get("timestamp"), **meta})
    # Not pyarrow's Dataset.head: it stops its scanner early, and the scanner's threads can
    # outlive the interpreter's teardown and abort the process after its output was printed.
    head = []
    if limit:
        reader = QueryBuilder().register("t", table).execute(f"SELECT * FROM t LIMIT {int(limit)}")
        head = pa.table(reader.read_all()).to_pylist()
    return TableView(path, table.version(), table.count(), dict(table.metadata().configuration),
                     commits, head, [field.name for field in table.schema().fields])


def commits_since(path: str, version: int, storage_options: dict[str, str] | None = None) -> dict[int, dict[str, Any]]:
    """The commits of the table from ``version`` to its latest, by version: operation, its
    parameters and featurekit's ``userMetadata`` (parsed; ``{}`` when absent or not JSON).

    Empty when there is no table, or when its log no longer reaches back to ``version``.
    (delta-rs's history of a table opened at an older version is numbered wrongly, so the
    latest history is read and cut.)
    """
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    try:
        table = DeltaTable(path, storage_options=storage_options or None)
    except (TableNotFoundError, OSError):
        return {}
    latest = table.version()
    if version > latest:
        return {}
    found: dict[int, dict[str, Any]] = {}
    for entry in table.history(latest - version + 1):
        number = entry.get("version")
        if not isinstance(number, int) or number < version:
            continue
        meta = entry.get("userMetadata")
        try:
            parsed = json.loads(meta) if meta else {}
        except ValueError:
            parsed = {}
        found[number] = {"operation": str(entry.get("operation") or ""),
                         "parameters": entry.get("operationParameters") or {},
                         "metadata": parsed if isinstance(parsed, dict) else {}}
    return found
