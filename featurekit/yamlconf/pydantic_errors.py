"""The one place where pydantic's validation errors become messages for people.

Pydantic reports a location made of field names, list indexes and, for discriminated
unions, the tag it chose. The tag is not in the data, so it is skipped when the location
is turned into a key path; the model at each step is tracked alongside, so an unknown key
can be answered with the closest known one.

Two wordings, for two kinds of readers: :func:`problems_from` locates each problem in a YAML
file (job specs, conf) and words it for whoever edits that file; :func:`body_message` words the
problems of a JSON request body as one line, ``field.path: what is wrong`` (the web faces).
"""

from __future__ import annotations

import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Union

from pydantic import BaseModel, ValidationError

from featurekit.errors import Problem
from featurekit.yamlconf.names import did_you_mean
from featurekit.yamlconf.positions import KeyPath, Positions

_ANNOTATED = type(typing.Annotated[int, "x"])


def _unwrap(tp: Any) -> Any:
    while isinstance(tp, _ANNOTATED) or typing.get_origin(tp) is typing.Annotated:
        tp = typing.get_args(tp)[0]
    return tp


def _members(tp: Any) -> list[Any]:
    origin = typing.get_origin(tp)
    if origin is Union or origin is types.UnionType:
        return [_unwrap(a) for a in typing.get_args(tp) if a is not type(None)]
    return [tp]


def _field(model: type[BaseModel], key: str) -> Any | None:
    for name, info in model.model_fields.items():
        if key in (name, info.alias):
            return info.annotation
    return None


def _tag_member(members: list[Any], tag: str) -> Any | None:
    """The union member chosen by ``tag`` (a step op name or a source format)."""
    for member in members:
        if isinstance(member, type) and issubclass(member, BaseModel):
            if list(member.model_fields) == [tag]:
                return member
            fmt = member.model_fields.get("format")
            if fmt is not None and tag in typing.get_args(fmt.annotation):
                return member
    return None


def keys_of(model: Any) -> list[str]:
    """The YAML keys a model accepts."""
    return [info.alias or name for name, info in model.model_fields.items()]


def walk(root: type[BaseModel], loc: tuple[Any, ...], data: Any) -> tuple[KeyPath, Any]:
    """Follow ``loc`` through the data and the model types together.

    Returns the key path in the YAML (tags dropped) and the model type holding the last
    element (None when it cannot be known).
    """
    path: list[str | int] = []
    tp: Any = root
    holder: Any = None
    for index, part in enumerate(loc):
        last = index == len(loc) - 1
        if part == "[key]":  # pydantic's marker for "the mapping key itself is invalid"
            continue
        members = _members(_unwrap(tp))
        models = [m for m in members if isinstance(m, type) and issubclass(m, BaseModel)]
        if len(models) > 1 and isinstance(part, str):
            # A discriminated union: this element is the tag, not a key of the data.
            tp = _tag_member(models, part)
            continue
        model = models[0] if models else None
        container = typing.get_origin(members[0]) if members else None
        if model is not None and isinstance(part, str):
            holder = model
            tp = _field(model, part)
        elif container is list and isinstance(part, int):
            tp = typing.get_args(members[0])[0]
        elif container is dict:
            tp = typing.get_args(members[0])[1]
        else:
            tp = None
        if isinstance(data, dict) and part in data:
            data = data[part]
            path.append(part)
        elif isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data):
            data = data[part]
            path.append(part)
        elif last:
            path.append(part)
            data = None
        else:
            data = None
    return tuple(path), holder


def _shown(value: Any) -> str:
    if value is None:
        return "no value (null)"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def problems_from(exc: ValidationError, root: type[BaseModel], data: Any, positions: Positions) -> list[Problem]:
    """One problem per pydantic error, located in the YAML and worded for users."""
    problems: list[Problem] = []
    for error in exc.errors(include_url=False):
        kind, loc, ctx = error["type"], tuple(error["loc"]), error.get("ctx") or {}
        path, holder = walk(root, loc, data)
        value = error.get("input")
        at_value = "[key]" not in loc
        if kind == "missing":
            message, at_value = "required key is missing", False
        elif kind == "extra_forbidden":
            known = keys_of(holder) if holder is not None else []
            message = f"unknown key {path[-1]!r}" + did_you_mean(path[-1], known)
            if known and not did_you_mean(path[-1], known):
                message += f" (expected one of: {', '.join(known)})"
            at_value = False
        elif kind == "literal_error":
            choices = [c.strip().strip("'") for c in ctx["expected"].replace(" or ", ", ").split(",")]
            message = (
                f"expected one of {', '.join(repr(c) for c in choices)}; got {_shown(value)}"
                + did_you_mean(value, choices)
            )
        elif kind == "union_tag_invalid" and "step_op" in str(ctx.get("discriminator")):
            ops = [c.strip().strip("'") for c in ctx["expected_tags"].split(",")]
            op = ctx["tag"]
            path = (*path, op)
            message = f"unknown op {op!r}" + did_you_mean(op, ops) + f" (ops: {', '.join(ops)})"
            at_value = False
        elif kind == "union_tag_not_found" and "step_op" in str(ctx.get("discriminator")):
            message = f"expected a mapping with exactly one op key (e.g. 'filter: ...'); got {_shown(value)}"
        elif kind == "union_tag_invalid":
            tags = [c.strip().strip("'") for c in ctx["expected_tags"].split(",")]
            path = (*path, str(ctx["discriminator"]).strip("'"))
            message = (
                f"expected one of {', '.join(repr(t) for t in tags)}; got {ctx['tag']!r}"
                + did_you_mean(ctx["tag"], tags)
            )
        elif kind == "union_tag_not_found":
            path = (*path, str(ctx["discriminator"]).strip("'"))
            message = "required key is missing"
            at_value = False
        elif kind == "value_error":
            message = str(ctx.get("error", error["msg"]))
        elif kind in {"list_type", "dict_type", "model_type", "model_attributes_type"}:
            wanted = "a list" if kind == "list_type" else "a mapping"
            message = f"expected {wanted}; got {_shown(value)}"
        elif kind == "too_short":
            message = (
                "must not be empty"
                if isinstance(value, (str, list, dict)) and not value
                else f"expected at least {ctx.get('min_length', 1)} item(s); got {_shown(value)}"
            )
        elif kind == "string_too_short":
            message = "must not be empty"
        elif kind == "string_type":
            message = f"expected a string; got {_shown(value)}"
        elif kind in {"int_type", "int_parsing", "int_from_float"}:
            message = f"expected an integer; got {_shown(value)}"
        elif kind in {"bool_type", "bool_parsing"}:
            message = f"expected true or false; got {_shown(value)}"
        elif kind in {"greater_than_equal", "greater_than", "less_than_equal", "less_than"}:
            bound = next(iter(ctx.values()), "?")
            word = {"greater_than_equal": "at least", "greater_than": "more than",
                    "less_than_equal": "at most", "less_than": "less than"}[kind]
            message = f"expected {word} {bound}; got {_shown(value)}"
        else:
            message = f"{error['msg']}; got {_shown(value)}"
        problems.append(positions.problem(path, message, at_value=at_value))
    return problems


def body_message(errors: Iterable[Mapping[str, Any]], fields: Sequence[str],
                 tags: Mapping[str, Sequence[str]]) -> str:
    """The problems of a request body in one line: ``field.path: what is wrong``, joined by ``; ``.

    ``errors`` are pydantic's (locations relative to the body); ``fields`` are every field name
    a body may carry (an unknown one is answered with the closest); ``tags`` maps each union's
    discriminator to its choices, whose names are skipped in locations.
    """
    skipped = {choice for choices in tags.values() for choice in choices}
    lines = []
    for error in errors:
        path = [str(p) for p in error["loc"] if str(p) not in skipped and not str(p).startswith("function-")]
        where = ".".join(path) or "body"
        if error["type"] == "extra_forbidden":
            if path and path[-1] in fields:        # a field of another body: here it cannot be given
                lines.append(f"{where}: not accepted here (it cannot be set or changed by this request)")
            else:
                lines.append(f"{where}: unknown field" + did_you_mean(path[-1], fields))
        elif error["type"] in ("union_tag_invalid", "union_tag_not_found"):
            tag = str((error.get("ctx") or {}).get("discriminator", "")).strip("'")
            got = error["input"].get(tag) if isinstance(error["input"], dict) else None
            field = tag if where == "body" else f"{where}.{tag}"
            expected = ", ".join(map(repr, tags.get(tag, ())))
            lines.append(f"{field}: required, one of {expected}" if got is None
                         else f"{field}: expected one of {expected}; got {got!r}")
        else:
            lines.append(f"{where}: {error['msg']}")
    return "; ".join(dict.fromkeys(lines))
