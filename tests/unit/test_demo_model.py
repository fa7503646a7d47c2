"""The demo model (``featurekit.demo.model``): fitted on a Delta training set, null-safe predictions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from deltalake import write_deltalake

from featurekit.demo.model import INPUTS, MODEL_FILE, TARGET, predict, train


def test_it_recovers_a_linear_relation_and_skips_incomplete_rows(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    trips, rating = rng.integers(0, 40, 200).astype("float64"), rng.uniform(3, 5, 200)
    fare = 1.5 * trips - 2.0 * rating + 9.0
    trips_with_gaps = pa.array([None if i % 10 == 0 else t for i, t in enumerate(trips)], pa.float64())
    write_deltalake(str(tmp_path / "training"), pa.table({"driver_id": np.arange(200), INPUTS[0]: trips_with_gaps,
                                                          INPUTS[1]: rating, TARGET: fare}))

    model = train(tmp_path / "training", tmp_path / "model")

    assert model["rows"] == 180                       # the 20 rows with a null input are left out
    assert model["weights"] == pytest.approx([1.5, -2.0]) and model["intercept"] == pytest.approx(9.0)
    assert json.loads((tmp_path / "model" / MODEL_FILE).read_text()) == model
    assert predict(model, {"trips_24h": trips[1], "rating": rating[1], "driver_id": 1}) == pytest.approx(fare[1], abs=1e-3)
    assert predict(model, {"trips_24h": None, "rating": 4.0}) is None       # an unknown entity's null features
    assert predict(model, {"rating": 4.0}) is None


def test_too_few_complete_rows_is_an_error_naming_the_table(tmp_path: Path) -> None:
    write_deltalake(str(tmp_path / "training"), pa.table({INPUTS[0]: pa.array([1.0, None], pa.float64()),
                                                          INPUTS[1]: [4.0, 4.5], TARGET: [10.0, 11.0]}))
    with pytest.raises(ValueError, match=r"training: 1 complete row\(s\); the model needs at least 3"):
        train(tmp_path / "training", tmp_path / "model")
