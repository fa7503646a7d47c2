"""SQLite storage of the embedded Model Registry (``featurekit registry serve``).

One table per resource kind (registered models, model versions, artifacts, serving environments,
inference services, serve models), a link table for the many-to-many between model versions and
artifacts, and a table that keeps ``externalId`` unique across every resource, as the Model
Registry spec asks. Each row keeps its columns for what is queried (name, external id, the ids
of the resources it refers to, times) and the rest of the resource as JSON (``body``), so new
optional fields of the API need no migration. A new kind does: ``_MIGRATIONS`` takes a file
written by an older featurekit to the current schema (``PRAGMA user_version``) in one transaction.

Nothing is ever deleted (the API archives through ``state``). Lists page by keyset: the opaque
``nextPageToken`` holds the last (sort value, id) seen and a fingerprint of the query it belongs to;
``filterQuery`` is turned into SQL by :mod:`featurekit.registry.filters`.

Connections are per thread (the server calls the store from a thread pool) in WAL mode, so reads
never wait for a write; writes are serialized by a lock and ``BEGIN IMMEDIATE``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from featurekit.errors import InfraError
from featurekit.registry.filters import compile_filter
from featurekit.registry.resources import (
    ARTIFACT,
    KINDS,
    MODEL_VERSION,
    BadRequest,
    Conflict,
    Kind,
    NotFound,
    Reference,
    Unprocessable,
    parse_id,
)

SCHEMA_VERSION = 2

_SCHEMA = """
CREATE TABLE registered_models (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  name TEXT NOT NULL UNIQUE,
  external_id TEXT UNIQUE,
  created_ms INTEGER NOT NULL,
  updated_ms INTEGER NOT NULL,
  body TEXT NOT NULL
);
CREATE TABLE model_versions (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  registered_model_id INTEGER NOT NULL REFERENCES registered_models(id),
  name TEXT NOT NULL,
  external_id TEXT UNIQUE,
  created_ms INTEGER NOT NULL,
  updated_ms INTEGER NOT NULL,
  body TEXT NOT NULL,
  UNIQUE (registered_model_id, name)
);
CREATE TABLE artifacts (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  artifact_type TEXT NOT NULL,
  name TEXT,
  external_id TEXT UNIQUE,
  created_ms INTEGER NOT NULL,
  updated_ms INTEGER NOT NULL,
  body TEXT NOT NULL
);
CREATE INDEX artifacts_name ON artifacts(name);
CREATE TABLE model_version_artifacts (
  model_version_id INTEGER NOT NULL REFERENCES model_versions(id),
  artifact_id INTEGER NOT NULL REFERENCES artifacts(id),
  linked_ms INTEGER NOT NULL,
  PRIMARY KEY (model_version_id, artifact_id)
);
CREATE INDEX model_version_artifacts_artifact ON model_version_artifacts(artifact_id);
CREATE TABLE external_ids (
  external_id TEXT PRIMARY KEY,
  kind TEXT NOT NULL,
  resource_id INTEGER NOT NULL
);
"""
# Version 2: the serving side (a serving environment's inference services, and their serve models).
_SERVING = """
CREATE TABLE serving_environments (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  name TEXT NOT NULL UNIQUE,
  external_id TEXT UNIQUE,
  created_ms INTEGER NOT NULL,
  updated_ms INTEGER NOT NULL,
  body TEXT NOT NULL
);
CREATE TABLE inference_services (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  serving_environment_id INTEGER NOT NULL REFERENCES serving_environments(id),
  registered_model_id INTEGER NOT NULL REFERENCES registered_models(id),
  model_version_id INTEGER REFERENCES model_versions(id),
  name TEXT,
  external_id TEXT UNIQUE,
  created_ms INTEGER NOT NULL,
  updated_ms INTEGER NOT NULL,
  body TEXT NOT NULL,
  UNIQUE (serving_environment_id, name)
);
CREATE INDEX inference_services_model_version ON inference_services(model_version_id);
CREATE TABLE serve_models (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  inference_service_id INTEGER NOT NULL REFERENCES inference_services(id),
  model_version_id INTEGER NOT NULL REFERENCES model_versions(id),
  name TEXT,
  external_id TEXT UNIQUE,
  created_ms INTEGER NOT NULL,
  updated_ms INTEGER NOT NULL,
  body TEXT NOT NULL,
  UNIQUE (inference_service_id, name)
);
"""
# The statements taking a file of schema version N to N + 1.
_MIGRATIONS = {0: _SCHEMA, 1: _SERVING}


ORDER_COLUMNS = {"ID": "id", "CREATE_TIME": "created_ms", "LAST_UPDATE_TIME": "updated_ms"}


@dataclass(frozen=True)
class ListQuery:
    """What a list call asks for; ``fields`` are the kind's own properties (the rest are custom)."""

    filter_query: str = ""
    page_size: int = 100
    order_by: str = "ID"
    sort_order: str = "ASC"
    next_page_token: str = ""
    fields: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    next_page_token: str
    page_size: int


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class RegistryStore:
    """The registry's resources in one SQLite file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        self._write_lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._migrate(self._connection())
        except (OSError, sqlite3.Error) as exc:
            raise InfraError(f"cannot open the registry database {self.path}: {exc}") from exc

    # -- connections -------------------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=10)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            self._local.conn = conn
            with self._connections_lock:
                self._connections.append(conn)
        return conn

    def close(self) -> None:
        """Close every connection the store opened (each thread's)."""
        with self._connections_lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
        self._local = threading.local()

    def _migrate(self, conn: sqlite3.Connection) -> None:
        with self._write():
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise sqlite3.DatabaseError(f"schema version {version}; this featurekit reads up to {SCHEMA_VERSION} "
                                            "(written by a newer featurekit?)")
            if version == SCHEMA_VERSION:
                return
            for step in range(version, SCHEMA_VERSION):
                for statement in _MIGRATIONS[step].split(";"):  # not executescript: it would commit first
                    if statement.strip():
                        conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        conn = self._connection()
        with self._write_lock:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    # -- rows -> resources ---------------------------------------------------------------------

    @staticmethod
    def _resource(kind: Kind, row: sqlite3.Row) -> dict[str, Any]:
        resource: dict[str, Any] = {"id": str(row["id"])}
        if row["name"] is not None:
            resource["name"] = row["name"]
        if row["external_id"] is not None:
            resource["externalId"] = row["external_id"]
        if kind is ARTIFACT:
            resource["artifactType"] = row["artifact_type"]
        for reference in kind.all_references():
            if reference.field is not None and row[reference.column] is not None:
                resource[reference.field] = str(row[reference.column])
        resource.update(json.loads(row["body"]))
        resource["createTimeSinceEpoch"] = str(row["created_ms"])
        resource["lastUpdateTimeSinceEpoch"] = str(row["updated_ms"])
        return resource

    def _row(self, conn: sqlite3.Connection, kind: Kind, rid: int) -> sqlite3.Row | None:
        return conn.execute(f"SELECT * FROM {kind.table} WHERE id = ?", (rid,)).fetchone()

    def get(self, kind: Kind, rid: str | int) -> dict[str, Any]:
        row = self._row(self._connection(), kind, parse_id(rid, kind.label))
        if row is None:
            raise NotFound(f"no {kind.label} with id {rid}")
        return self._resource(kind, row)

    # -- writes --------------------------------------------------------------------------------

    @staticmethod
    def _check_external_id(conn: sqlite3.Connection, external_id: str | None) -> None:
        """Conflict when another resource of any kind already has ``external_id``."""
        if external_id is None:
            return
        taken = conn.execute("SELECT kind, resource_id FROM external_ids WHERE external_id = ?", (external_id,)).fetchone()
        if taken is not None:
            label = {k.table: k.label for k in KINDS}[taken["kind"]]
            raise Conflict(f"externalId {external_id!r} is already used by {label} {taken['resource_id']}")

    @staticmethod
    def _claim_external_id(conn: sqlite3.Connection, kind: Kind, rid: int, external_id: str | None) -> None:
        if external_id is not None:
            conn.execute("INSERT INTO external_ids (external_id, kind, resource_id) VALUES (?, ?, ?)",
                         (external_id, kind.table, rid))

    def create(self, kind: Kind, fields: dict[str, Any], *, parent: int | None = None,
               artifact_type: str | None = None, link_to: int | None = None) -> dict[str, Any]:
        """Insert a resource from its API fields (``name``, ``externalId``, the ids it refers to, the
        rest; nulls dropped); ``parent`` is the id of its parent when the path gives it."""
        body = {k: v for k, v in fields.items() if v is not None}
        name = body.pop("name", None)
        external_id = body.pop("externalId", None)
        now = _now_ms()
        with self._write() as conn:
            columns = {"name": name, "external_id": external_id, "created_ms": now, "updated_ms": now}
            for reference in kind.all_references():
                given = body.pop(reference.field, None) if reference.field is not None else None
                if reference is kind.parent and parent is not None:
                    given = parent
                if given is not None:
                    columns[reference.column] = self._referred(conn, reference, given)
            columns["body"] = json.dumps(body, separators=(",", ":"))
            if kind is ARTIFACT:
                columns["artifact_type"] = artifact_type
            if kind.unique_names and name is not None:
                self._check_name(conn, kind, name, columns.get(kind.parent.column) if kind.parent else None)
            if link_to is not None and self._row(conn, MODEL_VERSION, link_to) is None:
                raise NotFound(f"no model version with id {link_to}")
            self._check_external_id(conn, external_id)
            names = ", ".join(columns)
            cursor = conn.execute(f"INSERT INTO {kind.table} ({names}) VALUES ({', '.join('?' * len(columns))})",
                                  tuple(columns.values()))
            rid = int(cursor.lastrowid or 0)
            self._claim_external_id(conn, kind, rid, external_id)
            if link_to is not None:
                conn.execute("INSERT INTO model_version_artifacts VALUES (?, ?, ?)", (link_to, rid, now))
            return self._resource(kind, self._row(conn, kind, rid))  # type: ignore[arg-type]

    def _referred(self, conn: sqlite3.Connection, reference: Reference, value: str | int) -> int:
        """The id ``value`` of the resource ``reference`` points at; 422 when there is none."""
        key = int(value)
        if self._row(conn, reference.target, key) is None:
            raise Unprocessable(f"{reference.field or reference.column} {value}: no such {reference.target.label}")
        return key

    @staticmethod
    def _check_name(conn: sqlite3.Connection, kind: Kind, name: str, parent: int | None) -> None:
        """Conflict when ``name`` is taken in the registry (or, for a kind with a parent, in that parent)."""
        if kind.parent is None:
            if conn.execute(f"SELECT 1 FROM {kind.table} WHERE name = ?", (name,)).fetchone():
                raise Conflict(f"a {kind.label} named {name!r} already exists")
            return
        if conn.execute(f"SELECT 1 FROM {kind.table} WHERE {kind.parent.column} = ? AND name = ?",
                        (parent, name)).fetchone():
            child = "version" if kind is MODEL_VERSION else kind.label
            raise Conflict(f"{kind.parent.target.label} {parent} already has a{'n' if child[0] in 'aeiou' else ''} "
                           f"{child} named {name!r}")

    def update(self, kind: Kind, rid: str | int, changes: dict[str, Any]) -> dict[str, Any]:
        """Apply the given fields (PATCH: absent fields keep their value, null ones are removed)."""
        key = parse_id(rid, kind.label)
        with self._write() as conn:
            row = self._row(conn, kind, key)
            if row is None:
                raise NotFound(f"no {kind.label} with id {rid}")
            body = json.loads(row["body"])
            changes = dict(changes)
            references = {}
            for reference in kind.references:  # the parent never changes; other references may
                if reference.field is not None and reference.field in changes:
                    given = changes.pop(reference.field)
                    references[reference.column] = None if given is None else self._referred(conn, reference, given)
            external_id = changes.pop("externalId", row["external_id"])
            if external_id != row["external_id"]:
                self._check_external_id(conn, external_id)
                conn.execute("DELETE FROM external_ids WHERE kind = ? AND resource_id = ?", (kind.table, key))
                self._claim_external_id(conn, kind, key, external_id)
            for field, value in changes.items():
                if value is None:
                    body.pop(field, None)
                else:
                    body[field] = value
            assigned = "".join(f", {column} = ?" for column in references)
            conn.execute(f"UPDATE {kind.table} SET external_id = ?, body = ?, updated_ms = ?{assigned} WHERE id = ?",
                         (external_id, json.dumps(body, separators=(",", ":")), _now_ms(), *references.values(), key))
            return self._resource(kind, self._row(conn, kind, key))  # type: ignore[arg-type]

    def link(self, model_version_id: int, artifact_id: int) -> bool:
        """Associate an artifact with a model version; False when it already was."""
        with self._write() as conn:
            if self._row(conn, MODEL_VERSION, model_version_id) is None:
                raise NotFound(f"no model version with id {model_version_id}")
            if self._row(conn, ARTIFACT, artifact_id) is None:
                raise NotFound(f"no artifact with id {artifact_id}")
            cursor = conn.execute("INSERT OR IGNORE INTO model_version_artifacts VALUES (?, ?, ?)",
                                  (model_version_id, artifact_id, _now_ms()))
            return cursor.rowcount == 1

    # -- reads ---------------------------------------------------------------------------------

    def _scope(self, kind: Kind, *, parent: int | None, linked_to: int | None, artifact_type: str | None,
               name: str | None, external_id: str | None) -> tuple[list[str], list[Any]]:
        where: list[str] = []
        params: list[Any] = []
        if parent is not None:
            assert kind.parent is not None, kind
            where.append(f"{kind.parent.column} = ?")
            params.append(parent)
        if linked_to is not None:
            where.append("id IN (SELECT artifact_id FROM model_version_artifacts WHERE model_version_id = ?)")
            params.append(linked_to)
        if artifact_type is not None:
            where.append("artifact_type = ?")
            params.append(artifact_type)
        if name is not None:
            where.append("name = ?")
            params.append(name)
        if external_id is not None:
            where.append("external_id = ?")
            params.append(external_id)
        return where, params

    def find(self, kind: Kind, *, parent: int | None = None, linked_to: int | None = None,
             artifact_type: str | None = None, name: str | None = None,
             external_id: str | None = None) -> list[dict[str, Any]]:
        """Resources matching every given criterion, by id (at most 2: enough to tell 'not unique')."""
        where, params = self._scope(kind, parent=parent, linked_to=linked_to, artifact_type=artifact_type,
                                    name=name, external_id=external_id)
        sql = f"SELECT * FROM {kind.table} WHERE {' AND '.join(where) or '1'} ORDER BY id LIMIT 2"
        return [self._resource(kind, r) for r in self._connection().execute(sql, params)]

    def list(self, kind: Kind, query: ListQuery, *, parent: int | None = None, linked_to: int | None = None,
             artifact_type: str | None = None, name: str | None = None,
             external_id: str | None = None) -> Page:
        if parent is not None and kind.parent is not None and self._row(self._connection(), kind.parent.target,
                                                                         parent) is None:
            raise NotFound(f"no {kind.parent.target.label} with id {parent}")
        if linked_to is not None and self._row(self._connection(), MODEL_VERSION, linked_to) is None:
            raise NotFound(f"no model version with id {linked_to}")
        where, params = self._scope(kind, parent=parent, linked_to=linked_to, artifact_type=artifact_type,
                                    name=name, external_id=external_id)
        terms, term_params = compile_filter(query.filter_query, kind, query.fields)
        where += terms
        params += term_params
        order = ORDER_COLUMNS.get(query.order_by)
        if order is None:
            raise BadRequest(f"orderBy: expected one of {', '.join(ORDER_COLUMNS)}; got {query.order_by!r}")
        if query.sort_order not in ("ASC", "DESC"):
            raise BadRequest(f"sortOrder: expected ASC or DESC; got {query.sort_order!r}")
        fingerprint = hashlib.sha256(json.dumps(
            [kind.table, parent, linked_to, artifact_type, name, external_id, query.filter_query,
             query.order_by, query.sort_order]).encode()).hexdigest()[:16]
        if query.next_page_token:
            last_value, last_id = _read_token(query.next_page_token, fingerprint)
            compare = ">" if query.sort_order == "ASC" else "<"
            where.append(f"({order}, id) {compare} (?, ?)")
            params += [last_value, last_id]
        direction = query.sort_order
        sql = (f"SELECT * FROM {kind.table} WHERE {' AND '.join(where) or '1'} "
               f"ORDER BY {order} {direction}, id {direction} LIMIT ?")
        rows = self._connection().execute(sql, [*params, query.page_size + 1]).fetchall()
        token = ""
        if len(rows) > query.page_size:
            rows = rows[:query.page_size]
            token = _make_token(rows[-1][order], rows[-1]["id"], fingerprint)
        return Page(items=[self._resource(kind, r) for r in rows], next_page_token=token, page_size=query.page_size)


def _make_token(value: int, rid: int, fingerprint: str) -> str:
    raw = json.dumps({"v": value, "i": rid, "q": fingerprint}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _read_token(token: str, fingerprint: str) -> tuple[int, int]:
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        value, rid, issued_for = int(data["v"]), int(data["i"]), str(data["q"])
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise BadRequest(f"nextPageToken {token!r} was not issued by this registry") from None
    if issued_for != fingerprint:
        raise BadRequest("nextPageToken belongs to another query: keep filterQuery, orderBy, sortOrder "
                         "and the other parameters of the call that returned it")
    return value, rid
