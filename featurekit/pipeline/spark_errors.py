"""Spark's exceptions mapped to featurekit's errors (and so to exit codes).

pyspark converts only some JVM exceptions; the rest arrive as a Py4J error whose first line
says nothing. The Java cause chain is walked for Spark's error conditions instead.
"""

from __future__ import annotations

from collections.abc import Iterator

from featurekit.errors import ConfigError, DataError, FeaturekitError, InfraError

_DATA_CONDITIONS = (
    "MALFORMED_RECORD", "CAST_INVALID_INPUT", "CAST_OVERFLOW", "DIVIDE_BY_ZERO", "ARITHMETIC_OVERFLOW",
    "NUMERIC_VALUE_OUT_OF_RANGE", "USER_RAISED_EXCEPTION", "CANNOT_PARSE", "DATETIME", "INVALID_ARRAY_INDEX",
    "INVALID_INDEX", "INVALID_FRACTION", "CONVERSION_INVALID_INPUT",
)


# Delta's optimistic concurrency: a commit that lost against another writer's
_CONFLICTS = ("DELTA_CONCURRENT", "DELTA_METADATA_CHANGED", "DELTA_PROTOCOL_CHANGED")


def _spark_errors(exc: BaseException) -> Iterator[tuple[str, str]]:
    """(condition, message) for the exception and, through Py4J, its Java causes."""
    get = getattr(exc, "getCondition", None)
    if callable(get):
        try:
            yield str(get() or ""), str(exc)
        except Exception:  # a pyspark exception whose condition the JVM cannot name
            pass
    java = getattr(exc, "java_exception", None)
    seen = 0
    while java is not None and seen < 20:
        seen += 1
        condition = ""
        try:
            if java.getClass().getName() != "java.lang.Throwable" and hasattr(java, "getCondition"):
                condition = str(java.getCondition() or "")
        except Exception:
            condition = ""
        try:
            message = str(java.getMessage() or java.getClass().getName())
        except Exception:
            message = ""
        yield condition, message
        try:
            java = java.getCause()
        except Exception:
            java = None


def classify(exc: Exception) -> FeaturekitError:
    """Map an exception from Spark to a featurekit error with the right exit code."""
    from pyspark.errors import (
        AnalysisException,
        ArithmeticException,
        DateTimeException,
        IllegalArgumentException,
        NumberFormatException,
        SparkRuntimeException,
    )

    def first(text: str) -> str:
        return next((line.strip() for line in text.strip().splitlines() if line.strip()), type(exc).__name__)

    causes = list(_spark_errors(exc))
    for condition, message in causes:
        if condition.startswith(_DATA_CONDITIONS):
            return DataError(f"the data broke the job: {first(message)}")
    if isinstance(exc, (ArithmeticException, DateTimeException, NumberFormatException, SparkRuntimeException, IllegalArgumentException)):
        return DataError(f"the data broke the job: {first(str(exc))}")
    for condition, message in causes:
        # the condition, or where py4j gives no condition, the message's "[CONDITION] ..." head
        if condition.startswith(_CONFLICTS) or message.lstrip().startswith(tuple(f"[{c}" for c in _CONFLICTS)):
            condition = condition or message.lstrip()[1:].split("]", 1)[0]
            return InfraError(f"another writer committed to the table first ({condition}); nothing of this run "
                              "was committed — run it again")
    if isinstance(exc, AnalysisException) or any(c.startswith(("DELTA_", "UNRESOLVED_", "PATH_NOT_FOUND")) for c, _ in causes):
        message = next((m for c, m in causes if c), str(exc))
        return ConfigError.single(f"Spark refused the job: {first(message)}", file="output")
    detail = next((m for c, m in causes if c), None) or next((m for _, m in reversed(causes) if m), str(exc))
    return InfraError(f"Spark failed: {first(detail)}")
