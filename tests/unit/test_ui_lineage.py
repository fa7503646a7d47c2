"""The catalog's lineage helpers without a registry: which page a node links to, and which views a
model version's artifacts (as featurekit writes them to the Model Registry) hold."""

from __future__ import annotations

from featurekit.lineage import FeatureSetRecord, OfflineFeatureSetRecord, TrainingSetRecord
from featurekit.lineage.registry_lineage import (
    feature_set_artifact,
    offline_feature_set_artifact,
    training_set_artifact,
)
from featurekit.ui.lineage import node_href, views_of


def offline(view: str, project: str = "shop") -> OfflineFeatureSetRecord:
    return OfflineFeatureSetRecord(feast_project=project, feature_view=view, job=view, spec_fingerprint="f",
                                   delta_path=f"/lake/{view}", delta_version=2, recorded_at="2026-03-02T08:00:00+00:00")


def materialized(view: str, project: str = "shop") -> FeatureSetRecord:
    return FeatureSetRecord(run_id="20260301T130000Z-00000001", feast_project=project, feature_view=view,
                            features=["x"], job=view, spec_fingerprint="f", delta_path=f"/lake/{view}", delta_version=3,
                            window_start="2026-03-01T00:00:00+00:00", window_end="2026-03-01T12:00:00+00:00", rows=1,
                            keys=1, online_store="sqlite", recorded_at="2026-03-01T13:00:00+00:00")


def test_a_node_links_to_the_page_of_what_it_is_about_with_its_values_quoted() -> None:
    assert node_href({"model": "fraud/eu", "version": "1.0 rc"}) == "/lineage/fraud%2Feu/1.0%20rc"
    assert node_href({"job": "trips", "run_id": "20260301T100000Z-aa"}) == "/runs/20260301T100000Z-aa"
    assert node_href({"view": "javascript:alert(1)"}) == "/features/javascript%3Aalert%281%29"
    assert node_href({"job": "../admin"}) == "/jobs/..%2Fadmin"
    assert node_href({"training_set": "20260302T080000Z-5e"}) is None       # no page of its own
    assert node_href({"model": "only-a-model"}) is None


def test_a_versions_views_are_its_feature_sets_and_what_its_training_sets_read() -> None:
    record = TrainingSetRecord(
        run_id="20260302T080000Z-5e7f00d1", feast_project="shop", feature_service="rates",
        feature_views={"stats": 2, "trips": 2}, features=["stats:x", "trips:y"], spine_path="/spine",
        output_path="/train", output_version=0, rows=12, recorded_at="2026-03-02T08:00:09+00:00",
        offline_feature_sets=[offline("stats"), offline("trips")])
    training = training_set_artifact(record, {"stats": {"id": "4", "externalId": "e"}, "trips": None})
    artifacts = [training, feature_set_artifact(materialized("clicks"), None),
                 offline_feature_set_artifact(offline("orders"), None),
                 feature_set_artifact(materialized("payments", project="other"), None),     # another Feast project
                 {"id": "9", "customProperties": {"featurekit_kind": {"metadataType": "MetadataStringValue",
                                                                       "string_value": "model"}}}]
    assert views_of(artifacts, "shop") == {"stats", "trips", "clicks", "orders"}
    assert views_of(artifacts, "other") == {"payments"}
    assert views_of([], "shop") == frozenset()
