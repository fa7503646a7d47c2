"""Source files as people have them: Parquet from pandas/pyarrow with nanosecond timestamps,
CSV with a byte-order mark, Windows line endings and quoted newlines, JSON arrays beside JSON
Lines, and source folders that are missing or empty. Each file is written here, as its tool
writes it, and read through a real run on the shared Spark session."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from featurekit.errors import ConfigError
from tests.integration.helpers import Lab, lab  # noqa: F401  (fixtures)


def job(name: str, source: str) -> str:
    return (f"name: {name}\nsources:\n  s: {source}\nsteps: []\n"
            f'output: {{path: "${{lake_root}}/{name}", mode: overwrite}}\n')


# --------------------------------------------------------------------------- Parquet, nanoseconds


def test_pandas_parquet_with_nanoseconds_is_read_at_microseconds_with_a_warning(lab: Lab) -> None:  # noqa: F811
    folder = lab.raw / "pd_nanos"
    folder.mkdir(parents=True)
    frame = pd.DataFrame({"id": [1, 2], "ts": pd.to_datetime(["2024-01-01 10:00:00.123456789",
                                                              "2024-01-01 11:00:00.000001000"])})
    frame.to_parquet(folder / "part-0.parquet")  # pandas' default: TIMESTAMP(NANOS), not adjusted to UTC
    assert str(pq.read_schema(folder / "part-0.parquet").field("ts").type) == "timestamp[ns]"

    result = lab.run("pd_nanos", job("pd_nanos", '{format: parquet, path: "${raw_root}/pd_nanos"}'))

    # naive datetimes stay naive (timestamp_ntz, as Spark reads them written at microseconds)
    assert lab.columns("pd_nanos") == [("id", "long"), ("ts", "timestamp_ntz")]
    assert lab.rows("pd_nanos") == [{"id": 1, "ts": datetime(2024, 1, 1, 10, 0, 0, 123456)},
                                    {"id": 2, "ts": datetime(2024, 1, 1, 11, 0, 0, 1)}]
    assert result.warnings == [
        "source 's': column 'ts' holds nanosecond timestamps; 1 value(s) were truncated to microseconds, "
        "Spark's precision (declare it long in the source's schema to keep the nanoseconds as a number)"]
    assert lab.reports("pd_nanos")[-1]["warnings"] == result.warnings


def test_pyarrow_parquet_with_utc_nanoseconds_is_read_exactly(lab: Lab) -> None:  # noqa: F811
    folder = lab.raw / "pa_nanos"
    folder.mkdir(parents=True)
    nanos = [1704103200123456000, -1000, None]  # the second is before 1970
    pq.write_table(pa.table({"id": [1, 2, 3], "ts": pa.array(nanos, pa.timestamp("ns", tz="UTC"))}),
                   folder / "part-0.parquet")

    result = lab.run("pa_nanos", job("pa_nanos", '{format: parquet, path: "${raw_root}/pa_nanos"}'))

    assert lab.columns("pa_nanos") == [("id", "long"), ("ts", "timestamp")]
    assert lab.rows("pa_nanos") == [
        {"id": 1, "ts": datetime(2024, 1, 1, 10, 0, 0, 123456, tzinfo=UTC)},
        {"id": 2, "ts": datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)},
        {"id": 3, "ts": None},
    ]
    assert result.warnings == []


def test_parquet_nanoseconds_declared_long_keep_every_digit(lab: Lab) -> None:  # noqa: F811
    folder = lab.raw / "pa_long"
    folder.mkdir(parents=True)
    pq.write_table(pa.table({"id": [1], "ts": pa.array([1704103200123456789], pa.timestamp("ns"))}),
                   folder / "part-0.parquet")

    result = lab.run("pa_long", job("pa_long", '{format: parquet, path: "${raw_root}/pa_long", '
                                               'schema: {id: long, ts: long}}'))

    assert lab.rows("pa_long") == [{"id": 1, "ts": 1704103200123456789}]
    assert result.warnings == []


def test_parquet_nanoseconds_declared_as_another_type_are_refused_naming_the_column_and_the_fix(lab: Lab) -> None:  # noqa: F811
    folder = lab.raw / "pa_bad"
    folder.mkdir(parents=True)
    pq.write_table(pa.table({"ts": pa.array([1], pa.timestamp("ns"))}), folder / "part-0.parquet")

    error = lab.run_fails("pa_bad", job("pa_bad", '{format: parquet, path: "${raw_root}/pa_bad", schema: {ts: string}}'),
                          ConfigError)

    assert str(error) == (
        "jobs/pa_bad.yaml:3:65 sources.s.schema.ts: the Parquet column holds nanosecond timestamps, which cannot "
        "be read as 'string': declare it timestamp (read at microseconds), timestamp_ntz, or long (nanoseconds "
        "since 1970-01-01)")
    assert not (lab.lake / "pa_bad").exists()


# --------------------------------------------------------------------------- CSV


def test_csv_with_a_byte_order_mark_and_windows_line_endings(lab: Lab) -> None:  # noqa: F811
    folder = lab.raw / "csv_bom"
    folder.mkdir(parents=True)
    (folder / "part-0.csv").write_bytes("\ufeffid,name\r\n1,ann\r\n2,bob\r\n".encode())

    lab.run("csv_bom", job("csv_bom", '{format: csv, path: "${raw_root}/csv_bom", options: {header: true}, '
                                      'schema: {id: long, name: string}}'))
    assert lab.rows("csv_bom") == [{"id": 1, "name": "ann"}, {"id": 2, "name": "bob"}]

    # without a schema the header names the columns: the mark is not part of the first name
    lab.run("csv_bom_header", job("csv_bom_header", '{format: csv, path: "${raw_root}/csv_bom", options: {header: true}}'))
    assert lab.columns("csv_bom_header") == [("id", "string"), ("name", "string")]
    assert lab.rows("csv_bom_header") == [{"id": "1", "name": "ann"}, {"id": "2", "name": "bob"}]


def test_csv_with_quoted_newlines_reads_whole_records_with_multiline(lab: Lab) -> None:  # noqa: F811
    folder = lab.raw / "csv_multi"
    folder.mkdir(parents=True)
    text = '\ufeffid,note\r\n1,"two\r\nlines"\r\n2,plain\r\nnot-a-number,x\r\n'
    (folder / "part-0.csv").write_bytes(text.encode())

    text = job("csv_multi", '{format: csv, path: "${raw_root}/csv_multi", '
                            'options: {header: true, multiLine: true}, schema: {id: long, note: string}}')
    result = lab.run("csv_multi", text.replace("steps: []\n", "steps: []\nvalidate: {max_bad_fraction: 0.5}\n"))

    assert lab.rows("csv_multi") == [{"id": 1, "note": "two\nlines"}, {"id": 2, "note": "plain"}]
    # the record that does not parse is quarantined with its raw text, as without multiLine
    assert result.sources[0]["rows_read"] == 3 and result.sources[0]["rows_malformed"] == 1
    quarantined = lab.rows("csv_multi_quarantine")
    assert [row["_fk_raw"].strip() for row in quarantined] == ["not-a-number,x"]


# --------------------------------------------------------------------------- JSON


def test_a_json_array_file_is_read_as_its_records(lab: Lab) -> None:  # noqa: F811
    folder = lab.raw / "json_array"
    folder.mkdir(parents=True)
    (folder / "part-0.json").write_text(json.dumps([{"id": 1, "v": "a"}, {"id": 2, "v": "b"}], indent=2))
    (folder / "part-1.json").write_text(json.dumps([{"id": 3, "v": "c"}]))

    result = lab.run("json_array", job("json_array", '{format: json, path: "${raw_root}/json_array", '
                                                     'schema: {id: long, v: string}}'))

    assert lab.rows("json_array") == [{"id": 1, "v": "a"}, {"id": 2, "v": "b"}, {"id": 3, "v": "c"}]
    assert result.sources[0]["rows_read"] == 3 and result.sources[0]["rows_malformed"] == 0


def test_json_lines_are_read_as_before(lab: Lab) -> None:  # noqa: F811
    lab.jsonl("json_lines", [{"id": 1, "v": "a"}, {"id": 2, "v": "b"}])

    lab.run("json_lines", job("json_lines", '{format: json, path: "${raw_root}/json_lines"}'))

    assert lab.rows("json_lines") == [{"id": 1, "v": "a"}, {"id": 2, "v": "b"}]


def test_json_arrays_and_json_lines_in_one_source_are_refused(lab: Lab) -> None:  # noqa: F811
    folder = lab.jsonl("json_mixed", [{"id": 1}])
    (folder / "part-1.json").write_text(json.dumps([{"id": 2}], indent=2))

    error = lab.run_fails("json_mixed", job("json_mixed", '{format: json, path: "${raw_root}/json_mixed"}'), ConfigError)

    message = re.sub(r"\(file:[^)]*/", "(", str(error))
    assert message == ("jobs/json_mixed.yaml:3:27 sources.s.path: some files hold one JSON array (part-1.json), "
                       "others JSON Lines (part-0.json); one source reads one kind: give each its own source")


# --------------------------------------------------------------------------- missing, empty


@pytest.mark.parametrize(("folder", "files", "found"), [
    ("nothing_here", None, "the path does not exist"),
    ("empty_folder", [], "there are none (the folder is empty, or holds only files Spark skips: names starting "
                         "with _ or .)"),
    ("only_hidden", ["_SUCCESS", ".part-0.csv.crc"], "there are none (the folder is empty, or holds only files "
                                                     "Spark skips: names starting with _ or .)"),
])
def test_a_missing_or_empty_source_folder_is_named_at_the_specs_path(lab: Lab, folder: str, files: list[str] | None,  # noqa: F811
                                                                     found: str) -> None:
    if files is not None:
        (lab.raw / folder).mkdir(parents=True)
        for name in files:
            (lab.raw / folder / name).write_text("")
    name = f"missing_{folder}"

    # a schema too: Spark itself would read an empty folder as no rows, and overwrite the table with none
    error = lab.run_fails(name, job(name, f'{{format: csv, path: "${{raw_root}}/{folder}", schema: {{id: long}}}}'),
                          ConfigError)

    assert str(error) == (f"jobs/{name}.yaml:3:26 sources.s.path: looked for csv files at "
                          f"{lab.raw / folder}: {found}")
    assert not (lab.lake / name).exists()
    assert lab.reports(name)[-1]["status"] == "failed"
