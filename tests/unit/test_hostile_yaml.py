"""Whatever the bytes of a job spec or a conf file, reading it ends in problems with the file and
line (exit 2), never in a crash: encodings, control characters, YAML tags, alias bombs and
cycles, deep nesting, numbers too long to read, impossible dates, ``${`` left open."""

from __future__ import annotations

from pathlib import Path

import pytest

from featurekit.cli import main
from featurekit.config import Project, load_settings
from featurekit.errors import ConfigError
from featurekit.spec.loader import parse_job

REPO = Path(__file__).resolve().parents[2]
VARIABLES = {"raw_root": "/data/raw", "lake_root": "/data/lake"}
VALID = (b"name: job\nsources:\n  trips: {format: csv, path: \"/data/trips\"}\n"
         b"steps:\n  - filter: \"fare > 0\"\noutput:\n  path: /data/out\n")
BOMB = (b'a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n'
        + b"".join(f"{c}: &{c} [{', '.join([f'*{p}'] * 10)}]\n".encode() for p, c in zip("abcdefgh", "bcdefghi")))

# (what, the file's bytes, the one problem line expected)
CASES = [
    ("latin-1 byte", VALID.replace(b"/data/out", b"/donn\xe9es"),
     "jobs/job.yaml:7:14: not UTF-8: byte 0xe9 cannot be read here (a binary file, or text saved in another "
     "encoding?); save the file as UTF-8"),
    ("utf-16", VALID.decode().encode("utf-16"), "jobs/job.yaml:1:1: the file is UTF-16; save it as UTF-8"),
    ("binary", b"\x7fELF\x02\x01\x01\x00\x00\x00", "jobs/job.yaml:1:1: character U+007F is not allowed in YAML "
     "(a binary file, or text in another encoding?)"),
    ("nul byte", VALID.replace(b"fare > 0", b"fare\x00> 0"), "jobs/job.yaml:5:18: character U+0000 is not allowed "
     "in YAML (a binary file, or text in another encoding?)"),
    ("python tag", VALID.replace(b"name: job", b"name: !!python/object/apply:os.system [echo]"),
     "jobs/job.yaml:1:7: YAML tag '!!python/object/apply:os.system' is not supported: featurekit reads plain "
     "values (strings, numbers, true/false, lists, mappings); remove the tag"),
    ("custom tag", VALID.replace(b"trips: {", b"trips: !source {"),
     "jobs/job.yaml:3:10: YAML tag '!source' is not supported: featurekit reads plain values (strings, numbers, "
     "true/false, lists, mappings); remove the tag"),
    ("binary tag", VALID + b"description: !!binary aGk=\n",
     "jobs/job.yaml:8:14: YAML tag '!!binary' is not supported: featurekit reads plain values (strings, numbers, "
     "true/false, lists, mappings); remove the tag"),
    ("core tag on a list", VALID.replace(b"trips: {", b"trips: !!str {"),
     "jobs/job.yaml:3:10: YAML tag '!!str' cannot tag a mapping; remove the tag"),
    ("value not fitting its tag", VALID + b"owner: !!bool maybe\n", "jobs/job.yaml:8:8: cannot read 'maybe' as !!bool"),
    ("alias bomb", BOMB + VALID, "jobs/job.yaml:4:36: YAML aliases expand this document to more than 10000 values "
     "(at *c); refusing it as an alias bomb: repeat less, or write the values out"),
    ("alias cycle", VALID + b"description: &d [1, *d]\n",
     "jobs/job.yaml:8:21: alias *d refers to a list or mapping that contains it (a cycle)"),
    ("deep nesting", VALID + b"description: " + b"[" * 100 + b"]" * 100 + b"\n",
     "jobs/job.yaml:8:77: lists and mappings nest more than 64 levels deep here"),
    ("huge int", VALID + b"owner: " + b"7" * 5000 + b"\n", "jobs/job.yaml:8:8: a number of 5000 digits is too long to read"),
    ("impossible date", VALID + b"incremental: {start: 2026-13-01}\n",
     "jobs/job.yaml:8:22: cannot read '2026-13-01': month must be in 1..12"),
    ("unclosed variable", VALID.replace(b"/data/trips", b"${raw_root/trips"),
     "jobs/job.yaml:3:30 sources.trips.path: '${' without its '}' (at character 1: '${raw_root/trips'); "
     "write ${name}, or $$ for a literal $"),
    ("list, not mapping", b"- name: job\n", "jobs/job.yaml:1:1: expected a mapping of job keys (name, sources, steps, "
     "output); got a list"),
]


@pytest.mark.parametrize(("what", "data", "expected"), CASES, ids=[case[0] for case in CASES])
def test_hostile_job_file_gets_one_located_problem(tmp_path: Path, what: str, data: bytes, expected: str) -> None:
    path = tmp_path / "job.yaml"
    path.write_bytes(data)

    job, problems = parse_job(path, VARIABLES, shown_as="jobs/job.yaml")

    assert job is None
    assert [str(p) for p in problems] == [expected]


def test_escaped_dollar_before_a_brace_is_a_literal(tmp_path: Path) -> None:
    path = tmp_path / "job.yaml"
    path.write_bytes(VALID.replace(b"/data/trips", b"/data/$${not_a_variable"))

    job, problems = parse_job(path, VARIABLES, shown_as="jobs/job.yaml")

    assert problems == []
    assert job is not None and job.spec.sources["trips"].path == "/data/${not_a_variable"


def test_merge_key_values_are_placed_at_their_mapping(tmp_path: Path) -> None:
    path = tmp_path / "job.yaml"
    path.write_bytes(b"name: job\nsources:\n  trips:\n    <<: &src {format: cvs}\n    path: /data/trips\n"
                     b"output: {path: /data/out}\n")

    _job, problems = parse_job(path, VARIABLES, shown_as="jobs/job.yaml")

    assert [str(p) for p in problems] == [
        "jobs/job.yaml:3:3 sources.trips.format: expected one of 'csv', 'json', 'parquet', 'delta'; got 'cvs' "
        "— did you mean 'csv'?"]



@pytest.mark.parametrize(("what", "data", "expected"), [
    ("not utf-8", b"spark:\n  app_name: caf\xe9\n", "conf/local/featurekit.yaml:2:16: not UTF-8: byte 0xe9 cannot be "
     "read here (a binary file, or text saved in another encoding?); save the file as UTF-8"),
    ("alias bomb", BOMB, "conf/local/featurekit.yaml:4:36: YAML aliases expand this document to more than 10000 "
     "values (at *c); refusing it as an alias bomb: repeat less, or write the values out"),
    ("python tag", b"spark: !!python/object:builtins.dict {}\n", "conf/local/featurekit.yaml:1:8: YAML tag "
     "'!!python/object:builtins.dict' is not supported: featurekit reads plain values (strings, numbers, "
     "true/false, lists, mappings); remove the tag"),
    ("unclosed variable", b"vars:\n  raw_root: ${project_root/raw\n", "conf/local/featurekit.yaml:2:13 vars.raw_root: "
     "'${' without its '}' (at character 1: '${project_root/raw'); write ${name}, or $$ for a literal $"),
    ("a list", b"- spark\n", "conf/local/featurekit.yaml:1:1: expected a mapping of settings"),
], ids=lambda value: value if isinstance(value, str) and len(value) < 20 else None)
def test_hostile_conf_file_gets_one_located_problem(project: Path, what: str, data: bytes, expected: str) -> None:
    (project / "conf" / "local" / "featurekit.yaml").write_bytes(data)

    with pytest.raises(ConfigError) as caught:
        load_settings(Project(project), "local")

    assert [str(p) for p in caught.value.problems] == [expected]


def test_validate_exits_2_naming_the_file_for_a_binary_job_and_an_alias_bomb_in_conf(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "jobs" / "blob.yaml").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    assert main(["validate", "jobs/blob.yaml"]) == 2
    assert capsys.readouterr().err.startswith("jobs/blob.yaml:1:1: not UTF-8: byte 0x89")

    (project / "conf" / "base" / "featurekit.yaml").write_bytes(BOMB)
    assert main(["validate"]) == 2
    assert capsys.readouterr().err.startswith("conf/base/featurekit.yaml:4:36: YAML aliases expand this document")
