"""Where a command is, for the crash tests: with ``FEATUREKIT_PHASE_LOG`` naming a file, each
phase a command enters is appended to it as one line (``<pid> <phase>``) as it begins.

The crash tier (``tests/integration/test_crashes.py``, docs/reliability.md) kills featurekit
with SIGKILL at random points; a random delay alone mostly lands while the JVM starts. With
the phases reported, a trial picks a phase, waits until the process enters it, waits a random
moment more and kills. ``FEATUREKIT_PHASE_HOLD`` naming a phase stops the process there (it
sleeps until killed): a kill at exactly that point. Unset, each costs one environment lookup
per phase.
"""

from __future__ import annotations

import os
import time

ENV = "FEATUREKIT_PHASE_LOG"
HOLD = "FEATUREKIT_PHASE_HOLD"


def reached(phase: str) -> None:
    """Record that this process enters ``phase`` (only with ``FEATUREKIT_PHASE_LOG`` set)."""
    path = os.environ.get(ENV)
    if path:
        with open(path, "a", encoding="utf-8") as log:
            log.write(f"{os.getpid()} {phase}\n")
    if os.environ.get(HOLD) == phase:
        time.sleep(3600)  # the test kills the process here
