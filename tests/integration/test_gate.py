"""The validation gate on real Spark + Delta: a small dirty input whose bad rows are known by
construction, the quarantine table read back with delta-rs, the policies, the row accounting,
reruns, a feature commit that fails after the quarantine commit, and ``featurekit runs``.
"""

from __future__ import annotations

import json
import textwrap
from datetime import datetime
from typing import Any

import pytest

from featurekit import cli
from featurekit.errors import ConfigError, Conflict, DataError
from featurekit.pipeline import GateFailed, RunResult
from tests.integration.helpers import Lab, lab, no_size_based_broadcast, physical_plans, ts  # noqa: F401  (lab is a fixture)

META = ("_fk_run_id", "_fk_quarantined_at", "_fk_row_hash")

# --------------------------------------------------------------------------- the dirty input
# Every bad row is bad on purpose; the comment says which checks it breaks.
DIRTY = """\
id,driver,fare,city,code,ts
1,D-1,10.0,Oslo,ABC,2024-01-01 00:00:00
2,D-2,-1.0,Oslo,ABC,2024-01-01 00:00:00
3,D-3,,,,2024-01-01 00:00:00
4,,12.0,Oslo,ABC,2024-01-01 00:00:00
5,D-5,12.0,Paris,ABC,2024-01-01 00:00:00
6,D-6,12.0,O'Hara,ABC,2024-01-01 00:00:00
7,D-7,12.0,back\\slash,ABC,2024-01-01 00:00:00
8,D-8,12.0,Oslo,xABC,2024-01-01 00:00:00
9,D-9,12.0,Oslo,ABCDE,2024-01-01 00:00:00
10,D-10,900.0,Rome,ABC,2024-01-01 00:00:00
11,X-11,12.0,Oslo,ABC,2024-01-01 00:00:00
12,D-12,5.0,Oslo,ABC1,2024-01-01 00:00:00
13,D-13,5.0,Bergen,ABC,2024-01-02 00:00:00
13,D-13,5.0,Bergen,ABC,2024-01-01 00:00:00
1,D-1,-5.0,Oslo,ABC,2024-01-02 00:00:00
1,D-1,10.0,Oslo,ABC,2024-01-03 00:00:00
14,D-14,5.0,Oslo,ABC,not-a-time
x15,D-15,5.0,Oslo,ABC,2024-01-01 00:00:00
16,test-driver,1.0,Oslo,ABC,2024-01-01 00:00:00
"""
#  1  good: the first row of id 1 by ts
#  2  fare in_range
#  3  good: nulls pass value checks (fare, city, code)
#  4  driver nullable (null passes str_startswith: one error only)
#  5  city isin
#  6  good: a quote in an isin value
#  7  good: a backslash in an isin value
#  8  code str_matches (anchored at the start: "xABC" does not match "[A-Z]{3}")
#  9  code str_length (5 > 4; the regex matches)
# 10  fare in_range AND city isin: one row, two errors
# 11  driver str_startswith
# 12  good: "ABC1" matches from the start, length 4
# 13  (ts 01-02, first in the file) unique: not the first of id 13 by ts
# 13  (ts 01-01) good: kept
#  1  (ts 01-02) fare in_range AND unique
#  1  (ts 01-03) unique only
# 14  malformed: the timestamp does not parse
# x15 malformed: the id is not a number
# 16  dropped by the job's filter step (counted, not quarantined)

RAW_BAD_TS = "14,D-14,5.0,Oslo,ABC,not-a-time"
RAW_BAD_ID = "x15,D-15,5.0,Oslo,ABC,2024-01-01 00:00:00"
CITIES = ["Oslo", "Bergen", "O'Hara", "back\\slash"]

SOURCE = ('  trips: {format: csv, path: "${raw_root}/%s", options: {header: true},\n'
          '          schema: {id: long, driver: string, fare: double, city: string, code: string, ts: timestamp}}\n')


def dirty_job(name: str, validate: str, source: str = "gate_dirty", mode: str = "merge, keys: [id]",
              steps: str = "  - filter: \"coalesce(driver, '') != 'test-driver'\"\n") -> str:
    return (f"name: {name}\nsources:\n{SOURCE % source}steps:\n{steps}"
            f"validate:\n{textwrap.indent(textwrap.dedent(validate).strip(), '  ')}\n"
            f'output: {{path: "${{lake_root}}/{name}", mode: {mode}}}\n')


YAML_CHECKS = """
    policy: quarantine
    max_bad_fraction: 0.7
    columns:
      id: {nullable: false}
      driver: {nullable: false, checks: {str_startswith: "D-"}}
      fare: {type: double, checks: {in_range: [0, 500]}}
      city: {checks: {isin: ["Oslo", "Bergen", "O'Hara", "back\\\\slash"]}}
      code: {checks: {str_matches: "[A-Z]{3}", str_length: [3, 4]}}
    unique: {keys: [id], order_by: ts}
"""
MAIN = dirty_job("gate_main", YAML_CHECKS)

MODELS = '''
"""Test-only pandera contracts, written into the lab project by tests/integration/test_gate.py."""
import pandera.pyspark as pa
import pyspark.sql.types as T
from pandera.pyspark import DataFrameModel, Field
from pyspark.sql import functions as F


class GateTrips(DataFrameModel):
    """The same contract as the YAML block of gate_main, as a DataFrameModel."""

    id: T.LongType() = Field(nullable=False)
    driver: T.StringType() = Field(nullable=False, str_startswith="D-")
    fare: T.DoubleType() = Field(nullable=True, in_range={"min_value": 0, "max_value": 500})
    city: T.StringType() = Field(nullable=True, isin=["Oslo", "Bergen", "O'Hara", "back\\\\slash"])
    code: T.StringType() = Field(nullable=True, str_matches="[A-Z]{3}", str_length={"min_value": 3, "max_value": 4})
    ts: T.TimestampType() = Field(nullable=True)


class GateTripsCustom(GateTrips):
    """Plus two checks pandera runs on the good rows: one passes, one fails."""

    @pa.dataframe_check(name="has_rows")
    def has_rows(cls, df) -> bool:
        return df.limit(1).count() == 1

    @pa.dataframe_check(name="fares_at_most_11")
    def fares_at_most_11(cls, df) -> bool:
        return df.filter(F.col("fare") > 11).limit(1).count() == 0


class UniqueIds(DataFrameModel):
    id: T.LongType() = Field(nullable=False)
    v: T.StringType() = Field(nullable=True)

    class Config:
        unique = ["id"]
'''
MODEL_MODULE = "fk_gate_test_models"   # unique in sys.modules: load_model imports it by name


def errors_of(row: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(e["check"], e["column"], e["message"]) for e in row["_fk_errors"]]


def quarantined(lab: Lab, table: str) -> list[dict[str, Any]]:  # noqa: F811
    """The quarantine rows read by delta-rs, sorted by id, ts, raw text."""
    return lab.rows(table, by=["id", "ts", "_fk_raw", "fare"])


def without(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> list[dict[str, Any]]:
    return [{k: v for k, v in row.items() if k not in columns} for row in rows]


def check_counts(result: RunResult | dict[str, Any]) -> dict[tuple[str, str], int]:
    gate = result.gate if isinstance(result, RunResult) else result["gate"]
    return {(c["check"], c["column"]): c["failures"] for c in gate["checks"]}


# --------------------------------------------------------------------------- the main run, and its rerun


@pytest.fixture(scope="module", autouse=True)
def models(lab: Lab) -> None:  # noqa: F811
    (lab.root / f"{MODEL_MODULE}.py").write_text(MODELS)


@pytest.fixture(scope="module")
def main(lab: Lab) -> dict[str, Any]:  # noqa: F811
    """gate_main run on the dirty input."""
    lab.csv("gate_dirty", DIRTY)
    out: dict[str, Any] = {"first": lab.run("gate_main", MAIN)}
    out["feature_rows"] = lab.rows("gate_main", by=["id"])
    out["quarantine_rows"] = quarantined(lab, "gate_main_quarantine")
    out["quarantine_version"] = lab.table("gate_main_quarantine").version()
    return out


@pytest.fixture(scope="module")
def rerun(lab: Lab, main: dict[str, Any]) -> dict[str, Any]:  # noqa: F811
    """gate_main run again on the same input."""
    return {
        "result": lab.run("gate_main", MAIN),
        "feature_rows": lab.rows("gate_main", by=["id"]),
        "quarantine_rows": quarantined(lab, "gate_main_quarantine"),
        "quarantine_version": lab.table("gate_main_quarantine").version(),
    }


def test_exact_failures_per_check(main: dict[str, Any]) -> None:
    first = main["first"]
    assert check_counts(first) == {
        ("in_range", "fare"): 3,
        ("unique", "id"): 3,
        ("isin", "city"): 2,
        ("nullable", "driver"): 1,
        ("str_startswith", "driver"): 1,
        ("str_matches", "code"): 1,
        ("str_length", "code"): 1,
    }
    messages = {(c["check"], c["column"]): c["message"] for c in first.gate["checks"]}
    assert messages[("in_range", "fare")] == "must be >= 0 and <= 500"
    assert messages[("unique", "id")] == "(id) repeats an earlier row"
    assert messages[("isin", "city")] == """must be one of 'Oslo', 'Bergen', "O'Hara", 'back\\\\slash'"""
    assert messages[("str_matches", "code")] == "must match '[A-Z]{3}' (from the start)"
    assert messages[("str_length", "code")] == "length must be >= 3 and <= 4"
    # most failures first
    assert [c["failures"] for c in first.gate["checks"]] == sorted((c["failures"] for c in first.gate["checks"]), reverse=True)
    gate = first.gate
    assert (gate["rows_checked"], gate["rows_good"], gate["rows_bad"], gate["rows_malformed"]) == (16, 6, 10, 2)
    assert gate["failed_because"] == "" and gate["schema_errors"] == []


def test_examples_are_the_failing_rows(main: dict[str, Any]) -> None:
    checks = {(c["check"], c["column"]): c for c in main["first"].gate["checks"]}
    fare = sorted(checks[("in_range", "fare")]["examples"], key=lambda r: (r["id"], r["ts"]))
    assert [(r["id"], r["fare"], r["ts"]) for r in fare] == [
        (1, -5.0, "2024-01-02T00:00:00"), (2, -1.0, "2024-01-01T00:00:00"), (10, 900.0, "2024-01-01T00:00:00")]
    assert fare[0] == {"id": 1, "driver": "D-1", "fare": -5.0, "city": "Oslo", "code": "ABC", "ts": "2024-01-02T00:00:00"}
    assert [r["driver"] for r in checks[("nullable", "driver")]["examples"]] == [None]
    assert [r["code"] for r in checks[("str_matches", "code")]["examples"]] == ["xABC"]


def test_good_rows_are_written(main: dict[str, Any]) -> None:
    rows = main["feature_rows"]
    assert [(r["id"], r["ts"]) for r in rows] == [
        (1, ts("2024-01-01 00:00:00")), (3, ts("2024-01-01 00:00:00")), (6, ts("2024-01-01 00:00:00")),
        (7, ts("2024-01-01 00:00:00")), (12, ts("2024-01-01 00:00:00")), (13, ts("2024-01-01 00:00:00"))]
    assert rows[1] == {"id": 3, "driver": "D-3", "fare": None, "city": None, "code": None, "ts": ts("2024-01-01 00:00:00")}
    assert {r["city"] for r in rows} == {"Oslo", None, "O'Hara", "back\\slash", "Bergen"}   # quote and backslash round-trip
    first = main["first"]
    assert (first.rows_written, first.rows_quarantined, first.table_version) == (6, 10, 0)


def test_quarantine_rows_carry_their_reasons(main: dict[str, Any]) -> None:
    rows = main["quarantine_rows"]
    run_id = main["first"].run_id
    got = [(r["id"], r["ts"].date().isoformat() if r["ts"] else None, errors_of(r)) for r in rows]
    fare = ("in_range", "fare", "must be >= 0 and <= 500")
    city = ("isin", "city", """must be one of 'Oslo', 'Bergen', "O'Hara", 'back\\\\slash'""")
    unique = ("unique", "id", "(id) repeats an earlier row")
    parse = ("parse", "trips", "the record does not parse with the source's schema")
    assert got == [
        (1, "2024-01-02", [fare, unique]),            # two checks, one row, two errors
        (1, "2024-01-03", [unique]),
        (2, "2024-01-01", [fare]),
        (4, "2024-01-01", [("nullable", "driver", "is null")]),   # null: no str_startswith error
        (5, "2024-01-01", [city]),
        (8, "2024-01-01", [("str_matches", "code", "must match '[A-Z]{3}' (from the start)")]),
        (9, "2024-01-01", [("str_length", "code", "length must be >= 3 and <= 4")]),
        (10, "2024-01-01", [fare, city]),
        (11, "2024-01-01", [("str_startswith", "driver", "must start with 'D-'")]),
        (13, "2024-01-02", [unique]),                 # first in the file, but not first by ts
        (None, None, [parse]),
        (None, None, [parse]),
    ]
    refused, malformed = rows[:10], rows[10:]
    assert all(r["_fk_source"] is None and r["_fk_raw"] is None for r in refused)
    assert sorted(r["_fk_raw"] for r in malformed) == sorted([RAW_BAD_TS, RAW_BAD_ID])
    assert all(r["_fk_source"] == "trips" for r in malformed)
    assert all(r[c] is None for r in malformed for c in ("id", "driver", "fare", "city", "code", "ts"))
    assert {r["_fk_run_id"] for r in rows} == {run_id}
    assert len({r["_fk_row_hash"] for r in rows}) == 12
    assert all(isinstance(r["_fk_quarantined_at"], datetime) for r in rows)
    assert without([refused[0]], META + ("_fk_errors",)) == [{
        "id": 1, "driver": "D-1", "fare": -5.0, "city": "Oslo", "code": "ABC", "ts": ts("2024-01-02 00:00:00"),
        "_fk_source": None, "_fk_raw": None}]


def test_quarantine_table_layout_and_report(lab: Lab, main: dict[str, Any]) -> None:  # noqa: F811
    assert lab.columns("gate_main_quarantine") == [
        ("id", "long"), ("driver", "string"), ("fare", "double"), ("city", "string"), ("code", "string"),
        ("ts", "timestamp"), ("_fk_errors", "array"), ("_fk_source", "string"), ("_fk_raw", "string"),
        ("_fk_row_hash", "string"), ("_fk_run_id", "string"), ("_fk_quarantined_at", "timestamp")]
    first = main["first"]
    assert first.quarantine == {"path": str(lab.lake / "gate_main_quarantine"), "version": 0, "rows": 12,
                                "inserted": 12, "already_quarantined": 0, "found_by": "row hashes"}
    configuration = lab.table("gate_main_quarantine").metadata().configuration
    assert configuration["featurekit.job"] == "gate_main" and configuration["featurekit.quarantine"] == "true"


def test_malformed_csv_records_are_counted_per_source(main: dict[str, Any]) -> None:
    [source] = main["first"].sources
    assert (source["name"], source["rows_read"], source["rows_malformed"], source["rows_parsed"]) == ("trips", 19, 2, 17)


def test_every_row_is_accounted_for(lab: Lab, main: dict[str, Any]) -> None:  # noqa: F811
    first = main["first"]
    [source] = first.sources
    [step] = first.steps
    assert (step.op, step.rows_in, step.rows_out, step.dropped) == ("filter", 17, 16, 1)
    # read = malformed + dropped + written + quarantined; checked = written + quarantined
    assert source["rows_read"] == source["rows_malformed"] + step.dropped + first.rows_written + first.rows_quarantined
    assert first.rows_out == first.gate["rows_checked"] == first.rows_written + first.rows_quarantined
    assert first.quarantine["rows"] == first.rows_quarantined + source["rows_malformed"]
    assert first.commit_metrics["numOutputRows"] == first.rows_written   # the first run creates the table
    report = lab.reports("gate_main")[0]
    assert report["run_id"] == first.run_id and report["status"] == "succeeded"
    assert (report["rows_out"], report["rows_written"], report["rows_quarantined"]) == (16, 6, 10)
    assert report["gate"] == json.loads(json.dumps(first.gate, default=str))
    assert report["quarantine"] == first.quarantine


def test_rerun_on_the_same_input_quarantines_nothing_twice(main: dict[str, Any], rerun: dict[str, Any]) -> None:
    result = rerun["result"]
    assert result.status == "succeeded"
    assert (result.rows_written, result.rows_quarantined) == (6, 10)
    assert rerun["feature_rows"] == main["feature_rows"]
    assert rerun["quarantine_rows"] == main["quarantine_rows"]           # run ids of the first run kept
    assert rerun["quarantine_version"] == main["quarantine_version"]


def test_rerun_reports_every_offered_row_as_already_quarantined(rerun: dict[str, Any]) -> None:
    q = rerun["result"].quarantine
    assert (q["rows"], q["inserted"], q["already_quarantined"]) == (12, 0, 12)
    assert q["found_by"] == "the last commit's digest"   # the first run's commit recorded these 12 rows


# --------------------------------------------------------------------------- the same contract as a DataFrameModel


MODEL_CHECKS = f"""
    policy: quarantine
    max_bad_fraction: 0.7
    schema_model: {MODEL_MODULE}:GateTrips
    unique: {{keys: [id], order_by: ts}}
"""


def test_a_dataframe_model_gives_the_same_split_as_yaml(lab: Lab, main: dict[str, Any]) -> None:  # noqa: F811
    result = lab.run("gate_model", dirty_job("gate_model", MODEL_CHECKS))
    assert check_counts(result) == check_counts(main["first"])
    assert (result.rows_written, result.rows_quarantined) == (6, 10)
    assert lab.rows("gate_model", by=["id"]) == main["feature_rows"]
    model_rows = quarantined(lab, "gate_model_quarantine")
    # the row hash of a refused row is not compared: see test_new_bad_rows_of_a_later_run_are_quarantined_too
    assert without(model_rows, META) == without(main["quarantine_rows"], META)
    assert {r["_fk_run_id"] for r in model_rows} == {result.run_id}


@pytest.fixture(scope="module")
def custom(lab: Lab, main: dict[str, Any]) -> tuple[GateFailed, dict[str, Any]]:  # noqa: F811
    text = dirty_job("gate_custom", MODEL_CHECKS.replace(":GateTrips", ":GateTripsCustom"))
    error = lab.run_fails("gate_custom", text, GateFailed)
    return error, lab.reports("gate_custom")[-1]  # type: ignore[return-value]


def test_a_failing_custom_check_fails_the_run_naming_it(lab: Lab, main: dict[str, Any],  # noqa: F811
                                                         custom: tuple[GateFailed, dict[str, Any]]) -> None:
    error, report = custom
    assert error.exit_code == 3
    assert error.message == "validation gate failed: 1 check(s) that are not row-level failed; nothing was written"
    [line] = [d for d in error.details if d.startswith("schema: ")]
    assert line == "schema: check fares_at_most_11 failed on the result"
    assert report["status"] == "failed" and report["exit_code"] == 3
    [schema_error] = report["gate"]["schema_errors"]
    assert schema_error == "check fares_at_most_11 failed on the result"
    # the row-level checks were the same as ever; nothing was written anywhere
    assert check_counts(report) == check_counts(main["first"])
    assert not (lab.lake / "gate_custom").exists() and not (lab.lake / "gate_custom_quarantine").exists()


def test_a_failing_dataframe_check_gets_a_short_line(custom: tuple[GateFailed, dict[str, Any]]) -> None:
    error, _ = custom
    [line] = [d for d in error.details if d.startswith("schema: ")]
    assert "has_rows" not in line and "None" not in line and len(line) < 160


# --------------------------------------------------------------------------- policies and thresholds


def simple_job(name: str, source: str, validate: str, mode: str = "append", steps: str = "[]") -> str:
    return (f"name: {name}\nsources:\n"
            f'  t: {{format: csv, path: "${{raw_root}}/{source}", options: {{header: true}}, schema: {{id: long, v: long}}}}\n'
            f"steps: {steps}\nvalidate:\n{textwrap.indent(textwrap.dedent(validate).strip(), '  ')}\n"
            f'output: {{path: "${{lake_root}}/{name}", mode: {mode}}}\n')


def csv_of(rows: list[tuple[Any, Any]]) -> str:
    return "id,v\n" + "".join(f"{'' if a is None else a},{'' if b is None else b}\n" for a, b in rows)


def test_strict_policy_writes_nothing_anywhere(lab: Lab) -> None:  # noqa: F811
    lab.csv("gate_strict_in", csv_of([(1, 5), (2, -1), (3, 7)]))
    first = lab.run("gate_strict", simple_job("gate_strict", "gate_strict_in", "columns: {v: {checks: {ge: 0}}}\nmax_bad_fraction: 0.5"))
    assert (first.rows_written, first.rows_quarantined, first.table_version) == (2, 1, 0)
    before = {t: (lab.table(t).version(), lab.rows(t, by=["id"])) for t in ("gate_strict", "gate_strict_quarantine")}
    files_before = sorted(str(p.relative_to(lab.lake)) for p in (lab.lake / "gate_strict").rglob("*"))

    # six bad rows (more than the five examples kept per check) and one malformed record
    lab.csv("gate_strict_in", csv_of([(10, 1), (11, -1), (12, -2), (13, 3), (14, -3), (15, -4), (16, -5), (17, -6), ("x", 1)]))
    error = lab.run_fails("gate_strict", simple_job("gate_strict", "gate_strict_in",
                                                    "policy: strict\ncolumns: {v: {checks: {ge: 0}}}"), GateFailed)
    assert isinstance(error, DataError) and error.exit_code == 3
    report = lab.reports("gate_strict")[-1]
    assert error.message == ("validation gate failed: policy strict: 6 row(s) break the checks, "
                             "1 source record(s) do not parse; nothing was written")
    assert error.details == [
        "       6  v: ge — must be >= 0",
        '          e.g. {"id": 11, "v": -1}',
        '          e.g. {"id": 12, "v": -2}',
        f"report: featurekit runs show {report['run_id']}",
    ]
    after = {t: (lab.table(t).version(), lab.rows(t, by=["id"])) for t in ("gate_strict", "gate_strict_quarantine")}
    assert after == before
    # the good rows' data files were written before the verdict, never committed, then deleted
    assert sorted(str(p.relative_to(lab.lake)) for p in (lab.lake / "gate_strict").rglob("*")) == files_before
    assert report["durations"]["compute"] > 0 and report["rows_out"] == 8
    assert report["status"] == "failed" and report["exit_code"] == 3 and report["error"] == str(error)
    assert (report["rows_written"], report["rows_quarantined"], report["quarantine"]) == (0, 0, {})
    [check] = report["gate"]["checks"]
    assert check["failures"] == 6 and len(check["examples"]) == 5       # capped
    assert [e["id"] for e in check["examples"]] == [11, 12, 14, 15, 16]


FRACTION_IN = [(i, -i if i in (3, 7) else i) for i in range(1, 21)]     # 2 bad of 20: 10%


@pytest.mark.parametrize(("name", "limit", "passes"), [("gate_frac_at", 0.1, True), ("gate_frac_over", 0.099, False)])
def test_max_bad_fraction_is_an_upper_bound(lab: Lab, name: str, limit: float, passes: bool) -> None:  # noqa: F811
    lab.csv("gate_frac_in", csv_of(FRACTION_IN))
    text = simple_job(name, "gate_frac_in", f"max_bad_fraction: {limit}\ncolumns: {{v: {{checks: {{gt: 0}}}}}}\n"
                                            "row_count: {min: 18}")
    if passes:
        result = lab.run(name, text)
        assert (result.rows_written, result.rows_quarantined) == (18, 2)
        assert [r["id"] for r in lab.rows(f"{name}_quarantine", by=["id"])] == [3, 7]
        return
    error = lab.run_fails(name, text, GateFailed)
    assert error.message == ("validation gate failed: 2 row(s) break the checks (10.00% of 20); "
                             "max_bad_fraction is 9.90%; nothing was written")
    assert not (lab.lake / name).exists() and not (lab.lake / f"{name}_quarantine").exists()


def test_row_count_min_fails_the_run(lab: Lab) -> None:  # noqa: F811
    lab.csv("gate_frac_in", csv_of(FRACTION_IN))
    text = simple_job("gate_rows", "gate_frac_in", "max_bad_fraction: 0.5\ncolumns: {v: {checks: {gt: 0}}}\nrow_count: {min: 19}")
    error = lab.run_fails("gate_rows", text, GateFailed)
    assert error.exit_code == 3
    assert error.message == "validation gate failed: row_count: 18 good row(s); at least 19 required; nothing was written"
    assert not (lab.lake / "gate_rows").exists() and not (lab.lake / "gate_rows_quarantine").exists()


def test_append_run_whose_rows_are_all_refused(lab: Lab) -> None:  # noqa: F811
    """An append of zero rows makes no Delta commit; the run still succeeds and adds up."""
    checks = "columns: {v: {checks: {ge: 0}}}\nmax_bad_fraction: 1"
    lab.csv("gate_allbad_in", csv_of([(1, 1), (2, 2)]))
    lab.run("gate_allbad", simple_job("gate_allbad", "gate_allbad_in", checks))
    lab.csv("gate_allbad_in", csv_of([(3, -3), (4, -4)]))
    second = lab.run("gate_allbad", simple_job("gate_allbad", "gate_allbad_in", checks))
    assert (second.rows_written, second.rows_quarantined) == (0, 2)
    assert [r["id"] for r in lab.rows("gate_allbad_quarantine", by=["id"])] == [3, 4]
    assert lab.rows("gate_allbad", by=["id"]) == [{"id": 1, "v": 1}, {"id": 2, "v": 2}]


# --------------------------------------------------------------------------- malformed JSON


JSON_LINES = [
    '{"id": 1, "v": 10}',
    '{"id": "abc", "v": 20}',
    '{"id": 3, "v": 30',
    '{"id": 4, "v": 40}',
    'not json at all',
]


def test_malformed_json_lines_are_quarantined_with_their_raw_text(lab: Lab) -> None:  # noqa: F811
    folder = lab.raw / "gate_json_in"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "part-0.json").write_text("\n".join(JSON_LINES) + "\n")
    result = lab.run("gate_json", """name: gate_json
sources:
  t: {format: json, path: "${raw_root}/gate_json_in", schema: {id: long, v: long}}
validate:
  columns: {v: {checks: {le: 30}}}
  max_bad_fraction: 0.9
output: {path: "${lake_root}/gate_json"}
""")
    [source] = result.sources
    assert (source["rows_read"], source["rows_malformed"], source["rows_parsed"]) == (5, 3, 2)
    assert (result.rows_written, result.rows_quarantined) == (1, 1)
    assert lab.rows("gate_json") == [{"id": 1, "v": 10}]
    rows = lab.rows("gate_json_quarantine", by=["id", "_fk_raw"])
    assert [(r["id"], r["v"], r["_fk_source"], r["_fk_raw"], errors_of(r)) for r in rows] == [
        (4, 40, None, None, [("le", "v", "must be <= 30")]),
        *sorted(((None, None, "t", raw, [("parse", "t", "the record does not parse with the source's schema")])
                 for raw in JSON_LINES[1:3] + JSON_LINES[4:]), key=lambda r: r[3]),
    ]


# --------------------------------------------------------------------------- a feature commit failing after the quarantine commit


def concurrent_writer(monkeypatch: pytest.MonkeyPatch, lab: Lab, table: str, times: int = 1) -> None:
    """Between this run's quarantine commit and its feature commit, another writer commits
    to the feature table (the first ``times`` attempts): the held Delta transaction of the
    run then fails to commit."""
    from featurekit.pipeline import core

    original = core.append_quarantine
    left = [times]

    def append_then_interfere(*args: Any, **kwargs: Any) -> Any:
        held = original(*args, **kwargs)
        if left[0] > 0:
            left[0] -= 1
            other = lab.spark.createDataFrame([(99, 99)], "id long, v long")  # type: ignore[attr-defined]
            other.write.format("delta").mode("append").save(str(lab.lake / table))
        return held

    monkeypatch.setattr(core, "append_quarantine", append_then_interfere)


def test_quarantine_is_restored_when_the_feature_commit_fails(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    checks = "columns: {v: {checks: {ge: 0}}}\nmax_bad_fraction: 0.9"
    lab.csv("gate_undo_in", csv_of([(1, 1), (2, -2)]))
    first = lab.run("gate_undo", simple_job("gate_undo", "gate_undo_in", checks, mode="overwrite"))
    assert (first.table_version, first.quarantine["version"]) == (0, 0)
    before = lab.rows("gate_undo_quarantine", by=["id"])

    lab.csv("gate_undo_in", csv_of([(1, 1), (2, -2), (3, -3)]))
    concurrent_writer(monkeypatch, lab, "gate_undo")
    with pytest.raises(Conflict, match="another writer committed version 1 of .* while this run of gate_undo ran"):
        lab.run("gate_undo", simple_job("gate_undo", "gate_undo_in", checks, mode="overwrite"), retries=0)
    report = lab.reports("gate_undo")[-1]
    assert report["status"] == "failed" and report["quarantine"]["undone"] is True
    assert [(c["version"], c["retried"]) for c in report["conflicts"]] == [(1, False)]
    assert report["quarantine"]["inserted"] == 1  # row 3 had reached the quarantine, then was taken back

    # the feature table has the other writer's commit and not this run's; the quarantine is as before
    assert [r["id"] for r in lab.rows("gate_undo", by=["id"])] == [1, 99]
    assert lab.rows("gate_undo_quarantine", by=["id"]) == before
    operations = [c["operation"] for c in sorted(lab.table("gate_undo_quarantine").history(), key=lambda c: c["version"])]
    assert operations == ["WRITE", "WRITE", "RESTORE"]


def test_a_feature_commit_that_loses_a_race_runs_again(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    checks = "columns: {v: {checks: {ge: 0}}}\nmax_bad_fraction: 0.9"
    lab.csv("gate_again_in", csv_of([(1, 1), (2, -2)]))
    lab.run("gate_again", simple_job("gate_again", "gate_again_in", checks, mode="overwrite"))

    # the first attempt loses (its quarantine commit taken back); the second commits after the other writer
    lab.csv("gate_again_in", csv_of([(1, 1), (2, -2), (3, -3), (4, 4)]))
    concurrent_writer(monkeypatch, lab, "gate_again")
    result = lab.run("gate_again", simple_job("gate_again", "gate_again_in", checks, mode="overwrite"))
    assert [(c["attempt"], c["version"], c["retried"]) for c in result.conflicts] == [(1, 1, True)]
    assert result.conflicts[0]["error"].startswith(f"another writer committed version 1 of {lab.lake / 'gate_again'} "
                                                   "while this run of gate_again ran (DELTA_CONCURRENT_APPEND")
    assert result.table_version == 2 and lab.reports("gate_again")[-1]["status"] == "succeeded"
    assert [r["id"] for r in lab.rows("gate_again", by=["id"])] == [1, 4]  # the overwrite, after the other commit
    assert [r["id"] for r in lab.rows("gate_again_quarantine", by=["id"])] == [2, 3]  # each bad row once
    operations = [c["operation"] for c in sorted(lab.table("gate_again_quarantine").history(), key=lambda c: c["version"])]
    assert operations == ["WRITE", "WRITE", "RESTORE", "WRITE"]


def test_an_append_that_loses_the_race_to_create_its_table_is_made_once(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    checks = "columns: {v: {checks: {ge: 0}}}\nmax_bad_fraction: 0.9"
    lab.csv("gate_append_race_in", csv_of([(1, 1), (2, -2), (3, 3)]))
    # another writer creates the table while the run holds its first write: Delta refuses the run's commit
    concurrent_writer(monkeypatch, lab, "gate_append_race")
    result = lab.run("gate_append_race", simple_job("gate_append_race", "gate_append_race_in", checks, mode="append"))
    [conflict] = result.conflicts
    assert (conflict["version"], conflict["retried"]) == (0, True)
    assert conflict["why"] == "no commit of this run is in the table's history, so its append is made once"
    assert "(DELTA_PROTOCOL_CHANGED" in conflict["error"] or "(DELTA_METADATA_CHANGED" in conflict["error"], conflict
    assert [r["id"] for r in lab.rows("gate_append_race", by=["id"])] == [1, 3, 99]  # the run's rows once
    assert [r["id"] for r in lab.rows("gate_append_race_quarantine", by=["id"])] == [2]
    history = sorted(lab.table("gate_append_race").history(), key=lambda c: c["version"])
    assert [json.loads(c.get("userMetadata") or "{}").get("run_id") for c in history] == [None, result.run_id]


def test_a_result_that_does_not_fit_the_table_touches_neither_table(lab: Lab) -> None:  # noqa: F811
    checks = "columns: {v: {checks: {ge: 0}}}\nmax_bad_fraction: 0.9"
    lab.csv("gate_unfit_in", csv_of([(1, 1), (2, -2)]))
    lab.run("gate_unfit", simple_job("gate_unfit", "gate_unfit_in", checks))
    before = {t: (lab.table(t).version(), lab.rows(t, by=["id"])) for t in ("gate_unfit", "gate_unfit_quarantine")}

    lab.csv("gate_unfit_in", csv_of([(1, 1), (2, -2), (3, -3)]))
    error = lab.run_fails("gate_unfit", simple_job("gate_unfit", "gate_unfit_in", checks, steps='[{with_columns: {extra: "1"}}]'),
                          ConfigError)
    assert "does not fit the table" in str(error) and "new column(s) extra" in str(error)
    assert {t: (lab.table(t).version(), lab.rows(t, by=["id"])) for t in before} == before
    assert not [p for p in (lab.lake / "gate_unfit").rglob("*.parquet") if "_fk_staging" in str(p)]


def test_quarantine_created_by_a_failed_run_is_removed(lab: Lab, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    checks = "columns: {v: {checks: {ge: 0}}}\nmax_bad_fraction: 0.9"
    lab.csv("gate_undo_new_in", csv_of([(1, 1)]))
    first = lab.run("gate_undo_new", simple_job("gate_undo_new", "gate_undo_new_in", checks, mode="overwrite"))
    assert first.quarantine == {} and not (lab.lake / "gate_undo_new_quarantine").exists()

    lab.csv("gate_undo_new_in", csv_of([(1, 1), (2, -2)]))
    concurrent_writer(monkeypatch, lab, "gate_undo_new")
    with pytest.raises(Conflict, match="(?i)concurrent"):
        lab.run("gate_undo_new", simple_job("gate_undo_new", "gate_undo_new_in", checks, mode="overwrite"), retries=0)
    assert lab.reports("gate_undo_new")[-1]["quarantine"]["undone"] is True
    assert not (lab.lake / "gate_undo_new_quarantine").exists()
    assert [r["id"] for r in lab.rows("gate_undo_new", by=["id"])] == [1, 99]


# --------------------------------------------------------------------------- featurekit runs


def test_runs_lists_and_shows_the_runs(lab: Lab, main: dict[str, Any], rerun: dict[str, Any],  # noqa: F811
                                       capsys: pytest.CaptureFixture[str]) -> None:
    first, second = main["first"], rerun["result"]
    capsys.readouterr()
    assert cli.main(["--project", str(lab.root), "runs", "gate_main"]) == 0
    listing = capsys.readouterr().out
    lines = [line for line in listing.splitlines() if first.run_id in line or second.run_id in line]
    assert len(lines) == 2
    assert second.run_id in lines[0] and first.run_id in lines[1]          # newest first
    for line in lines:
        cells = line.replace("│", " ").split()
        # run id, job, status, read, written, bad (refused + malformed), table version
        assert cells[1:6] == ["gate_main", "ok", "19", "6", "12"]
    assert lines[1].replace("│", " ").split()[-1] == "0"                 # the table version of the first run

    assert cli.main(["--project", str(lab.root), "runs", "show", first.run_id]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown == json.loads((lab.runs / "gate_main" / f"{first.run_id}.json").read_text())
    assert shown["gate"]["rows_bad"] == 10 and shown["quarantine"]["rows"] == 12

    assert cli.main(["--project", str(lab.root), "runs", "show", "no-such-run"]) == 2
    assert cli.main(["--project", str(lab.root), "runs", "gate_mian"]) == 2
    assert "did you mean 'gate_main'" in capsys.readouterr().err


# --------------------------------------------------------------------------- known bugs


def test_new_bad_rows_of_a_later_run_are_quarantined_too(lab: Lab) -> None:  # noqa: F811
    checks = "columns: {v: {checks: {ge: 0}}}\nmax_bad_fraction: 0.9"
    lab.csv("gate_hash_in", csv_of([(1, 1), (2, -2), (3, -3)]))
    lab.run("gate_hash", simple_job("gate_hash", "gate_hash_in", checks, mode="merge, keys: [id]"))
    lab.csv("gate_hash_in", csv_of([(1, 1), (8, -8), (9, -9)]))
    second = lab.run("gate_hash", simple_job("gate_hash", "gate_hash_in", checks, mode="merge, keys: [id]"))
    assert [(r["id"], r["v"]) for r in lab.rows("gate_hash_quarantine", by=["id"])] == [(2, -2), (3, -3), (8, -8), (9, -9)]
    assert second.quarantine["inserted"] == 2
    assert second.quarantine["found_by"] == "row hashes"
    third = lab.run("gate_hash", simple_job("gate_hash", "gate_hash_in", checks, mode="merge, keys: [id]"))
    assert (third.quarantine["inserted"], third.quarantine["found_by"]) == (0, "the last commit's digest")


def test_the_quarantine_table_is_probed_not_shuffled(lab: Lab) -> None:  # noqa: F811
    """The quarantine table grows with every run: the new rows' hashes are broadcast and the
    table's scan probes them. With Spark left to choose (here as for a table too big to
    broadcast), the anti-join would sort-merge, shuffling every hash the table holds."""
    checks = "columns: {v: {checks: {ge: 0}}}\nmax_bad_fraction: 0.9"
    job = simple_job("gate_probe", "gate_probe_in", checks)
    lab.csv("gate_probe_in", csv_of([(1, 1), (2, -2), (3, -3)]))
    lab.run("gate_probe", job)
    lab.csv("gate_probe_in", csv_of([(2, -2), (4, -4), (5, 5)]))
    with no_size_based_broadcast(lab.spark), physical_plans(lab.spark) as plans:
        second = lab.run("gate_probe", job)
    assert (second.quarantine["inserted"], second.quarantine["found_by"]) == (1, "row hashes")
    assert [(r["id"], r["v"]) for r in lab.rows("gate_probe_quarantine", by=["id"])] == [(2, -2), (3, -3), (4, -4)]
    probing = [p for p in plans if "LeftAnti" in p]
    assert len(probing) == 1
    assert "BroadcastHashJoin LeftSemi" in probing[0] and "BroadcastHashJoin LeftAnti" in probing[0]
    assert "SortMergeJoin" not in probing[0] and "Exchange hashpartitioning" not in probing[0]


def test_a_rerun_after_the_quarantine_changed_reads_it_again(lab: Lab) -> None:  # noqa: F811
    """The digest speaks only for the commit that recorded it: once another commit follows
    (here a user deleting quarantined rows), a rerun compares row hashes and restores them."""
    checks = "columns: {v: {checks: {ge: 0}}}\nmax_bad_fraction: 0.9"
    lab.csv("gate_edited_in", csv_of([(1, 1), (2, -2), (3, -3)]))
    lab.run("gate_edited", simple_job("gate_edited", "gate_edited_in", checks))
    lab.spark.sql(f"DELETE FROM delta.`{lab.lake / 'gate_edited_quarantine'}` WHERE v = -2")  # type: ignore[attr-defined]
    again = lab.run("gate_edited", simple_job("gate_edited", "gate_edited_in", checks))
    assert (again.quarantine["inserted"], again.quarantine["found_by"]) == (1, "row hashes")
    assert [(r["id"], r["v"]) for r in lab.rows("gate_edited_quarantine", by=["id"])] == [(2, -2), (3, -3)]


def test_the_rows_digest_is_of_the_rows_as_a_multiset(lab: Lab) -> None:  # noqa: F811
    """What a rerun is recognized by: the same rows in any order give the same digest; one
    copy fewer of a repeated row, another raw record or another value, another digest. A
    map column (which Spark does not hash) takes part too."""
    from featurekit.sinks.quarantine import _digest, quarantine_rows
    from pyspark.sql.types import LongType, MapType, StringType, StructField, StructType

    spark = lab.spark
    output = StructType([StructField("id", LongType()), StructField("tags", MapType(StringType(), LongType()))])
    errors = "array<struct<check:string,column:string,message:string>>"

    def digest(bad: list[tuple[Any, ...]], malformed: list[tuple[str, str]]) -> str:
        frames = {"trips": spark.createDataFrame(malformed, "_fk_raw string, __fk_parsed string")} if malformed else {}
        bad_rows = spark.createDataFrame(bad, f"id long, tags map<string,bigint>, _fk_errors {errors}")  # type: ignore[attr-defined]
        return _digest(quarantine_rows(bad_rows, frames, output, "run-1"))

    why = [("ge", "id", "must be >= 0")]
    bad = [(-1, {"a": 1}, why), (-1, {"a": 1}, why), (-2, None, why)]
    lines = [("x,1", "7"), ("x,1", "7"), ("y,,", "8")]
    first = digest(bad, lines)
    assert first.startswith("xx1:")
    assert digest(list(reversed(bad)), list(reversed(lines))) == first
    assert digest([(-1, {"a": 1}, [("lt", "id", "other reason")]), *bad[1:]], lines) == first  # the reasons are not the row
    assert len({first, digest(bad[1:], lines), digest(bad, lines[1:]), digest([(-1, {"a": 2}, why), *bad[1:]], lines),
                digest(bad, [("x,2", "7"), *lines[1:]]), digest(bad, [])}) == 6


def test_quarantine_rows_keep_the_outputs_types_whatever_the_names(lab: Lab) -> None:  # noqa: F811
    """Malformed records get a typed null in every output column, nested types and names
    that need quoting included (the projection is SQL text), beside the gate's own rows."""
    from featurekit.sinks.quarantine import PARSE_FAILURE, quarantine_rows
    from pyspark.sql.types import _parse_datatype_string

    output = _parse_datatype_string(
        "`odd `` name` string, s struct<`a b`: int, c: array<struct<`d.e`: double>>>, m map<string, array<bigint>>, "
        "at timestamp, amount decimal(12,3)")
    errors = "array<struct<check:string,column:string,message:string>>"
    bad = lab.spark.createDataFrame(  # type: ignore[attr-defined]
        [("x", (1, [(2.5,)]), {"k": [1]}, None, None, [("ge", "amount", "must be >= 0")])],
        ddl_with(output, f"_fk_errors {errors}"))
    malformed = lab.spark.createDataFrame([("a,b", "7"), ("a,b", "7")], "_fk_raw string, __fk_parsed string")  # type: ignore[attr-defined]
    for gate_rows in (bad, None):
        rows = quarantine_rows(gate_rows, {"trips": malformed}, output, "run-1")
        assert rows is not None
        assert rows.schema.fields[:len(output.fields)] == output.fields
        assert rows.columns[len(output.fields):] == [
            "_fk_errors", "_fk_source", "_fk_raw", "__fk_parsed", "_fk_row_hash", "_fk_run_id", "_fk_quarantined_at"]
        got = sorted(rows.collect(), key=lambda r: (r["_fk_source"] or "", r["_fk_row_hash"]))
        parsed = [r for r in got if r["_fk_source"] == "trips"]
        assert [(r["_fk_raw"], r["__fk_parsed"], r["_fk_run_id"]) for r in parsed] == [("a,b", "7", "run-1")] * 2
        assert all(r[f.name] is None for r in parsed for f in output.fields)
        assert [e.asDict() for e in parsed[0]["_fk_errors"]] == [
            {"check": "parse", "column": "trips", "message": PARSE_FAILURE}]
        assert len({r["_fk_row_hash"] for r in got}) == len(got)  # identical lines: two occurrences, two hashes
        if gate_rows is not None:
            [refused] = [r for r in got if r["_fk_source"] is None]
            assert (refused["odd ` name"], refused["s"]["a b"], refused["m"]) == ("x", 1, {"k": [1]})


def ddl_with(output: Any, extra: str) -> str:
    """``output`` as a DDL schema string, plus ``extra`` fields."""
    from featurekit.sinks.quarantine import type_sql
    from featurekit.spec.sqlcheck import quote

    return ", ".join([*(f"{quote(f.name)} {type_sql(f.dataType)}" for f in output.fields), extra])


def test_rerun_after_one_bad_row_was_fixed_upstream(lab: Lab) -> None:  # noqa: F811
    checks = "columns: {v: {checks: {ge: 0}}}\nmax_bad_fraction: 0.9"
    lab.csv("gate_fixed_in", csv_of([(1, 1), (2, -2), (3, -3)]))
    lab.run("gate_fixed", simple_job("gate_fixed", "gate_fixed_in", checks, mode="merge, keys: [id]"))
    lab.csv("gate_fixed_in", csv_of([(1, 1), (2, 2), (3, -3)]))          # row 2 fixed, row 3 still bad
    second = lab.run("gate_fixed", simple_job("gate_fixed", "gate_fixed_in", checks, mode="merge, keys: [id]"))
    assert (second.rows_written, second.rows_quarantined) == (2, 1)
    assert (second.quarantine["rows"], second.quarantine["already_quarantined"]) == (1, 1)


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_malformed_value_in_a_column_the_steps_drop(lab: Lab, fmt: str) -> None:  # noqa: F811
    """Record 2's timestamp does not parse, in a column the job drops; record x3's id does not parse."""
    name, folder = f"gate_pruned_{fmt}", lab.raw / f"gate_pruned_{fmt}_in"
    folder.mkdir(parents=True, exist_ok=True)
    if fmt == "csv":
        lines = ["1,10.0,2024-01-01 00:00:00", "2,20.0,not-a-time", "x3,30.0,2024-01-01 00:00:00"]
        text, options = "id,fare,ts\n" + "\n".join(lines) + "\n", ", options: {header: true}"
    else:
        lines = ['{"id": 1, "fare": 10.0, "ts": "2024-01-01 00:00:00"}', '{"id": 2, "fare": 20.0, "ts": "not-a-time"}',
                 '{"id": "x3", "fare": 30.0, "ts": "2024-01-01 00:00:00"}']
        text, options = "\n".join(lines) + "\n", ""
    (folder / f"part-0.{fmt}").write_text(text)
    result = lab.run(name, f"""name: {name}
sources:
  t: {{format: {fmt}, path: "{folder}"{options}, schema: {{id: long, fare: double, ts: timestamp}}}}
steps:
  - select: [id, fare]
validate:
  columns: {{fare: {{checks: {{ge: 0}}}}}}
  max_bad_fraction: 0.9
output: {{path: "${{lake_root}}/{name}"}}
""")
    [source] = result.sources
    assert source["rows_read"] == source["rows_parsed"] + source["rows_malformed"] == 3
    assert result.rows_out == result.rows_written + result.rows_quarantined == source["rows_parsed"]
    quarantine = lab.rows(f"{name}_quarantine", by=["id", "_fk_raw"])
    assert len(quarantine) == result.rows_quarantined + source["rows_malformed"]
    written = [r["id"] for r in lab.rows(name, by=["id"])]
    # record 2 is either written (its bad ts is in a column the job drops) or quarantined: not both
    assert (2 in written) != (lines[1] in [r["_fk_raw"] for r in quarantine])


def test_a_run_refused_after_its_commits_leaves_no_feature_table(lab: Lab) -> None:  # noqa: F811
    folder = lab.raw / "gate_late_in"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "part-0.csv").write_text("id,fare,ts\n1,10.0,2024-01-01 00:00:00\n2,20.0,not-a-time\nx3,30.0,2024-01-01 00:00:00\n")
    text = """name: gate_late
sources:
  t: {format: csv, path: "${raw_root}/gate_late_in", options: {header: true}, schema: {id: long, fare: double, ts: timestamp}}
steps: [{select: [id, fare]}]
validate: {max_bad_fraction: 0.9}
output: {path: "${lake_root}/gate_late"}
"""
    try:
        lab.run("gate_late", text)
    except DataError:
        pass
    if lab.reports("gate_late")[-1]["status"] == "failed":
        assert not (lab.lake / "gate_late").exists()


def test_a_models_config_unique_is_enforced(lab: Lab) -> None:  # noqa: F811
    lab.csv("gate_model_unique_in", "id,v\n1,a\n1,b\n2,c\n")
    text = f"""name: gate_model_unique
sources:
  t: {{format: csv, path: "${{raw_root}}/gate_model_unique_in", options: {{header: true}}, schema: {{id: long, v: string}}}}
validate:
  schema_model: {MODEL_MODULE}:UniqueIds
  max_bad_fraction: 0.5
output: {{path: "${{lake_root}}/gate_model_unique"}}
"""
    try:
        lab.run("gate_model_unique", text)
    except GateFailed as error:
        assert "unique" in str(error)                      # refusing the run enforces it too
        return
    ids = [r["id"] for r in lab.rows("gate_model_unique")]
    assert len(ids) == len(set(ids))
