"""Close-match suggestions: the ``— did you mean 'x'?`` of every message about a name.

The synonyms are words users reach for that mean one of featurekit's choices (``upsert`` for
``merge``, ``groupby`` for ``aggregate``); they sit here, beside the matching, so that every
message of the project (spec, conf, CLI, APIs) suggests the same way.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

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
