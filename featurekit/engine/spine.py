"""A spine of a training set read by Spark: a Delta table (pinned to its current version),
Parquet files (nanosecond timestamps, pandas' default, read at microseconds), or CSV files with
a header; and the session time zone the join needs."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from featurekit.engine.files import NANOS_AS_LONG, nanos_columns, nanos_to_micros
from featurekit.engine.sources import delta_version
from featurekit.errors import ConfigError, NotFound, UsageError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession



def spine_format(spark: "SparkSession", path: str) -> str:
    """``delta``, ``parquet`` or ``csv``: a Delta table, else by the files' extensions."""
    jvm: Any = spark._jvm  # type: ignore[attr-defined]
    target = jvm.org.apache.hadoop.fs.Path(path)
    fs = target.getFileSystem(spark._jsc.hadoopConfiguration())  # type: ignore[attr-defined]
    if not fs.exists(target):
        raise NotFound("spine", path, f"no spine at {path}")
    if fs.getFileStatus(target).isDirectory():
        if fs.exists(jvm.org.apache.hadoop.fs.Path(target, "_delta_log")):
            return "delta"
        names = [s.getPath().getName() for s in fs.listStatus(target)]
        names = [n for n in names if not n.startswith(("_", "."))]
    else:
        names = [target.getName()]
    suffixes = {Path(n).suffix.lower() for n in names} - {""}
    for kind, endings in (("parquet", {".parquet"}), ("csv", {".csv"})):
        if suffixes and suffixes <= endings:
            return kind
    found = ", ".join(sorted(suffixes)) or "no data files"
    raise UsageError("spine", f"the spine {path} is not a Delta table, Parquet or CSV files ({found})")


def read_spine(spark: "SparkSession", path: str) -> tuple["DataFrame", str, int | None, list[str]]:
    """The spine as a DataFrame of ``spark`` (a Delta table pinned to its current version), its
    format, its Delta version, and warnings (nanoseconds truncated)."""
    kind = spine_format(spark, path)
    if kind == "delta":
        version = delta_version(spark, path)
        return spark.read.format("delta").option("versionAsOf", version).load(path), kind, version, []
    if kind == "parquet":
        spark.conf.set(NANOS_AS_LONG, "true")   # else Spark refuses TIMESTAMP(NANOS) columns
        frame = spark.read.parquet(path)
        nanos = nanos_columns(spark, sorted(frame.inputFiles())[0])
        if nanos:
            frame, warnings = nanos_to_micros(spark, "spine", frame, nanos, None)
            return frame, kind, None, warnings
        return frame, kind, None, []
    return spark.read.option("header", True).option("inferSchema", True).csv(path), kind, None, []


def check_time_zone(spark: "SparkSession") -> None:
    """Refuse a session whose SQL time zone is not UTC: a spine's naive times (TIMESTAMP_NTZ,
    dates, CSV text) are read in it, and featurekit takes them as UTC, as Feast does."""
    zone = spark.conf.get("spark.sql.session.timeZone")
    jvm: Any = spark._jvm  # type: ignore[attr-defined]
    if not jvm.java.time.ZoneId.of(zone).normalized().equals(jvm.java.time.ZoneOffset.UTC):
        raise ConfigError.single(
            f"training sets need spark.sql.session.timeZone UTC (it is {zone!r}): naive times in a spine "
            "are read in it, and mean UTC", file="conf", field="spark.conf")
