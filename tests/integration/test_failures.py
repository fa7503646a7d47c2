"""Failed runs: the right typed error (and exit code), a message located where the user can
fix it, tables left exactly as they were, and a run report that says ``failed``."""

from __future__ import annotations

from pathlib import Path

import pytest

from featurekit.errors import ConfigError, DataError, SpecError
from tests.integration.helpers import Lab, fresh_lab, lab  # noqa: F401  (fixtures)

SOURCE = '  t: {format: csv, path: "${raw_root}/fail_in", options: {header: true}, schema: {id: long, v: string}}\n'


def job(name: str, steps: str = "  []\n", mode: str = "overwrite") -> str:
    return (f"name: {name}\nsources:\n{SOURCE}steps:\n{steps}"
            f'output: {{path: "${{lake_root}}/{name}", mode: {mode}}}\n')


def files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.fixture(scope="module", autouse=True)
def inputs(lab: Lab) -> None:  # noqa: F811
    lab.csv("fail_in", """
        id,v
        1,7
        2,abc
    """)


# --------------------------------------------------------------------------- compute-time failures


def test_compute_failure_leaves_the_existing_table_as_it_was(lab: Lab) -> None:  # noqa: F811
    first = lab.run("fl_existing", job("fl_existing"))
    assert first.table_version == 0 and lab.reports("fl_existing")[-1]["status"] == "succeeded"
    table = lab.lake / "fl_existing"
    before_files, before_rows = files(table), lab.rows("fl_existing")

    error = lab.run_fails("fl_existing", job("fl_existing", "  - with_columns: {x: \"if(id > 0, raise_error('boom'), 'ok')\"}\n"), DataError)
    assert error.exit_code == 3
    assert str(error).startswith("the data broke the job: [USER_RAISED_EXCEPTION] boom")

    assert lab.table("fl_existing").version() == 0
    assert lab.rows("fl_existing") == before_rows == [{"id": 1, "v": "7"}, {"id": 2, "v": "abc"}]
    # the log is as it was; a task that failed mid-write may leave its data file, which no
    # commit references (invisible to every reader; VACUUM removes it), as with any Delta writer
    left = set(files(table)) - set(before_files)
    assert not [f for f in left if f.startswith("_delta_log")]
    referenced = {uri.rsplit("/", 1)[-1] for uri in lab.table("fl_existing").file_uris()}
    assert referenced and not {Path(f).name for f in left} & referenced

    report = lab.reports("fl_existing")[-1]
    assert report["status"] == "failed" and report["job"] == "fl_existing"
    assert report["error"] == str(error) and report["exit_code"] == 3
    assert report["table_version"] is None


def test_ansi_cast_failure_creates_no_table(lab: Lab) -> None:  # noqa: F811
    error = lab.run_fails("fl_cast", job("fl_cast", "  - cast: {v: int}\n"), DataError)
    assert error.exit_code == 3
    assert str(error).startswith("the data broke the job: [CAST_INVALID_INPUT] The value 'abc'")
    assert not (lab.lake / "fl_cast").exists()
    assert lab.reports("fl_cast")[-1]["status"] == "failed"


def test_write_refused_on_a_new_table_leaves_no_folder(lab: Lab) -> None:  # noqa: F811
    """Delta cannot store an interval column: the failure comes from the write itself."""
    error = lab.run_fails("fl_interval", job("fl_interval", '  - with_columns: {x: "INTERVAL 1 DAY"}\n'), ConfigError)
    assert "DELTA_UNSUPPORTED_DATA_TYPES" in str(error)
    assert not (lab.lake / "fl_interval").exists()


def test_write_refused_on_an_existing_table_leaves_it_as_it_was(lab: Lab) -> None:  # noqa: F811
    lab.run("fl_append", job("fl_append", mode="append"))
    # v becomes a number: the append no longer fits the table's schema
    error = lab.run_fails("fl_append", job("fl_append", "  - with_columns: {v: \"length(v)\"}\n", mode="append"), ConfigError)
    assert "does not fit the table" in str(error) and "column v is int but the table has string" in str(error)
    assert lab.table("fl_append").version() == 0
    assert lab.rows("fl_append") == [{"id": 1, "v": "7"}, {"id": 2, "v": "abc"}]


# --------------------------------------------------------------------------- spec problems Spark finds


@pytest.mark.parametrize(("name", "steps", "where", "column"), [
    # line 6 col 5 is the `filter` key of the second step
    ("fl_filter_column", '  - filter: "id > 0"\n  - filter: "nope > 1"\n', "6:5 steps[1].filter", "nope"),
    # after a sql step the columns are unknown without Spark, so only Spark can tell
    ("fl_select_column", '  - sql: "SELECT id FROM input"\n  - select: [id, v]\n', "6:5 steps[1].select", "v"),
])
def test_a_step_spark_cannot_analyse_is_a_spec_error_at_that_step(lab: Lab, name: str, steps: str, where: str, column: str) -> None:  # noqa: F811
    error = lab.run_fails(name, job(name, steps), SpecError)
    assert error.exit_code == 2
    assert len(error.problems) == 1
    message = str(error)
    assert message.startswith(f"jobs/{name}.yaml:{where}: Spark cannot apply this step: [UNRESOLVED_COLUMN")
    assert f"`{column}`" in message
    assert not (lab.lake / name).exists()
    assert lab.reports(name)[-1]["status"] == "failed"


# --------------------------------------------------------------------------- missing inputs

UPSTREAM = """
    name: fl_upstream
    sources:
      t: {format: csv, path: "${raw_root}/anything", options: {header: true}}
    output: {path: "${lake_root}/fl_up"}
"""
DOWNSTREAM = """
    name: fl_downstream
    sources:
      up:
        format: delta
        path: ${lake_root}/fl_up%s
    output: {path: "${lake_root}/fl_down"}
"""


def test_missing_delta_source_names_the_job_that_writes_it(fresh_lab: Lab) -> None:  # noqa: F811
    fresh_lab.write_job("fl_upstream", UPSTREAM)
    error = fresh_lab.run_fails("fl_downstream", DOWNSTREAM % "", SpecError)
    assert str(error) == (f"jobs/fl_downstream.yaml:5:11 sources.up.path: no Delta table at {fresh_lab.lake}/fl_up; "
                          "run `featurekit run fl_upstream` first")
    assert error.exit_code == 2
    assert fresh_lab.reports("fl_downstream")[-1]["status"] == "failed"


def test_missing_delta_source_without_a_writer_says_so(fresh_lab: Lab) -> None:  # noqa: F811
    error = fresh_lab.run_fails("fl_downstream", DOWNSTREAM % "", SpecError)
    assert str(error).endswith(f"no Delta table at {fresh_lab.lake}/fl_up; no job in this project writes it")


def test_missing_delta_source_with_a_pinned_version_names_its_writer_too(fresh_lab: Lab) -> None:  # noqa: F811
    fresh_lab.write_job("fl_upstream", UPSTREAM)
    error = fresh_lab.run_fails("fl_downstream", DOWNSTREAM % "\n        version: 0", SpecError)
    assert "run `featurekit run fl_upstream` first" in str(error)


def test_missing_csv_path_is_a_config_error(lab: Lab) -> None:  # noqa: F811
    missing = lab.raw / "never_written"
    error = lab.run_fails("fl_no_csv", f"""
        name: fl_no_csv
        sources:
          t: {{format: csv, path: "{missing}", options: {{header: true}}, schema: {{id: long}}}}
        output: {{path: "${{lake_root}}/fl_no_csv"}}
    """, ConfigError)
    assert error.exit_code == 2
    assert str(error) == f"jobs/fl_no_csv.yaml:3:26 sources.t.path: looked for csv files at {missing}: the path does not exist"
    assert not (lab.lake / "fl_no_csv").exists()
    report = lab.reports("fl_no_csv")[-1]
    assert report["status"] == "failed" and report["error"] == str(error)


def test_failfast_on_a_malformed_record_is_a_data_error(lab: Lab) -> None:  # noqa: F811
    lab.csv("failfast_in", """
        id,v
        1,a
        xx,b
    """)
    error = lab.run_fails("fl_failfast", """
        name: fl_failfast
        sources:
          t: {format: csv, path: "${raw_root}/failfast_in", options: {header: true, mode: FAILFAST}, schema: {id: long, v: string}}
        output: {path: "${lake_root}/fl_failfast"}
    """, DataError)
    assert "MALFORMED_RECORD_IN_PARSING" in str(error)
    assert not (lab.lake / "fl_failfast").exists()
