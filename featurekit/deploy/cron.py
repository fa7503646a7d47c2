"""Checking a cron schedule the way the Spark operator will read it.

The operator parses ``ScheduledSparkApplication.spec.schedule`` with robfig/cron's standard
parser: five fields (minute hour day-of-month month day-of-week) or a descriptor such as
``@daily`` or ``@every 90m``. A schedule it cannot parse fails only in the cluster, after
``kubectl apply`` succeeded, so featurekit checks it before rendering.
"""

from __future__ import annotations

import re

_DESCRIPTORS = {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}
_EVERY = re.compile(r"^@every\s+((\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+)$")
_MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
_DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
# name, lowest, highest, names for values
_FIELDS = [
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}),
    ("month", 1, 12, {m: i + 1 for i, m in enumerate(_MONTHS)}),
    ("day of week", 0, 6, {d: i for i, d in enumerate(_DAYS)}),
]


def schedule_problem(schedule: str) -> str | None:
    """Why ``schedule`` is not a schedule the operator accepts, or None when it is one."""
    text = schedule.strip()
    if text.startswith("CRON_TZ=") or text.startswith("TZ="):
        return "give the time zone in kubernetes.schedule.time_zone, not in the schedule"
    if text.startswith("@"):
        if text in _DESCRIPTORS or _EVERY.match(text):
            return None
        return (f"unknown descriptor {text!r}; expected one of {', '.join(sorted(_DESCRIPTORS))} "
                "or '@every <duration>' (e.g. @every 90m)")
    parts = text.split()
    if len(parts) != 5:
        return (f"expected 5 fields (minute hour day-of-month month day-of-week), e.g. '0 * * * *'; "
                f"got {len(parts)} in {schedule!r}")
    for part, (name, low, high, names) in zip(parts, _FIELDS):
        problem = _field_problem(part, low, high, names)
        if problem:
            return f"{name} field {part!r}: {problem}"
    return None


def _field_problem(part: str, low: int, high: int, names: dict[str, int]) -> str | None:
    for item in part.split(","):
        body, _, step = item.partition("/")
        if step and (not step.isdigit() or int(step) == 0):
            return f"step {step!r} must be a whole number above 0"
        if body in ("*", "?"):
            continue
        bounds = body.split("-")
        if len(bounds) > 2:
            return f"expected a value, a range a-b, or *; got {body!r}"
        values = []
        for bound in bounds:
            value = names.get(bound.lower()) if not bound.isdigit() else int(bound)
            if value is None:
                return f"{bound!r} is not a number" + (f" or a name ({', '.join(names)})" if names else "")
            if not low <= value <= high:
                return f"{value} is outside {low}-{high}"
            values.append(value)
        if len(values) == 2 and values[0] > values[1]:
            return f"range {body!r} runs backwards"
    return None
