"""Which features the transformer looks up for a model version, from the artifacts linked to it
(the registry's answers stubbed: the HTTP path is covered by ``tests/integration/test_transformer.py``)."""

from __future__ import annotations

from typing import Any

import pytest

from featurekit.errors import NotFound
from featurekit.lineage.client import tagged
from featurekit.online.transformer import LinkedFeatures, linked_features

SERVICES = {
    "rider_service": [("rider_stats", ["trips", "rating"])],       # some features of the view, its order
    "both": [("rider_stats", ["city"]), ("zone_stats", ["busy"])],
}


def feature_set(view: str, features: list[str], project: str = "demo") -> dict[str, Any]:
    return {"id": view, "customProperties": tagged({"featurekit_kind": "feature_set", "feast_project": project,
                                                    "feast_view": view, "features": features})}


def training_set(service: str) -> dict[str, Any]:
    return {"id": service, "customProperties": tagged({"featurekit_kind": "training_set", "feast_project": "demo",
                                                       "feature_service": service})}


class Registry:
    url = "http://registry"

    def __init__(self, artifacts: list[dict[str, Any]] | None) -> None:
        self.linked = artifacts

    def find_registered_model(self, name: str) -> dict[str, Any] | None:
        return {"id": "1"} if name == "eta" else None

    def find_model_version(self, model_id: str, name: str) -> dict[str, Any] | None:
        return {"id": "2"} if self.linked is not None and name == "1" else None

    def version_artifacts(self, version_id: str, artifact_type: str | None = None) -> list[dict[str, Any]]:
        assert (version_id, artifact_type) == ("2", "dataset-artifact")
        return self.linked or []


def linked(artifacts: list[dict[str, Any]] | None, model: str = "eta") -> LinkedFeatures:
    return linked_features(Registry(artifacts), "demo", model, "1", SERVICES)  # type: ignore[arg-type]


def test_a_training_set_names_its_service() -> None:
    found = linked([feature_set("rider_stats", ["trips"]), training_set("both")])
    assert (found.service, found.features) == ("both", None)


def test_feature_sets_are_the_one_service_over_exactly_their_views() -> None:
    found = linked([feature_set("rider_stats", ["trips", "rating", "city"])])
    assert (found.service, found.features) == ("rider_service", None)


def test_feature_sets_no_service_covers_are_every_feature_of_their_views() -> None:
    found = linked([feature_set("zone_stats", ["busy", "level"]), feature_set("other", ["x"], project="elsewhere")])
    assert (found.service, found.features) == (None, ["zone_stats:busy", "zone_stats:level"])


@pytest.mark.parametrize(("artifacts", "model", "message"), [
    ([], "eta", "model eta version 1 has no linked training set or feature sets "
                "(link them with `featurekit lineage link --service`)"),
    (None, "eta", "registered model 'eta' has no version '1' in the Model Registry at http://registry"),
    ([], "nope", "no registered model 'nope' in the Model Registry at http://registry"),
])
def test_what_cannot_be_found_is_named(artifacts: list[dict[str, Any]] | None, model: str, message: str) -> None:
    with pytest.raises(NotFound) as caught:
        linked(artifacts, model)
    assert caught.value.problems[0].message == message
