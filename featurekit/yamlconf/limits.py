"""What a user's YAML may hold, enforced while it is read: no object tags, no alias bombs, no abyss.

featurekit's files hold plain values (strings, numbers, true/false, null, lists, mappings).
Three things YAML allows would make reading them unsafe or endless, so they are refused at
the node where they start, with its line and column:

- explicit tags other than the core ones (``!!python/object:...``, ``!custom``), and core ones on
  a node they do not fit (``!!str [a]``): nothing here constructs objects, and a tagged value is
  never what a spec field expects;
- aliases that expand the document past :data:`MAX_ALIASED` values (a "billion laughs"
  document is a few lines that expand to billions), or that refer to a collection containing
  them (a cycle);
- nesting deeper than :data:`MAX_DEPTH` (the reader and the checks after it recurse).

The checks run in the composer, before any value is built, so a hostile document is refused
in the time it takes to read its first offending lines. Values the constructor cannot build
(a date like ``2026-13-01``, an integer of thousands of digits) are refused at their node too.
"""

from __future__ import annotations

from typing import Any

from ruamel.yaml.composer import Composer
from ruamel.yaml.constructor import RoundTripConstructor
from ruamel.yaml.events import AliasEvent, MappingStartEvent, ScalarEvent, SequenceStartEvent

# Values that aliases may add to a document. A spec repeats a schema or a list of options a
# few times; a bomb repeats them by the million.
MAX_ALIASED = 10_000
# Levels of nested lists and mappings. Specs and conf use about five.
MAX_DEPTH = 64
# Explicit tags that only restate what plain YAML already reads (``!!str 5`` is the string "5"),
# each on the kind of node it applies to.
_CORE = "tag:yaml.org,2002:"
ALLOWED_TAGS = {"!", *(_CORE + kind for kind in ("str", "int", "float", "bool", "null", "seq", "map"))}
_TAGS_OF = {
    ScalarEvent: ("a value", {"!", *(_CORE + kind for kind in ("str", "int", "float", "bool", "null"))}),
    SequenceStartEvent: ("a list", {"!", _CORE + "seq"}),
    MappingStartEvent: ("a mapping", {"!", _CORE + "map"}),
}
# Python refuses to read integers longer than this from text (int_max_str_digits).
_MAX_DIGITS = 4300


class Refused(Exception):
    """A node that featurekit will not read; ``line`` and ``col`` are 1-based."""

    def __init__(self, mark: Any, message: str) -> None:
        self.line = mark.line + 1 if mark is not None else None
        self.col = mark.column + 1 if mark is not None else None
        self.message = message
        super().__init__(message)


def shown_tag(tag: str) -> str:
    """A tag as users write it: ``tag:yaml.org,2002:python/object`` -> ``!!python/object``."""
    return "!!" + tag[len(_CORE):] if tag.startswith(_CORE) else tag


class GuardedComposer(Composer):
    """ruamel's composer, counting what aliases expand to and how deep collections nest."""

    def __init__(self, loader: Any = None) -> None:
        super().__init__(loader)
        self.warn_double_anchors = False  # YAML lets an anchor be set again; the latest one counts
        self._levels = 0
        self._aliased = 0    # values the aliases so far add to the document
        self._composed = 0   # values composed so far, each alias counted as what it expands to
        self._sizes: dict[int, int] = {}  # anchored node -> the values it expands to

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.parser.peek_event()
        if isinstance(event, AliasEvent):
            return self._alias(event, parent, index)
        tag = getattr(event, "tag", None)
        if tag is not None and str(tag) not in ALLOWED_TAGS:
            raise Refused(event.start_mark, f"YAML tag {shown_tag(str(tag))!r} is not supported: featurekit reads "
                          "plain values (strings, numbers, true/false, lists, mappings); remove the tag")
        kind, fitting = _TAGS_OF.get(type(event), ("", ALLOWED_TAGS))
        if tag is not None and str(tag) not in fitting:
            raise Refused(event.start_mark, f"YAML tag {shown_tag(str(tag))!r} cannot tag {kind}; remove the tag")
        if isinstance(event, ScalarEvent) and event.style is None and len(event.value) > _MAX_DIGITS \
                and event.value.lstrip("+-").replace("_", "").isdigit():
            raise Refused(event.start_mark, f"a number of {len(event.value)} digits is too long to read")
        self._levels += 1
        if self._levels > MAX_DEPTH:
            raise Refused(event.start_mark, f"lists and mappings nest more than {MAX_DEPTH} levels deep here")
        before = self._composed
        self._composed += 1
        node = super().compose_node(parent, index)
        self._levels -= 1
        if event.anchor is not None:
            self._sizes[id(node)] = self._composed - before
        return node

    def _alias(self, event: AliasEvent, parent: Any, index: Any) -> Any:
        target = self.anchors.get(event.anchor)
        if target is not None:
            size = self._sizes.get(id(target))
            if size is None:  # anchored, but still being composed: the alias is inside it
                raise Refused(event.start_mark, f"alias *{event.anchor} refers to a list or mapping that contains it "
                              "(a cycle)")
            self._aliased += size
            self._composed += size
            if self._aliased > MAX_ALIASED:
                raise Refused(event.start_mark, f"YAML aliases expand this document to more than {MAX_ALIASED} "
                              f"values (at *{event.anchor}); refusing it as an alias bomb: repeat less, or write "
                              "the values out")
        return super().compose_node(parent, index)


class GuardedConstructor(RoundTripConstructor):
    """ruamel's round-trip constructor; a value it cannot build is refused at its node."""

    def construct_object(self, node: Any, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (ValueError, OverflowError) as exc:
            value = node.value if isinstance(node.value, str) else ""
            raise Refused(node.start_mark, f"cannot read {value!r}: {exc}" if value else f"cannot read this value: {exc}") \
                from None
        except (KeyError, TypeError):  # a tag the value does not fit: ``!!bool maybe``
            value = node.value if isinstance(node.value, str) else ""
            raise Refused(node.start_mark, f"cannot read {value!r} as {shown_tag(str(node.tag))}") from None
