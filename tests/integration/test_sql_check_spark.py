"""Spark's own parser agrees with the JVM-free SQL check on every case it is tested with: what
the check lets through, Spark parses; what the check refuses, Spark refuses too."""

from __future__ import annotations

import pytest

from featurekit.spec.sqlcheck import syntax_problem
from tests.unit.sql_cases import SPARK_ACCEPTS, SPARK_REFUSES

pytestmark = pytest.mark.spark


def _spark_parses(spark: object, sql: str, query: bool) -> bool:
    parser = spark._jsparkSession.sessionState().sqlParser()  # type: ignore[attr-defined]
    try:
        (parser.parsePlan if query else parser.parseExpression)(sql)
    except Exception:  # noqa: BLE001 - py4j wraps Spark's ParseException
        return False
    return True


def test_spark_accepts_what_the_check_lets_through(spark: object) -> None:
    refused = [sql for sql, query in SPARK_ACCEPTS if not _spark_parses(spark, sql, query)]
    assert refused == []
    assert all(syntax_problem(sql, query=query) is None for sql, query in SPARK_ACCEPTS)


def test_spark_refuses_what_the_check_reports(spark: object) -> None:
    accepted = [sql for sql, query, _ in SPARK_REFUSES if _spark_parses(spark, sql, query)]
    assert accepted == []
    assert all(syntax_problem(sql, query=query) is not None for sql, query, _ in SPARK_REFUSES)
