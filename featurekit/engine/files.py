"""CSV, JSON and Parquet files as people have them, read as Spark would be asked to by hand.

- A source path with no data files (missing, empty, or only hidden ``_``/``.`` files) is a
  :class:`MissingFiles` the pipeline places at the spec's ``path``, not Spark's analysis error.
- A JSON file holding one array (``[{...}, {...}]``, as ``json.dump`` writes a list) is read
  with ``multiLine``; JSON Lines as they are. Files of both kinds in one source are refused.
- Parquet with nanosecond timestamps (pandas' and pyarrow's default): Spark refuses the type,
  so the column is read as its raw count of nanoseconds and turned into a timestamp at
  microseconds, Spark's precision, with a warning counting the values that lost digits. A
  spec ``schema`` may keep it as ``long`` (nanoseconds since the epoch) instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from featurekit.errors import ConfigError, Problem
from featurekit.spec.models import CsvSource, JsonSource, ParquetSource

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

FileSource = CsvSource | JsonSource | ParquetSource

NANOS_AS_LONG = "spark.sql.legacy.parquet.nanosAsLong"
# Spark reads a Parquet timestamp not adjusted to UTC (pandas' naive datetimes) as TIMESTAMP_NTZ
_INFER_NTZ = "spark.sql.parquet.inferTimestampNTZ.enabled"
_NANOS_TYPES = ("timestamp", "timestamp_ntz", "long", "bigint")
JSON_FILES_CHECKED = 100  # files whose first character decides JSON Lines or one array


class MissingFiles(ConfigError):
    """A file source's path has nothing to read; ``message`` says what was looked for."""

    def __init__(self, source: str, message: str) -> None:
        self.source, self.message = source, message
        super().__init__([Problem("sources", None, None, f"{source}.path", message)])


def _option(options: dict[str, Any], key: str) -> Any:
    return next((v for k, v in options.items() if k.lower() == key.lower()), None)


def data_files(spark: "SparkSession", name: str, source: FileSource) -> list[str]:
    """The files Spark reads for ``source`` (its listing rules and the user's options, e.g.
    ``pathGlobFilter``); :class:`MissingFiles` if there are none."""
    from pyspark.errors import AnalysisException

    what = f"{source.format} files at {source.path}"
    try:  # the text reader lists the files as every file format does, without reading them
        files = spark.read.options(**source.options).format("text").load(source.path).inputFiles()
    except AnalysisException as exc:
        if (exc.getCondition() or "").startswith("PATH_NOT_FOUND"):
            raise MissingFiles(name, f"looked for {what}: the path does not exist") from exc
        raise
    if not files:
        raise MissingFiles(name, f"looked for {what}: there are none (the folder is empty, or holds only "
                                 "files Spark skips: names starting with _ or .)")
    return sorted(files)


def reader_options(spark: "SparkSession", name: str, source: FileSource, files: list[str]) -> dict[str, Any]:
    """The user's reader options, with ``multiLine`` for JSON files holding one array."""
    options: dict[str, Any] = dict(source.options)
    if isinstance(source, JsonSource) and _option(options, "multiLine") is None:
        arrays = {file: _first_char(spark, file) == "[" for file in files[:JSON_FILES_CHECKED]}
        if all(arrays.values()):
            options["multiLine"] = True
        elif any(arrays.values()):
            array = next(f for f, a in arrays.items() if a)
            lines = next(f for f, a in arrays.items() if not a)
            raise ConfigError([Problem("sources", None, None, f"{name}.path",
                                       f"some files hold one JSON array ({array}), others JSON Lines ({lines}); "
                                       "one source reads one kind: give each its own source")])
    return options


def _first_char(spark: "SparkSession", file: str) -> str | None:
    """The first character of ``file`` that is not white space or a byte-order mark
    (decompressed, through Hadoop's file systems: local, s3a, ...)."""
    jvm: Any = spark.sparkContext._jvm
    conf = spark.sparkContext._jsc.hadoopConfiguration()  # type: ignore[union-attr]
    path = jvm.org.apache.hadoop.fs.Path(jvm.java.net.URI(file))
    stream = path.getFileSystem(conf).open(path)
    codec = jvm.org.apache.hadoop.io.compress.CompressionCodecFactory(conf).getCodec(path)
    if codec is not None:
        stream = codec.createInputStream(stream)
    try:
        for _ in range(4096):
            byte = stream.read()
            if byte < 0:
                return None
            if byte not in b" \t\r\n\xef\xbb\xbf":
                return chr(byte)
        return None
    finally:
        stream.close()


def nanos_columns(spark: "SparkSession", file: str) -> dict[str, bool]:
    """The top-level columns of a Parquet file stored as TIMESTAMP(NANOS), each with whether it
    is adjusted to UTC (pyarrow's tz-aware timestamps) or not (pandas' naive datetimes)."""
    jvm: Any = spark.sparkContext._jvm
    conf = spark.sparkContext._jsc.hadoopConfiguration()  # type: ignore[union-attr]
    path = jvm.org.apache.hadoop.fs.Path(jvm.java.net.URI(file))
    opened = jvm.org.apache.parquet.hadoop.ParquetFileReader.open(
        jvm.org.apache.parquet.hadoop.util.HadoopInputFile.fromPath(path, conf))
    try:
        schema = opened.getFooter().getFileMetaData().getSchema()
    finally:
        opened.close()
    found = {}
    for field in schema.getFields():
        if not field.isPrimitive():
            continue
        annotation = field.getLogicalTypeAnnotation()
        if annotation is not None and annotation.getClass().getSimpleName() == "TimestampLogicalTypeAnnotation" \
                and str(annotation.getUnit()) == "NANOS":
            found[str(field.getName())] = bool(annotation.isAdjustedToUTC())
    return found


def nanos_schema(name: str, schema: dict[str, str], nanos: dict[str, bool]) -> dict[str, str]:
    """The declared ``schema`` with each nanosecond column read as its raw ``long``; a column
    declared as something a count of nanoseconds cannot become is refused, naming the fix."""
    problems = []
    for column in nanos.keys() & schema.keys():
        if schema[column] not in _NANOS_TYPES:
            problems.append(Problem("sources", None, None, f"{name}.schema.{column}",
                                    f"the Parquet column holds nanosecond timestamps, which cannot be read as "
                                    f"{schema[column]!r}: declare it timestamp (read at microseconds), "
                                    "timestamp_ntz, or long (nanoseconds since 1970-01-01)"))
    if problems:
        raise ConfigError(problems)
    return {column: "long" if column in nanos else kind for column, kind in schema.items()}


def nanos_to_micros(spark: "SparkSession", name: str, frame: "DataFrame", nanos: dict[str, bool],
                    declared: dict[str, str] | None) -> tuple["DataFrame", list[str]]:
    """``frame`` with its nanosecond columns (read as longs) as timestamps at microseconds,
    and a warning per column whose values lost digits (counted in one pass over those columns)."""
    from pyspark.sql import functions as F

    ntz = str(spark.conf.get(_INFER_NTZ, "true")).lower() == "true"
    converted = {}
    for column, utc in nanos.items():
        kind = (declared or {}).get(column) or ("timestamp" if utc or not ntz else "timestamp_ntz")
        if kind in ("long", "bigint"):
            continue
        # floor division: a time before 1970 goes to the earlier microsecond, as pyarrow casts it
        micros = f"(`{column}` - pmod(`{column}`, 1000)) div 1000"
        converted[column] = F.expr(f"timestampadd(MICROSECOND, {micros}, TIMESTAMP_NTZ'1970-01-01 00:00:00')"
                                   if kind == "timestamp_ntz" else f"timestamp_micros({micros})")
    if not converted:
        return frame, []
    counted = frame.select(*(F.count(F.when(F.pmod(F.col(f"`{c}`"), F.lit(1000)) != 0, 1)).alias(c) for c in converted)).first()
    lost = counted.asDict() if counted is not None else {}
    warnings = [f"source {name!r}: column {column!r} holds nanosecond timestamps; {lost[column]:,} value(s) were "
                "truncated to microseconds, Spark's precision (declare it long in the source's schema to keep "
                "the nanoseconds as a number)" for column in converted if lost.get(column)]
    return frame.withColumns(converted), warnings
