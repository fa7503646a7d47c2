"""Position-aware YAML loading.

The YAML is parsed once into plain Python data plus a map from key path (a tuple of
mapping keys and sequence indexes) to ``(line, col)``, both 1-based. Errors found later
by pydantic or by cross-checks are located through :meth:`Positions.locate`, which falls
back to the nearest ancestor when the path itself is absent (e.g. a missing key).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.constructor import DuplicateKeyError
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.reader import ReaderError

from featurekit.errors import Problem
from featurekit.yamlconf.limits import GuardedComposer, GuardedConstructor, Refused

KeyPath = tuple[str | int, ...]


@dataclass
class Positions:
    """Line/column of every key and sequence item of one YAML document."""

    file: str
    spots: dict[KeyPath, tuple[int, int]] = field(default_factory=dict)
    values: dict[KeyPath, tuple[int, int]] = field(default_factory=dict)

    def locate(self, path: KeyPath, at_value: bool = False) -> tuple[int | None, int | None]:
        """Position of ``path`` (its value with ``at_value``), else of its nearest ancestor."""
        if at_value and tuple(path) in self.values:
            return self.values[tuple(path)]
        for end in range(len(path), -1, -1):
            spot = self.spots.get(tuple(path[:end]))
            if spot is not None:
                return spot
        return None, None

    def problem(self, path: KeyPath, message: str, at_value: bool = False) -> Problem:
        line, col = self.locate(path, at_value)
        return Problem(self.file, line, col, dotted(path), message)


def dotted(path: KeyPath) -> str:
    """``("steps", 3, "dedup", "keys")`` -> ``steps[3].dedup.keys``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _plain(node: Any, path: KeyPath, pos: Positions) -> Any:
    if isinstance(node, CommentedMap):
        out: dict[str, Any] = {}
        written = node.lc.data or {}
        for key in node:
            sub = (*path, str(key))
            if key in written:
                line, col = node.lc.key(key)
                pos.spots[sub] = (line + 1, col + 1)
                vline, vcol = node.lc.value(key)
                # an empty value has no token of its own: point at its key, not the next line
                pos.values[sub] = (vline + 1, vcol + 1) if node[key] is not None else pos.spots[sub]
            else:  # merged in by ``<<: *anchor``: written elsewhere, placed at its mapping
                pos.spots[sub] = pos.values[sub] = pos.locate(path)  # type: ignore[assignment]
            out[str(key)] = _plain(node[key], sub, pos)
        return out
    if isinstance(node, CommentedSeq):
        items = []
        for index, item in enumerate(node):
            line, col = node.lc.item(index)
            pos.spots[(*path, index)] = pos.values[(*path, index)] = (line + 1, col + 1)
            items.append(_plain(item, (*path, index), pos))
        return items
    if isinstance(node, str):
        return str(node)  # drop ruamel's scalar string subclasses
    return node


def load_yaml(text: str, file: str) -> tuple[Any, Positions, list[Problem]]:
    """Parse ``text``; return data, positions and syntax problems (data is None then)."""
    yaml = YAML(typ="rt", pure=True)
    yaml.Composer = GuardedComposer
    yaml.Constructor = GuardedConstructor
    positions = Positions(file=file, spots={(): (1, 1)})
    try:
        node = yaml.load(text)
    except Refused as exc:
        return None, positions, [Problem(file, exc.line, exc.col, "", exc.message)]
    except ReaderError as exc:
        line, col = _line_col(text, exc.position)
        code = exc.character if isinstance(exc.character, int) else ord(exc.character)
        message = f"character U+{code:04X} is not allowed in YAML (a binary file, or text in another encoding?)"
        return None, positions, [Problem(file, line, col, "", message)]
    except DuplicateKeyError as exc:
        mark = exc.problem_mark
        key_text = (exc.problem or "").split("\"")[1] if "\"" in (exc.problem or "") else ""
        message = f"duplicate key {key_text!r}" if key_text else "duplicate key"
        return None, positions, [Problem(file, mark.line + 1, mark.column + 1, "", message)]
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        col = mark.column + 1 if mark else None
        detail = exc.problem or exc.context or "invalid YAML"
        if "<block end>" in detail or "<block mapping start>" in detail:
            detail = "bad indentation: this line does not line up with the keys above it"
        elif exc.context and exc.context_mark and exc.problem:
            detail += f" ({exc.context} at line {exc.context_mark.line + 1})"
        lines = text.splitlines()
        before = lines[line - 1].split("${")[0] if line and line <= len(lines) else ""
        if line and line <= len(lines) and "${" in lines[line - 1] and ("{" in before or "[" in before):
            detail += ' (inside {...} or [...] a value with ${...} must be quoted: path: "${root}/x")'
        return None, positions, [Problem(file, line, col, "", f"YAML syntax error: {detail}")]
    except YAMLError as exc:  # the reader's other complaints carry no mark
        return None, positions, [Problem(file, 1, 1, "", f"YAML error: {str(exc).splitlines()[0]}")]
    return _plain(node, (), positions), positions, []


def _line_col(text: str, offset: int) -> tuple[int, int]:
    """1-based line and column of the character at ``offset``."""
    start = text.rfind("\n", 0, offset) + 1
    return text.count("\n", 0, offset) + 1, offset - start + 1


def decode(data: bytes, file: str) -> tuple[str | None, list[Problem]]:
    """``data`` as text (UTF-8, a byte-order mark dropped), or where it stops being UTF-8."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return None, [Problem(file, 1, 1, "", "the file is UTF-16; save it as UTF-8")]
    try:
        return data.decode("utf-8-sig"), []
    except UnicodeDecodeError as exc:
        start = data.rfind(b"\n", 0, exc.start) + 1
        line = data.count(b"\n", 0, exc.start) + 1
        col = len(data[start:exc.start].decode("utf-8", errors="replace")) + 1
        byte = data[exc.start]
        return None, [Problem(file, line, col, "", f"not UTF-8: byte 0x{byte:02x} cannot be read here "
                              "(a binary file, or text saved in another encoding?); save the file as UTF-8")]


def load_yaml_file(path: Path, shown_as: str | None = None) -> tuple[Any, Positions, list[Problem]]:
    """Read and parse a YAML file; ``shown_as`` is the name used in messages."""
    name = shown_as or str(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        return None, Positions(file=name), [Problem(name, None, None, "", f"cannot read: {exc.strerror}")]
    text, problems = decode(data, name)
    if text is None:
        return None, Positions(file=name), problems
    return load_yaml(text, name)
