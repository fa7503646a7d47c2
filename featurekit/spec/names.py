"""The checks on names and column types of job specs."""

from __future__ import annotations

import re

from featurekit.yamlconf.names import did_you_mean

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
JOB_NAME = re.compile(r"^[a-z][a-z0-9_]*$")

_SIMPLE_TYPES = {
    "string", "long", "bigint", "int", "integer", "short", "smallint", "byte", "tinyint",
    "double", "float", "real", "boolean", "bool", "timestamp", "timestamp_ntz", "date",
    "binary",
}
_DECIMAL = re.compile(r"^decimal\(\s*([0-9]+)\s*,\s*([0-9]+)\s*\)$")


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
