"""The Feast adapter: definitions from the job specs, the store file, the registry's catalog for
serving, and Feast's generic online writer (the online store itself is ``featurekit.online_store``).

It imports ``feast`` inside functions, because ``import feast`` costs seconds; so do the few
paths of ``featurekit.online_store`` that need Feast's own code.
"""

import warnings


def quiet_spark_source() -> None:
    """Feast warns on every SparkSource it builds (ours, and each one read from the registry)
    that the API is experimental. Its modules reset the warning filters when imported, so the
    filter goes in after importing them."""
    import feast.infra.offline_stores.contrib.spark_offline_store.spark  # noqa: F401
    import feast.repo_config  # noqa: F401

    warnings.filterwarnings("ignore", message="The spark data source API is an experimental feature",
                            category=RuntimeWarning)
