"""Random mutations of the demo job specs and conf files: ``featurekit validate`` never crashes.

Each case copies one file of the project (``jobs/*.yaml``, ``conf/*/*.yaml``), breaks it in one
to three ways a user, an editor or a disk might (flipped bytes, lost or repeated lines, shifted
indentation, swapped tokens, truncation, YAML tags, anchors and alias bombs, ``${`` without its
``}``, values of the wrong type, broken SQL, bytes that are not UTF-8) and validates it
in-process, without a JVM: through the library entry point ``featurekit validate`` stands on, and
a smaller run through the command itself. Every case must exit 0 (the mutation left a valid file)
or 2 with each problem on a line of its own that names a file of the project and a line in it:
never 1, never a traceback.

The seed is fixed, so a failure is reproducible; the failing case's mutations and output are in
the assertion message. ``FEATUREKIT_FUZZ_CASES=20000`` runs more cases on demand,
``FEATUREKIT_FUZZ_SEED`` other ones.
"""

from __future__ import annotations

import os
import random
import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from featurekit.cli import main
from featurekit.config import load_settings
from featurekit.config.project import Project
from featurekit.errors import Problem, SpecError
from featurekit.spec.loader import parse_job

REPO = Path(__file__).resolve().parents[2]
SEED = int(os.environ.get("FEATUREKIT_FUZZ_SEED", "21"))
CASES = int(os.environ.get("FEATUREKIT_FUZZ_CASES", "2000"))
CLI_CASES = 150

# A problem line: ``<file>:<line>[:<col>] [field: ]message``; the file is one of the project's.
PROBLEM = re.compile(r"^(?P<file>(?:jobs|conf)/[^:]+\.ya?ml):(?P<line>\d+)(?::\d+)?[: ]")
BOMB = ('lol: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n'
        + "".join(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]\n" for i in range(1, 10)))
TAGS = ["!!python/object/apply:os.system [echo]", "!!python/name:os.system", "!custom", "!!binary",
        "!!set", "!!omap", "!!timestamp", "!!str", "!!int", "!"]
VALUES = ["[]", "{}", "null", "~", "true", "42", "-1", "0", "1e999", ".nan", "9" * 5000, "2026-13-45",
          "2026-01-01T00:00:00Z", '"text"', "[a, [b, {c: d}]]", "[" * 80 + "]" * 80, "'${x'", '"${"',
          "${nope}", "$$", "*undefined", "<<", "'it''s'", '"\\x00"', "|\n  block", "? complex"]
SQL_BREAKS = ["(", ")", "'", "`", ",", " AND", " OR ", "--", "/*", " SELECT", " ::", ".", " CASE", "))"]


def _lines(text: str) -> list[str]:
    return text.splitlines(keepends=True) or [""]


def flip_byte(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    if not data:
        return bytes([rng.randrange(256)]), "byte into empty"
    at = rng.randrange(len(data))
    new = rng.randrange(256) if rng.random() < 0.5 else data[at] ^ (1 << rng.randrange(8))
    return data[:at] + bytes([new]) + data[at + 1:], f"byte {at} -> {new:#04x}"


def non_utf8(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    choice = rng.choice([b"\xff", b"\xc3(", b"\x80\x81", b"\x00", b"\x1b[31m", b"\xef\xbb\xbf", b"\xed\xa0\x80"])
    if rng.random() < 0.1:
        return data.decode("latin-1").encode("utf-16"), "utf-16"
    at = rng.randrange(len(data) + 1)
    return data[:at] + choice + data[at:], f"insert {choice!r} at {at}"


def delete_line(rng: random.Random, text: str) -> tuple[str, str]:
    lines = _lines(text)
    at = rng.randrange(len(lines))
    return "".join(lines[:at] + lines[at + 1:]), f"delete line {at + 1}"


def duplicate_line(rng: random.Random, text: str) -> tuple[str, str]:
    lines = _lines(text)
    at = rng.randrange(len(lines))
    return "".join(lines[:at + 1] + [lines[at]] + lines[at + 1:]), f"duplicate line {at + 1}"


def indent(rng: random.Random, text: str) -> tuple[str, str]:
    lines = _lines(text)
    at = rng.randrange(len(lines))
    change = rng.choice([" ", "  ", "\t", "-1", "-2", "- "])
    if change.startswith("-") and change != "- ":
        lines[at] = lines[at][int(change[1:]):] if lines[at][:int(change[1:])].isspace() else lines[at]
    else:
        lines[at] = change + lines[at]
    return "".join(lines), f"indent line {at + 1} by {change!r}"


def swap_tokens(rng: random.Random, text: str) -> tuple[str, str]:
    tokens = list(re.finditer(r"[^\s:,\[\]{}]+", text))
    if len(tokens) < 2:
        return text, "no tokens"
    a, b = sorted(rng.sample(tokens, 2), key=lambda m: m.start())
    swapped = text[:a.start()] + b.group() + text[a.end():b.start()] + a.group() + text[b.end():]
    return swapped, f"swap {a.group()!r} and {b.group()!r}"


def truncate(rng: random.Random, text: str) -> tuple[str, str]:
    at = rng.randrange(len(text) + 1)
    return text[:at], f"truncate at {at}"


def tag(rng: random.Random, text: str) -> tuple[str, str]:
    spots = [m.end() for m in re.finditer(r": ", text)]
    if not spots:
        return text, "no value"
    at, chosen = rng.choice(spots), rng.choice(TAGS)
    return text[:at] + chosen + " " + text[at:], f"tag {chosen!r} at {at}"


def alias(rng: random.Random, text: str) -> tuple[str, str]:
    kind = rng.choice(["bomb", "anchor", "merge", "cycle", "undefined"])
    lines = _lines(text)
    if kind == "bomb":
        return BOMB + text, "alias bomb on top"
    keyed = [i for i, line in enumerate(lines) if re.match(r"^\s*[\w.-]+:\s*\S", line)]
    if not keyed:
        return text, "no key"
    first, second = rng.choice(keyed), rng.choice(keyed)
    lines[first] = re.sub(r":(\s*)", r": &x\1", lines[first], count=1)
    insert = {"anchor": "*x", "merge": "<<: *x", "cycle": "[*x]", "undefined": "*nowhere"}[kind]
    if kind == "merge":
        pad = re.match(r"^\s*", lines[second]).group()  # type: ignore[union-attr]
        lines.insert(second + 1, f"{pad}{insert}\n")
    else:
        lines[second] = re.sub(r":\s*\S.*", f": {insert}", lines[second], count=1)
    return "".join(lines), f"{kind}: anchor line {first + 1}, {insert} at line {second + 1}"


def variable(rng: random.Random, text: str) -> tuple[str, str]:
    hits = list(re.finditer(r"\$\{[^}]*\}", text))
    if hits and rng.random() < 0.5:
        hit = rng.choice(hits)
        broken = rng.choice([hit.group()[:-1], "${", "$${", "${" + hit.group()[2:-1] + " ", "${${x}}"])
        return text[:hit.start()] + broken + text[hit.end():], f"variable {hit.group()!r} -> {broken!r}"
    spots = [m.end() for m in re.finditer(r": ", text)]
    if not spots:
        return text, "no value"
    at = rng.choice(spots)
    return text[:at] + "${unclosed/x" + text[at:], f"'${{' without '}}' at {at}"


def type_swap(rng: random.Random, text: str) -> tuple[str, str]:
    values = list(re.finditer(r"(?<=: )[^\n#]+", text))
    if not values:
        return text, "no value"
    hit, new = rng.choice(values), rng.choice(VALUES)
    return text[:hit.start()] + new + text[hit.end():], f"value {hit.group()[:30]!r} -> {new[:30]!r}"


def break_sql(rng: random.Random, text: str) -> tuple[str, str]:
    quoted = list(re.finditer(r'"[^"\n]{3,}"', text))
    if not quoted:
        return text, "no quoted value"
    hit = rng.choice(quoted)
    inner = hit.group()[1:-1]
    at = rng.randrange(len(inner) + 1)
    if rng.random() < 0.5 and inner:
        at = min(at, len(inner) - 1)
        new = inner[:at] + inner[at + 1:]
        how = f"drop {inner[at]!r}"
    else:
        piece = rng.choice(SQL_BREAKS)
        new = inner[:at] + piece + inner[at:]
        how = f"insert {piece!r}"
    return text[:hit.start() + 1] + new + text[hit.end() - 1:], f"SQL {inner[:40]!r}: {how} at {at}"


def rename_key(rng: random.Random, text: str) -> tuple[str, str]:
    keys = list(re.finditer(r"^(\s*-?\s*)(\w+):", text, re.M))
    if not keys:
        return text, "no key"
    hit = rng.choice(keys)
    word = hit.group(2)
    at = rng.randrange(len(word))
    new = rng.choice([word[:at] + word[at + 1:], word.upper(), word + "s", word[:at] + "_" + word[at:]]) or "x"
    return text[:hit.start(2)] + new + text[hit.end(2):], f"key {word!r} -> {new!r}"


def replace_whole(rng: random.Random, text: str) -> tuple[str, str]:
    new = rng.choice(["", "   \n", "# only a comment\n", "- a\n- b\n", "just a string\n", "42\n", "---\n---\n",
                      "a: 1\n---\nb: 2\n", "{", "[" * 5000, "%YAML 1.1\n---\na: 1\n", "key: value\n" * 3])
    return new, f"whole file -> {new[:20]!r}"


TEXT_MUTATIONS: list[Callable[[random.Random, str], tuple[str, str]]] = [
    delete_line, duplicate_line, indent, swap_tokens, truncate, tag, alias, variable, type_swap, break_sql,
    rename_key, replace_whole,
]
BYTE_MUTATIONS: list[Callable[[random.Random, bytes], tuple[bytes, str]]] = [flip_byte, non_utf8]


def mutate(rng: random.Random, data: bytes) -> tuple[bytes, list[str]]:
    """``data`` broken in one to three ways, and what was done."""
    done = []
    for _ in range(rng.choice([1, 1, 2, 3])):
        if rng.random() < 0.15:
            data, how = rng.choice(BYTE_MUTATIONS)(rng, data)
        else:
            # latin-1 maps every byte to one character and back: earlier byte mutations survive
            text, how = rng.choice(TEXT_MUTATIONS)(rng, data.decode("latin-1"))
            data = text.encode("latin-1", errors="replace")
        done.append(how)
    return data, done



def _env(name: str, envs: list[str]) -> str:
    folder = name.split("/")[1] if name.startswith("conf/") else "local"
    return folder if folder in envs else "local"


class _Validator:
    """What ``featurekit validate`` does, minus the command line: the exit code and problem lines.

    A mutated job file is checked alone against its env's variables (read once: the conf is
    intact); a mutated conf file is loaded, then every job is checked against its variables (the
    intact jobs' problems are remembered per set of variables: the same file and variables give
    the same problems). Any exception other than a :class:`SpecError` escapes, as a crash of the
    command would.
    """

    def __init__(self, project: Path) -> None:
        self.project = Project(project)
        self.envs = [p.name for p in self.project.conf_dir.iterdir() if p.is_dir() and p.name != "base"]
        self.vars_of: dict[str, dict[str, str]] = {}
        self.job_problems: dict[tuple[str, frozenset[tuple[str, str]]], list[Problem]] = {}

    def __call__(self, name: str) -> tuple[int, list[str]]:
        env = _env(name, self.envs)
        try:
            if name.startswith("jobs/"):
                if env not in self.vars_of:
                    self.vars_of[env] = load_settings(self.project, env).vars
                _job, problems = parse_job(self.project.root / name, self.vars_of[env], shown_as=name)
            else:
                variables = load_settings(self.project, env).vars
                problems = [p for path in self.project.job_files() for p in self._job(path, variables)]
        except SpecError as exc:
            problems = exc.problems
        return (2 if problems else 0), [str(problem) for problem in problems]

    def _job(self, path: Path, variables: dict[str, str]) -> list[Problem]:
        shown = self.project.shown(path)
        key = (shown, frozenset(variables.items()))
        if key not in self.job_problems:
            self.job_problems[key] = parse_job(path, variables, shown_as=shown)[1]
        return self.job_problems[key]


def _failure(case: int, name: str, done: list[str], code: int, lines: list[str]) -> str | None:
    """Why a case's outcome is wrong, or None: exit 0, or exit 2 with every problem placed."""
    unplaced = [line for line in lines if not PROBLEM.match(line)]
    if code == 0 or (code == 2 and lines and not unplaced):
        return None
    return f"case {case}: {name} ({'; '.join(done)}) -> exit {code}\n  " + "\n  ".join((unplaced or lines)[:4])


def _cases(project: Path, count: int, seed: int) -> list[tuple[int, str, bytes, list[str]]]:
    targets = sorted(str(p.relative_to(project)) for p in [*project.glob("jobs/*.yaml"), *project.glob("conf/*/*.yaml")])
    rng = random.Random(seed)
    cases = []
    for case in range(count):
        name = rng.choice(targets)
        data, done = mutate(rng, (project / name).read_bytes())
        cases.append((case, name, data, done))
    return cases


def test_mutated_specs_and_conf_exit_0_or_2_naming_the_file(project: Path) -> None:
    validate = _Validator(project)
    failures: list[str] = []
    outcomes: Counter[int] = Counter()
    for case, name, data, done in _cases(project, CASES, SEED):
        original = (project / name).read_bytes()
        (project / name).write_bytes(data)
        try:
            code, lines = validate(name)
        except Exception as exc:  # noqa: BLE001 - a crash is what this test looks for
            code, lines = 1, [f"{type(exc).__name__}: {exc}"]
        finally:
            (project / name).write_bytes(original)
        outcomes[code] += 1
        failure = _failure(case, name, done, code, lines)
        if failure:
            failures.append(failure)
    assert failures == [], f"{len(failures)} of {CASES} cases failed:\n" + "\n".join(failures[:15])
    # the mutations reach both outcomes, and mostly break the file
    assert outcomes[2] > CASES // 2 and outcomes[0] > CASES // 50, outcomes


def test_mutated_files_through_the_cli_exit_0_or_2_naming_the_file(project: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """A smaller run through ``featurekit validate`` itself: its exit codes and what it prints."""
    envs = [p.name for p in (project / "conf").iterdir() if p.is_dir() and p.name != "base"]
    failures: list[str] = []
    for case, name, data, done in _cases(project, CLI_CASES, SEED + 1):
        original = (project / name).read_bytes()
        (project / name).write_bytes(data)
        try:
            code = main(["validate", name] if name.startswith("jobs/") else ["validate", "--env", _env(name, envs)])
        finally:
            (project / name).write_bytes(original)
        err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
        if code == 2 and (not err or not err[-1].endswith("problem(s)")):
            failures.append(f"case {case}: {name} ({'; '.join(done)}) -> exit 2 without its problem count: {err[-3:]}")
            continue
        failure = _failure(case, name, done, code, err[:-1] if code == 2 else err)
        if failure:
            failures.append(failure)
    assert failures == [], f"{len(failures)} of {CLI_CASES} cases failed:\n" + "\n".join(failures[:15])
