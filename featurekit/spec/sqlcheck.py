"""Spark SQL text without a SQL engine: tell a query from a statement; quote names and values.

A ``sql`` step must be one SELECT/WITH query: Spark runs DDL and DML eagerly the moment
``spark.sql`` sees them, so anything else is refused at validation time, before a JVM.
"""

from __future__ import annotations

import re
from typing import Any

QUERY_STARTS = {"select", "with", "from", "values", "table"}
# Word pairs that turn a query into a statement wherever they stand (e.g. ``WITH ...
# INSERT INTO``); any other statement is caught by its first word. Pairs, not single words,
# so that a column called ``delete`` or ``merge`` stays usable.
_OBJECTS = {"table", "view", "database", "schema", "namespace", "function", "temporary", "temp",
            "global", "or", "if", "catalog", "index", "external"}
STATEMENT_PAIRS = {
    "insert": {"into", "overwrite", "table"},
    "delete": {"from"},
    "merge": {"into"},
    "update": None,  # UPDATE <table> SET: checked below
    "create": _OBJECTS,
    "drop": _OBJECTS,
    "alter": _OBJECTS,
    "truncate": {"table"},
}
_TOKENS = re.compile(
    r"--[^\n]*|/\*.*?\*/|'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|`[^`]*`|;|\(|[A-Za-z_][A-Za-z0-9_]*",
    re.DOTALL,
)


def quote(name: str) -> str:
    """``name`` as a Spark SQL identifier (backticks, any inside doubled)."""
    return "`" + name.replace("`", "``") + "`"


def literal(value: Any) -> str:
    """A Spark SQL literal (strings escaped for Spark's backslash-escaping parser)."""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (int, float)):
        return repr(value)
    text = str(value).replace("\\", "\\\\").replace("'", "\\'")
    return f"'{text}'"


def query_problem(sql: str) -> str | None:
    """Why ``sql`` is not a single read-only query, or None when it is one."""
    words: list[str] = []
    statements = 1
    for token in _TOKENS.findall(sql):
        if token.startswith(("--", "/*", "'", '"', "`")):
            continue
        if token == ";":
            statements += 1
            continue
        if statements > 1:
            return "expected a single SELECT/WITH query; got more than one statement (';')"
        words.append(token.lower())
    if not words:
        return "expected a SELECT/WITH query; got no SQL"
    first = next((w for w in words if w != "("), "")
    if first not in QUERY_STARTS:
        return f"expected a SELECT/WITH query; got a statement starting with {first.upper()!r}"
    bad = sorted({
        w for w, nxt, after in zip(words, words[1:] + [""], words[2:] + ["", ""])
        if w in STATEMENT_PAIRS and (nxt in STATEMENT_PAIRS[w] if STATEMENT_PAIRS[w] is not None else after == "set")
    })
    if bad:
        return f"expected a read-only query; got {', '.join(w.upper() for w in bad)}"
    return None
