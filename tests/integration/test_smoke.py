"""A first end-to-end run through the library on real Spark + Delta."""

from __future__ import annotations

import textwrap
from pathlib import Path

from deltalake import DeltaTable


def test_csv_to_delta_with_counted_filter(run_job, make_project) -> None:
    root: Path = make_project()
    raw = root / "data" / "raw" / "t"
    raw.mkdir(parents=True)
    (raw / "a.csv").write_text("id,v\n1,10\n2,-1\n3,5\n")
    result = run_job("smoke", textwrap.dedent("""
        name: smoke
        sources:
          t: {format: csv, path: "${raw_root}/t", options: {header: true}, schema: {id: long, v: long}}
        steps:
          - filter: "v >= 0"
        output: {path: "${lake_root}/smoke", mode: overwrite}
    """), root)
    assert result.sources[0]["rows_read"] == 3
    assert [(s.op, s.dropped) for s in result.steps] == [("filter", 1)]
    assert result.rows_out == 2 and result.table_version == 0
    table = DeltaTable(str(root / "data" / "lake" / "smoke"))
    assert sorted(table.to_pandas()["id"].tolist()) == [1, 3]
