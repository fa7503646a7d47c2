"""Every source format and every step op (but ``aggregate``, see test_aggregate_windows.py)
run on real Spark + Delta; results are read back with delta-rs.

One project for the module: each test names its own job (and so its own output table).
"""

from __future__ import annotations

import re

import pyarrow as pa
import pytest
from deltalake import write_deltalake

from featurekit.pipeline import StepCount
from tests.integration.helpers import Lab, lab, no_size_based_broadcast, physical_plans, ts  # noqa: F401  (lab is a fixture)

PEOPLE = """
    id,name,city,score,at
    1,ann,berlin,10,2024-01-01T10:00:00Z
    2,bob,paris,,2024-01-01T11:00:00Z
    3,cid,berlin,30,2024-01-01T12:00:00Z
    4,dan,,-5,2024-01-01T13:00:00Z
"""
PEOPLE_SOURCE = (
    '  people: {format: csv, path: "${raw_root}/people", options: {header: true},\n'
    "           schema: {id: long, name: string, city: string, score: long, at: timestamp}}\n"
)
CITIES_SOURCE = '  cities: {format: csv, path: "${raw_root}/cities", options: {header: true}}\n'
ANN = {"id": 1, "name": "ann", "city": "berlin", "score": 10, "at": ts("2024-01-01 10:00:00")}
BOB = {"id": 2, "name": "bob", "city": "paris", "score": None, "at": ts("2024-01-01 11:00:00")}
CID = {"id": 3, "name": "cid", "city": "berlin", "score": 30, "at": ts("2024-01-01 12:00:00")}
DAN = {"id": 4, "name": "dan", "city": None, "score": -5, "at": ts("2024-01-01 13:00:00")}


def job(name: str, steps: str, sources: str = "") -> str:
    """A job over the ``people`` csv (plus ``sources``, YAML lines) writing ``lake/<name>``."""
    return (
        f"name: {name}\nsources:\n{PEOPLE_SOURCE}{sources}steps:\n{steps}"
        f'output: {{path: "${{lake_root}}/{name}", mode: overwrite}}\n'
    )


def counts(result: object) -> list[tuple[int, str, int | None, int | None, int | None]]:
    return [(s.index, s.op, s.rows_in, s.rows_out, s.dropped) for s in result.steps]  # type: ignore[attr-defined]


@pytest.fixture(scope="module", autouse=True)
def inputs(lab: Lab) -> None:  # noqa: F811
    lab.csv("people", PEOPLE)
    lab.csv("cities", """
        city,country
        berlin,DE
        paris,FR
        rome,IT
    """)


# --------------------------------------------------------------------------- sources


def test_csv_source_with_schema_and_header(lab: Lab) -> None:  # noqa: F811
    result = lab.run("src_csv", job("src_csv", "  []\n"))
    assert result.status == "succeeded"
    assert result.sources == [{"name": "people", "format": "csv", "path": str(lab.raw / "people"),
                               "delta_version": None, "rows_read": 4, "rows_malformed": 0, "rows_parsed": 4}]
    assert result.rows_out == 4 and result.table_version == 0
    assert lab.columns("src_csv") == [("id", "long"), ("name", "string"), ("city", "string"),
                                      ("score", "long"), ("at", "timestamp")]
    # the header line is not a row; empty fields are nulls; ISO timestamps parse in UTC
    assert lab.rows("src_csv") == [ANN, BOB, CID, DAN]


def test_csv_records_malformed_in_columns_no_step_uses_are_still_found(lab: Lab) -> None:  # noqa: F811
    """Spark parses only the columns a query needs, and checks the field count only when it
    needs them all: a bad number in a column the steps drop, a short line and a long line
    are malformed records all the same (quarantined with their raw text, not kept)."""
    lab.csv("people_bad", PEOPLE + "    5,eve,oslo,notanumber,2024-01-02T00:00:00Z\n    6,fay\n"
                                   "    7,gus,rome,70,2024-01-03T00:00:00Z,surplus\n")
    source = PEOPLE_SOURCE.replace("people:", "people_bad:").replace("/people", "/people_bad")
    result = lab.run("src_csv_unused", f"name: src_csv_unused\nsources:\n{source}steps:\n  - select: [id, name]\n"
                                       "validate: {max_bad_fraction: 0.5}\n"
                                       'output: {path: "${lake_root}/src_csv_unused", mode: overwrite}\n')
    assert (result.sources[0]["rows_read"], result.sources[0]["rows_malformed"]) == (7, 3)
    assert [r["id"] for r in lab.rows("src_csv_unused", by=["id"])] == [1, 2, 3, 4]
    raw = sorted(r["_fk_raw"] for r in lab.rows("src_csv_unused_quarantine", by=["_fk_raw"]))
    assert raw == ["5,eve,oslo,notanumber,2024-01-02T00:00:00Z", "6,fay", "7,gus,rome,70,2024-01-03T00:00:00Z,surplus"]


def test_json_lines_source_with_schema(lab: Lab) -> None:  # noqa: F811
    lab.jsonl("events_json", [
        {"id": 1, "kind": "open", "value": 1.5},
        {"id": 2, "kind": "close"},                       # no value -> null
        {"id": 3, "kind": "open", "value": 4, "extra": "ignored"},
    ])
    result = lab.run("src_json", """
        name: src_json
        sources:
          ev: {format: json, path: "${raw_root}/events_json", schema: {id: long, kind: string, value: double}}
        output: {path: "${lake_root}/src_json", mode: overwrite}
    """)
    assert result.sources[0]["rows_read"] == 3
    assert lab.columns("src_json") == [("id", "long"), ("kind", "string"), ("value", "double")]
    assert lab.rows("src_json") == [
        {"id": 1, "kind": "open", "value": 1.5},
        {"id": 2, "kind": "close", "value": None},
        {"id": 3, "kind": "open", "value": 4.0},
    ]


def test_parquet_source_keeps_its_types(lab: Lab) -> None:  # noqa: F811
    lab.parquet("things_pq", pa.table({
        "id": pa.array([1, 2], pa.int64()),
        "n": pa.array([7, None], pa.int32()),
        "label": pa.array(["x", "y"]),
    }))
    result = lab.run("src_parquet", """
        name: src_parquet
        sources:
          things: {format: parquet, path: "${raw_root}/things_pq"}
        output: {path: "${lake_root}/src_parquet", mode: overwrite}
    """)
    assert result.sources[0]["rows_read"] == 2
    assert lab.columns("src_parquet") == [("id", "long"), ("n", "integer"), ("label", "string")]
    assert lab.rows("src_parquet") == [{"id": 1, "n": 7, "label": "x"}, {"id": 2, "n": None, "label": "y"}]


DELTA_JOB = """
    name: {name}
    sources:
      d: {{format: delta, path: "${{raw_root}}/delta_in"{version}}}
    output: {{path: "${{lake_root}}/{name}", mode: overwrite}}
"""


def test_delta_source_pins_latest_version_and_time_travels(lab: Lab) -> None:  # noqa: F811
    # the source table is written by delta-rs: version 0 has two rows, version 1 appends one
    path = str(lab.raw / "delta_in")
    write_deltalake(path, pa.table({"id": pa.array([1, 2], pa.int64()), "s": ["a", "b"]}))
    write_deltalake(path, pa.table({"id": pa.array([3], pa.int64()), "s": ["c"]}), mode="append")

    latest = lab.run("src_delta_latest", DELTA_JOB.format(name="src_delta_latest", version=""))
    assert latest.sources == [{"name": "d", "format": "delta", "path": path, "delta_version": 1, "rows_read": 3, "rows_malformed": 0, "rows_parsed": 3}]
    assert lab.rows("src_delta_latest") == [{"id": 1, "s": "a"}, {"id": 2, "s": "b"}, {"id": 3, "s": "c"}]

    pinned = lab.run("src_delta_v0", DELTA_JOB.format(name="src_delta_v0", version=", version: 0"))
    assert pinned.sources[0]["delta_version"] == 0 and pinned.sources[0]["rows_read"] == 2
    assert lab.rows("src_delta_v0") == [{"id": 1, "s": "a"}, {"id": 2, "s": "b"}]


# --------------------------------------------------------------------------- sql


def test_sql_over_input_and_another_source_chained(lab: Lab) -> None:  # noqa: F811
    result = lab.run("op_sql", job("op_sql", (
        '  - sql: "SELECT p.id, p.name, c.country FROM input p JOIN cities c ON p.city = c.city"\n'
        '  - sql: "SELECT country, count(*) AS people, max(input.id) AS last_id FROM input GROUP BY country"\n'
    ), sources=CITIES_SOURCE))
    # ann, cid in berlin (DE); bob in paris (FR); dan has no city; nobody in rome
    assert lab.rows("op_sql") == [
        {"country": "DE", "people": 2, "last_id": 3},
        {"country": "FR", "people": 1, "last_id": 2},
    ]
    assert [(s["name"], s["rows_read"]) for s in result.sources] == [("people", 4), ("cities", 3)]
    # the views a run registers do not outlive it
    catalog = lab.spark.catalog  # type: ignore[attr-defined]
    assert not any(catalog.tableExists(v) for v in ("input", "people", "cities"))


# --------------------------------------------------------------------------- filter


def test_filter_counts_drops_and_nulls_are_dropped(lab: Lab) -> None:  # noqa: F811
    result = lab.run("op_filter", job("op_filter", (
        '  - filter: "score >= 0"\n'          # bob (score null) and dan (-5) go
        "  - filter: \"name <> 'cid'\"\n"
    )))
    assert counts(result) == [(0, "filter", 4, 2, 2), (1, "filter", 2, 1, 1)]
    assert result.rows_out == 1
    assert lab.rows("op_filter") == [ANN]


def test_filters_after_a_source_are_counted_by_the_sources_observation(lab: Lab, spark: object) -> None:  # noqa: F811
    """Each observation is an operator that splits Spark's generated code: the two filters
    are counted inside the source's observation, and the dedup's output together with the
    join's input, so the write runs four observations for ten count points."""
    with physical_plans(spark) as plans:
        result = lab.run("op_filter_chain", job("op_filter_chain", (
            '  - filter: "score >= 0"\n'          # bob (null) and dan (-5) go
            "  - filter: \"name <> 'zed'\"\n"
            "  - dedup: {keys: [city], order_by: at}\n"
            "  - join: {source: cities, on: [city], how: inner}\n"
        ), sources=CITIES_SOURCE))
    assert counts(result) == [(0, "filter", 4, 2, 2), (1, "filter", 2, 2, 0), (2, "dedup", 2, 1, 1), (3, "join", 1, 1, 0)]
    assert result.sources[0]["rows_read"] == 4 and result.rows_out == 1
    prefix = f"fk_{result.run_id.replace('-', '_')}_"
    observed = {m for p in plans for m in re.findall(re.escape(prefix) + r"(\w+)", p)}
    assert observed == {"source_people", "source_cities", "step2_out", "step3_out"}


def test_a_nondeterministic_filter_is_counted_after_itself(lab: Lab) -> None:  # noqa: F811
    """rand() counted elsewhere would draw other values: its output gets its own count,
    and the accounting (which would fail the run) adds up."""
    result = lab.run("op_filter_rand", job("op_filter_rand", (
        '  - filter: "id > 1"\n'
        '  - filter: "rand(3) < 0.5"\n'
    )))
    (_, _, in0, out0, _), (_, _, in1, out1, dropped) = counts(result)
    assert (in0, out0, in1) == (4, 3, 3)
    assert out1 == len(lab.rows("op_filter_rand")) == result.rows_written and dropped == 3 - out1


def test_sql_reads_the_first_source_after_a_filter_counted_in_its_observation(lab: Lab) -> None:  # noqa: F811
    result = lab.run("op_filter_sql", job("op_filter_sql", (
        '  - filter: "score >= 0"\n'
        "  - sql: SELECT i.id, (SELECT count(*) FROM people) AS everyone FROM input i\n"
    )))
    assert counts(result) == [(0, "filter", 4, 2, 2)]
    assert lab.rows("op_filter_sql", by=["id"]) == [{"id": 1, "everyone": 4}, {"id": 3, "everyone": 4}]


def _below_each_count(plans: list[str], prefix: str) -> dict[str, str]:
    """For each observation of the run: the operator right below it in the physical plan."""
    below = {}
    for plan in plans:
        tree = plan.split("\n\n")[0].splitlines()
        for i, line in enumerate(tree):
            if "CollectMetrics" in line:
                number = line.split("(")[-1].rstrip(")")
                details = plan.split(f"({number}) CollectMetrics")[1].split("\n\n")[0]
                name = re.search(re.escape(prefix) + r"(\w+)", details)
                below[name.group(1) if name else "?"] = tree[i + 1].split("- ")[-1].strip() if i + 1 < len(tree) else ""
    return below


def test_a_sources_count_moves_above_the_projections_that_follow_it(lab: Lab, spark: object) -> None:  # noqa: F811
    """Counted right after a columnar scan, a source's observation would split the generated
    code between the scan and the projections; it is placed above them (the same rows)."""
    lab.parquet("people_pq", pa.table({"id": pa.array([1, 2, 3], pa.int64()), "score": pa.array([10, None, 30])}))
    steps = ('  - with_columns: {double: "score * 2"}\n'
             "  - select: [id, double]\n"
             "  - rename: {double: twice}\n")
    with physical_plans(spark) as plans:
        result = lab.run("op_count_above", f"name: op_count_above\nsources:\n"
                         f'  people: {{format: parquet, path: "${{raw_root}}/people_pq"}}\nsteps:\n{steps}'
                         'output: {path: "${lake_root}/op_count_above", mode: overwrite}\n')
    assert result.sources[0]["rows_read"] == 3 and result.rows_written == 3
    assert _below_each_count(plans, f"fk_{result.run_id.replace('-', '_')}_") == {"source_people": "* Project (3)"}
    assert lab.rows("op_count_above", by=["id"]) == [{"id": 1, "twice": 20}, {"id": 2, "twice": None},
                                                     {"id": 3, "twice": 60}]


def test_a_select_that_explodes_rows_is_counted_after_the_source_not_above_it(lab: Lab) -> None:  # noqa: F811
    """A ``select`` may make more rows (a generator) or fewer (an aggregate): the source's
    count then stays below it, and the accounting still adds up."""
    explode = "  - with_columns: {one: '1'}\n  - select: [id, 'explode(array(1, 2)) AS k']\n"
    exploded = lab.run("op_select_explode", job("op_select_explode", explode))
    assert exploded.sources[0]["rows_read"] == 4 and exploded.rows_written == 8
    assert counts(exploded) == [(1, "select", 4, 8, None)]
    assert exploded.steps[0].note == "4 row(s) in, 8 out: a generator made more"
    totals = lab.run("op_select_agg", job("op_select_agg", "  - select: [count(*) AS n, sum(score) AS total]\n"))
    assert totals.sources[0]["rows_read"] == 4 and totals.rows_written == 1
    assert counts(totals) == [(0, "select", 4, 1, None)]
    assert lab.rows("op_select_agg") == [{"n": 4, "total": 35}]
    # a columnar source, whose count would move above a projection
    lab.parquet("people_explode_pq", pa.table({"id": pa.array([1, 2, 3], pa.int64())}))
    columnar = lab.run("op_select_explode_pq", "name: op_select_explode_pq\nsources:\n"
                       '  people: {format: parquet, path: "${raw_root}/people_explode_pq"}\nsteps:\n'
                       f"{explode}output: {{path: \"${{lake_root}}/op_select_explode_pq\", mode: overwrite}}\n")
    assert columnar.sources[0]["rows_read"] == 3 and columnar.rows_written == 6
    assert counts(columnar) == [(1, "select", 3, 6, None)]


def test_a_filter_right_after_the_source_may_read_it_by_name(lab: Lab) -> None:  # noqa: F811
    """The filter is counted inside the source's observation, not yet placed: its subquery
    reads the source as read."""
    result = lab.run("op_filter_subquery", job("op_filter_subquery",
                                               '  - filter: "score >= (SELECT avg(score) FROM people)"\n'))
    assert counts(result) == [(0, "filter", 4, 1, 3)]   # avg 11.67: ann (10), bob (null) and dan (-5) go
    assert result.sources[0]["rows_read"] == 4 and lab.rows("op_filter_subquery") == [CID]


def test_a_projection_may_read_the_first_source_by_name(lab: Lab) -> None:  # noqa: F811
    """A subquery in a step reads the source as read (its view), once; the rows the job reads
    are counted on the running frame, above the projection."""
    lab.parquet("people_top_pq", pa.table({"id": pa.array([1, 2, 3], pa.int64()), "score": pa.array([10, None, 30])}))
    result = lab.run("op_projection_subquery", "name: op_projection_subquery\nsources:\n"
                     '  people: {format: parquet, path: "${raw_root}/people_top_pq"}\nsteps:\n'
                     '  - with_columns: {top: "(SELECT max(score) FROM people)"}\n'
                     'output: {path: "${lake_root}/op_projection_subquery", mode: overwrite}\n')
    assert result.sources[0]["rows_read"] == 3 and result.rows_written == 3
    assert [r["top"] for r in lab.rows("op_projection_subquery")] == [30, 30, 30]


def test_sql_reading_the_first_source_by_name_after_a_projection_still_counts_it(lab: Lab) -> None:  # noqa: F811
    """A later step reads the source through its view, not through the running frame: the
    source's count stays with the source, or the rows read would never be counted."""
    lab.parquet("people_sql_pq", pa.table({"id": pa.array([1, 2, 3], pa.int64()), "score": pa.array([10, None, 30])}))
    result = lab.run("op_sql_by_name", "name: op_sql_by_name\nsources:\n"
                     '  people: {format: parquet, path: "${raw_root}/people_sql_pq"}\nsteps:\n'
                     '  - with_columns: {double: "score * 2"}\n'
                     "  - sql: SELECT count(*) AS n FROM people\n"
                     'output: {path: "${lake_root}/op_sql_by_name", mode: overwrite}\n')
    assert result.sources[0]["rows_read"] == 3 and result.rows_written == 1
    assert lab.rows("op_sql_by_name") == [{"n": 3}]


# --------------------------------------------------------------------------- with_columns


def test_with_columns_adds_and_replaces(lab: Lab) -> None:  # noqa: F811
    lab.run("op_with_columns", job("op_with_columns", (
        "  - with_columns:\n"
        '      score: "coalesce(score, 0) * 2"\n'
        "      label: \"concat(name, '@', coalesce(city, '?'))\"\n"
    )))
    assert [c for c, _ in lab.columns("op_with_columns")] == ["id", "name", "city", "score", "at", "label"]
    got = [(r["id"], r["score"], r["label"]) for r in lab.rows("op_with_columns")]
    assert got == [(1, 20, "ann@berlin"), (2, 0, "bob@paris"), (3, 60, "cid@berlin"), (4, -10, "dan@?")]


# --------------------------------------------------------------------------- dedup

VERSIONS = """
    key,ver,sub,val
    a,1,1,a1
    a,3,1,a3
    a,2,1,a2
    b,1,2,b12
    b,1,1,b11
    b,,9,bnull
    b,0,5,b05
    c,5,1,c5
"""


def dedup_job(name: str, args: str) -> str:
    return f"""
        name: {name}
        sources:
          v: {{format: csv, path: "${{raw_root}}/versions", options: {{header: true}},
              schema: {{key: string, ver: long, sub: long, val: string}}}}
        steps:
          - dedup: {args}
        output: {{path: "${{lake_root}}/{name}", mode: overwrite}}
    """


def kept(lab: Lab, name: str) -> dict[str, str]:  # noqa: F811
    return {r["key"]: r["val"] for r in lab.rows(name)}


def test_dedup_keep_last_by_one_column(lab: Lab) -> None:  # noqa: F811
    lab.csv("versions", VERSIONS)
    result = lab.run("dedup_last", dedup_job("dedup_last", "{keys: [key], order_by: ver}"))
    assert counts(result) == [(0, "dedup", 8, 3, 5)]
    got = kept(lab, "dedup_last")
    assert got["a"] == "a3" and got["c"] == "c5"
    # b ties on ver=1 (either may win, as documented); a null ver is never the latest
    assert got["b"] in {"b12", "b11"}


def test_dedup_order_by_list_keep_last_and_first(lab: Lab) -> None:  # noqa: F811
    lab.csv("versions", VERSIONS)
    last = lab.run("dedup_list_last", dedup_job("dedup_list_last", "{keys: [key], order_by: [ver, sub], keep: last}"))
    assert kept(lab, "dedup_list_last") == {"a": "a3", "b": "b12", "c": "c5"}   # (1, 2) beats (1, 1)
    first = lab.run("dedup_list_first", dedup_job("dedup_list_first", "{keys: [key], order_by: [ver, sub], keep: first}"))
    assert kept(lab, "dedup_list_first") == {"a": "a1", "b": "b05", "c": "c5"}  # ver 0; the null ver is not first
    assert counts(last) == counts(first) == [(0, "dedup", 8, 3, 5)]


def test_dedup_without_order_by_keeps_one_row_per_key(lab: Lab) -> None:  # noqa: F811
    lab.csv("versions", VERSIONS)
    result = lab.run("dedup_any", dedup_job("dedup_any", "{keys: [key]}"))
    assert counts(result) == [(0, "dedup", 8, 3, 5)]
    got = kept(lab, "dedup_any")
    assert got["a"] in {"a1", "a2", "a3"} and got["b"] in {"b12", "b11", "bnull", "b05"} and got["c"] == "c5"


# --------------------------------------------------------------------------- join

ORDERS = """
    order_id,cust,amount
    o1,c1,10
    o2,c2,20
    o3,c9,30
    o4,,40
"""


def join_job(name: str, args: str, customers: str = "customers") -> str:
    return f"""
        name: {name}
        sources:
          orders: {{format: csv, path: "${{raw_root}}/orders", options: {{header: true}},
                   schema: {{order_id: string, cust: string, amount: long}}}}
          customers: {{format: csv, path: "${{raw_root}}/{customers}", options: {{header: true}},
                      schema: {{cust: string, cname: string}}}}
        steps:
          - join: {args}
        output: {{path: "${{lake_root}}/{name}", mode: overwrite}}
    """


@pytest.fixture(scope="module")
def orders(lab: Lab) -> None:  # noqa: F811
    lab.csv("orders", ORDERS)
    lab.csv("customers", """
        cust,cname
        c1,Ann
        c2,Bob
        c3,Cid
    """)


FULL = [
    {"cust": "c1", "order_id": "o1", "amount": 10, "cname": "Ann"},
    {"cust": "c2", "order_id": "o2", "amount": 20, "cname": "Bob"},
    {"cust": "c9", "order_id": "o3", "amount": 30, "cname": None},
    {"cust": None, "order_id": "o4", "amount": 40, "cname": None},
]


@pytest.mark.parametrize(("how", "broadcast", "expected", "columns"), [
    ("inner", False, FULL[:2], ["cust", "order_id", "amount", "cname"]),
    ("inner", True, FULL[:2], ["cust", "order_id", "amount", "cname"]),
    ("left", False, FULL, ["cust", "order_id", "amount", "cname"]),
    ("semi", False, [{k: r[k] for k in ("order_id", "cust", "amount")} for r in FULL[:2]], ["cust", "order_id", "amount"]),
    # a null key matches nothing, so o4 survives the anti join
    ("anti", True, [{k: r[k] for k in ("order_id", "cust", "amount")} for r in FULL[2:]], ["cust", "order_id", "amount"]),
])
def test_join(lab: Lab, orders: None, how: str, broadcast: bool, expected: list[dict], columns: list[str]) -> None:  # noqa: F811
    name = f"join_{how}_{'b' if broadcast else 'n'}"
    result = lab.run(name, join_job(name, f"{{source: customers, on: [cust], how: {how}, broadcast: {str(broadcast).lower()}}}"))
    assert counts(result) == [(0, "join", 4, len(expected), 4 - len(expected))]
    assert [c for c, _ in lab.columns(name)] == columns
    assert lab.rows(name, by=["order_id"]) == expected


@pytest.mark.parametrize("broadcast", [True, False])
def test_broadcast_hint_makes_a_broadcast_join(lab: Lab, orders: None, broadcast: bool) -> None:  # noqa: F811
    """With Spark's own size-based broadcasting off, only the hint can make a broadcast join."""
    name = f"join_hint_{str(broadcast).lower()}"
    with no_size_based_broadcast(lab.spark), physical_plans(lab.spark) as plans:
        lab.run(name, join_job(name, f"{{source: customers, on: [cust], broadcast: {str(broadcast).lower()}}}"))
    joins = [p for p in plans if "Join" in p]
    assert joins
    assert all(("BroadcastHashJoin" in p) == broadcast and ("SortMergeJoin" in p) != broadcast for p in joins)
    assert lab.rows(name, by=["order_id"]) == FULL[:2]


def test_join_on_repeated_key_multiplies_rows_and_counts_show_it(lab: Lab, orders: None) -> None:  # noqa: F811
    lab.csv("customers_twice", """
        cust,cname
        c1,Ann
        c1,Anne
    """)
    result = lab.run("join_multi", join_job("join_multi", "{source: customers, on: [cust], how: left}", "customers_twice"))
    step = result.steps[0]
    assert (step.rows_in, step.rows_out) == (4, 5)
    assert sorted(r["cname"] or "-" for r in lab.rows("join_multi")) == ["-", "-", "-", "Ann", "Anne"]


# --------------------------------------------------------------------------- column ops


def test_select_plain_columns_in_order(lab: Lab) -> None:  # noqa: F811
    lab.run("op_select", job("op_select", "  - select: [name, id]\n"))
    assert lab.columns("op_select") == [("name", "string"), ("id", "long")]
    assert lab.rows("op_select", by=["id"]) == [{"name": n, "id": i} for i, n in enumerate(["ann", "bob", "cid", "dan"], 1)]


def test_select_with_expressions(lab: Lab) -> None:  # noqa: F811
    lab.run("op_select_expr", job("op_select_expr", '  - select: [id, "score * 10 AS score10", "upper(name) AS name_up"]\n'))
    assert [c for c, _ in lab.columns("op_select_expr")] == ["id", "score10", "name_up"]
    assert lab.rows("op_select_expr") == [
        {"id": 1, "score10": 100, "name_up": "ANN"},
        {"id": 2, "score10": None, "name_up": "BOB"},
        {"id": 3, "score10": 300, "name_up": "CID"},
        {"id": 4, "score10": -50, "name_up": "DAN"},
    ]


def test_rename(lab: Lab) -> None:  # noqa: F811
    lab.run("op_rename", job("op_rename", "  - rename: {name: person, score: points}\n"))
    assert [c for c, _ in lab.columns("op_rename")] == ["id", "person", "city", "points", "at"]
    assert lab.rows("op_rename")[0] == {"id": 1, "person": "ann", "city": "berlin", "points": 10, "at": ANN["at"]}


def test_cast(lab: Lab) -> None:  # noqa: F811
    lab.run("op_cast", job("op_cast", "  - cast: {score: double, id: string, at: date}\n"))
    assert lab.columns("op_cast") == [("id", "string"), ("name", "string"), ("city", "string"),
                                      ("score", "double"), ("at", "date")]
    row = lab.rows("op_cast")[0]
    assert (row["id"], row["score"], str(row["at"])) == ("1", 10.0, "2024-01-01")


def test_drop(lab: Lab) -> None:  # noqa: F811
    lab.run("op_drop", job("op_drop", "  - drop: [city, at]\n"))
    assert lab.rows("op_drop") == [{k: r[k] for k in ("id", "name", "score")} for r in (ANN, BOB, CID, DAN)]


def test_fill_null(lab: Lab) -> None:  # noqa: F811
    lab.run("op_fill_null", job("op_fill_null", (
        "  - cast: {score: double}\n"
        "  - fill_null: {score: 0, city: unknown}\n"        # an int literal into a double column
    )))
    got = [(r["id"], r["city"], r["score"]) for r in lab.rows("op_fill_null")]
    assert got == [(1, "berlin", 10.0), (2, "paris", 0.0), (3, "berlin", 30.0), (4, "unknown", -5.0)]
    assert ("score", "double") in lab.columns("op_fill_null")


# --------------------------------------------------------------------------- union


def test_union_by_name_matches_columns_in_any_order(lab: Lab) -> None:  # noqa: F811
    lab.csv("people_more", """
        at,score,city,name,id
        2024-01-02T09:00:00Z,50,rome,eve,5
    """)
    result = lab.run("op_union_name", job("op_union_name", "  - union: {source: more}\n", sources=(
        '  more: {format: csv, path: "${raw_root}/people_more", options: {header: true},\n'
        "         schema: {at: timestamp, score: long, city: string, name: string, id: long}}\n"
    )))
    assert result.rows_out == 5
    assert lab.rows("op_union_name") == [ANN, BOB, CID, DAN,
                                         {"id": 5, "name": "eve", "city": "rome", "score": 50, "at": ts("2024-01-02 09:00:00")}]


def test_union_allow_missing_fills_nulls(lab: Lab) -> None:  # noqa: F811
    lab.csv("people_min", """
        id,name
        6,fay
    """)
    lab.run("op_union_missing", job("op_union_missing", "  - union: {source: few, allow_missing: true}\n", sources=(
        '  few: {format: csv, path: "${raw_root}/people_min", options: {header: true}, schema: {id: long, name: string}}\n'
    )))
    assert lab.rows("op_union_missing")[-1] == {"id": 6, "name": "fay", "city": None, "score": None, "at": None}
    assert len(lab.rows("op_union_missing")) == 5


def test_union_by_position_takes_the_first_frames_names(lab: Lab) -> None:  # noqa: F811
    lab.csv("people_pos", """
        pid,pname,pcity,pscore,pat
        7,gus,oslo,70,2024-01-03T00:00:00Z
    """)
    lab.run("op_union_pos", job("op_union_pos", "  - union: {source: pos, by_name: false}\n", sources=(
        '  pos: {format: csv, path: "${raw_root}/people_pos", options: {header: true},\n'
        "        schema: {pid: long, pname: string, pcity: string, pscore: long, pat: timestamp}}\n"
    )))
    assert [c for c, _ in lab.columns("op_union_pos")] == ["id", "name", "city", "score", "at"]
    assert lab.rows("op_union_pos")[-1] == {"id": 7, "name": "gus", "city": "oslo", "score": 70, "at": ts("2024-01-03 00:00:00")}


def test_step_counts_are_reported_only_for_counting_ops(lab: Lab) -> None:  # noqa: F811
    """with_columns / select / rename ... do not change row counts and are not listed."""
    result = lab.run("op_mixed", job("op_mixed", (
        '  - with_columns: {s2: "score * 2"}\n'
        '  - filter: "s2 > 0"\n'
        "  - rename: {s2: doubled}\n"
        "  - dedup: {keys: [city], order_by: doubled}\n"
        "  - select: [city, doubled]\n"
    )))
    assert result.steps == [StepCount(1, "filter", 4, 2, 2, ""), StepCount(3, "dedup", 2, 1, 1, "")]
    assert lab.rows("op_mixed") == [{"city": "berlin", "doubled": 60}]
