"""The SQL of a spec is parsed without a JVM (sqlglot, Spark dialect): real errors are reported
with where they are in the SQL; what Spark accepts, sqlglot's blind spots included, passes."""

from __future__ import annotations

import pytest

from featurekit.spec.sqlcheck import syntax_problem
from tests.unit.sql_cases import SPARK_ACCEPTS, SPARK_REFUSES


@pytest.mark.parametrize(("sql", "query"), SPARK_ACCEPTS, ids=[sql[:40] for sql, _ in SPARK_ACCEPTS])
def test_sql_spark_accepts_passes(sql: str, query: bool) -> None:
    assert syntax_problem(sql, query=query) is None


@pytest.mark.parametrize(("sql", "query", "reason"), SPARK_REFUSES, ids=[sql[:40] for sql, _, _ in SPARK_REFUSES])
def test_sql_syntax_error_is_reported_with_its_place_in_the_sql(sql: str, query: bool, reason: str) -> None:
    assert syntax_problem(sql, query=query) == reason


def test_sql_of_only_spaces_is_no_expression() -> None:
    assert syntax_problem("  -- nothing\n") == "expected a SQL expression; got no SQL (only spaces or comments)"
