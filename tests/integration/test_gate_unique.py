"""``unique`` checked two ways, on real Spark + Delta: rows held back by a key pre-pass (a
columnar source, a plan without a shuffle) and a window over every row (CSV sources, plans
that shuffle, or many rows sharing keys). Both must split the same rows the same way; the
held-back rows that pass are written into the same commit, and Delta's own counts agree.
"""

from __future__ import annotations

import textwrap
from typing import Any, Iterator

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from featurekit.errors import DataError
from featurekit.pipeline import GateFailed, RunResult
from featurekit.validation import unique
from tests.integration.helpers import Lab, lab, physical_plans, ts  # noqa: F401  (lab is a fixture)

META = ("_fk_run_id", "_fk_quarantined_at", "_fk_row_hash")
HELD = "repeated keys, held back"

# id (unique by ts): 1 three times (01-01 first), 2 twice, 3 once, null twice (nulls are one
# key, as in a window). region (unique, no order: a hash of the other columns decides):
# a three times, b twice, null twice, every other region once.
ROWS = [
    {"id": 1, "region": "a", "day": 1, "v": 10.0, "ts": ts("2024-01-02")},
    {"id": 1, "region": "a", "day": 2, "v": 11.0, "ts": ts("2024-01-01")},
    {"id": 1, "region": "a", "day": 3, "v": -1.0, "ts": ts("2024-01-03")},   # also fails v >= 0
    {"id": 2, "region": "b", "day": 1, "v": 20.0, "ts": ts("2024-01-01")},
    {"id": 2, "region": "b", "day": 2, "v": 21.0, "ts": ts("2024-01-02")},
    {"id": 3, "region": "c", "day": 1, "v": -3.0, "ts": ts("2024-01-01")},   # bad, key unique
    {"id": None, "region": None, "day": 5, "v": 5.0, "ts": ts("2024-01-01")},
    {"id": None, "region": None, "day": 6, "v": 6.0, "ts": ts("2024-01-02")},
    *({"id": 100 + i, "region": f"z{i}", "day": i, "v": float(i), "ts": ts("2024-01-01")} for i in range(40)),
]
SCHEMA = pa.schema([("id", pa.int64()), ("region", pa.string()), ("day", pa.int64()), ("v", pa.float64()),
                    ("ts", pa.timestamp("us"))])


def job(name: str, source: str, validate: str, output: str = "mode: overwrite") -> str:
    return (f"name: {name}\nsources:\n"
            f'  t: {{format: parquet, path: "${{raw_root}}/{source}"}}\n'
            f'steps:\n  - with_columns: {{v2: "v * 2"}}\n'
            f"validate:\n{textwrap.indent(textwrap.dedent(validate).strip(), '  ')}\n"
            f'output: {{path: "${{lake_root}}/{name}", {output}}}\n')


CHECKS = """
policy: quarantine
max_bad_fraction: 0.5
columns:
  v: {checks: {ge: 0}}
  region: {checks: {unique: true}}
unique: {keys: [id], order_by: ts}
"""


@pytest.fixture
def window_only() -> Iterator[None]:
    """Every uniqueness rule ranked by the window (the held-back method is never chosen)."""
    before = unique.HELD_ROWS_MAX
    unique.HELD_ROWS_MAX = -1
    yield
    unique.HELD_ROWS_MAX = before


def split(lab: Lab, name: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:  # noqa: F811
    good = lab.rows(name, by=["id", "day"])
    bad = [{k: v for k, v in r.items() if k not in META} for r in lab.rows(f"{name}_quarantine", by=["id", "day"])]
    return good, bad


def methods(result: RunResult) -> list[str]:
    return [u["method"] for u in result.gate["unique"]]


@pytest.fixture(scope="module")
def source(lab: Lab) -> str:  # noqa: F811
    lab.parquet("unique_in", pa.Table.from_pylist(ROWS, schema=SCHEMA))
    return "unique_in"


@pytest.mark.parametrize("output", ["mode: overwrite, partition_by: [region]", "mode: append",
                                    "mode: merge, keys: [id, day]"])
def test_held_back_and_window_split_the_rows_alike(lab: Lab, source: str, output: str,  # noqa: F811
                                                   request: pytest.FixtureRequest) -> None:
    tag = output.split(",")[0].split()[-1]
    held = lab.run(f"unique_held_{tag}", job(f"unique_held_{tag}", source, CHECKS, output))
    assert methods(held) == [HELD, HELD]
    # ids 1, 2, null; regions a, b, null: 7 rows held back for each rule (the same rows here)
    assert [(u["repeated_keys"], u["rows_held"]) for u in held.gate["unique"]] == [(3, 7), (3, 7)]
    good, bad = split(lab, f"unique_held_{tag}")
    if tag == "merge":  # again, into the existing table: the held rows that pass join the staged rows
        again = lab.run(f"unique_held_{tag}", job(f"unique_held_{tag}", source, CHECKS, output))
        assert methods(again) == [HELD, HELD]
        assert split(lab, f"unique_held_{tag}") == (good, bad)
        assert (again.rows_written, again.rows_quarantined) == (held.rows_written, held.rows_quarantined)
    else:
        assert held.commit_metrics["numOutputRows"] == held.rows_written   # Delta counted the late rows too

    request.getfixturevalue("window_only")
    window = lab.run(f"unique_window_{tag}", job(f"unique_window_{tag}", source, CHECKS, output))
    assert methods(window) == ["window", "window"]
    assert (good, bad) == split(lab, f"unique_window_{tag}")
    counts = {(c["check"], c["column"]): c["failures"] for c in held.gate["checks"]}
    assert counts == {(c["check"], c["column"]): c["failures"] for c in window.gate["checks"]}
    # id 1: two repeats; id 2: one; null: one — region a: two, b: one, null: one
    assert counts == {("unique", "id"): 4, ("unique", "region"): 4, ("ge", "v"): 2}
    assert len(good) + len(bad) == len(ROWS) == held.rows_written + held.rows_quarantined
    assert len({r["id"] for r in good}) == len(good) and len({r["region"] for r in good}) == len(good)
    assert all(r["v"] >= 0 for r in good)


def test_held_rows_of_a_refused_run_are_written_nowhere(lab: Lab, source: str) -> None:  # noqa: F811
    strict = CHECKS.replace("policy: quarantine", "policy: strict")
    error = lab.run_fails("unique_strict", job("unique_strict", source, strict), GateFailed)
    assert "policy strict: 7 row(s) break the checks" in str(error)
    assert not (lab.lake / "unique_strict").exists()
    assert not (lab.lake / "unique_strict_quarantine").exists()


def test_a_delta_source_is_read_again_at_the_same_version_and_counted_once(lab: Lab, source: str) -> None:  # noqa: F811
    lab.run("unique_copy", job("unique_copy", source, "policy: quarantine\nmax_bad_fraction: 1.0"))
    text = job("unique_from_delta", source, CHECKS).replace(
        f'{{format: parquet, path: "${{raw_root}}/{source}"}}', '{format: delta, path: "${lake_root}/unique_copy"}')
    result = lab.run("unique_from_delta", text)
    assert methods(result) == [HELD, HELD]
    [read] = result.sources
    assert (read["rows_read"], read["delta_version"]) == (len(ROWS), 0)
    assert result.rows_out == len(ROWS) == result.rows_written + result.rows_quarantined
    assert split(lab, "unique_from_delta") == split(lab, "unique_held_overwrite")


def test_the_sources_count_joins_the_gates_and_the_pre_pass_reads_the_result_as_built(  # noqa: F811
        lab: Lab, source: str, spark: object) -> None:
    """Nothing but projections between the source and the gate: the rows read are counted
    by the gate's observation, the one operator in the pass that splits Spark's generated
    code, and the key pre-pass reads the result's own plan, which holds no observation (the
    plan is not built a second time)."""
    with physical_plans(spark) as plans:
        result = lab.run("unique_one_node", job("unique_one_node", source, CHECKS))
    assert methods(result) == [HELD, HELD]
    assert result.sources[0]["rows_read"] == len(ROWS) == result.rows_out == result.rows_written + result.rows_quarantined
    nodes = [p.split("\n\n")[0].count("CollectMetrics") for p in plans]  # the operator tree atop each plan
    assert sorted(n for n in nodes if n) == [1]
    pre_pass = [p for p in plans if "xxhash64" in p and "WriteFiles" not in p and "CollectMetrics" not in p]
    assert pre_pass, "the key pre-pass ran no observation-free plan"
    write = next(p for p in plans if "CollectMetrics" in p)
    tree = write.split("\n\n")[0].splitlines()
    below = tree[next(i for i, line in enumerate(tree) if "CollectMetrics" in line) + 1]
    assert "Project" in below  # above the projections, not between the scan and them


def test_keys_repeated_across_files_are_found(lab: Lab, source: str) -> None:  # noqa: F811
    """Each file is its own partition, so the pre-pass's hashes reach the driver in several
    Arrow batches; the repeats between batches are found as within one."""
    table = pa.Table.from_pylist(ROWS, schema=SCHEMA)
    folder = lab.parquet("unique_files_in", table.slice(0, 4))  # id 1 three times, id 2 once; the rest in the next file
    pq.write_table(table.slice(4), folder / "part-1.parquet")
    result = lab.run("unique_files", job("unique_files", "unique_files_in", CHECKS))
    assert methods(result) == [HELD, HELD]
    assert [(u["repeated_keys"], u["rows_held"]) for u in result.gate["unique"]] == [(3, 7), (3, 7)]
    assert split(lab, "unique_files") == split(lab, "unique_held_overwrite")


def test_no_repeated_key_holds_nothing_back(lab: Lab) -> None:  # noqa: F811
    lab.parquet("unique_clean_in", pa.Table.from_pylist([r for r in ROWS if r["region"] and r["region"] > "b"], schema=SCHEMA))
    result = lab.run("unique_clean", job("unique_clean", "unique_clean_in", "columns:\n  region: {checks: {unique: true}}"))
    assert result.gate["unique"] == [{"keys": "region", "method": HELD, "repeated_keys": 0, "rows_held": 0}]
    assert result.rows_written == 41 and result.rows_quarantined == 0


@pytest.fixture
def few_held() -> Iterator[None]:
    before = unique.HELD_ROWS_MAX
    unique.HELD_ROWS_MAX = 6
    yield
    unique.HELD_ROWS_MAX = before


@pytest.mark.usefixtures("few_held")
def test_many_rows_on_repeated_keys_are_ranked_by_the_window(lab: Lab, source: str) -> None:  # noqa: F811
    result = lab.run("unique_many", job("unique_many", source, CHECKS))
    assert methods(result) == ["window", "window"]
    assert result.gate["unique"][0]["why"] == "7 rows share repeated keys (> 6)"
    assert split(lab, "unique_many") == split(lab, "unique_held_overwrite")


@pytest.mark.parametrize(("name", "source", "steps", "why"), [
    ("unique_csv", '{format: csv, path: "${raw_root}/unique_csv_in", options: {header: true}, schema: {id: long, v: double}}',
     '  - with_columns: {v2: "v * 2"}\n', "a source is read by CSVFileFormat (reading it twice costs a full parse)"),
    ("unique_agg", '{format: parquet, path: "${raw_root}/unique_in"}',
     '  - sql: "SELECT id, max(v) AS v FROM t GROUP BY id"\n', "the plan has a Aggregate (a shuffle, sort or limit)"),
])
def test_plans_that_are_costly_to_read_twice_use_the_window(lab: Lab, source: str, name: str,  # noqa: F811
                                                           steps: str, why: str) -> None:
    lab.csv("unique_csv_in", "id,v\n1,1.0\n1,2.0\n2,3.0\n")
    text = (f"name: {name}\nsources:\n  t: {source}\nsteps:\n{steps}"
            "validate:\n  max_bad_fraction: 0.5\n  columns:\n    id: {checks: {unique: true}}\n"
            f'output: {{path: "${{lake_root}}/{name}"}}\n')
    result = lab.run(name, text)
    assert result.gate["unique"] == [{"keys": "id", "method": "window", "why": why}]
    assert result.rows_quarantined == (1 if name == "unique_csv" else 0)


def test_late_rows_of_a_first_merge_run_are_held_to_its_keys(lab: Lab, source: str) -> None:  # noqa: F811
    """The first run of a merge job creates the table and refuses duplicate merge keys; the
    rows written after the pass are checked too. The merge key (v) is not the unique rule's
    key (id): the rows written in the pass have distinct values of v, but the first rows of
    ids 1, 2 and null, written after it (v 11, 20 and 5), repeat three of them."""
    checks = "policy: quarantine\nmax_bad_fraction: 0.5\nunique: {keys: [id], order_by: ts}"
    error = lab.run_fails("unique_merge_keys", job("unique_merge_keys", source, checks, "mode: merge, keys: [v]"),
                          DataError)
    assert "merge keys (v) are not unique in the result" in str(error)
    assert not (lab.lake / "unique_merge_keys").exists()
