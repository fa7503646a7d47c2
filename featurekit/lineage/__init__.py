"""Lineage records of feature sets and training sets, and where they are kept."""

from featurekit.lineage.records import (
    QUEUED,
    BothLineage,
    FeatureSetRecord,
    LineageStore,
    OfflineFeatureSetRecord,
    Producer,
    RunLogLineage,
    TrainingSetRecord,
    is_queued,
)

__all__ = ["QUEUED", "BothLineage", "FeatureSetRecord", "LineageStore", "OfflineFeatureSetRecord", "Producer",
           "RunLogLineage", "TrainingSetRecord", "is_queued"]
