"""Tests for the deterministic raw demo data generator (no Spark needed).

The files are parsed back as plain strings, so every dirty count in the
summary is checked against what actually landed on disk.
"""

from __future__ import annotations

import json
import os
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from featurekit.cli import main
from featurekit.demo.arrivals import ArrivalSummary, arrival_path, generate_arrival
from featurekit.demo.generate import GenerateSummary, generate_raw
from featurekit.errors import DataError

ROWS = 5000
END = datetime(2026, 1, 15, tzinfo=UTC)
DAYS = 14
HEADER = "trip_id,driver_id,fare,distance_km,city,payment_type,event_ts"
TS_PATTERN = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")


def read_trips(out: Path) -> pd.DataFrame:
    """Read every trips part as strings, keeping empty fields as empty strings."""
    parts = sorted((out / "trips").glob("part-*.csv"))
    return pd.concat(
        [pd.read_csv(p, dtype=str, keep_default_na=False) for p in parts], ignore_index=True
    )


def read_csv(path: Path) -> pd.DataFrame:
    """Read one trips CSV file as strings, keeping empty fields as empty strings."""
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def read_updates(out: Path) -> list[dict[str, object]]:
    """Read every driver update JSON line."""
    parts = sorted((out / "driver_updates").glob("part-*.json"))
    return [json.loads(line) for p in parts for line in p.read_text().splitlines()]


def parse_timestamps(values: pd.Series) -> pd.Series:
    """Parse strictly as 'YYYY-MM-DD HH:MM:SS'; anything else (or an invalid date) becomes NaT."""
    shaped = values.str.fullmatch(TS_PATTERN.pattern)
    parsed = pd.to_datetime(values.where(shaped), format="%Y-%m-%d %H:%M:%S", errors="coerce")
    return parsed.dt.tz_localize("UTC")


def snapshot(out: Path) -> dict[str, bytes]:
    """Map each file's path relative to `out` to its bytes."""
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, GenerateSummary]:
    out = tmp_path_factory.mktemp("demo") / "raw"
    return out, generate_raw(out, rows=ROWS)


def test_same_arguments_give_identical_bytes(tmp_path: Path) -> None:
    first = snapshot_of(tmp_path / "a", seed=11)
    second = snapshot_of(tmp_path / "b", seed=11)
    assert first.keys() == second.keys()
    assert first == second
    assert first != snapshot_of(tmp_path / "c", seed=12)


def snapshot_of(out: Path, seed: int) -> dict[str, bytes]:
    generate_raw(out, rows=ROWS, seed=seed)
    return snapshot(out)


def test_layout_and_headers(generated: tuple[Path, GenerateSummary]) -> None:
    out, _ = generated
    trip_parts = sorted(p.name for p in (out / "trips").iterdir())
    assert trip_parts == [f"part-{i:05d}.csv" for i in range(4)]
    for part in (out / "trips").iterdir():
        lines = part.read_text().splitlines()
        assert lines[0] == HEADER
        assert len(lines) > 1
        assert all(not line.startswith("trip_id") for line in lines[1:])
    update_parts = sorted((out / "driver_updates").glob("part-*.json"))
    assert 1 <= len(update_parts) <= 4
    assert (out / "_manifest.json").is_file()


def test_total_rows_match_summary(generated: tuple[Path, GenerateSummary]) -> None:
    out, summary = generated
    trips = read_trips(out)
    assert summary.trips_rows == ROWS
    assert len(trips) == ROWS
    assert len(read_updates(out)) == summary.driver_update_rows


def test_dirty_counts_match_files(generated: tuple[Path, GenerateSummary]) -> None:
    out, summary = generated
    trips = read_trips(out)
    fare = pd.to_numeric(trips["fare"])
    assert (trips["driver_id"] == "").sum() == summary.null_driver_id
    assert (fare < 0).sum() == summary.negative_fare
    assert parse_timestamps(trips["event_ts"]).isna().sum() == summary.bad_timestamp
    assert len(trips) - trips["trip_id"].nunique() == summary.duplicate_trip_id
    assert min(summary.null_driver_id, summary.negative_fare,
               summary.bad_timestamp, summary.duplicate_trip_id) > 0
    # Each dirty row carries exactly one defect.
    defects = (
        (trips["driver_id"] == "").astype(int)
        + (fare < 0).astype(int)
        + parse_timestamps(trips["event_ts"]).isna().astype(int)
    )
    assert defects.max() == 1


def test_dirty_fraction_is_respected(generated: tuple[Path, GenerateSummary]) -> None:
    _, s = generated
    dirty = s.null_driver_id + s.negative_fare + s.bad_timestamp + s.duplicate_trip_id
    assert dirty == round(ROWS * 0.005)
    assert max(s.null_driver_id, s.negative_fare, s.bad_timestamp, s.duplicate_trip_id) - min(
        s.null_driver_id, s.negative_fare, s.bad_timestamp, s.duplicate_trip_id
    ) <= 1


def test_duplicates_are_later_corrections(generated: tuple[Path, GenerateSummary]) -> None:
    out, _ = generated
    trips = read_trips(out)
    dups = trips[trips["trip_id"].duplicated(keep=False)].copy()
    dups["ts"] = parse_timestamps(dups["event_ts"])
    for _, group in dups.groupby("trip_id"):
        assert len(group) == 2
        assert group["ts"].notna().all()
        assert group["ts"].nunique() == 2
        assert group["fare"].nunique() == 2
        assert (pd.to_numeric(group["fare"]) > 0).all()
        assert group["driver_id"].nunique() == 1 and group["driver_id"].iloc[0] != ""


def test_dirty_rows_are_not_grouped(generated: tuple[Path, GenerateSummary]) -> None:
    out, _ = generated
    trips = read_trips(out)
    dirty = (
        (trips["driver_id"] == "")
        | (pd.to_numeric(trips["fare"]) < 0)
        | parse_timestamps(trips["event_ts"]).isna()
        | trips["trip_id"].duplicated()
    )
    positions = trips.index[dirty]
    quarters_hit = set(positions * 4 // len(trips))
    assert len(quarters_hit) >= 3
    assert positions.max() - positions.min() > 10 * len(positions)


def test_values_are_well_formed(generated: tuple[Path, GenerateSummary]) -> None:
    out, _ = generated
    trips = read_trips(out)
    assert trips["trip_id"].str.fullmatch(r"t\d{8}").all()
    assert trips["driver_id"].str.fullmatch(r"\d*").all()
    assert trips["fare"].str.fullmatch(r"-?\d+\.\d{2}").all()
    assert (pd.to_numeric(trips["distance_km"]) > 0).all()
    assert trips["city"].nunique() == 6
    assert set(trips["payment_type"]) == {"card", "cash", "wallet"}
    clean = trips[pd.to_numeric(trips["fare"]) > 0]
    correlation = pd.to_numeric(clean["fare"]).corr(pd.to_numeric(clean["distance_km"]))
    assert correlation > 0.6


def test_timestamps_within_window_with_rush_hours(generated: tuple[Path, GenerateSummary]) -> None:
    out, _ = generated
    ts = parse_timestamps(read_trips(out)["event_ts"]).dropna()
    start = pd.Timestamp(END - timedelta(days=DAYS))
    assert ts.min() >= start
    assert ts.max() < pd.Timestamp(END)
    hours = ts.dt.hour.value_counts()
    assert hours[8] > 3 * hours[3]
    assert hours[18] > 3 * hours[3]


def test_driver_activity_is_skewed(generated: tuple[Path, GenerateSummary]) -> None:
    out, _ = generated
    per_driver = read_trips(out).query("driver_id != ''")["driver_id"].value_counts()
    assert per_driver.iloc[0] > 3 * per_driver.median()


def test_driver_updates(generated: tuple[Path, GenerateSummary]) -> None:
    out, summary = generated
    updates = pd.DataFrame(read_updates(out))
    assert list(updates.columns) == [
        "driver_id", "name", "city", "vehicle_type", "status", "rating", "updated_at"
    ]
    assert updates["driver_id"].isna().sum() == summary.null_driver_id_updates >= 1
    per_driver = updates.dropna(subset=["driver_id"]).groupby("driver_id").size()
    assert len(per_driver) == max(50, ROWS // 500)
    assert per_driver.between(1, 4).all()
    assert per_driver.max() > 1
    assert set(updates["vehicle_type"]) <= {"sedan", "suv", "van", "bike"}
    assert set(updates["status"]) <= {"active", "inactive"}
    assert updates["rating"].between(1, 5).all()
    stamps = parse_timestamps(updates["updated_at"])
    assert stamps.notna().all()
    assert stamps.min() >= pd.Timestamp(END - timedelta(days=DAYS))
    assert stamps.max() < pd.Timestamp(END)
    trip_drivers = set(read_trips(out)["driver_id"]) - {""}
    assert trip_drivers <= {str(int(d)) for d in per_driver.index}


def test_manifest(generated: tuple[Path, GenerateSummary]) -> None:
    out, summary = generated
    manifest = json.loads((out / "_manifest.json").read_text())
    assert {k: manifest[k] for k in summary.to_dict()} == summary.to_dict()
    assert manifest["seed"] == 7
    assert manifest["rows"] == ROWS
    assert manifest["days"] == DAYS
    assert datetime.fromisoformat(manifest["end"]) == END


def test_replaces_existing_output(tmp_path: Path) -> None:
    out = tmp_path / "raw"
    (out / "trips").mkdir(parents=True)
    (out / "trips" / "stale.csv").write_text("old\n")
    (out / "leftover.txt").write_text("old\n")
    summary = generate_raw(out, rows=800, parts=2)
    assert not (out / "leftover.txt").exists()
    assert sorted(p.name for p in (out / "trips").iterdir()) == ["part-00000.csv", "part-00001.csv"]
    assert len(read_trips(out)) == summary.trips_rows == 800
    assert [p.name for p in tmp_path.iterdir()] == ["raw"]  # no staging or retired dirs left


def test_zero_dirty_fraction_gives_clean_data(tmp_path: Path) -> None:
    summary = generate_raw(tmp_path / "raw", rows=1000, dirty_fraction=0.0)
    trips = read_trips(tmp_path / "raw")
    assert summary.to_dict() | {"trips_rows": 0, "driver_update_rows": 0} == dict.fromkeys(
        summary.to_dict(), 0
    )
    assert trips["trip_id"].is_unique
    assert (trips["driver_id"] != "").all()
    assert parse_timestamps(trips["event_ts"]).notna().all()


@pytest.mark.parametrize(
    "kwargs",
    [{"rows": 0}, {"drivers": 0}, {"dirty_fraction": 0.9}, {"days": 0}, {"parts": 0},
     {"end": datetime(2026, 1, 15)}],
)
def test_rejects_bad_arguments(tmp_path: Path, kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        generate_raw(tmp_path / "raw", **kwargs)  # type: ignore[arg-type]
    assert not (tmp_path / "raw").exists()


# Arrivals: one more day of trips per file, after the base set.

ARRIVAL_ROWS = 14_000  # ~1,000 trips a day, 5 dirty rows, 10 late rows; 50 drivers (5 stop)
DAY = timedelta(days=1)


@pytest.fixture(scope="module")
def arrivals(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, dict[str, bytes], list[ArrivalSummary]]:
    """A base set, its snapshot before any arrival, and arrivals 1 and 2 added to it."""
    out = tmp_path_factory.mktemp("arrivals") / "raw"
    generate_raw(out, rows=ARRIVAL_ROWS)
    before = snapshot(out)
    return out, before, [generate_arrival(out, 1), generate_arrival(out, 2)]


def test_arrival_files_are_added_beside_the_parts(
    arrivals: tuple[Path, dict[str, bytes], list[ArrivalSummary]],
) -> None:
    out, before, summaries = arrivals
    names = sorted(p.name for p in (out / "trips").iterdir())
    assert names == ["arrival-00001.csv", "arrival-00002.csv"] + [f"part-{i:05d}.csv" for i in range(4)]
    assert sorted(p.name for p in out.iterdir()) == ["_manifest.json", "driver_updates", "trips"]
    after = snapshot(out)
    assert {k: v for k, v in after.items() if k in before and k != "_manifest.json"} == {
        k: v for k, v in before.items() if k != "_manifest.json"
    }
    for summary in summaries:
        path = arrival_path(out, summary.arrival)
        assert path.read_text().splitlines()[0] == HEADER
        assert len(read_csv(path)) == summary.trips_rows


def test_arrival_event_times_follow_the_base_set(
    arrivals: tuple[Path, dict[str, bytes], list[ArrivalSummary]],
) -> None:
    out, _, summaries = arrivals
    for k, summary in enumerate(summaries, start=1):
        start, end = END + (k - 1) * DAY, END + k * DAY
        assert (summary.start, summary.end) == (start.isoformat(), end.isoformat())
        ts = parse_timestamps(read_csv(arrival_path(out, k))["event_ts"]).dropna()
        on_time = ts[ts >= pd.Timestamp(start)]
        assert on_time.min() > pd.Timestamp(start)
        assert on_time.max() <= pd.Timestamp(end)
        assert on_time.max() > pd.Timestamp(end - timedelta(hours=2))
        hours = on_time.dt.hour.value_counts()
        assert hours[8] > 2 * hours[3]


def test_late_rows_belong_to_the_previous_day(
    arrivals: tuple[Path, dict[str, bytes], list[ArrivalSummary]],
) -> None:
    out, _, summaries = arrivals
    for k, summary in enumerate(summaries, start=1):
        start = pd.Timestamp(END + (k - 1) * DAY)
        trips = read_csv(arrival_path(out, k))
        ts = parse_timestamps(trips["event_ts"])
        late = trips[ts < start]
        assert len(late) == summary.late_rows > 0
        assert (ts[ts < start] >= start - pd.Timedelta(hours=6)).all()
        on_time_trips = summary.trips_rows - summary.duplicate_trip_id - summary.late_rows
        assert summary.late_rows == round(on_time_trips * 0.01)
        assert late["trip_id"].is_unique and (late["driver_id"] != "").all()  # late rows are clean
        assert (pd.to_numeric(late["fare"]) > 0).all()


def test_arrival_dirty_counts_match_the_manifest(
    arrivals: tuple[Path, dict[str, bytes], list[ArrivalSummary]],
) -> None:
    out, _, summaries = arrivals
    manifest = json.loads((out / "_manifest.json").read_text())
    assert manifest["arrivals"] == [s.to_dict() for s in summaries]
    for entry in manifest["arrivals"]:
        trips = read_csv(arrival_path(out, entry["arrival"]))
        fare = pd.to_numeric(trips["fare"])
        bad_ts = parse_timestamps(trips["event_ts"]).isna()
        assert len(trips) == entry["trips_rows"]
        assert (trips["driver_id"] == "").sum() == entry["null_driver_id"]
        assert (fare < 0).sum() == entry["negative_fare"]
        assert bad_ts.sum() == entry["bad_timestamp"]
        assert len(trips) - trips["trip_id"].nunique() == entry["duplicate_trip_id"]
        dirty = [entry[k] for k in ("null_driver_id", "negative_fare", "bad_timestamp", "duplicate_trip_id")]
        assert min(dirty) > 0 and max(dirty) - min(dirty) <= 1
        assert sum(dirty) == round(entry["trips_rows"] * 0.005)  # the base set's dirty fraction
        defects = (trips["driver_id"] == "").astype(int) + (fare < 0).astype(int) + bad_ts.astype(int)
        assert defects.max() == 1


def test_arrival_corrections_are_later_and_correct_a_trip_of_the_arrival(
    arrivals: tuple[Path, dict[str, bytes], list[ArrivalSummary]],
) -> None:
    out, _, summaries = arrivals
    for summary in summaries:
        trips = read_csv(arrival_path(out, summary.arrival))
        dups = trips[trips["trip_id"].duplicated(keep=False)].assign(ts=lambda d: parse_timestamps(d["event_ts"]))
        assert dups["trip_id"].nunique() == summary.duplicate_trip_id
        assert (dups["ts"] > pd.Timestamp(summary.start)).all()
        assert (dups["ts"] <= pd.Timestamp(summary.end)).all()
        for _, group in dups.groupby("trip_id"):
            assert len(group) == 2 and group["ts"].nunique() == 2 and group["fare"].nunique() == 2
            assert (pd.to_numeric(group["fare"]) > 0).all()
            assert group["driver_id"].nunique() == 1


def test_trip_ids_never_collide_and_sort_after_earlier_data(
    arrivals: tuple[Path, dict[str, bytes], list[ArrivalSummary]],
) -> None:
    out, _, _ = arrivals
    files = [read_trips(out), read_csv(arrival_path(out, 1)), read_csv(arrival_path(out, 2))]
    ids = [set(trips["trip_id"]) for trips in files]
    assert sum(len(i) for i in ids) == len(set().union(*ids))
    assert all(trips["trip_id"].str.fullmatch(r"t\d{8}").all() for trips in files)
    assert max(ids[0]) < min(ids[1]) and max(ids[1]) < min(ids[2])  # sortable as text
    numbers = sorted(int(i[1:]) for i in set().union(*ids))
    assert numbers == list(range(1, len(numbers) + 1))  # the numbering just continues


def test_stopped_drivers_have_no_trips_in_any_arrival(
    arrivals: tuple[Path, dict[str, bytes], list[ArrivalSummary]],
) -> None:
    out, _, summaries = arrivals
    base_drivers = set(read_trips(out)["driver_id"]) - {""}
    assert "100001" in base_drivers  # the demo's stopped driver did drive before
    for summary in summaries:
        assert summary.stopped_drivers == 5  # 50 drivers, indexes 0, 10, ..., 40
        drivers = set(read_csv(arrival_path(out, summary.arrival))["driver_id"]) - {""}
        assert drivers <= base_drivers
        assert not {d for d in drivers if (int(d) - 100_001) % 10 == 0}
        assert len(drivers) > 20


def test_arrival_drivers_keep_their_home_city(
    arrivals: tuple[Path, dict[str, bytes], list[ArrivalSummary]],
) -> None:
    out, _, _ = arrivals
    late = pd.concat([read_csv(arrival_path(out, k)) for k in (1, 2)]).query("driver_id != ''")
    home_before = read_trips(out).query("driver_id != ''").groupby("driver_id")["city"].agg(
        lambda c: c.mode().iloc[0])
    busy = late["driver_id"].value_counts().loc[lambda n: n >= 10].index
    home_after = late[late["driver_id"].isin(busy)].groupby("driver_id")["city"].agg(lambda c: c.mode().iloc[0])
    assert len(home_after) >= 5
    assert (home_after == home_before[home_after.index]).all()


def test_rewriting_an_arrival_gives_the_same_bytes_and_a_fresh_file(
    arrivals: tuple[Path, dict[str, bytes], list[ArrivalSummary]],
) -> None:
    out, _, summaries = arrivals
    before = snapshot(out)
    path = arrival_path(out, 1)
    os.utime(path, (1_000_000_000, 1_000_000_000))  # as if written in 2001
    assert generate_arrival(out, 1) == summaries[0]
    assert snapshot(out) == before  # the manifest too
    assert path.stat().st_mtime > time.time() - 600
    assert not [p for p in out.rglob(".*")]  # no staging files left behind


def test_same_arguments_give_identical_arrivals(tmp_path: Path) -> None:
    def arrival_bytes(out: Path, seed: int) -> bytes:
        generate_raw(out, rows=800, seed=seed, parts=2)
        generate_arrival(out, 1)
        return arrival_path(out, 1).read_bytes()

    assert arrival_bytes(tmp_path / "a", 11) == arrival_bytes(tmp_path / "b", 11)
    assert arrival_bytes(tmp_path / "a", 11) != arrival_bytes(tmp_path / "c", 12)


def test_arrival_needs_a_base_set(tmp_path: Path) -> None:
    out = tmp_path / "raw"
    with pytest.raises(DataError) as caught:
        generate_arrival(out, 1)
    assert str(caught.value) == (
        f"no base data set in {out}: {out}/_manifest.json is not there; "
        "generate the base set before its arrivals"
    )
    assert not out.exists()


def test_arrival_needs_the_previous_arrival(tmp_path: Path) -> None:
    out = tmp_path / "raw"
    generate_raw(out, rows=800, parts=2)
    before = snapshot(out)
    with pytest.raises(DataError) as caught:
        generate_arrival(out, 2)
    assert str(caught.value) == (
        f"arrival 2 needs arrival 1 first: {out}/trips/arrival-00001.csv is not there yet"
    )
    assert snapshot(out) == before


def test_arrival_options_come_from_the_base_set(tmp_path: Path) -> None:
    out = tmp_path / "raw"
    generate_raw(out, rows=800, seed=3, parts=2)
    assert generate_arrival(out, 1, rows=800, seed=3).arrival == 1
    with pytest.raises(ValueError, match=r"^rows=900 differs from the base set's rows=800 in "):
        generate_arrival(out, 2, rows=900)
    with pytest.raises(ValueError, match=r"^arrival must be >= 1, got 0$"):
        generate_arrival(out, 0)
    assert not arrival_path(out, 2).exists()


def test_cli_adds_an_arrival_and_prints_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "raw"
    assert main(["generate-demo-data", "--out", str(out), "--arrival", "1"]) == 3
    assert capsys.readouterr().err.startswith(f"error: no base data set in {out}: ")
    assert main(["generate-demo-data", "--out", str(out), "--rows", "800"]) == 0
    capsys.readouterr()
    assert main(["generate-demo-data", "--out", str(out), "--arrival", "1"]) == 0
    entry = json.loads((out / "_manifest.json").read_text())["arrivals"][0]
    assert capsys.readouterr().out == (
        f"wrote {out}/trips/arrival-00001.csv: arrival=1, start=2026-01-15T00:00:00+00:00, "
        f"end=2026-01-16T00:00:00+00:00, trips_rows={entry['trips_rows']}, late_rows={entry['late_rows']}, "
        f"null_driver_id={entry['null_driver_id']}, negative_fare={entry['negative_fare']}, "
        f"bad_timestamp={entry['bad_timestamp']}, duplicate_trip_id={entry['duplicate_trip_id']}, "
        "stopped_drivers=5\n"
    )
    assert main(["generate-demo-data", "--out", str(out), "--arrival", "3"]) == 3
    assert "arrival 3 needs arrival 2 first" in capsys.readouterr().err
