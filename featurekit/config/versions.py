"""The pinned Spark/Delta pair, in one place for the local session, setup and the job image.

delta-spark 4.4.0 is built for Spark 4.2 (jar ``io.delta:delta-spark_4.2_2.13``); pyproject.toml
pins ``pyspark==4.2.0`` and ``delta-spark==4.4.0`` and the Dockerfile's base image is Spark 4.2.0
(tests keep all of them in step).
"""

from __future__ import annotations

SPARK_VERSION = "4.2.0"
DELTA_VERSION = "4.4.0"
DELTA_PACKAGE = f"io.delta:delta-spark_4.2_2.13:{DELTA_VERSION}"
DELTA_CONF = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
}


def packages_of(extra: list[str]) -> list[str]:
    """Delta first, then an environment's ``spark.packages``, each once."""
    return list(dict.fromkeys([DELTA_PACKAGE, *extra]))
