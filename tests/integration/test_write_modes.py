"""The Delta sink: write modes, partitions, commit metadata and table ownership, with every
table read back by delta-rs (contents, history, configuration)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from featurekit.errors import ConfigError, DataError
from featurekit.pipeline import RunResult
from tests.integration.helpers import Lab, lab, no_size_based_broadcast, physical_plans  # noqa: F401  (lab is a fixture)


def job(name: str, source: str, schema: str, output: str) -> str:
    """A job copying csv ``raw/<source>`` (typed by ``schema``) into its ``output`` (flow map body)."""
    return f"""
        name: {name}
        sources:
          src: {{format: csv, path: "${{raw_root}}/{source}", options: {{header: true}}, schema: {schema}}}
        output: {{{output}}}
    """


def history(lab: Lab, table: str) -> list[dict[str, Any]]:  # noqa: F811
    """delta-rs history, oldest commit first."""
    return sorted(lab.table(table).history(), key=lambda c: c["version"])


def user_metadata(commit: dict[str, Any]) -> dict[str, Any]:
    return json.loads(commit["userMetadata"])


def metadata_of(result: RunResult) -> dict[str, str]:
    return {"job": result.job, "run_id": result.run_id, "fingerprint": result.fingerprint, "env": "local"}


# --------------------------------------------------------------------------- overwrite / append


def test_overwrite_replaces_rows_and_schema(lab: Lab) -> None:  # noqa: F811
    out = 'path: "${lake_root}/wm_overwrite", mode: overwrite'
    lab.csv("ow_in", """
        id,a
        1,x
        2,y
    """)
    first = lab.run("wm_overwrite", job("wm_overwrite", "ow_in", "{id: long, a: string}", out))
    lab.csv("ow_in", """
        id,b
        3,1.5
    """)
    second = lab.run("wm_overwrite", job("wm_overwrite", "ow_in", "{id: long, b: double}", out))

    assert (first.table_version, second.table_version) == (0, 1)
    assert second.commit_operation == "WRITE" and second.commit_metrics["numOutputRows"] == 1
    assert lab.columns("wm_overwrite") == [("id", "long"), ("b", "double")]
    assert lab.rows("wm_overwrite") == [{"id": 3, "b": 1.5}]
    assert lab.rows("wm_overwrite", version=0) == [{"id": 1, "a": "x"}, {"id": 2, "a": "y"}]
    assert [user_metadata(c) for c in history(lab, "wm_overwrite")] == [metadata_of(first), metadata_of(second)]
    assert first.fingerprint != second.fingerprint    # the job changed between the runs
    # the owner property set at creation survives a schema-changing overwrite
    assert lab.table("wm_overwrite").metadata().configuration["featurekit.job"] == "wm_overwrite"


def test_append_adds_rows_and_sets_table_properties(lab: Lab) -> None:  # noqa: F811
    text = job("wm_append", "ap_in", "{id: long, v: string}",
               'path: "${lake_root}/wm_append", mode: append, properties: {team: mobility, delta.appendOnly: true}')
    lab.csv("ap_in", """
        id,v
        1,a
        2,b
    """)
    first = lab.run("wm_append", text)
    lab.csv("ap_in", """
        id,v
        2,b
        3,c
    """)
    second = lab.run("wm_append", text)

    assert (first.table_version, second.table_version) == (0, 1)
    commits = history(lab, "wm_append")
    assert [c["operation"] for c in commits] == ["WRITE", "WRITE"]
    assert [user_metadata(c) for c in commits] == [metadata_of(first), metadata_of(second)]
    assert first.fingerprint == second.fingerprint and first.run_id != second.run_id
    assert second.commit_metrics["numOutputRows"] == 2
    # append does not deduplicate: (2, b) is there twice
    assert lab.rows("wm_append") == [{"id": 1, "v": "a"}, {"id": 2, "v": "b"}, {"id": 2, "v": "b"}, {"id": 3, "v": "c"}]
    configuration = lab.table("wm_append").metadata().configuration
    assert configuration["featurekit.job"] == "wm_append"
    assert configuration["team"] == "mobility" and configuration["delta.appendOnly"] == "true"


# --------------------------------------------------------------------------- merge

MERGE_JOB = job("wm_merge", "merge_in", "{id: long, day: string, v: string}",
                'path: "${lake_root}/wm_merge", mode: merge, keys: [id, day]')
MERGE_V0 = """
    id,day,v
    1,2024-01-01,a
    2,2024-01-01,b
    ,2024-01-01,n
"""
MERGE_V1 = """
    id,day,v
    1,2024-01-01,a
    2,2024-01-01,B
    ,2024-01-01,N
    3,2024-01-02,c
"""
MERGE_DUPLICATES = """
    id,day,v
    4,2024-01-03,x
    4,2024-01-03,y
    1,2024-01-01,z
"""
ROWS_V0 = [
    {"id": 1, "day": "2024-01-01", "v": "a"},
    {"id": 2, "day": "2024-01-01", "v": "b"},
    {"id": None, "day": "2024-01-01", "v": "n"},
]
ROWS_V1 = [
    {"id": 1, "day": "2024-01-01", "v": "a"},
    {"id": 2, "day": "2024-01-01", "v": "B"},
    {"id": 3, "day": "2024-01-02", "v": "c"},
    {"id": None, "day": "2024-01-01", "v": "N"},   # a null key matches itself: updated, not added
]


@pytest.fixture(scope="module")
def merges(lab: Lab) -> dict[str, Any]:  # noqa: F811
    """Create, rerun on the same input, merge changes, then fail on duplicate keys."""
    out: dict[str, Any] = {}
    lab.csv("merge_in", MERGE_V0)
    out["create"] = lab.run("wm_merge", MERGE_JOB)
    out["rows_create"] = lab.rows("wm_merge")
    out["rerun"] = lab.run("wm_merge", MERGE_JOB)
    out["rows_rerun"] = lab.rows("wm_merge")
    lab.csv("merge_in", MERGE_V1)
    out["change"] = lab.run("wm_merge", MERGE_JOB)
    out["rows_change"] = lab.rows("wm_merge")
    lab.csv("merge_in", MERGE_DUPLICATES)
    with pytest.raises(DataError) as info:
        lab.run("wm_merge", MERGE_JOB)
    out["duplicates"] = info.value
    out["version_after_duplicates"] = lab.table("wm_merge").version()
    out["rows_after_duplicates"] = lab.rows("wm_merge")
    return out


def test_merge_creates_the_table_on_first_run(merges: dict[str, Any]) -> None:
    assert merges["create"].table_version == 0
    assert merges["create"].commit_operation == "WRITE"
    assert merges["rows_create"] == ROWS_V0


def test_merge_rerun_on_same_input_changes_nothing(merges: dict[str, Any]) -> None:
    rerun = merges["rerun"]
    assert merges["rows_rerun"] == ROWS_V0       # no duplicates (the null key too), same values
    # only new or changed rows reach the MERGE: none here, so no file is rewritten, no version made
    assert rerun.commit_operation == "NONE (no row new or changed)" and rerun.table_version == 0
    assert rerun.rows_written == 3
    assert not (Path(rerun.output_path) / "_fk_staging").exists()  # the MERGE's staged rows are gone


def test_merge_updates_changed_rows_and_inserts_new_ones(merges: dict[str, Any]) -> None:
    change = merges["change"]
    assert merges["rows_change"] == ROWS_V1
    assert change.table_version == 1
    # (2, B) and (null, N) changed; (1, a) is equal, so it does not even reach the MERGE; (3, c) is new
    assert change.commit_metrics["numSourceRows"] == 3
    assert change.commit_metrics["numTargetRowsUpdated"] == 2
    assert change.commit_metrics["numTargetRowsInserted"] == 1
    assert change.rows_out == 4


def test_merge_with_duplicate_keys_is_a_data_error_and_table_untouched(lab: Lab, merges: dict[str, Any]) -> None:  # noqa: F811
    error = merges["duplicates"]
    assert error.exit_code == 3
    assert error.message == ("merge keys (id, day) are not unique in the result: 1 key(s) repeat; "
                             "add a dedup step on these keys")
    assert error.details == ["id=4, day='2024-01-03' appears 2 times"]
    assert merges["version_after_duplicates"] == 1
    assert merges["rows_after_duplicates"] == ROWS_V1
    assert lab.reports("wm_merge")[-1]["status"] == "failed"


def test_each_commit_carries_user_metadata_and_the_job_property(lab: Lab, merges: dict[str, Any]) -> None:  # noqa: F811
    commits = history(lab, "wm_merge")
    # the no-change rerun and the failed run committed nothing
    assert [c["version"] for c in commits] == [0, 1]
    for commit, result in zip(commits, [merges["create"], merges["change"]]):
        assert user_metadata(commit) == metadata_of(result)
    assert len({c["userMetadata"] for c in commits}) == 2   # one run id per commit
    assert lab.table("wm_merge").metadata().configuration["featurekit.job"] == "wm_merge"


def test_merge_first_run_with_duplicate_keys_is_a_data_error_too(lab: Lab) -> None:  # noqa: F811
    lab.csv("merge_first_dups", MERGE_DUPLICATES)
    text = job("wm_merge_first", "merge_first_dups", "{id: long, day: string, v: string}",
               'path: "${lake_root}/wm_merge_first", mode: merge, keys: [id, day]')
    with pytest.raises(DataError, match=r"merge keys \(id, day\) are not unique"):
        lab.run("wm_merge_first", text)
    assert not (lab.lake / "wm_merge_first").exists()   # no table holding two rows for one key


# --------------------------------------------------------------------------- partitions

PARTITIONED = job("wm_partitions", "rp_in", "{id: long, day: date, v: string}",
                  'path: "${lake_root}/wm_partitions", mode: replace_partitions, partition_by: [day]')


def test_replace_partitions_replaces_only_partitions_present(lab: Lab) -> None:  # noqa: F811
    lab.csv("rp_in", """
        id,day,v
        1,2024-01-01,a
        2,2024-01-01,b
        3,2024-01-02,c
    """)
    first = lab.run("wm_partitions", PARTITIONED)
    table = lab.lake / "wm_partitions"
    assert lab.table("wm_partitions").metadata().partition_columns == ["day"]
    assert sorted(p.name for p in table.iterdir() if p.is_dir()) == ["_delta_log", "day=2024-01-01", "day=2024-01-02"]
    assert all(any(p.glob("*.parquet")) for p in table.glob("day=*"))

    lab.csv("rp_in", """
        id,day,v
        4,2024-01-02,d
        5,2024-01-03,e
    """)
    second = lab.run("wm_partitions", PARTITIONED)
    assert (first.table_version, second.table_version) == (0, 1)
    day = dt.date.fromisoformat
    assert lab.rows("wm_partitions", by=["id"]) == [
        {"id": 1, "day": day("2024-01-01"), "v": "a"},    # partition absent from the result: kept
        {"id": 2, "day": day("2024-01-01"), "v": "b"},
        {"id": 4, "day": day("2024-01-02"), "v": "d"},    # partition present: replaced (3 is gone)
        {"id": 5, "day": day("2024-01-03"), "v": "e"},    # new partition
    ]
    assert sorted(p.name for p in table.glob("day=*")) == ["day=2024-01-01", "day=2024-01-02", "day=2024-01-03"]
    assert user_metadata(history(lab, "wm_partitions")[-1]) == metadata_of(second)


# --------------------------------------------------------------------------- refusals


def test_a_second_job_cannot_write_another_jobs_table(lab: Lab) -> None:  # noqa: F811
    lab.csv("thief_in", """
        id,v
        9,z
    """)
    owner_path = lab.lake / "wm_owned"
    lab.run("wm_owner", job("wm_owner", "thief_in", "{id: long, v: string}", 'path: "${lake_root}/wm_owned", mode: append'))
    error = lab.run_fails("wm_thief", job("wm_thief", "thief_in", "{id: long, v: string}",
                                          'path: "${lake_root}/wm_owned", mode: append'), ConfigError)
    assert str(error) == (f"jobs/wm_thief.yaml:4:10 output.path: {owner_path} belongs to job 'wm_owner'; "
                          "two jobs cannot write one table")
    assert error.exit_code == 2
    assert lab.table("wm_owned").version() == 0 and lab.rows("wm_owned") == [{"id": 9, "v": "z"}]


def test_refuses_to_write_into_a_non_delta_folder(lab: Lab) -> None:  # noqa: F811
    lab.csv("plain_in", """
        id
        1
    """)
    folder = lab.lake / "wm_plain"
    folder.mkdir(parents=True)
    (folder / "notes.txt").write_text("not a table\n")
    error = lab.run_fails("wm_plain", job("wm_plain", "plain_in", "{id: long}", 'path: "${lake_root}/wm_plain"'), ConfigError)
    assert str(error) == (f"jobs/wm_plain.yaml:4:10 output.path: {folder} exists and is not a Delta table; "
                          "refusing to write into it")
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"]


def test_an_empty_existing_folder_is_fine(lab: Lab) -> None:  # noqa: F811
    lab.csv("empty_in", """
        id
        1
    """)
    (lab.lake / "wm_empty").mkdir(parents=True)
    result = lab.run("wm_empty", job("wm_empty", "empty_in", "{id: long}", 'path: "${lake_root}/wm_empty"'))
    assert result.table_version == 0 and lab.rows("wm_empty") == [{"id": 1}]


# --------------------------------------------------------------------------- merge and the table's schema

MERGE_COLUMNS = """
    id,v
    1,a
    2,b
"""


def merge_columns_job(name: str, steps: str) -> str:
    return f"""
        name: {name}
        sources:
          src: {{format: csv, path: "${{raw_root}}/merge_cols_in", options: {{header: true}}, schema: {{id: long, v: string}}}}
        steps: {steps}
        output: {{path: "${{lake_root}}/{name}", mode: merge, keys: [id]}}
    """


def test_merge_result_missing_a_table_column_is_a_config_error(lab: Lab) -> None:  # noqa: F811
    lab.csv("merge_cols_in", MERGE_COLUMNS)
    lab.run("wm_merge_fewer", merge_columns_job("wm_merge_fewer", "[]"))
    error = lab.run_fails("wm_merge_fewer", merge_columns_job("wm_merge_fewer", "[{select: [id]}]"), ConfigError)
    assert "does not fit the table" in str(error) and "missing column(s) v" in str(error)
    assert lab.table("wm_merge_fewer").version() == 0
    assert lab.rows("wm_merge_fewer") == [{"id": 1, "v": "a"}, {"id": 2, "v": "b"}]


def test_merge_result_with_a_new_column_is_a_config_error_naming_it(lab: Lab) -> None:  # noqa: F811
    lab.csv("merge_cols_in", MERGE_COLUMNS)
    lab.run("wm_merge_more", merge_columns_job("wm_merge_more", "[]"))
    error = lab.run_fails("wm_merge_more", merge_columns_job("wm_merge_more", '[{with_columns: {extra_col: "1"}}]'),
                          ConfigError)
    assert "extra_col" in str(error)
    assert lab.table("wm_merge_more").version() == 0
    assert lab.rows("wm_merge_more") == [{"id": 1, "v": "a"}, {"id": 2, "v": "b"}]


def test_merge_probes_the_table_instead_of_shuffling_it(lab: Lab) -> None:  # noqa: F811
    """A run's few rows are broadcast and probed by one scan of the table; with Spark left to
    choose (here as for a table too big to broadcast), EXCEPT ALL would shuffle all of it."""
    name = "wm_merge_probe"
    lab.csv("merge_probe_in", MERGE_V0)
    lab.run(name, MERGE_JOB.replace("wm_merge", name).replace("merge_in", "merge_probe_in"))
    lab.csv("merge_probe_in", MERGE_V1)
    with no_size_based_broadcast(lab.spark), physical_plans(lab.spark) as plans:
        change = lab.run(name, MERGE_JOB.replace("wm_merge", name).replace("merge_in", "merge_probe_in"))
    assert lab.rows(name) == ROWS_V1
    assert change.commit_metrics["numSourceRows"] == 3  # (1, a) is unchanged: it does not reach the MERGE
    assert any("BroadcastHashJoin LeftSemi" in p and "BroadcastHashJoin LeftAnti" in p for p in plans)
    assert not any("replicaterows" in p for p in plans)  # EXCEPT ALL's mark


@pytest.mark.parametrize("probe_max_bytes", [2**40, 0], ids=["probed", "except-all"])
def test_new_or_changed_rows_are_the_same_either_way(lab: Lab, probe_max_bytes: int) -> None:  # noqa: F811
    """Both ways find the same rows: equal means every column equal, null equal to null,
    NaN to NaN, -0.0 to 0.0, arrays and structs by their elements (a column name that needs
    quoting too)."""
    from featurekit.sinks.delta import _new_or_changed

    spark = lab.spark
    schema = "k long, `x.y` double, tags array<string>, s struct<a: int, b: string>"
    table = [(1, 1.0, ["a"], (1, "x")), (2, float("nan"), None, None), (None, 0.0, [], (2, None)),
             (4, 4.0, ["b", None], (4, "y")), (5, 5.0, ["c"], (5, "z"))]
    path = str(lab.lake / f"wm_new_or_changed_{probe_max_bytes}")
    spark.createDataFrame(table, schema).write.format("delta").save(path)  # type: ignore[attr-defined]
    result = [(1, 1.0, ["a"], (1, "x")),            # unchanged
              (2, float("nan"), None, None),        # unchanged: NaN and nulls compare equal
              (None, -0.0, [], (2, None)),          # unchanged: a null key, -0.0 == 0.0
              (4, 4.0, ["b", "c"], (4, "y")),       # changed inside the array
              (5, 5.0, ["c"], (5, None)),           # changed inside the struct
              (6, None, None, None)]                # new
    frame = spark.createDataFrame(result, schema)  # type: ignore[attr-defined]
    found = sorted(r["k"] for r in _new_or_changed(spark, frame, path, probe_max_bytes).collect())
    assert found == [4, 5, 6]
