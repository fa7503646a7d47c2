"""Tests for the deterministic raw demo data generator (no Spark needed).

The files are parsed back as plain strings, so every dirty count in the
summary is checked against what actually landed on disk.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from featurekit.demo.generate import GenerateSummary, generate_raw

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
