"""Value types that YAML writes loosely: option maps whose values are strings to their reader."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator


def _option_value(value: Any) -> Any:
    """Spark options (and Feast's store settings) are strings; YAML's ``true``/``1`` are taken as ``"true"``/``"1"``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return value


OptionValue = Annotated[str, BeforeValidator(_option_value)]
