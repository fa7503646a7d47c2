"""One more day of demo trips, arriving after the base set: what an incremental run takes.

Arrival K adds the file ``trips/arrival-KKKKK.csv`` beside the base set's parts (see
:func:`generate_arrival`); the base set's drivers, cities and text format are reused from
:mod:`featurekit.demo.generate`, so the arrival reads as the same landing zone a day later.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from featurekit.demo.generate import (
    DIRTY_KINDS,
    add_dirty_rows,
    base_drivers,
    draw_drivers,
    draw_rides,
    render_trips,
    sample_timestamps,
    split_dirty_counts,
    write_trips_csv,
)
from featurekit.errors import DataError

LATE_SHARE = 0.01  # late rows of an arrival, as a share of its on-time trips
LATE_WINDOW_S = 6 * 3600  # late rows lie this far before the arrival's start, at most
STOPPED_EVERY = 10  # drivers whose index is a multiple of this never drive in an arrival


@dataclass(frozen=True)
class ArrivalSummary:
    """One arrival: its event-time window ``(start, end]`` and exact row counts.

    ``trips_rows`` counts every row of the file (corrections included); ``late_rows``
    of them lie in the 6 hours before ``start``.
    """

    arrival: int
    start: str
    end: str
    trips_rows: int
    late_rows: int
    null_driver_id: int
    negative_fare: int
    bad_timestamp: int
    duplicate_trip_id: int
    stopped_drivers: int

    def to_dict(self) -> dict[str, int | str]:
        """Return the summary as a plain JSON-ready dict (an entry of the manifest's arrivals)."""
        return asdict(self)


def generate_arrival(
    out: Path, arrival: int, rows: int | None = None, seed: int | None = None
) -> ArrivalSummary:
    """Add the day of trips that arrived after the data in ``out`` and return its summary.

    Arrival K is one file, ``trips/arrival-KKKKK.csv`` (the parts' columns, header and
    text format), holding trips with event times in ``(end + (K-1) days, end + K days]``
    (``end`` of the base set), about ``rows / days`` of them; plus late rows (~1% of that)
    from the 6 hours before the arrival's start, which belong to the previous day but
    arrive now; plus later corrections of trips of this arrival, and null driver ids,
    negative fares and unparsable timestamps at the base set's dirty fraction (exact
    counts; late rows stay clean, so every row before ``start`` is a late one).  Trip ids
    continue the base set's numbering above the trips of the base set and of every
    earlier arrival, so ids never collide and still sort as text.

    Drivers stop driving: no driver whose index is a multiple of 10 (driver_id 100001,
    100011, ...) has a trip in any arrival, so their windows expire after the next run;
    the demo looks driver 100001 up online to show it.

    The options (rows, seed, drivers, days, dirty fraction) are the base set's, read from
    its ``_manifest.json``; ``rows`` and ``seed``, if given, must equal them.  Arrival K
    needs arrival K-1.  The draws are seeded from (seed, K), so writing arrival K again
    gives the same bytes; the file and the manifest (which lists the arrival under
    ``arrivals``) are each replaced atomically, and the file gets the current
    modification time.  The base set's files are not touched.
    """
    out = Path(out)
    if arrival < 1:
        raise ValueError(f"arrival must be >= 1, got {arrival}")
    manifest = read_manifest(out)
    for name, given in (("rows", rows), ("seed", seed)):
        if given is not None and given != manifest[name]:
            raise ValueError(f"{name}={given} differs from the base set's {name}={manifest[name]} "
                             f"in {out / '_manifest.json'}; an arrival continues the base set")
    recorded = {entry["arrival"] for entry in manifest.get("arrivals", [])}
    previous = arrival_path(out, arrival - 1)
    if arrival > 1 and not (arrival - 1 in recorded and previous.is_file()):
        raise DataError(f"arrival {arrival} needs arrival {arrival - 1} first: "
                        f"{previous} is not there yet")
    table, summary = build_arrival(manifest, arrival)
    others = [entry for entry in manifest.get("arrivals", []) if entry["arrival"] != arrival]
    manifest["arrivals"] = sorted([*others, summary.to_dict()], key=lambda e: e["arrival"])
    text = json.dumps(manifest, indent=2) + "\n"
    replace_file(arrival_path(out, arrival), lambda path: write_trips_csv(table, path))
    replace_file(out / "_manifest.json", lambda path: path.write_text(text))
    return summary


def build_arrival(manifest: dict[str, Any], arrival: int) -> tuple[pa.Table, ArrivalSummary]:
    """Build the shuffled, string-rendered trips of an arrival and its summary."""
    n_drivers = manifest["drivers"]
    stopped = np.arange(n_drivers) % STOPPED_EVERY == 0
    if stopped.all():
        raise ValueError(f"an arrival needs a driver whose index is not a multiple of "
                         f"{STOPPED_EVERY}; the base set has {n_drivers} driver(s)")
    start_s = int(datetime.fromisoformat(manifest["end"]).timestamp()) + (arrival - 1) * 86_400
    end_s = start_s + 86_400
    plans = [arrival_plan(manifest, k) for k in range(1, arrival + 1)]
    n_on_time, n_late, kinds = plans[-1]
    first_no = manifest["trips_rows"] - manifest["duplicate_trip_id"] + 1
    first_no += sum(on_time + late for on_time, late, _ in plans[:-1])

    _, rng, rng_dirty = arrival_rngs(manifest["seed"], arrival)
    home_city, activity = base_drivers(manifest["seed"], n_drivers)
    n = n_on_time + n_late
    driver, city = draw_drivers(rng, n, np.where(stopped, 0.0, activity), home_city)
    ts = np.concatenate([
        sample_timestamps(rng, n_on_time, start_s + 1, end_s + 1),  # (start, end]
        sample_timestamps(rng, n_late, start_s - LATE_WINDOW_S, start_s),
    ])
    trips = {"driver": driver, "city": city, "ts": ts, **draw_rides(rng, city, ts)}
    trip_no = np.empty(n, dtype=np.int64)
    trip_no[np.argsort(ts, kind="stable")] = np.arange(first_no, first_no + n)
    trips["trip_no"] = trip_no
    on_time = np.arange(n) < n_on_time  # late rows stay clean and uncorrected
    table = render_trips(add_dirty_rows(rng_dirty, trips, kinds, end_s, on_time))
    summary = ArrivalSummary(
        arrival=arrival,
        start=datetime.fromtimestamp(start_s, UTC).isoformat(),
        end=datetime.fromtimestamp(end_s, UTC).isoformat(),
        trips_rows=table.num_rows,
        late_rows=n_late,
        stopped_drivers=int(stopped.sum()),
        **dict(zip(DIRTY_KINDS, kinds)),
    )
    return table, summary


def arrival_path(out: Path, arrival: int) -> Path:
    """Return the file of arrival ``arrival`` of the data set in ``out``."""
    return Path(out) / "trips" / f"arrival-{arrival:05d}.csv"


def read_manifest(out: Path) -> dict[str, Any]:
    """Return the base set's manifest, or raise DataError if there is no base set in ``out``."""
    path = out / "_manifest.json"
    if not path.is_file():
        raise DataError(f"no base data set in {out}: {path} is not there; "
                        "generate the base set before its arrivals")
    return json.loads(path.read_text())


def arrival_rngs(seed: int, arrival: int) -> list[np.random.Generator]:
    """Return the (size, trips, dirty) generators of an arrival, seeded from (seed, arrival)."""
    return [np.random.default_rng(s) for s in np.random.SeedSequence([seed, arrival]).spawn(3)]


def arrival_plan(manifest: dict[str, Any], arrival: int) -> tuple[int, int, list[int]]:
    """Return an arrival's on-time trips, late trips and dirty counts (``DIRTY_KINDS`` order).

    Drawn from the arrival's own size generator alone, so the sizes of earlier arrivals,
    and with them the first trip id of this one, are known without reading their files.
    As in the base set, the dirty rows (corrections included) are
    ``round(trips_rows * dirty_fraction)``, where trips_rows counts the corrections too.
    """
    rng = arrival_rngs(manifest["seed"], arrival)[0]
    n_on_time = max(1, int(rng.poisson(manifest["rows"] / manifest["days"])))
    n_late = int(round(n_on_time * LATE_SHARE))
    fresh = n_on_time + n_late
    rows = fresh  # the smallest rows = fresh + corrections(rows); the corrections grow slowly
    while (total := fresh + split_dirty_counts(rows, manifest["dirty_fraction"])[3]) != rows:
        rows = total
    return n_on_time, n_late, split_dirty_counts(rows, manifest["dirty_fraction"])


def replace_file(path: Path, write: Callable[[Path], object]) -> None:
    """Write a file under a hidden name beside ``path``, then rename it over ``path``."""
    staging = path.parent / f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:12]}"
    try:
        write(staging)
        os.replace(staging, path)
    except BaseException:
        staging.unlink(missing_ok=True)
        raise
