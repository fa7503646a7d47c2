"""Lineage records of feature sets and training sets, and where they are kept."""

from featurekit.lineage.records import FeatureSetRecord, LineageStore, RunLogLineage, TrainingSetRecord

__all__ = ["FeatureSetRecord", "LineageStore", "RunLogLineage", "TrainingSetRecord"]
