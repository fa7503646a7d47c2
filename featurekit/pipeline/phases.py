"""Where a command is, for the crash tests: with ``FEATUREKIT_PHASE_LOG`` naming a file, each
phase a command enters is appended to it as one line (``<pid> <phase>``) as it begins.

The crash tier (``tests/integration/test_crashes.py``, docs/reliability.md) kills featurekit
with SIGKILL at random points; a random delay alone mostly lands while the JVM starts. With
the phases reported, a trial picks a phase, waits until the process enters it, waits a random
moment more and kills. Unset, this costs one environment lookup per phase.
"""

from __future__ import annotations

import os

ENV = "FEATUREKIT_PHASE_LOG"


def reached(phase: str) -> None:
    """Record that this process enters ``phase`` (only with ``FEATUREKIT_PHASE_LOG`` set)."""
    path = os.environ.get(ENV)
    if not path:
        return
    with open(path, "a", encoding="utf-8") as log:
        log.write(f"{os.getpid()} {phase}\n")
