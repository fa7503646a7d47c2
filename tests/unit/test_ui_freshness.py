"""The feature page's freshness: from the last materialization's record as the run log keeps it
(read through the API's own reads), the age in words and the verdict against the view's ttl."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from featurekit.api.models import FeatureSetSummary
from featurekit.api.reads import materialization
from featurekit.ui.pages import freshness, human_age

NOW = datetime(2026, 3, 8, 12, tzinfo=UTC)


def record(**newest: Any) -> dict[str, Any]:
    """A feature set record as the run log keeps it; ``newest``: its newest_event, if any."""
    return {"kind": "feature_set", "run_id": "20260308T110000Z-0a0b0c0d", "feast_project": "featurekit",
            "feature_view": "v", "features": ["x"], "job": "v", "spec_fingerprint": "f", "delta_path": "/lake/v",
            "delta_version": 3, "window_start": "2026-03-01T12:00:00+00:00", "window_end": "2026-03-08T12:00:00+00:00",
            "rows": 2, "keys": 2, "online_store": "redis", "recorded_at": "2026-03-08T11:00:00+00:00", **newest}


def view(ttl: str | None, **newest: Any) -> FeatureSetSummary:
    return FeatureSetSummary(view="v", job="v", feast_project="featurekit", declared=ttl is not None, ttl=ttl,
                             delta_versions=[3], materialization_count=1, latest=materialization(record(**newest)))


@pytest.mark.parametrize(("seconds", "text"), [(0, "0 s"), (59, "59 s"), (60, "1 min"), (3599, "59 min"),
                                               (3600 * 3 + 60 * 12 + 5, "3 h 12 min"), (86400 * 2 + 3600, "2 d 1 h")])
def test_ages_read_as_their_two_largest_units(seconds: int, text: str) -> None:
    assert human_age(seconds) == text


def test_within_and_past_the_ttl() -> None:
    fresh = freshness(view("1d", newest_event=(NOW - timedelta(hours=3, minutes=12)).isoformat()), NOW)
    assert fresh is not None and (fresh.age, fresh.ttl, fresh.stale, fresh.note) == ("3 h 12 min", "1d", False, "")
    assert fresh.newest == NOW - timedelta(hours=3, minutes=12)
    edge = freshness(view("1d", newest_event=(NOW - timedelta(days=1)).isoformat()), NOW)
    assert edge is not None and not edge.stale                      # exactly the ttl: still allowed
    stale = freshness(view("1d", newest_event=(NOW - timedelta(days=1, seconds=1)).isoformat()), NOW)
    assert stale is not None and (stale.age, stale.stale) == ("1 d 0 h", True)


def test_what_cannot_be_judged_says_why() -> None:
    older = freshness(view("1d"), NOW)                              # no newest_event at all: an older featurekit
    assert older is not None and older.newest is None and not older.stale
    assert older.note.startswith("Unknown: the last materialization was made by an older featurekit")
    empty = freshness(view("1d", newest_event=None), NOW)           # recorded: the store held none
    assert empty is not None and empty.note == "The online store held no value of the view after the last materialization."
    ahead = freshness(view("1d", newest_event=(NOW + timedelta(hours=1)).isoformat()), NOW)
    assert ahead is not None and (ahead.age, ahead.stale, ahead.note) == ("0 s", False, "Its event time is after now.")
    gone = freshness(view(None, newest_event=(NOW - timedelta(days=30)).isoformat()), NOW)
    assert gone is not None and not gone.stale and gone.note.startswith("No job declares the view now")
    never = FeatureSetSummary(view="v", job="v", feast_project="featurekit", declared=True, ttl="1d",
                              delta_versions=[], materialization_count=0)
    assert freshness(never, NOW) is None
