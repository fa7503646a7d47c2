"""The job spec layer without a JVM: demo jobs, fingerprints, variables, metrics, durations,
the SQL guard and YAML positions."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from featurekit.config import Project, load_settings
from featurekit.errors import SpecError
from featurekit.spec.durations import parse_duration
from featurekit.spec.loader import load_job, load_jobs, parse_job
from featurekit.spec.models import (
    AggregateStep,
    CsvSource,
    DedupStep,
    FilterStep,
    JsonSource,
    RenameStep,
    SelectStep,
    WithColumnsStep,
    parse_metric,
    step_op,
)
from featurekit.spec.sqlcheck import query_problem
from featurekit.yamlconf.positions import dotted, load_yaml
from featurekit.yamlconf.variables import substitute

REPO = Path(__file__).resolve().parents[2]
VARIABLES = {"raw_root": "/data/raw", "lake_root": "/data/lake"}


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


# --------------------------------------------------------------------------- demo jobs


@pytest.fixture(scope="module")
def local_vars() -> dict[str, str]:
    return load_settings(Project(REPO), "local").vars


def test_demo_hourly_stats_loads_with_local_settings(local_vars: dict[str, str]) -> None:
    job = load_job(REPO / "jobs" / "driver_hourly_stats.yaml", local_vars, "jobs/driver_hourly_stats.yaml")
    spec = job.spec

    assert job.name == "driver_hourly_stats"
    assert job.shown_path == "jobs/driver_hourly_stats.yaml"
    assert len(job.fingerprint) == 16
    trips = spec.sources["trips"]
    assert isinstance(trips, CsvSource)
    assert trips.path == f"{REPO}/data/raw/trips"
    assert trips.options == {"header": "true"}  # YAML true becomes Spark's "true"
    assert trips.schema_ is not None and trips.schema_["driver_id"] == "long"
    assert [step_op(step) for step in spec.steps] == ["filter", "filter", "dedup", "aggregate", "with_columns", "select"]
    assert isinstance(spec.steps[1], FilterStep) and spec.steps[1].filter == "fare >= 0"
    dedup = spec.steps[2]
    assert isinstance(dedup, DedupStep)
    assert (dedup.dedup.keys, dedup.dedup.order_by, dedup.dedup.keep) == (["trip_id"], ["event_ts"], "last")
    agg = spec.steps[3]
    assert isinstance(agg, AggregateStep)
    assert agg.aggregate.every == "1h"
    assert agg.aggregate.windows == ["1h", "24h", "7d"]
    assert agg.aggregate.metrics["cash_trips"] == "count(CASE WHEN payment_type = 'cash' THEN 1 END)"
    assert isinstance(spec.steps[4], WithColumnsStep)
    assert spec.steps[4].with_columns == {"event_date": "to_date(event_ts)"}
    select = spec.steps[5]
    assert isinstance(select, SelectStep) and select.select[-1] == "cash_trips_7d"
    assert spec.output.path == f"{REPO}/data/lake/driver_hourly_stats"
    assert (spec.output.mode, spec.output.keys, spec.output.partition_by) == ("merge", ["driver_id", "event_ts"], ["event_date"])
    assert spec.features is not None
    assert (spec.features.entity, spec.features.join_keys, spec.features.timestamp, spec.features.ttl) == (
        "driver", ["driver_id"], "event_ts", "7d")
    assert spec.features.online is True
    assert spec.features.tags == {"team": "mobility"}


def test_demo_profile_loads_with_local_settings(local_vars: dict[str, str]) -> None:
    spec = load_job(REPO / "jobs" / "driver_profile.yaml", local_vars).spec

    updates = spec.sources["updates"]
    assert isinstance(updates, JsonSource)
    assert updates.path == f"{REPO}/data/raw/driver_updates"
    assert [step_op(step) for step in spec.steps] == ["filter", "dedup", "with_columns", "rename"]
    rename = spec.steps[3]
    assert isinstance(rename, RenameStep) and rename.rename == {"updated_at": "profile_updated_at"}
    assert (spec.output.mode, spec.output.keys, spec.output.partition_by) == ("merge", ["driver_id"], [])
    assert spec.features is not None
    assert (spec.features.timestamp, spec.features.ttl) == ("profile_updated_at", "52w")
    assert parse_duration(spec.features.ttl) == 52 * 7 * 86400


def test_load_jobs_returns_good_jobs_and_every_problem_of_the_bad_ones(tmp_path: Path, local_vars: dict[str, str]) -> None:
    (tmp_path / "jobs").mkdir()
    good = write(tmp_path / "jobs", "good", """
        name: good
        sources: {t: {format: parquet, path: x}}
        output: {path: y}
    """)
    bad = write(tmp_path / "jobs", "bad", """
        name: bad
        sources: {t: {format: parquet, path: x}}
        output: {path: y, mode: upsert}
    """)

    jobs, problems = load_jobs([bad, good], local_vars, base=tmp_path)

    assert [job.name for job in jobs] == ["good"]
    assert [str(p) for p in problems] == [
        "jobs/bad.yaml:3:25 output.mode: expected one of 'overwrite', 'append', 'merge', 'replace_partitions'; "
        "got 'upsert' — did you mean 'merge'?"
    ]


def test_load_job_raises_spec_error_with_all_problems_sorted(tmp_path: Path) -> None:
    path = write(tmp_path, "two", """
        name: two
        sources: {t: {format: csv, path: "${nope}"}}
        output: {path: y, mode: merge}
    """)

    with pytest.raises(SpecError) as caught:
        load_job(path, VARIABLES, "jobs/two.yaml")

    assert caught.value.exit_code == 2
    assert [(p.line, p.field) for p in caught.value.problems] == [(2, "sources.t.path"), (3, "output.mode")]


def test_missing_file_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    job, problems = parse_job(tmp_path / "gone.yaml", VARIABLES, "jobs/gone.yaml")

    assert job is None
    assert [str(p) for p in problems] == ["jobs/gone.yaml: cannot read: No such file or directory"]


# --------------------------------------------------------------------------- fingerprint

BASE_JOB = """
    # the base job
    name: fp
    description: first words
    owner: team-a
    sources:
      trips:
        format: csv
        path: ${raw_root}/trips
        options: {header: true, sep: ","}
    steps:
      - filter: "fare >= 0"
      - dedup: {keys: [trip_id], order_by: event_ts}
    output:
      path: ${lake_root}/fp
      mode: overwrite
"""


def fingerprint_of(tmp_path: Path, text: str, variables: dict[str, str] = VARIABLES) -> str:
    folder = tmp_path / f"v{len(list(tmp_path.iterdir()))}"
    folder.mkdir()
    return load_job(write(folder, "fp", text), variables).fingerprint


def test_fingerprint_ignores_key_order_comments_and_documentation(tmp_path: Path) -> None:
    reordered = """
        output:
          mode: overwrite      # a comment that was not there
          path: ${lake_root}/fp
        steps:
          - filter: "fare >= 0"
          - dedup: {order_by: event_ts, keys: [trip_id]}
        sources:
          trips:
            options: {sep: ",", header: true}
            path: ${raw_root}/trips
            format: csv
        owner: someone-else
        description: completely different words
        name: fp
    """
    assert fingerprint_of(tmp_path, BASE_JOB) == fingerprint_of(tmp_path, reordered)


def test_fingerprint_does_not_depend_on_variable_values(tmp_path: Path) -> None:
    other = {"raw_root": "s3://bucket/raw", "lake_root": "s3://bucket/lake"}

    assert fingerprint_of(tmp_path, BASE_JOB) == fingerprint_of(tmp_path, BASE_JOB, other)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ('- filter: "fare >= 0"', '- filter: "fare > 0"'),
        ("order_by: event_ts}", "order_by: event_ts, keep: first}"),
        ("mode: overwrite", "mode: append"),
        ("${lake_root}/fp", "${lake_root}/fp2"),
    ],
    ids=["filter-text", "dedup-keep", "output-mode", "output-path"],
)
def test_fingerprint_changes_when_what_is_computed_changes(tmp_path: Path, old: str, new: str) -> None:
    assert old in BASE_JOB
    assert fingerprint_of(tmp_path, BASE_JOB) != fingerprint_of(tmp_path, BASE_JOB.replace(old, new))


def test_fingerprint_changes_when_steps_are_reordered(tmp_path: Path) -> None:
    swapped = BASE_JOB.replace(
        '  - filter: "fare >= 0"\n      - dedup: {keys: [trip_id], order_by: event_ts}',
        '  - dedup: {keys: [trip_id], order_by: event_ts}\n      - filter: "fare >= 0"',
    )
    assert swapped != BASE_JOB
    assert fingerprint_of(tmp_path, BASE_JOB) != fingerprint_of(tmp_path, swapped)


# --------------------------------------------------------------------------- variables


@pytest.mark.parametrize(
    ("text", "filled", "unknown"),
    [
        ("${raw_root}/trips", "/data/raw/trips", []),
        ("${ raw_root }/trips", "/data/raw/trips", []),
        ("${raw_root}/${lake_root}", "/data/raw//data/lake", []),
        ("$${raw_root}/trips", "${raw_root}/trips", []),
        ("cost in $$", "cost in $", []),
        ("$$$${raw_root}", "$${raw_root}", []),
        ("price$ and $5", "price$ and $5", []),
        ("${nope}/x and ${raw_root}", "${nope}/x and /data/raw", ["nope"]),
        ("${a}${b}", "${a}${b}", ["a", "b"]),
        ("no variables", "no variables", []),
    ],
)
def test_substitute(text: str, filled: str, unknown: list[str]) -> None:
    assert substitute(text, VARIABLES) == (filled, unknown)


def test_variables_fill_values_not_keys_and_escape_dollars(tmp_path: Path) -> None:
    path = write(tmp_path, "vars", """
        name: vars
        sources:
          trips:
            format: csv
            path: ${raw_root}/trips
            options: {comment: "$$", note: "$${raw_root}"}
        steps:
          - filter: "city = '${lake_root}'"
        output:
          path: ${lake_root}/vars
    """)

    spec = load_job(path, VARIABLES).spec

    assert spec.sources["trips"].path == "/data/raw/trips"
    assert spec.sources["trips"].options == {"comment": "$", "note": "${raw_root}"}
    assert spec.steps[0].filter == "city = '/data/lake'"
    assert spec.output.path == "/data/lake/vars"


# --------------------------------------------------------------------------- metrics


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("count(*)", ("count", "*")),
        ("count(trip_id)", ("count", "trip_id")),
        ("sum(fare)", ("sum", "fare")),
        ("SUM( fare * 2 )", ("sum", "fare * 2")),
        ("avg(fare)", ("avg", "fare")),
        ("mean(fare)", ("avg", "fare")),
        ("min(event_ts)", ("min", "event_ts")),
        ("max(coalesce(fare, 0))", ("max", "coalesce(fare, 0)")),
        ("count(CASE WHEN payment_type = 'cash' THEN 1 END)", ("count", "CASE WHEN payment_type = 'cash' THEN 1 END")),
        ("sum(CASE WHEN note = ')' THEN 1 ELSE 0 END)", ("sum", "CASE WHEN note = ')' THEN 1 ELSE 0 END")),
    ],
)
def test_parse_metric_accepts_one_decomposable_call(text: str, parsed: tuple[str, str]) -> None:
    assert parse_metric(text) == parsed


EXPECTED_CALL = "expected one aggregate call: count(*), count(x), sum(x), avg(x), min(x) or max(x)"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("median(fare)", f"{EXPECTED_CALL}; got median(...)"),
        ("percentile_approx(fare, 0.5)", f"{EXPECTED_CALL}; got percentile_approx(...)"),
        ("count(DISTINCT city)", f"count(DISTINCT ...) cannot be combined across buckets; {EXPECTED_CALL}"),
        ("count(distinct city)", f"count(DISTINCT ...) cannot be combined across buckets; {EXPECTED_CALL}"),
        ("sum(a) + sum(b)", f"{EXPECTED_CALL}; got 'sum(a) + sum(b)'"),
        ("sum(a) / count(b)", f"{EXPECTED_CALL}; got 'sum(a) / count(b)'"),
        ("max(fare) * 2", f"{EXPECTED_CALL}; got 'max(fare) * 2'"),
        ("sum(*)", f"sum(*) is not an aggregate; {EXPECTED_CALL}"),
        ("count()", f"{EXPECTED_CALL}; got 'count()'"),
        ("fare", f"{EXPECTED_CALL}; got 'fare'"),
        ("sum(fare", f"{EXPECTED_CALL}; got 'sum(fare'"),
    ],
)
def test_parse_metric_refuses_what_cannot_be_combined_across_buckets(text: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_metric(text)
    assert str(caught.value) == message


# --------------------------------------------------------------------------- durations


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("15m", 900), ("1h", 3600), ("24h", 86400), ("7d", 604800), ("2w", 1209600), (" 1h ", 3600)],
)
def test_parse_duration(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["1 hour", "1.5h", "h", "", "1H", "-1h", "01h", "1y", 5, None])
def test_parse_duration_refuses(text: object) -> None:
    with pytest.raises(ValueError) as caught:
        parse_duration(text)  # type: ignore[arg-type]
    assert str(caught.value) == f"expected a duration like '30s', '15m', '1h', '7d' or '2w'; got {text!r}"


def test_parse_duration_refuses_zero() -> None:
    with pytest.raises(ValueError) as caught:
        parse_duration("0h")
    assert str(caught.value) == "expected a positive duration; got '0h'"


# --------------------------------------------------------------------------- sql guard


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM input",
        "select driver_id, count(*) AS n FROM input GROUP BY driver_id",
        "WITH cheap AS (SELECT * FROM input WHERE fare < 5) SELECT * FROM cheap",
        "FROM input SELECT driver_id",
        "VALUES (1, 'a'), (2, 'b')",
        "TABLE input",
        "(SELECT 1) UNION ALL (SELECT 2)",
        "SELECT 'drop table x; delete' AS note FROM input",
        'SELECT "insert" AS word FROM input',
        "SELECT `drop` FROM input",
        "SELECT * FROM input -- drop it later; really",
        "/* delete me? */ SELECT * FROM input",
        "SELECT updated_at, created_by, dropoff_ts FROM input",
        "SELECT * FROM input;",
    ],
)
def test_query_problem_allows_read_only_queries(sql: str) -> None:
    assert query_problem(sql) is None


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("DROP TABLE input", "expected a SELECT/WITH query; got a statement starting with 'DROP'"),
        ("  drop table input", "expected a SELECT/WITH query; got a statement starting with 'DROP'"),
        ("(DROP TABLE input)", "expected a SELECT/WITH query; got a statement starting with 'DROP'"),
        ("CREATE TABLE t AS SELECT * FROM input", "expected a SELECT/WITH query; got a statement starting with 'CREATE'"),
        ("INSERT INTO t SELECT * FROM input", "expected a SELECT/WITH query; got a statement starting with 'INSERT'"),
        ("SET spark.sql.ansi.enabled=false", "expected a SELECT/WITH query; got a statement starting with 'SET'"),
        ("WITH c AS (SELECT * FROM input) INSERT INTO t SELECT * FROM c", "expected a read-only query; got INSERT"),
        ("WITH c AS (SELECT 1) MERGE INTO t USING c ON true WHEN MATCHED THEN DELETE",
         "expected a read-only query; got MERGE"),
        ("SELECT * FROM input; DROP TABLE input", "expected a single SELECT/WITH query; got more than one statement (';')"),
        ("SELECT 1; SELECT 2", "expected a single SELECT/WITH query; got more than one statement (';')"),
        ("", "expected a SELECT/WITH query; got no SQL"),
        ("   ", "expected a SELECT/WITH query; got no SQL"),
        ("-- nothing yet", "expected a SELECT/WITH query; got no SQL"),
    ],
)
def test_query_problem_refuses_statements(sql: str, message: str) -> None:
    assert query_problem(sql) == message


# --------------------------------------------------------------------------- positions

POSITIONS_YAML = """\
name: pos
sources:
  trips:
    format: csv
    path: "x"
steps:
  - filter: "a > 1"
  - dedup: {keys: [a, b]}
  - select:
      - a
      - b
output: {path: y}
"""


def test_load_yaml_positions_of_keys_values_and_items() -> None:
    data, positions, problems = load_yaml(POSITIONS_YAML, "jobs/pos.yaml")

    assert problems == []
    assert data["steps"][1] == {"dedup": {"keys": ["a", "b"]}}
    assert type(data["sources"]["trips"]["path"]) is str
    spots, values = positions.spots, positions.values
    assert spots[()] == (1, 1)
    assert spots[("name",)] == (1, 1)
    assert values[("name",)] == (1, 7)
    assert spots[("sources", "trips")] == (3, 3)
    assert spots[("sources", "trips", "format")] == (4, 5)
    assert values[("sources", "trips", "format")] == (4, 13)
    assert values[("sources", "trips", "path")] == (5, 11)
    assert spots[("steps", 0)] == (7, 5)
    assert spots[("steps", 0, "filter")] == (7, 5)
    assert values[("steps", 0, "filter")] == (7, 13)
    assert spots[("steps", 1, "dedup", "keys")] == (8, 13)
    assert spots[("steps", 1, "dedup", "keys", 0)] == (8, 20)
    assert spots[("steps", 1, "dedup", "keys", 1)] == (8, 23)
    assert spots[("steps", 2, "select", 1)] == (11, 9)
    assert spots[("output", "path")] == (12, 10)


def test_locate_falls_back_to_the_nearest_ancestor() -> None:
    _, positions, _ = load_yaml(POSITIONS_YAML, "jobs/pos.yaml")

    assert positions.locate(("sources", "trips", "schema")) == (3, 3)
    assert positions.locate(("steps", 1, "dedup", "order_by")) == (8, 5)
    assert positions.locate(("features", "ttl")) == (1, 1)
    assert positions.locate(("sources", "trips", "format"), at_value=True) == (4, 13)
    assert str(positions.problem(("output", "mode"), "required key is missing")) == (
        "jobs/pos.yaml:12:1 output.mode: required key is missing")


def test_dotted_paths() -> None:
    assert dotted(("steps", 3, "dedup", "keys")) == "steps[3].dedup.keys"
    assert dotted(("sources", "trips", "options", "mode")) == "sources.trips.options.mode"
    assert dotted(()) == ""


def test_load_yaml_reports_syntax_errors_with_position_and_no_data() -> None:
    data, _, problems = load_yaml("name: x\nsources: {a: b\n", "jobs/x.yaml")

    assert data is None
    assert len(problems) == 1
    assert str(problems[0]).startswith("jobs/x.yaml:3:1: YAML syntax error: ")


def test_unquoted_variable_in_flow_mapping_gets_the_quoting_hint() -> None:
    _, _, problems = load_yaml("output: {path: ${lake_root}/x}\n", "jobs/x.yaml")
    _, _, quoted = load_yaml('output: {path: "${lake_root}/x"}\n', "jobs/x.yaml")

    assert [str(p) for p in problems] == [
        "jobs/x.yaml:1:17: YAML syntax error: expected ',' or '}', but got '{' "
        "(while parsing a flow mapping at line 1) "
        '(inside {...} or [...] a value with ${...} must be quoted: path: "${root}/x")'
    ]
    assert quoted == []
