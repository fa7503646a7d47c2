"""Close-match suggestions and the checks on names and column types."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable

# Words users reach for that mean one of our choices.
SYNONYMS = {
    "upsert": "merge",
    "insert": "append",
    "replace": "overwrite",
    "where": "filter",
    "distinct": "dedup",
    "deduplicate": "dedup",
    "with_column": "with_columns",
    "columns": "with_columns",
    "group_by": "aggregate",
    "groupby": "aggregate",
    "agg": "aggregate",
    "fillna": "fill_null",
    "drop_columns": "drop",
    "bigint": "long",
    "outer": "full",
    "full_outer": "full",
    "left_outer": "left",
    "leftsemi": "semi",
    "left_semi": "semi",
    "left_anti": "anti",
    "greater_equal": "ge", "greater_than_or_equal_to": "ge", "gte": "ge", "min": "ge",
    "greater_than": "gt", "less_than": "lt", "less_equal": "le", "less_than_or_equal_to": "le",
    "lte": "le", "max": "le", "equal": "eq", "equal_to": "eq", "not_equal_to": "ne",
    "in": "isin", "one_of": "isin", "not_in": "notin", "range": "in_range", "between": "in_range",
    "regex": "str_matches", "pattern": "str_matches", "matches": "str_matches",
    "startswith": "str_startswith", "length": "str_length", "len": "str_length",
}

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
JOB_NAME = re.compile(r"^[a-z][a-z0-9_]*$")

_SIMPLE_TYPES = {
    "string", "long", "bigint", "int", "integer", "short", "smallint", "byte", "tinyint",
    "double", "float", "real", "boolean", "bool", "timestamp", "timestamp_ntz", "date",
    "binary",
}
_DECIMAL = re.compile(r"^decimal\(\s*([0-9]+)\s*,\s*([0-9]+)\s*\)$")


def suggest(word: object, choices: Iterable[str]) -> str | None:
    """The closest choice to ``word``, if one is close enough to be worth saying."""
    if not isinstance(word, str):
        return None
    options = list(choices)
    alias = SYNONYMS.get(word.lower())
    if alias in options:
        return alias
    lowered = {c.lower(): c for c in options}
    if word.lower() in lowered and lowered[word.lower()] != word:
        return lowered[word.lower()]
    match = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return match[0] if match else None


def did_you_mean(word: object, choices: Iterable[str]) -> str:
    """`` — did you mean 'x'?`` or the empty string."""
    hint = suggest(word, choices)
    return f" — did you mean {hint!r}?" if hint else ""


def check_column_type(text: str) -> str:
    """Normalise a Spark SQL type name; ValueError listing the accepted names otherwise."""
    lowered = text.strip().lower()
    if lowered in _SIMPLE_TYPES:
        return lowered
    match = _DECIMAL.match(lowered)
    if match:
        precision, scale = int(match.group(1)), int(match.group(2))
        if 0 < precision <= 38 and scale <= precision:
            return f"decimal({precision},{scale})"
        raise ValueError(f"expected decimal(p,s) with 1 <= p <= 38 and s <= p; got {text!r}")
    accepted = ", ".join(sorted(_SIMPLE_TYPES)) + ", decimal(p,s)"
    raise ValueError(
        f"expected a column type ({accepted}); got {text!r}" + did_you_mean(lowered, _SIMPLE_TYPES)
    )
