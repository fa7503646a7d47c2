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


# Spark syntax that sqlglot's Spark dialect does not read: a ``:`` path into a VARIANT or JSON
# string (``v:a.b``; ``::`` casts are fine) and the unsigned shift ``>>>``. SQL using them is
# let through unchecked: Spark, not featurekit, has the last word on what it accepts.
_BEYOND_SQLGLOT = re.compile(r"(?<!:):(?!:)|>>>")
_QUOTED = re.compile(r"--[^\n]*|/\*.*?\*/|'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|`(?:[^`]|``)*`", re.DOTALL)
_KEYWORD_TRIES = 30  # keywords of one SQL text tried as names before its error is reported
_CLASS = re.compile(r"<class '(?:[\w.]+\.)?(\w+)'>")


def syntax_problem(sql: str, query: bool = False) -> str | None:
    """Why ``sql`` is not valid Spark SQL, or None: an expression (a filter, a column, a metric's
    argument), or with ``query`` a whole statement. Parsed by sqlglot's Spark dialect, no JVM.

    Only what sqlglot reports as a syntax error is reported; where sqlglot cannot read what Spark
    accepts (see ``_BEYOND_SQLGLOT``) or fails in any other way, the SQL is let through: a
    false alarm on valid SQL would be worse than Spark reporting a real error at run time.
    """
    import sqlglot
    from sqlglot.errors import ParseError, TokenError

    if _BEYOND_SQLGLOT.search(_QUOTED.sub(" ", sql)):
        return None
    try:
        if query:
            sqlglot.parse(sql, read="spark")
        else:
            sqlglot.parse_one(sql, read="spark")
    except ParseError as exc:
        if _keyword_as_name(sql, query):
            return None
        return _parse_error(exc, sql, query)
    except TokenError:
        return _unclosed(sql)
    except Exception:  # noqa: BLE001 - sqlglot failing on its own says nothing about the SQL
        return None
    return None


def _keyword_as_name(sql: str, query: bool) -> bool:
    """True when the SQL parses once one of its keywords is read as a name, as Spark may read it.

    Spark lets a keyword name a column, a table or an alias wherever ANSI keywords are not
    enforced (its default): ``fare > 0 AND`` is ``fare > 0`` named `AND`, and a column may be
    called ``case``. sqlglot reads those words as keywords only, so before reporting its error
    each keyword in turn is tried as a quoted name, then all together; if that makes the SQL
    valid, Spark accepts it.
    """
    import sqlglot
    from sqlglot.dialects.spark import Spark
    from sqlglot.tokens import TokenType

    words = [token for token in Spark().tokenize(sql)
             if token.token_type not in (TokenType.VAR, TokenType.IDENTIFIER, TokenType.STRING)
             and re.fullmatch(r"[A-Za-z_]\w*", token.text)]
    # each keyword alone, then all of them but a leading one (``SELECT``) at once
    tries = [[token] for token in words[:_KEYWORD_TRIES]]
    if len(words) > 1:
        tries.append([token for token in words if token.start > 0 and sql[:token.start].strip()])
    for chosen in tries:
        named = sql
        for token in sorted(chosen, key=lambda t: -t.start):
            named = named[:token.start] + quote(named[token.start:token.end + 1]) + named[token.end + 1:]
        try:
            (sqlglot.parse if query else sqlglot.parse_one)(named, read="spark")
        except Exception:  # noqa: BLE001 - these keywords are not names: try the next
            continue
        return True
    return False


def _parse_error(exc: Exception, sql: str, query: bool) -> str:
    errors = getattr(exc, "errors", None) or []
    if not errors:
        return f"expected a SQL {'query' if query else 'expression'}; got no SQL (only spaces or comments)"
    first = errors[0]
    description, near = str(first.get("description", "")), str(first.get("highlight") or "")
    if description.startswith("Invalid expression / Unexpected token"):
        reason = f"unexpected {near!r}"
    elif description.startswith("Required keyword"):
        reason = f"incomplete: expected more after {near!r}"
    elif description.startswith("Expecting )"):
        reason = f"a '(' is not closed: expected ')' (or a comma) after {near!r}"
    elif description.startswith("Expected table name"):
        reason = f"expected a table name at {near!r}"
    else:
        reason = _CLASS.sub(lambda m: m.group(1), description).split(". Line ")[0]
        reason = reason[:1].lower() + reason[1:] + (f" (at {near!r})" if near else "")
    return "SQL syntax error: " + reason + _where(sql, first.get("line"), first.get("col"), near)


def _where(sql: str, line: object, col: object, near: str) -> str:
    """`` at column C`` (`` at line L, column C``) of the SQL; sqlglot counts to a token's end."""
    if not isinstance(line, int) or not isinstance(col, int):
        return ""
    start = col - len(near) + 1 if near and "\n" not in near else col
    start = max(start, 1)
    return f" (line {line}, column {start} of the SQL)" if "\n" in sql.strip() else f" (column {start} of the SQL)"


def _unclosed(sql: str) -> str | None:
    """The string, quoted name or comment that is never closed, or None if there is none."""
    index = 0
    while index < len(sql):
        char = sql[index]
        if sql.startswith("--", index):
            end = sql.find("\n", index)
            index = len(sql) if end < 0 else end + 1
            continue
        if sql.startswith("/*", index):
            end = sql.find("*/", index + 2)
            if end < 0:
                return "SQL syntax error: a /* comment is not closed" + _where(sql, *_line_col(sql, index), "")
            index = end + 2
            continue
        if char in "'\"`":
            end = index + 1
            while end < len(sql):
                if sql[end] == "\\" and char != "`":
                    end += 2
                    continue
                if sql[end] == char:
                    if char == "`" and sql.startswith("``", end):
                        end += 2
                        continue
                    break
                end += 1
            if end >= len(sql):
                what = "quoted name (`)" if char == "`" else "string"
                return f"SQL syntax error: a {what} is not closed" + _where(sql, *_line_col(sql, index), "")
            index = end + 1
            continue
        index += 1
    return None


def _line_col(sql: str, offset: int) -> tuple[int, int]:
    start = sql.rfind("\n", 0, offset) + 1
    return sql.count("\n", 0, offset) + 1, offset - start + 1
