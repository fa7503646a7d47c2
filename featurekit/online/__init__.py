"""Serving: online features from Python (``client``) and over HTTP (``http``), with the
registry's catalog kept beside the project (``featurekit.feast.catalog``), over the
online-store port (``featurekit.online_store``).

    from featurekit.online import get_features, OnlineFeatures

A serving process imports neither pyspark nor anything of the batch side, and no Feast while
the catalog is current (import-linter contracts in ``pyproject.toml``, and a test).
"""

from featurekit.online.client import (OnlineFeatures, UnknownFeature, forget_clients, get_features, lookup,
                                      parse_entities)

__all__ = ["OnlineFeatures", "UnknownFeature", "forget_clients", "get_features", "lookup", "parse_entities"]
