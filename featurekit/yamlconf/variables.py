"""``${name}`` substitution in spec values, with every unknown name reported at its place."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from featurekit.errors import Problem
from featurekit.yamlconf.names import did_you_mean
from featurekit.yamlconf.positions import KeyPath, Positions

_VAR = re.compile(r"\$\$|\$\{([^}]*)\}")
_OPEN = re.compile(r"\$\$|\$\{[^}]*\}|\$\{")  # the last choice matches only a ${ that is never closed


def substitute(text: str, variables: Mapping[str, str]) -> tuple[str, list[str]]:
    """Fill ``${name}`` from ``variables`` (``$$`` is a literal ``$``); return unknown names too."""
    unknown: list[str] = []

    def fill(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1).strip()
        if name in variables:
            return str(variables[name])
        unknown.append(name)
        return match.group(0)

    return _VAR.sub(fill, text), unknown


def unclosed(text: str) -> str | None:
    """Why ``text`` holds a ``${`` that no ``}`` closes, or None; such a ``${`` is never a literal."""
    for match in _OPEN.finditer(text):
        if match.group(0) == "${":
            snippet = text[match.start():match.start() + 20]
            return (f"'${{' without its '}}' (at character {match.start() + 1}: {snippet!r}); "
                    "write ${name}, or $$ for a literal $")
    return None


def resolve(data: Any, variables: Mapping[str, str], positions: Positions, path: KeyPath = ()) -> tuple[Any, list[Problem]]:
    """A copy of ``data`` with every string value filled; problems for unknown names."""
    problems: list[Problem] = []
    if isinstance(data, dict):
        out = {}
        for key, value in data.items():
            out[key], found = resolve(value, variables, positions, (*path, key))
            problems += found
        return out, problems
    if isinstance(data, list):
        items = []
        for index, value in enumerate(data):
            item, found = resolve(value, variables, positions, (*path, index))
            items.append(item)
            problems += found
        return items, problems
    if isinstance(data, str) and "$" in data:
        problem = unclosed(data)
        if problem:
            return data, [positions.problem(path, problem, at_value=True)]
        filled, unknown = substitute(data, variables)
        for name in unknown:
            known = ", ".join(sorted(variables)) or "none"
            problems.append(positions.problem(
                path,
                f"unknown variable ${{{name}}}" + did_you_mean(name, variables) + f" (known: {known})",
                at_value=True,
            ))
        return filled, problems
    return data, problems
