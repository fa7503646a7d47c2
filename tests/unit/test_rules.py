"""The gate's row-level rules without a JVM: the SQL each check compiles to and its message,
the ``validate:`` block's parsing, and the translation of a pandera DataFrameModel's checks.

A rule's ``failure_sql`` is TRUE when a row FAILS it; value checks pass on nulls (pandera's
convention) and ``nullable: false`` is the rule about nulls.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pandera.pyspark as pa
import pyspark.sql.types as T
import pytest
from pandera.pyspark import DataFrameModel, Field
from pydantic import ValidationError

from featurekit.spec.loader import parse_job
from featurekit.spec.sqlcheck import literal, quote
from featurekit.spec.validate import ColumnRule, Length, Range, ValidateSpec
from featurekit.validation.rules import RowRule, column_rules, compile_rules, unique_keys


def rules(**rule: Any) -> list[RowRule]:
    return column_rules("c", ColumnRule.model_validate(rule))


def value_rule(check: str, ok: str, message: str) -> RowRule:
    """The rule of a value check on column ``c`` whose passing condition is ``ok``."""
    return RowRule(check, "c", f"`c` IS NOT NULL AND NOT coalesce({ok}, FALSE)", message)


# --------------------------------------------------------------------------- literals and names


@pytest.mark.parametrize(("value", "sql"), [
    (True, "TRUE"),
    (False, "FALSE"),
    (0, "0"),
    (-2, "-2"),
    (1.5, "1.5"),
    ("abc", "'abc'"),
    ("O'Brien", r"'O\'Brien'"),                 # Spark's parser reads \' as a quote
    ("C:\\temp", r"'C:\\temp'"),                # ... and \\ as one backslash
    ("\\'", r"'\\\''"),                         # backslash then quote: both escaped, in order
    ("", "''"),
])
def test_literal_quotes_and_escapes_for_sparks_parser(value: Any, sql: str) -> None:
    assert literal(value) == sql


def test_quote_doubles_backticks() -> None:
    assert quote("fare") == "`fare`"
    assert quote("my col") == "`my col`"
    assert quote("we`ird") == "`we``ird`"


# --------------------------------------------------------------------------- each check kind


def test_nullable_false_is_the_rule_about_nulls() -> None:
    assert rules(nullable=False) == [RowRule("nullable", "c", "`c` IS NULL", "is null")]
    assert rules() == []                        # nullable by default, no checks: no rule


@pytest.mark.parametrize(("checks", "expected"), [
    ({"eq": 1}, value_rule("eq", "`c` = 1", "must be = 1")),
    ({"ne": "x"}, value_rule("ne", "`c` != 'x'", "must be != 'x'")),
    ({"gt": 0}, value_rule("gt", "`c` > 0", "must be > 0")),
    ({"ge": 0.5}, value_rule("ge", "`c` >= 0.5", "must be >= 0.5")),
    ({"lt": -3}, value_rule("lt", "`c` < -3", "must be < -3")),
    ({"le": 100}, value_rule("le", "`c` <= 100", "must be <= 100")),
    ({"eq": True}, value_rule("eq", "`c` = TRUE", "must be = True")),
    ({"in_range": {"min": 0, "max": 500}},
     value_rule("in_range", "`c` >= 0 AND `c` <= 500", "must be >= 0 and <= 500")),
    ({"isin": ["cash", "card"]},
     value_rule("isin", "`c` IN ('cash', 'card')", "must be one of 'cash', 'card'")),
    ({"isin": [1, 2.5]}, value_rule("isin", "`c` IN (1, 2.5)", "must be one of 1, 2.5")),
    ({"notin": ["n/a", "?"]},
     value_rule("notin", "`c` NOT IN ('n/a', '?')", "must not be one of 'n/a', '?'")),
    ({"str_startswith": "DRV-"}, value_rule("str_startswith", "startswith(`c`, 'DRV-')", "must start with 'DRV-'")),
    ({"str_length": {"min": 1, "max": 80}},
     value_rule("str_length", "length(`c`) >= 1 AND length(`c`) <= 80", "length must be >= 1 and <= 80")),
])
def test_each_check_compiles_to_its_failure_sql_and_message(checks: dict[str, Any], expected: RowRule) -> None:
    assert rules(checks=checks) == [expected]


def test_string_values_with_quotes_and_backslashes_are_escaped_in_the_sql() -> None:
    [rule] = rules(checks={"isin": ["O'Brien", "a\\b"]})
    assert rule.failure_sql == r"`c` IS NOT NULL AND NOT coalesce(`c` IN ('O\'Brien', 'a\\b'), FALSE)"
    assert rule.message == """must be one of "O'Brien", 'a\\\\b'"""   # Python's repr of each value


def test_str_matches_is_anchored_at_the_start_around_the_whole_pattern() -> None:
    # the group keeps the anchor on every alternative: "x|y" must not become "^x|y"
    [rule] = rules(checks={"str_matches": "[A-Z]{3}|x"})
    assert rule == value_rule("str_matches", "regexp_like(`c`, '^(?:[A-Z]{3}|x)')", "must match '[A-Z]{3}|x' (from the start)")
    [escaped] = rules(checks={"str_matches": r"\d+"})
    assert escaped.failure_sql == r"`c` IS NOT NULL AND NOT coalesce(regexp_like(`c`, '^(?:\\d+)'), FALSE)"


@pytest.mark.parametrize(("checks", "ok", "message"), [
    ({"in_range": {"min": 0}}, "`c` >= 0", "must be >= 0"),
    ({"in_range": {"max": 9.5}}, "`c` <= 9.5", "must be <= 9.5"),
    ({"in_range": {"min": "a"}}, "`c` >= 'a'", "must be >= 'a'"),
    ({"str_length": {"min": 2}}, "length(`c`) >= 2", "length must be >= 2"),
    ({"str_length": {"max": 3}}, "length(`c`) <= 3", "length must be <= 3"),
    ({"str_length": {"min": 4, "max": 4}}, "length(`c`) >= 4 AND length(`c`) <= 4", "length must be >= 4 and <= 4"),
])
def test_ranges_with_one_bound_compile_to_one_comparison(checks: dict[str, Any], ok: str, message: str) -> None:
    check = next(iter(checks))
    assert rules(checks=checks) == [value_rule(check, ok, message)]


def test_unique_is_not_a_per_row_rule_but_a_key() -> None:
    assert rules(checks={"unique": True}) == []


def test_a_column_with_several_checks_gets_them_in_a_fixed_order() -> None:
    """nullable first, then the checks in ChecksSpec's order, whatever the YAML order."""
    got = rules(checks={"str_length": [1, 3], "isin": ["a"], "ge": "a", "eq": "b"}, nullable=False)
    assert [r.check for r in got] == ["nullable", "eq", "ge", "isin", "str_length"]


def test_column_names_are_quoted_in_the_sql_but_not_in_the_rule() -> None:
    [rule] = column_rules("we`ird", ColumnRule.model_validate({"nullable": False}))
    assert (rule.column, rule.failure_sql) == ("we`ird", "`we``ird` IS NULL")


# --------------------------------------------------------------------------- the whole block


def spec(**block: Any) -> ValidateSpec:
    return ValidateSpec.model_validate(block)


def test_compile_rules_follows_the_column_order_of_the_block() -> None:
    block = spec(columns={
        "b": {"checks": {"gt": 0}},
        "a": {"nullable": False, "checks": {"isin": [1, 2], "unique": True}},
        "c": {"type": "string"},
    })
    assert [(r.column, r.check) for r in compile_rules(block)] == [("b", "gt"), ("a", "nullable"), ("a", "isin")]


def test_unique_keys_table_level_first_then_columns_in_order() -> None:
    block = spec(
        unique=["driver_id", "event_ts"],
        columns={"z": {"checks": {"unique": True}}, "y": {"checks": {"ge": 0}}, "x": {"checks": {"unique": True}}},
    )
    assert unique_keys(block) == [("driver_id,event_ts", ["driver_id", "event_ts"]), ("z", ["z"]), ("x", ["x"])]
    assert unique_keys(spec()) == []


# --------------------------------------------------------------------------- ValidateSpec parsing


def test_defaults() -> None:
    block = spec()
    assert (block.policy, block.max_bad_fraction, block.columns, block.unique, block.row_count) == (
        "quarantine", 0.01, {}, None, None)
    assert (block.schema_model, block.quarantine_path) == (None, None)


def test_pair_shorthands_mean_min_and_max() -> None:
    block = spec(columns={"c": {"checks": {"in_range": [0, 500], "str_length": [1, 80]}}})
    checks = block.columns["c"].checks
    assert checks.in_range == Range(min=0, max=500)
    assert checks.str_length == Length(min=1, max=80)
    assert spec(columns={"c": {"checks": {"in_range": [None, 5]}}}).columns["c"].checks.in_range == Range(max=5)


def test_unique_shorthands() -> None:
    assert spec(unique=["a", "b"]).unique.model_dump() == {"keys": ["a", "b"], "order_by": [], "keep": "first"}
    full = spec(unique={"keys": ["a"], "order_by": "ts", "keep": "last"}).unique
    assert (full.keys, full.order_by, full.keep) == (["a"], ["ts"], "last")


def test_declared_lists_only_the_checks_that_are_set() -> None:
    checks = spec(columns={"c": {"checks": {"le": 0, "unique": False, "str_startswith": ""}}}).columns["c"].checks
    assert checks.declared() == {"le": 0, "str_startswith": ""}


def errors(block: dict[str, Any]) -> list[tuple[tuple[Any, ...], str]]:
    with pytest.raises(ValidationError) as info:
        ValidateSpec.model_validate(block)
    return [(e["loc"], e["msg"]) for e in info.value.errors()]


@pytest.mark.parametrize(("checks", "where", "message"), [
    ({"str_matches": "a(b"}, "str_matches",
     "Value error, expected a regular expression; missing ), unterminated subpattern at position 1"),
    ({"in_range": [10, 1]}, "in_range", "Value error, min 10 is greater than max 1"),
    ({"in_range": ["b", "a"]}, "in_range", "Value error, min 'b' is greater than max 'a'"),
    ({"in_range": [1, 2, 3]}, "in_range", "Value error, expected [min, max]; got [1, 2, 3]"),
    ({"in_range": {}}, "in_range", "Value error, expected at least one of min, max"),
    ({"str_length": [5, 2]}, "str_length", "Value error, min 5 is greater than max 2"),
    ({"str_length": {}}, "str_length", "Value error, expected at least one of min, max"),
    ({"isin": []}, "isin", "List should have at least 1 item after validation, not 0"),
])
def test_check_value_errors(checks: dict[str, Any], where: str, message: str) -> None:
    assert errors({"columns": {"c": {"checks": checks}}}) == [(("columns", "c", "checks", where), message)]


def test_negative_length_is_refused() -> None:
    assert errors({"columns": {"c": {"checks": {"str_length": [-1, 2]}}}}) == [
        (("columns", "c", "checks", "str_length", "min"), "Input should be greater than or equal to 0")]


def test_in_range_min_above_max_is_refused_for_mixed_int_and_float() -> None:
    assert errors({"columns": {"c": {"checks": {"in_range": [10, 2.5]}}}}) == [
        (("columns", "c", "checks", "in_range"), "Value error, min 10 is greater than max 2.5")]


def test_row_count_min_above_max_is_refused() -> None:
    assert errors({"row_count": {"min": 10, "max": 5}})[0][0] == ("row_count",)


VARIABLES = {"raw_root": "/data/raw", "lake_root": "/data/lake"}


def test_problems_in_the_block_are_all_located(tmp_path: Path) -> None:
    path = tmp_path / "vj.yaml"
    path.write_text(textwrap.dedent("""\
        name: vj
        sources:
          t: {format: csv, path: "${raw_root}/t", schema: {id: long, name: string, fare: double}}
        validate:
          columns:
            name: {checks: {str_length: [5, 2], str_matches: "a(b"}}
            fare: {checks: {in_range: [1, 2, 3], isin: []}}
            id: {checks: {str_length: {}}}
        output: {path: "${lake_root}/x"}
    """))
    job, problems = parse_job(path, VARIABLES, "jobs/vj.yaml")
    assert job is None
    assert sorted(str(p) for p in problems) == sorted([
        "jobs/vj.yaml:6:54 validate.columns.name.checks.str_matches: expected a regular expression; "
        "missing ), unterminated subpattern at position 1",
        "jobs/vj.yaml:6:33 validate.columns.name.checks.str_length: min 5 is greater than max 2",
        "jobs/vj.yaml:7:31 validate.columns.fare.checks.in_range: expected [min, max]; got [1, 2, 3]",
        "jobs/vj.yaml:7:48 validate.columns.fare.checks.isin: must not be empty",
        "jobs/vj.yaml:8:31 validate.columns.id.checks.str_length: expected at least one of min, max",
    ])


# --------------------------------------------------------------------------- DataFrameModel -> rules


JVM_FREE = """
import pyspark.sql.types as T
from pandera.pyspark import DataFrameModel, Field
from pyspark import SparkContext
from featurekit.validation.model import contract_of

class M(DataFrameModel):
    id: T.LongType() = Field(gt=0)

contract = contract_of(M)
assert contract.columns["id"].checks.declared() == {"gt": 0}
assert SparkContext._gateway is None and SparkContext._jvm is None, "a JVM was started"
print("ok")
"""


def test_pandera_pyspark_models_translate_without_a_jvm() -> None:
    """In a fresh interpreter: this test process may hold the integration tests' JVM."""
    done = subprocess.run([sys.executable, "-c", JVM_FREE], capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stdout.strip()) == (0, "ok"), done.stderr[-2000:]


class Trips(DataFrameModel):
    trip_id: T.StringType() = Field(str_matches=r"^T\d+", str_length={"exact_value": 5})
    fare: T.DoubleType() = Field(nullable=True, in_range={"min_value": 0, "max_value": 500})
    km: T.DoubleType() = Field(nullable=True, in_range={"min_value": 0, "max_value": 100,
                                                         "include_min": False, "include_max": False})
    rating: T.DoubleType() = Field(nullable=True, in_range={"min_value": 1, "max_value": 5, "include_min": False})
    seats: T.LongType() = Field(nullable=True, in_range={"min_value": 1, "max_value": 9, "include_max": False})
    city: T.StringType() = Field(nullable=True, isin=["Oslo", "Bergen"], str_startswith="O")
    code: T.StringType() = Field(nullable=True, notin=["?"], str_length={"min_value": 2})
    note: T.StringType() = Field(nullable=True, str_length={"max_value": 10})
    n: T.LongType() = Field(nullable=True, eq=1, ne=2, gt=0, ge=1, lt=9, le=8)
    flag: T.BooleanType()                                       # pandera's pyspark default: not nullable

    @pa.check("fare", name="fare_is_round")
    def fare_is_round(cls, df: Any) -> bool:
        return True

    @pa.dataframe_check(name="enough_rows")
    def enough_rows(cls, df: Any) -> bool:
        return True


class Plain(DataFrameModel):
    id: T.LongType() = Field(gt=0)


def test_model_field_checks_become_the_same_rules_as_yaml_ones() -> None:
    from featurekit.validation.model import contract_of

    contract = contract_of(Trips)
    got = {name: (rule.type, rule.nullable, rule.required, rule.checks.declared()) for name, rule in contract.columns.items()}
    assert got == {
        "trip_id": ("string", False, True, {"str_matches": r"^T\d+", "str_length": Length(min=5, max=5)}),
        "fare": ("double", True, True, {"in_range": Range(min=0, max=500)}),
        "km": ("double", True, True, {"gt": 0, "lt": 100}),            # exclusive bounds: gt/lt
        "rating": ("double", True, True, {"gt": 1, "le": 5}),
        "seats": ("bigint", True, True, {"ge": 1, "lt": 9}),
        "city": ("string", True, True, {"isin": ["Oslo", "Bergen"], "str_startswith": "O"}),
        "code": ("string", True, True, {"notin": ["?"], "str_length": Length(min=2)}),
        "note": ("string", True, True, {"str_length": Length(max=10)}),
        "n": ("bigint", True, True, {"eq": 1, "ne": 2, "gt": 0, "ge": 1, "lt": 9, "le": 8}),
        "flag": ("boolean", False, True, {}),
    }


def test_model_rules_compile_like_yaml_rules() -> None:
    from featurekit.validation.rules import rules_for
    from featurekit.validation.model import contract_of

    contract = contract_of(Trips)
    yaml_block = spec(columns={
        "trip_id": {"nullable": False, "checks": {"str_matches": r"^T\d+", "str_length": [5, 5]}},
        "fare": {"checks": {"in_range": [0, 500]}},
    })
    model_rules = [r for r in rules_for(contract.columns) if r.column in {"trip_id", "fare"}]
    assert model_rules == compile_rules(yaml_block)


def test_custom_checks_are_left_to_pandera_by_name() -> None:
    from featurekit.validation.model import contract_of

    contract = contract_of(Trips)
    assert contract.opaque_names == ["fare:fare_is_round", "enough_rows"]
    schema = contract.opaque_schema
    assert list(schema.columns) == ["fare"]
    assert [c.name for c in schema.columns["fare"].checks] == ["fare_is_round"]   # not the built-in in_range
    assert [c.name for c in schema.checks] == ["enough_rows"]


def test_a_model_with_only_built_in_checks_leaves_nothing_to_pandera() -> None:
    from featurekit.validation.model import contract_of

    contract = contract_of(Plain)
    assert (contract.opaque_schema, contract.opaque_names) == (None, [])


def test_yaml_rules_and_model_rules_on_one_column_both_apply() -> None:
    from featurekit.validation.model import ModelContract, merged_columns

    contract = ModelContract(columns={
        "fare": ColumnRule.model_validate({"type": "double", "nullable": True, "checks": {"ge": 0, "le": 500}}),
        "id": ColumnRule.model_validate({"type": "bigint", "nullable": False}),
    })
    declared = {
        "fare": ColumnRule.model_validate({"nullable": False, "checks": {"le": 100, "isin": [1.0]}}),
        "city": ColumnRule.model_validate({"checks": {"ne": ""}}),
    }
    merged = merged_columns(declared, contract)
    assert list(merged) == ["fare", "id", "city"]
    fare = merged["fare"]
    assert (fare.type, fare.nullable) == ("double", False)
    assert fare.checks.declared() == {"ge": 0, "le": 100, "isin": [1.0]}   # the YAML value wins on a clash
    assert merged["id"] == contract.columns["id"] and merged["city"] == declared["city"]
    assert merged_columns(declared, None) == declared
