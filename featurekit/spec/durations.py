"""Durations as users write them: ``30s``, ``15m``, ``1h``, ``24h``, ``7d``, ``2w``."""

from __future__ import annotations

import re

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PATTERN = re.compile(r"^([1-9][0-9]*)([smhdw])$")


def parse_duration(text: str) -> int:
    """Seconds in ``text``; ValueError with the accepted form otherwise."""
    match = _PATTERN.match(text.strip()) if isinstance(text, str) else None
    if isinstance(text, str) and re.match(r"^0+[smhdw]$", text.strip()):
        raise ValueError(f"expected a positive duration; got {text!r}")
    if not match:
        raise ValueError(
            f"expected a duration like '30s', '15m', '1h', '7d' or '2w'; got {text!r}"
        )
    return int(match.group(1)) * UNITS[match.group(2)]


def format_duration(seconds: int) -> str:
    """Seconds as users write them, in the largest unit that divides them: 3600 -> ``1h``."""
    for unit, size in sorted(UNITS.items(), key=lambda item: -item[1]):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
