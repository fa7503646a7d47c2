"""Settings filled from the environment at the last moment, in memory only."""

from __future__ import annotations

import os
from typing import Any


def with_environment(config: Any) -> Any:
    """``config`` with ``${NAME}`` filled from the environment, as Feast fills a
    ``feature_store.yaml`` it reads: how a referenced password reaches Feast's own stores when
    featurekit hands Feast its settings in memory. Only in memory; nothing written holds it."""
    if isinstance(config, dict):
        return {key: with_environment(value) for key, value in config.items()}
    if isinstance(config, list):
        return [with_environment(value) for value in config]
    return os.path.expandvars(config) if isinstance(config, str) and "$" in config else config
