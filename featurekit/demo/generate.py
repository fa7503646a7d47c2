"""Generate a realistic, deterministic raw demo data set for featurekit.

What: ride-hailing trips as CSV parts (``trips/``) and driver profile change
events as JSON Lines (``driver_updates/``), plus a ``_manifest.json``.  The
data look like raw landing-zone files: hour-of-day seasonality, Zipf-like
driver activity, fares that follow distance, and a small, exactly counted set
of dirty rows (null driver ids, negative fares, unparsable timestamps and
duplicate trip ids carrying a later correction).

Why: the pipelines, quality checks and point-in-time joins of featurekit need
input whose defects are known in advance, that is identical for identical
arguments (byte for byte), and that is fast to produce at millions of rows
without a Spark session.  Everything is vectorised with numpy and written with
pyarrow; the output directory is built beside ``out`` and renamed into place,
so a half-written data set never appears.

Arrivals (:mod:`featurekit.demo.arrivals`) add one more day of trips to an existing set,
one file per day, so an incremental job has newly arrived data (with late rows
and corrections) to pick up on its next run.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv


TRIP_COLUMNS = ("trip_id", "driver_id", "fare", "distance_km", "city", "payment_type", "event_ts")
# name, share of drivers, base fare, price per km
CITIES = (
    ("Amsterdam", 0.18, 3.20, 2.10),
    ("Berlin", 0.22, 3.90, 2.00),
    ("Lisbon", 0.12, 2.50, 0.90),
    ("Madrid", 0.17, 2.60, 1.10),
    ("Paris", 0.21, 4.00, 1.70),
    ("Warsaw", 0.10, 2.20, 0.80),
)
PAYMENT_TYPES = ("card", "cash", "wallet")
PAYMENT_SHARES = (0.62, 0.23, 0.15)
VEHICLE_TYPES = ("sedan", "suv", "van", "bike")
VEHICLE_SHARES = (0.55, 0.22, 0.13, 0.10)
# Relative demand per UTC hour of day: night trough, morning and evening rush.
HOUR_WEIGHTS = np.array(
    [0.35, 0.25, 0.18, 0.15, 0.18, 0.35, 0.80, 1.50, 1.90, 1.30, 0.90, 0.95,
     1.10, 1.00, 0.95, 1.05, 1.40, 1.90, 2.00, 1.50, 1.10, 0.95, 0.80, 0.55]
)
WEEKDAY_WEIGHTS = np.array([0.95, 0.97, 1.00, 1.02, 1.15, 1.10, 0.85])  # Monday first
BAD_TIMESTAMPS = (
    "2026-13-45 99:61:00",
    "not-a-time",
    "15/01/2026 10:00",
    "2026-02-30 12:00:00",
    "2026/01/10 08:30:00",
    "yesterday",
)
FIRST_NAMES = (
    "Ana", "Ben", "Carla", "David", "Elif", "Farid", "Greta", "Hugo", "Ines", "Jonas",
    "Katarzyna", "Luca", "Marta", "Nils", "Olga", "Pedro", "Quentin", "Rosa", "Sven", "Tomasz",
)
LAST_NAMES = (
    "Almeida", "Becker", "Costa", "Dubois", "Eriksen", "Fischer", "Garcia", "Hoffmann",
    "Jansen", "Kowalski", "Lopez", "Martin", "Nowak", "Oliveira", "Petit", "Schmidt",
)
DIRTY_KINDS = ("null_driver_id", "negative_fare", "bad_timestamp", "duplicate_trip_id")
DUPLICATE_MARGIN_S = 60
MAX_CORRECTION_DELAY_S = 3 * 3600


@dataclass(frozen=True)
class GenerateSummary:
    """Row counts of a generated data set; dirty counts are exact, by kind."""

    trips_rows: int
    driver_update_rows: int
    null_driver_id: int
    negative_fare: int
    bad_timestamp: int
    duplicate_trip_id: int
    null_driver_id_updates: int

    def to_dict(self) -> dict[str, int]:
        """Return the summary as a plain JSON-ready dict."""
        return asdict(self)


def generate_raw(
    out: Path,
    rows: int = 200_000,
    drivers: int | None = None,
    seed: int = 7,
    dirty_fraction: float = 0.005,
    days: int = 14,
    end: datetime = datetime(2026, 1, 15, tzinfo=UTC),
    parts: int = 4,
) -> GenerateSummary:
    """Write the raw demo data set to ``out`` (replacing it) and return its summary."""
    out = Path(out)
    n_drivers = max(50, rows // 500) if drivers is None else drivers
    check_arguments(rows, n_drivers, dirty_fraction, days, end, parts)
    end_s = int(end.astimezone(UTC).timestamp())
    start_s = end_s - days * 86_400
    rng_drivers, rng_trips, rng_dirty, rng_updates = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(4)
    )
    home_city = rng_drivers.choice(len(CITIES), size=n_drivers, p=city_shares())
    trips, dirty = build_trips(
        rng_trips, rng_dirty, rows, home_city, start_s, end_s, dirty_fraction
    )
    updates, null_updates = build_driver_updates(
        rng_updates, home_city, start_s, end_s, dirty_fraction
    )
    summary = GenerateSummary(
        trips_rows=trips.num_rows,
        driver_update_rows=len(updates),
        null_driver_id_updates=null_updates,
        **dirty,
    )
    manifest = {
        **summary.to_dict(),
        "seed": seed,
        "rows": rows,
        "drivers": n_drivers,
        "days": days,
        "end": datetime.fromtimestamp(end_s, UTC).isoformat(),
        "parts": parts,
        "dirty_fraction": dirty_fraction,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = make_sibling_dir(out, "tmp")
    try:
        write_trip_parts(trips, staging / "trips", parts)
        write_update_parts(updates, staging / "driver_updates", min(parts, 2))
        (staging / "_manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        publish_directory(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return summary


def base_drivers(seed: int, n_drivers: int) -> tuple[np.ndarray, np.ndarray]:
    """Return the base set's home city and activity per driver (the same draws as generate_raw)."""
    rng_drivers, rng_trips, _, _ = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(4)
    )
    home_city = rng_drivers.choice(len(CITIES), size=n_drivers, p=city_shares())
    return home_city, driver_activity(rng_trips, n_drivers)


def check_arguments(
    rows: int, drivers: int, dirty_fraction: float, days: int, end: datetime, parts: int
) -> None:
    """Reject argument values that cannot produce a meaningful data set."""
    if rows < 1:
        raise ValueError(f"rows must be >= 1, got {rows}")
    if drivers < 1:
        raise ValueError(f"drivers must be >= 1, got {drivers}")
    if not 0.0 <= dirty_fraction <= 0.5:
        raise ValueError(f"dirty_fraction must be within [0, 0.5], got {dirty_fraction}")
    if days < 1:
        raise ValueError(f"days must be >= 1, got {days}")
    if parts < 1:
        raise ValueError(f"parts must be >= 1, got {parts}")
    if end.tzinfo is None:
        raise ValueError("end must be timezone-aware (e.g. tzinfo=UTC)")


def city_shares() -> np.ndarray:
    """Return the normalised share of drivers per city."""
    shares = np.array([c[1] for c in CITIES])
    return shares / shares.sum()


def split_dirty_counts(rows: int, dirty_fraction: float) -> list[int]:
    """Split round(rows * dirty_fraction) over the four dirty kinds as evenly as possible."""
    total = int(round(rows * dirty_fraction))
    return [total // 4 + (1 if i < total % 4 else 0) for i in range(4)]


def sample_timestamps(rng: np.random.Generator, n: int, start_s: int, end_s: int) -> np.ndarray:
    """Draw epoch seconds in [start_s, end_s) following hour-of-day and weekday demand."""
    slot_start = np.arange(start_s - start_s % 3600, end_s, 3600, dtype=np.int64)
    hour = (slot_start // 3600) % 24
    weekday = (slot_start // 86_400 + 3) % 7  # 1970-01-01 was a Thursday
    weight = HOUR_WEIGHTS[hour] * WEEKDAY_WEIGHTS[weekday]
    late_weekend = ((weekday == 4) | (weekday == 5)) & ((hour >= 22) | (hour <= 1))
    weight = np.where(late_weekend, weight * 1.6, weight)
    lo = np.maximum(slot_start, start_s)
    width = np.minimum(slot_start + 3600, end_s) - lo
    weight = weight * width  # partial first/last hours get proportionally less
    slot = rng.choice(len(slot_start), size=n, p=weight / weight.sum())
    return lo[slot] + (rng.random(n) * width[slot]).astype(np.int64)


def build_trips(
    rng: np.random.Generator,
    rng_dirty: np.random.Generator,
    rows: int,
    home_city: np.ndarray,
    start_s: int,
    end_s: int,
    dirty_fraction: float,
) -> tuple[pa.Table, dict[str, int]]:
    """Build the shuffled trips table (string-rendered) and its exact dirty counts."""
    kinds = split_dirty_counts(rows, dirty_fraction)
    n_base = rows - kinds[3]
    activity = driver_activity(rng, len(home_city))
    driver, city = draw_drivers(rng, n_base, activity, home_city)
    ts = sample_timestamps(rng, n_base, start_s, end_s)
    trips = {"driver": driver, "city": city, "ts": ts, **draw_rides(rng, city, ts)}
    trip_no = np.empty(n_base, dtype=np.int64)
    trip_no[np.argsort(ts, kind="stable")] = np.arange(1, n_base + 1)  # ids grow with time
    trips["trip_no"] = trip_no
    c = add_dirty_rows(rng_dirty, trips, kinds, end_s - 1, np.ones(n_base, dtype=bool))
    return render_trips(c), dict(zip(DIRTY_KINDS, kinds))


def driver_activity(rng: np.random.Generator, n_drivers: int) -> np.ndarray:
    """Return each driver's relative activity: Zipf–Mandelbrot over a random rank."""
    return 1.0 / (rng.permutation(n_drivers) + 6.0)


def draw_drivers(
    rng: np.random.Generator, n: int, activity: np.ndarray, home_city: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Draw the driver of n trips by activity, and each trip's city (mostly the home city)."""
    driver = rng.choice(len(activity), size=n, p=activity / activity.sum())
    city = np.where(rng.random(n) < 0.92, home_city[driver],
                    rng.choice(len(CITIES), size=n, p=city_shares()))
    return driver, city


def draw_rides(rng: np.random.Generator, city: np.ndarray, ts: np.ndarray) -> dict[str, np.ndarray]:
    """Draw distance (hundredths of a km), fare (cents, follows distance and rush) and payment."""
    n = len(city)
    distance_km = np.clip(rng.lognormal(np.log(4.5), 0.65, n), 0.3, 60.0)
    distance_cm = np.rint(distance_km * 100).astype(np.int64)  # hundredths of a km
    base_fare = np.array([c[2] for c in CITIES])[city]
    per_km = np.array([c[3] for c in CITIES])[city]
    surge = 1.0 + 0.25 * np.clip(HOUR_WEIGHTS[(ts // 3600) % 24] - 1.0, 0.0, None)
    noise = rng.lognormal(0.0, 0.07, n)
    fare = (base_fare + per_km * distance_cm / 100) * surge * noise
    fare_cents = np.maximum(np.rint(fare * 100), 400).astype(np.int64)
    payment = rng.choice(len(PAYMENT_TYPES), size=n, p=PAYMENT_SHARES)
    return {"fare": fare_cents, "distance": distance_cm, "payment": payment}


def add_dirty_rows(
    rng_dirty: np.random.Generator,
    trips: dict[str, np.ndarray],
    kinds: list[int],
    last_s: int,
    candidate: np.ndarray,
) -> dict[str, np.ndarray]:
    """Spoil exact numbers of candidate trips, append their corrections, and shuffle all rows.

    ``kinds`` counts null driver ids, negative fares, bad timestamps and corrections (in
    ``DIRTY_KINDS`` order); a correction never lies after ``last_s``.  The sets are disjoint,
    so every dirty row has exactly one defect.
    """
    n_null, n_negative, n_bad, n_dup = kinds
    ts, fare_cents = trips["ts"], trips["fare"].copy()
    n_base = len(ts)
    order = rng_dirty.permutation(n_base)
    order = order[candidate[order]]
    eligible = order[ts[order] <= last_s - DUPLICATE_MARGIN_S]
    if len(eligible) < n_dup:
        raise ValueError("window too narrow to place the duplicate corrections")
    dup_src = eligible[:n_dup]
    taken = np.zeros(n_base, dtype=bool)
    taken[dup_src] = True
    mods = order[~taken[order]][: n_null + n_negative + n_bad]
    null_rows, neg_rows, bad_rows = np.split(mods, [n_null, n_null + n_negative])
    driver_valid = np.ones(n_base, dtype=bool)
    driver_valid[null_rows] = False
    fare_cents[neg_rows] = -fare_cents[neg_rows]
    bad_code = np.full(n_base, -1, dtype=np.int64)
    bad_code[bad_rows] = rng_dirty.integers(0, len(BAD_TIMESTAMPS), size=len(bad_rows))

    # Corrections: same trip, later event time, different (positive) fare.
    room = np.minimum(MAX_CORRECTION_DELAY_S, last_s - ts[dup_src])
    dup_ts = ts[dup_src] + 1 + (rng_dirty.random(n_dup) * room).astype(np.int64)
    factor = rng_dirty.uniform(0.8, 1.2, n_dup)
    dup_fare = np.maximum(np.rint(fare_cents[dup_src] * factor), 100).astype(np.int64)
    dup_fare = np.where(dup_fare == fare_cents[dup_src], dup_fare + 50, dup_fare)

    def extend(values: np.ndarray, extra: np.ndarray) -> np.ndarray:
        return np.concatenate([values, extra])

    shuffle = rng_dirty.permutation(n_base + n_dup)
    columns = {
        "trip_no": extend(trips["trip_no"], trips["trip_no"][dup_src]),
        "driver": extend(trips["driver"], trips["driver"][dup_src]),
        "driver_valid": extend(driver_valid, np.ones(n_dup, dtype=bool)),
        "fare": extend(fare_cents, dup_fare),
        "distance": extend(trips["distance"], trips["distance"][dup_src]),
        "city": extend(trips["city"], trips["city"][dup_src]),
        "payment": extend(trips["payment"], trips["payment"][dup_src]),
        "ts": extend(ts, dup_ts),
        "bad": extend(bad_code, np.full(n_dup, -1, dtype=np.int64)),
    }
    return {name: values[shuffle] for name, values in columns.items()}


def render_trips(c: dict[str, np.ndarray]) -> pa.Table:
    """Render trip columns to the exact text that lands in the CSV files."""
    width = max(8, len(str(int(c["trip_no"].max(initial=0)))))
    digits = pc.utf8_lpad(pc.cast(pa.array(c["trip_no"]), pa.string()), width=width, padding="0")
    trip_id = pc.binary_join_element_wise("t", digits, "")
    driver_id = pa.array(c["driver"] + 100_001, mask=~c["driver_valid"])
    event_ts = format_timestamps(c["ts"])
    bad = c["bad"] >= 0
    if bad.any():
        replacements = pa.array(np.array(BAD_TIMESTAMPS, dtype=object)[c["bad"][bad]])
        event_ts = pc.replace_with_mask(event_ts, pa.array(bad), replacements)
    return pa.table({
        "trip_id": trip_id,
        "driver_id": driver_id,
        "fare": format_fixed2(c["fare"]),
        "distance_km": format_fixed2(c["distance"]),
        "city": pc.take(pa.array([x[0] for x in CITIES]), pa.array(c["city"])),
        "payment_type": pc.take(pa.array(PAYMENT_TYPES), pa.array(c["payment"])),
        "event_ts": event_ts,
    })


def format_fixed2(hundredths: np.ndarray) -> pa.Array:
    """Render integer hundredths as decimal text with exactly two decimals (-1234 -> '-12.34')."""
    magnitude = np.abs(hundredths)
    whole = pc.cast(pa.array(magnitude // 100), pa.string())
    frac = pc.utf8_lpad(pc.cast(pa.array(magnitude % 100), pa.string()), width=2, padding="0")
    sign = pc.if_else(pa.array(hundredths < 0), "-", "")
    return pc.binary_join_element_wise(sign, pc.binary_join_element_wise(whole, frac, "."), "")


def format_timestamps(epoch_s: np.ndarray) -> pa.Array:
    """Render epoch seconds as UTC ``YYYY-MM-DD HH:MM:SS`` text.

    A zone-less second-resolution cast prints exactly that layout and is ~25x
    faster than ``pc.strftime`` (which goes through the time-zone database).
    """
    return pc.cast(pa.array(epoch_s, type=pa.int64()).cast(pa.timestamp("s")), pa.string())


def build_driver_updates(
    rng: np.random.Generator,
    home_city: np.ndarray,
    start_s: int,
    end_s: int,
    dirty_fraction: float,
) -> tuple[list[dict[str, object]], int]:
    """Build 1–4 time-ordered profile snapshots per driver plus a few null-id rows."""
    n_drivers = len(home_city)
    per_driver = rng.choice([1, 2, 3, 4], size=n_drivers, p=[0.35, 0.30, 0.20, 0.15])
    owner = np.repeat(np.arange(n_drivers), per_driver)
    first = np.concatenate([[0], np.cumsum(per_driver)[:-1]])
    position = np.arange(len(owner)) - first[owner]
    when = rng.integers(start_s, end_s - 4, size=len(owner))
    when = when[np.lexsort((when, owner))]  # owner blocks stay in place, times sorted within each
    city = np.empty(len(owner), dtype=np.int64)
    vehicle = np.empty(len(owner), dtype=np.int64)
    active = np.empty(len(owner), dtype=bool)
    rating = np.empty(len(owner))
    initial = position == 0
    city[initial] = home_city
    vehicle[initial] = rng.choice(len(VEHICLE_TYPES), size=n_drivers, p=VEHICLE_SHARES)
    active[initial] = rng.random(n_drivers) < 0.92
    rating[initial] = np.clip(rng.normal(4.6, 0.25, n_drivers), 1.0, 5.0)
    for k in range(1, 4):  # each later snapshot changes a little from the previous one
        idx = np.flatnonzero(position == k)
        prev = idx - 1
        when[idx] = np.maximum(when[idx], when[prev] + 1)
        moved = rng.random(len(idx)) < 0.08
        new_city = rng.choice(len(CITIES), size=len(idx), p=city_shares())
        city[idx] = np.where(moved, new_city, city[prev])
        swapped = rng.random(len(idx)) < 0.10
        new_vehicle = rng.choice(len(VEHICLE_TYPES), size=len(idx), p=VEHICLE_SHARES)
        vehicle[idx] = np.where(swapped, new_vehicle, vehicle[prev])
        active[idx] = np.where(rng.random(len(idx)) < 0.15, ~active[prev], active[prev])
        rating[idx] = np.clip(rating[prev] + rng.normal(0.0, 0.12, len(idx)), 1.0, 5.0)
    first_name = rng.integers(0, len(FIRST_NAMES), size=n_drivers)
    last_name = rng.integers(0, len(LAST_NAMES), size=n_drivers)
    driver_id: list[int | None] = (owner + 100_001).tolist()

    n_null = int(round(len(owner) * dirty_fraction))
    n_null = max(1, n_null) if dirty_fraction > 0 else 0
    copied = rng.integers(0, len(owner), size=n_null)  # payload of a real row, id lost upstream
    source = np.concatenate([np.arange(len(owner)), copied])
    driver_id += [None] * n_null
    when = np.concatenate([when, rng.integers(start_s, end_s, size=n_null)])
    order = np.lexsort((np.arange(len(source)), when))  # event-log order, stable on ties
    stamps = format_timestamps(when).to_pylist()
    records = [
        {
            "driver_id": driver_id[i],
            "name": f"{FIRST_NAMES[first_name[owner[s]]]} {LAST_NAMES[last_name[owner[s]]]}",
            "city": CITIES[city[s]][0],
            "vehicle_type": VEHICLE_TYPES[vehicle[s]],
            "status": "active" if active[s] else "inactive",
            "rating": round(float(rating[s]), 2),
            "updated_at": stamps[i],
        }
        for i, s in ((int(i), int(source[i])) for i in order)
    ]
    return records, n_null


def part_bounds(n: int, parts: int) -> list[tuple[int, int]]:
    """Split n rows into `parts` contiguous (offset, length) chunks of near-equal size."""
    edges = [n * i // parts for i in range(parts + 1)]
    return [(edges[i], edges[i + 1] - edges[i]) for i in range(parts)]


def write_trip_parts(trips: pa.Table, directory: Path, parts: int) -> None:
    """Write the trips table as `parts` CSV files, each with its own header row."""
    directory.mkdir()
    for i, (offset, length) in enumerate(part_bounds(trips.num_rows, parts)):
        write_trips_csv(trips.slice(offset, length), directory / f"part-{i:05d}.csv")


def write_trips_csv(trips: pa.Table, path: Path) -> None:
    """Write one trips CSV file: a header row, then unquoted rows."""
    options = pacsv.WriteOptions(include_header=False, quoting_style="none", batch_size=65_536)
    with pa.OSFile(str(path), "wb") as sink:
        sink.write((",".join(TRIP_COLUMNS) + "\n").encode())
        if trips.num_rows:
            pacsv.write_csv(trips, sink, write_options=options)


def write_update_parts(records: list[dict[str, object]], directory: Path, parts: int) -> None:
    """Write driver update records as `parts` JSON Lines files."""
    directory.mkdir()
    for i, (offset, length) in enumerate(part_bounds(len(records), parts)):
        chunk = records[offset : offset + length]
        lines = [json.dumps(r, separators=(",", ":")) + "\n" for r in chunk]
        (directory / f"part-{i:05d}.json").write_text("".join(lines))


def make_sibling_dir(out: Path, tag: str) -> Path:
    """Create a fresh hidden directory next to `out` (same filesystem, so renames are atomic)."""
    path = out.parent / f".{out.name}.{tag}-{os.getpid()}-{uuid.uuid4().hex[:12]}"
    path.mkdir()
    return path


def publish_directory(staging: Path, out: Path) -> None:
    """Move a fully written staging directory to `out`, replacing whatever was there."""
    if not out.exists() and not out.is_symlink():
        staging.rename(out)
        return
    retired = make_sibling_dir(out, "old")
    previous = retired / "previous"
    out.rename(previous)
    staging.rename(out)
    if previous.is_dir() and not previous.is_symlink():
        shutil.rmtree(retired, ignore_errors=True)
    else:
        previous.unlink()
        retired.rmdir()
