"""The SparkSession: Delta configured, settings from conf/, one per process.

Two ways in, one code path after: ``featurekit run`` builds the session itself from the
settings; under ``spark-submit`` the JVM already has its configuration (``featurekit
plan`` prints the exact flags), so the session is only picked up and checked.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from featurekit.config.settings import Settings
from featurekit.config.versions import DELTA_CONF
from featurekit.errors import ConfigError, InfraError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession



def under_spark_submit() -> bool:
    """True when this Python process is the driver that spark-submit launched."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


LOG_CONFIG = Path(__file__).with_name("log4j2.properties")


def session_conf(settings: Settings, jars: list[Path]) -> dict[str, str]:
    """Every Spark setting featurekit passes, in the order it passes them."""
    conf = dict(DELTA_CONF)
    if jars:
        conf["spark.jars"] = ",".join(str(j) for j in jars)
    conf.update(settings.spark.conf)
    java_options = conf.get("spark.driver.extraJavaOptions", "")
    if "log4j2.configurationFile" not in java_options:
        conf["spark.driver.extraJavaOptions"] = f"{java_options} -Dlog4j2.configurationFile=file:{LOG_CONFIG}".strip()
    return conf


def get_session(settings: Settings, jars: list[Path], app_name: str | None = None) -> "SparkSession":
    """The process's SparkSession, created from ``settings`` unless one is running."""
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is None and under_spark_submit():
        active = SparkSession.builder.getOrCreate()
    if active is not None:
        _check_delta(active)
        return active
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        raise InfraError("Java is not installed: Spark needs a JDK 17 (e.g. apt-get install openjdk-17-jdk-headless)")
    if settings.spark.master.startswith("local"):
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    builder = SparkSession.builder.master(settings.spark.master).appName(app_name or settings.spark.app_name)
    # Python workers (materialization's writers) run this interpreter, as the driver does.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    for key, value in session_conf(settings, jars).items():
        builder = builder.config(key, value)
    try:
        spark = builder.getOrCreate()
    except Exception as exc:  # the JVM did not start: say why in one line
        raise InfraError(f"Spark did not start: {str(exc).strip().splitlines()[0]}") from exc
    spark.sparkContext.setLogLevel(settings.spark.log_level)
    return spark


def _check_delta(spark: "SparkSession") -> None:
    extensions = spark.conf.get("spark.sql.extensions", "") or ""
    if DELTA_CONF["spark.sql.extensions"] not in extensions:
        flags = " ".join(f"--conf {k}={v}" for k, v in DELTA_CONF.items())
        raise ConfigError.single(
            f"the running Spark session has no Delta Lake support; start it with {flags} "
            "and the Delta jars (`featurekit plan JOB` prints the full spark-submit command)",
            file="spark",
        )
