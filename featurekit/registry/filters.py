"""``filterQuery`` of the Model Registry API as SQL over the store's tables.

The common subset of the API's SQL-like language: ``property = value`` (and ``!=``) terms joined
by ``AND``; anything else is refused with the reason, not ignored. A kind's own properties are
columns or keys of the row's JSON body; any other name is a custom property, compared through
its typed value (``string_value``, ``int_value``, ...). Property names are bound as JSON paths,
never spliced into the SQL.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from typing import Any

from featurekit.registry.resources import BadRequest, Kind

_TYPED = ("string_value", "int_value", "double_value", "bool_value")

_TOKEN = re.compile(r"""
    \s*(?:
      (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
    | (?P<number>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)(?![\w.])
    | (?P<op>!=|<>|<=|>=|=|<|>)
    | (?P<paren>[(),])
    | (?P<ident>(?:`[^`]+`|[A-Za-z_][A-Za-z0-9_]*)(?:\.(?:`[^`]+`|[A-Za-z_][A-Za-z0-9_]*))*)
    | (?P<other>\S+)
    )""", re.VERBOSE)
_SUPPORTED = "supported here: property = value terms (also !=) joined by AND"
_COLUMNS = {"name": "name", "externalId": "external_id", "id": "id", "createTimeSinceEpoch": "created_ms",
            "lastUpdateTimeSinceEpoch": "updated_ms"}


def _tokens(text: str) -> list[tuple[str, str]]:
    found = []
    for match in _TOKEN.finditer(text):
        kind = match.lastgroup
        if kind is not None:
            found.append((kind, match.group(kind)))
    return found


def _literal(kind: str, text: str) -> str | int | float | bool:
    if kind == "string":
        return re.sub(r"\\(.)", r"\1", text[1:-1])
    if kind == "number":
        return float(text) if any(c in text for c in ".eE") else int(text)
    return text.lower() == "true"


def _json_path(*keys: str) -> str:
    for key in keys:
        if '"' in key:
            raise BadRequest(f"filterQuery: property names with a double quote are not supported: {key!r}")
    return "$." + ".".join(f'"{k}"' for k in keys)


def compile_filter(text: str, kind: Kind, fields: Iterable[str]) -> tuple[list[str], list[Any]]:
    """``filterQuery`` -> SQL terms and their parameters (property names bound, never spliced)."""
    tokens = _tokens(text or "")
    if not tokens:
        return [], []
    fields = set(fields)
    terms: list[str] = []
    params: list[Any] = []
    position = 0
    while True:
        term = tokens[position:position + 3]
        shape = [k for k, _ in term]
        if len(term) < 3 or shape[0] != "ident" or shape[1] != "op" or shape[2] not in ("string", "number", "ident"):
            got = " ".join(v for _, v in term) or "the end"
            bad = next((v for k, v in term if k in ("paren", "other") or v.upper() in ("OR", "IN", "LIKE", "ILIKE")), None)
            reason = f"{bad!r} is not supported" if bad else f"expected `property = value` at {got!r}"
            raise BadRequest(f"filterQuery {text!r}: {reason} ({_SUPPORTED})")
        (_, ident), (_, op), (value_kind, value_text) = term
        if value_kind == "ident":
            if value_text.lower() not in ("true", "false"):
                raise BadRequest(f"filterQuery {text!r}: {value_text!r} is not a value; quote strings: \"{value_text}\"")
            value_kind = "bool"
        if op not in ("=", "!=", "<>"):
            raise BadRequest(f"filterQuery {text!r}: operator {op!r} is not supported ({_SUPPORTED})")
        sql, values = _term(ident, "=" if op == "=" else "!=", _literal(value_kind, value_text), kind, fields)
        terms.append(sql)
        params += values
        position += 3
        if position == len(tokens):
            return terms, params
        word = tokens[position][1]
        if word.upper() != "AND":
            raise BadRequest(f"filterQuery {text!r}: {word!r} is not supported ({_SUPPORTED})")
        position += 1


def _term(ident: str, op: str, value: str | int | float | bool, kind: Kind, fields: set[str]) -> tuple[str, list[Any]]:
    segments = re.findall(r"`[^`]+`|[^.`]+", ident)
    typed = None
    if len(segments) > 1 and not segments[-1].startswith("`"):
        if segments[-1] in _TYPED:
            typed = segments.pop()
        elif segments[-1].endswith("_value") or difflib.get_close_matches(segments[-1], _TYPED, n=1, cutoff=0.8):
            close = difflib.get_close_matches(segments[-1], _TYPED, n=1, cutoff=0.6)
            raise BadRequest(f"filterQuery: {segments[-1]!r} is not a value type"
                             + (f" — did you mean {close[0]!r}?" if close else f"; use one of {', '.join(_TYPED)}")
                             + " (quote a property name with dots in backticks: `a.b`)")
    name = ".".join(s.strip("`") for s in segments)
    if typed is None and name in _COLUMNS:
        column = _COLUMNS[name]
        if column in ("id", "created_ms", "updated_ms"):
            try:
                value = int(value)
            except (TypeError, ValueError):
                raise BadRequest(f"filterQuery: {name} is a number; got {value!r}") from None
        return f"{column} {op} ?", [value]
    if typed is None and name == "artifactType" and kind.table == "artifacts":
        return f"artifact_type {op} ?", [value]
    reference = next((r for r in kind.all_references() if r.field is not None and r.field == name), None)
    if typed is None and reference is not None:  # ids are strings in the API, integers in their columns
        return f"{reference.column} {op} ?", [int(str(value)) if str(value).isdigit() else value]
    if typed is None and name in fields:
        return f"json_extract(body, ?) {op} ?", [_json_path(name), value]
    accessors = [typed] if typed else _TYPED
    clauses, params = [], []
    for accessor in accessors:
        candidate = _typed_value(accessor, value)
        if candidate is not None:
            clauses.append(f"json_extract(body, ?) {op} ?")
            params += [_json_path("customProperties", name, accessor), candidate]
    if not clauses:
        raise BadRequest(f"filterQuery: {name}.{typed} cannot equal {value!r}")
    joiner = " OR " if op == "=" else " AND "
    return "(" + joiner.join(clauses) + ")", params


def _typed_value(accessor: str, value: str | int | float | bool) -> Any:
    """``value`` as stored under ``accessor`` (int_value is a string in the API), None if it can't be."""
    if accessor == "string_value":
        return value if isinstance(value, str) else None
    if accessor == "int_value":
        if isinstance(value, bool):
            return None
        text = str(value)
        return text if re.fullmatch(r"-?\d+", text) else None
    if accessor == "double_value":
        if isinstance(value, bool):
            return None
        try:
            return float(value)
        except ValueError:
            return None
    if isinstance(value, bool):
        return int(value)
    return None
