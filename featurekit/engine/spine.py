"""A spine of a training set read by Spark: a Delta table (pinned to its current version),
Parquet files, or CSV files with a header."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from featurekit.engine.sources import delta_version
from featurekit.errors import NotFound, UsageError

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


def read_spine(spark: "SparkSession", path: str) -> tuple["DataFrame", str, int | None]:
    """The spine as a DataFrame of ``spark`` (a Delta table pinned to its current version)."""
    kind = spine_format(spark, path)
    if kind == "delta":
        version = delta_version(spark, path)
        return spark.read.format("delta").option("versionAsOf", version).load(path), kind, version
    if kind == "parquet":
        return spark.read.parquet(path), kind, None
    return spark.read.option("header", True).option("inferSchema", True).csv(path), kind, None
