"""Reading a job's sources; each becomes a named view the ``sql`` steps can use."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from featurekit.engine.files import (
    NANOS_AS_LONG,
    FileSource,
    data_files,
    nanos_columns,
    nanos_schema,
    nanos_to_micros,
    reader_options,
)
from featurekit.errors import ConfigError, Problem
from featurekit.spec.models import CsvSource, DeltaSource, JsonSource, ParquetSource, SourceSpec

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


class MissingTable(ConfigError):
    """A Delta source has no table yet (the job that writes it has not run)."""

    def __init__(self, source: str, path: str) -> None:
        self.source, self.path = source, path
        super().__init__([Problem("sources", None, None, source, f"no Delta table at {path}")])


RAW = "_fk_raw"  # the raw text of a record that does not parse (Spark's corrupt-record column)


@dataclass(frozen=True)
class SourceRead:
    name: str
    format: str
    path: str
    delta_version: int | None
    captures_malformed: bool = False
    files: tuple[int, int] | None = None  # (read, in the source): an incremental run's pruned scan
    warnings: tuple[str, ...] = ()  # e.g. nanosecond timestamps truncated to microseconds


def _captures_malformed(source: SourceSpec) -> bool:
    """CSV/JSON read PERMISSIVE keep a record that does not parse, whole, in ``_fk_raw``
    (unless the user chose FAILFAST, which fails the run instead)."""
    if not isinstance(source, (CsvSource, JsonSource)):
        return False
    mode = next((v for k, v in source.options.items() if k.lower() == "mode"), "PERMISSIVE")
    return mode.upper() == "PERMISSIVE"


def delta_version(spark: "SparkSession", path: str) -> int | None:
    """The current version of the Delta table at ``path``, or None if there is none."""
    from delta.tables import DeltaTable

    if not DeltaTable.isDeltaTable(spark, path):
        return None
    row = DeltaTable.forPath(spark, path).history(1).select("version").first()
    return int(row["version"]) if row else None


# the change data feed's own columns, and the change types that carry a row's new values
_CHANGE_COLUMNS = ("_change_type", "_commit_version", "_commit_timestamp")
_NEW_VALUES = "_change_type IN ('insert', 'update_postimage')"


def change_feed_enabled(spark: "SparkSession", path: str) -> bool:
    """Whether the Delta table at ``path`` records its changes (``delta.enableChangeDataFeed``)."""
    from delta.tables import DeltaTable

    properties = DeltaTable.forPath(spark, path).detail().select("properties").first()[0] or {}
    return str(properties.get("delta.enableChangeDataFeed", "false")).lower() == "true"


def read_source(spark: "SparkSession", name: str, source: SourceSpec,
                pinned: int | None = None, changes_after: int | None = None) -> tuple["DataFrame", SourceRead]:
    """The frame of one source; a Delta source is pinned to the version current now
    (or to ``pinned``, a version chosen by an earlier read of the same run). With
    ``changes_after`` (and ``pinned``) a Delta source is its rows inserted or updated in the
    versions after that one, from its change data feed."""
    from pyspark.errors import AnalysisException

    reader = spark.read.options(**source.options)
    version: int | None = None
    warnings: list[str] = []
    try:
        if isinstance(source, DeltaSource) and pinned is not None and changes_after is not None:
            version = pinned
            frame = (reader.format("delta").option("readChangeFeed", "true")
                     .option("startingVersion", min(changes_after + 1, version)).option("endingVersion", version)
                     .load(source.path))
            frame = frame.where(_NEW_VALUES if changes_after < version else "FALSE").drop(*_CHANGE_COLUMNS)
        elif isinstance(source, DeltaSource) and pinned is not None:
            version = pinned
            frame = reader.format("delta").option("versionAsOf", version).load(source.path)
        elif isinstance(source, DeltaSource):
            current = delta_version(spark, source.path)
            if current is None:
                raise MissingTable(name, source.path)
            if source.version is not None and source.version > current:
                raise ConfigError.single(f"source {name!r}: version {source.version} does not exist "
                                         f"(the table at {source.path} is at version {current})",
                                         file="sources", field=name)
            version = current if source.version is None else source.version
            frame = reader.format("delta").option("versionAsOf", version).load(source.path)
        else:
            frame, warnings = _read_files(spark, name, source)
    except AnalysisException as exc:
        first = str(exc).strip().splitlines()[0]
        raise ConfigError.single(f"source {name!r} ({source.format} at {source.path}): {first}",
                                 file="sources", field=name) from exc
    return frame, SourceRead(name, source.format, source.path, version, RAW in frame.columns, warnings=tuple(warnings))


def _read_files(spark: "SparkSession", name: str, source: FileSource) -> tuple["DataFrame", list[str]]:
    """A CSV, JSON or Parquet source (see :mod:`featurekit.engine.files`), and its warnings."""
    files = data_files(spark, name, source)
    nanos: dict[str, bool] = {}
    if isinstance(source, ParquetSource):
        # Spark refuses TIMESTAMP(NANOS) unless told to read it as a long, which it then is
        spark.conf.set(NANOS_AS_LONG, "true")
        nanos = nanos_columns(spark, files[0])
    reader = spark.read.options(**reader_options(spark, name, source, files))
    capture = _captures_malformed(source)
    if capture:
        reader = reader.option("mode", "PERMISSIVE").option("columnNameOfCorruptRecord", RAW)
    schema = nanos_schema(name, source.schema_, nanos) if source.schema_ and nanos else source.schema_
    if schema:
        columns = [f"`{col}` {kind}" for col, kind in schema.items()]
        if capture:
            columns.append(f"`{RAW}` string")
        reader = reader.schema(", ".join(columns))
    frame = reader.format(source.format).load(source.path)
    if nanos:
        return nanos_to_micros(spark, name, frame, nanos, source.schema_)
    return frame, []
