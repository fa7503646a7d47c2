"""The SparkSession: Delta configured, settings from conf/, one per process.

Two ways in, one code path after: ``featurekit run`` builds the session itself from the
settings; under ``spark-submit`` the JVM already has its configuration (``featurekit
plan`` prints the exact flags), so the session is only picked up and checked.

Either way, once featurekit holds the session Spark's own warnings and errors (an executor's
failed task, with its Java stack trace) go to a log file under ``paths.logs``, not to stderr:
a failure is told by featurekit's one-line error, which names that file. ``spark.console_log``
(or the CLI's ``--debug``) shows them on stderr too.
"""

from __future__ import annotations

import os
import shutil
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from featurekit.config.settings import Settings
from featurekit.config.versions import DELTA_CONF
from featurekit.errors import ConfigError, InfraError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession



def under_spark_submit() -> bool:
    """True when this Python process is the driver that spark-submit launched."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


LOG_CONFIG = Path(__file__).with_name("log4j2.properties")
# What the JVM logs once featurekit holds the session: the file, and stderr if asked.
RUN_LOG_CONFIG = Path(__file__).with_name("log4j2-file.properties")
_LOG_FILE = "featurekit.log.file"
_LOG_CONSOLE = "featurekit.log.console"

_log: Path | None = None  # the log file of the session this process holds (one JVM per process)


def spark_log() -> Path | None:
    """The file Spark's warnings and errors went to in this process, if it logged any."""
    if _log is not None and _log.is_file() and _log.stat().st_size > 0:
        return _log
    return None


def _log_properties(settings: Settings, log: Path) -> dict[str, str]:
    return {_LOG_FILE: str(log), _LOG_CONSOLE: "warn" if settings.spark.console_log else "off"}


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


def get_session(settings: Settings, jars: list[Path], app_name: str | None = None,
                log_name: str | None = None) -> "SparkSession":
    """The process's SparkSession, created from ``settings`` unless one is running.

    Spark's log goes to ``<paths.logs>/<log_name>.log`` in a session started here or by
    spark-submit; a session the caller started (a notebook's) keeps its own logging."""
    from pyspark.sql import SparkSession

    global _log
    log = settings.logs_dir / f"{log_name or _new_log_name()}.log"
    active = SparkSession.getActiveSession()
    if active is None and under_spark_submit():
        active = SparkSession.builder.getOrCreate()
        _check_delta(active)
        _log_to(active, settings, log)
        return active
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
    conf = session_conf(settings, jars)
    conf["spark.driver.extraJavaOptions"] = _run_java_options(conf["spark.driver.extraJavaOptions"], settings, log)
    for key, value in conf.items():
        builder = builder.config(key, value)
    log.parent.mkdir(parents=True, exist_ok=True)
    try:
        spark = builder.getOrCreate()
    except Exception as exc:  # the JVM did not start: say why in one line
        raise InfraError(f"Spark did not start: {str(exc).strip().splitlines()[0]}") from exc
    _log = log
    spark.sparkContext.setLogLevel(settings.spark.log_level)
    return spark


def _new_log_name() -> str:
    from datetime import UTC, datetime

    return f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


def _run_java_options(java_options: str, settings: Settings, log: Path) -> str:
    """The driver's Java options with featurekit's run logging in place of its start-up one
    (a log4j2 configuration the user chose is kept)."""
    if f"file:{LOG_CONFIG}" not in java_options:
        return java_options
    flags = " ".join(f"-D{k}={v}" for k, v in _log_properties(settings, log).items())
    return java_options.replace(f"file:{LOG_CONFIG}", f"file:{RUN_LOG_CONFIG}") + " " + flags


def _log_to(spark: "SparkSession", settings: Settings, log: Path) -> None:
    """Under spark-submit the JVM started with the start-up logging of ``featurekit plan``'s
    command (or Spark's own): from here on, featurekit's run logging, as in a session it starts.
    Where the user gave another log4j2 configuration, theirs is kept."""
    global _log
    java_options = spark.sparkContext.getConf().get("spark.driver.extraJavaOptions", "") or ""
    if "log4j2.configurationFile" in java_options and f"file:{LOG_CONFIG}" not in java_options:
        return
    jvm: Any = spark.sparkContext._jvm
    log.parent.mkdir(parents=True, exist_ok=True)
    for key, value in _log_properties(settings, log).items():
        jvm.java.lang.System.setProperty(key, value)
    # setting a configuration's location makes log4j2 load it in place of the running one
    jvm.org.apache.logging.log4j.LogManager.getContext(False).setConfigLocation(jvm.java.net.URI(RUN_LOG_CONFIG.as_uri()))
    _log = log
    spark.sparkContext.setLogLevel(settings.spark.log_level)


def _check_delta(spark: "SparkSession") -> None:
    extensions = spark.conf.get("spark.sql.extensions", "") or ""
    if DELTA_CONF["spark.sql.extensions"] not in extensions:
        flags = " ".join(f"--conf {k}={v}" for k, v in DELTA_CONF.items())
        raise ConfigError.single(
            f"the running Spark session has no Delta Lake support; start it with {flags} "
            "and the Delta jars (`featurekit plan JOB` prints the full spark-submit command)",
            file="spark",
        )
