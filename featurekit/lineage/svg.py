"""The lineage tree as an SVG picture for a web page: boxes in columns by depth, each a link.

Pure Python and deterministic (the same tree gives the same bytes), so it needs no Graphviz and can
be compared as a whole. The layout is a tidy tree drawn left to right: leaves take one row each, in
tree order; a parent sits in the column after its own and is centred on its children. Nodes that share a
``key`` (two feature sets read from one job run) are one box, placed under the parent that reached it
first, with an extra edge from every other parent.

Each box is an ``<a href>`` (so Tab reaches it) with a ``<title>`` (its tooltip and accessible name)
holding the label and the details. Where a node goes is the caller's business: ``href`` maps a node's
``link`` (``{"view": ...}``, ``{"job": ..., "run_id": ...}``, ...) to an address; a node without an
address links to its own box (``#<prefix>-<id>``). Every text passes through
:func:`featurekit.redaction.redact_text` and is escaped, since labels carry registry and user data.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from markupsafe import Markup, escape

from featurekit.lineage.tree import _FILL, Node, _graph
from featurekit.redaction import redact_text

# node link -> the page it opens, or None when it has none
Href = Callable[[Mapping[str, str]], "str | None"]

# Monospace text makes a box's width a count of characters (0.6 em per character).
FONT_PX, DETAIL_PX = 12, 11
MAX_CHARS = 48                 # longer lines are cut with "…"; the whole text is in the <title>
BOX_H, ROW_H = 40, 56          # a box and the row it stands in (16 px between boxes)
COLUMN_GAP, MARGIN, PAD = 40, 8, 8
_PREFIX = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")     # it goes into ids, url(#...) and CSS selectors


@dataclass(frozen=True)
class Box:
    """A node's place in the picture, in pixels: ``x``, ``y`` its top left corner."""

    ident: str
    node: Node
    column: int
    x: int
    y: int
    width: int
    height: int = BOX_H


@dataclass(frozen=True)
class Layout:
    boxes: dict[str, Box]                   # by graph id, in tree order
    edges: list[tuple[str, str]]            # (parent id, child id), each once, in tree order
    primary: set[tuple[str, str]]           # the edges the layout follows; the others join shared nodes
    width: int
    height: int


def layout(root: Node) -> Layout:
    """Where each distinct node of ``root`` goes (see the module's docstring)."""
    ids, edges = _graph(root)
    nodes = {ident: node for ident, node in ids.values()}
    children: dict[str, list[str]] = {ident: [] for ident in nodes}
    for parent, child in edges:
        children[parent].append(child)

    # The tree the layout follows: each node under the first parent that reaches it, depth first.
    root_id = next(iter(nodes))
    column = {root_id: 0}
    kids: dict[str, list[str]] = {ident: [] for ident in nodes}
    primary: set[tuple[str, str]] = set()
    stack = [root_id]
    while stack:
        ident = stack.pop()
        fresh = [c for c in children[ident] if c not in column]
        for child in fresh:
            column[child] = column[ident] + 1
            kids[ident].append(child)
            primary.add((ident, child))
        stack.extend(reversed(fresh))

    tops = _tops(root_id, kids)
    leaves = sum(1 for ident in nodes if not kids[ident])

    widths = {ident: _box_width(nodes[ident]) for ident in nodes}
    columns = max(column.values()) + 1
    column_width = [max(widths[i] for i in nodes if column[i] == c) for c in range(columns)]
    column_x = [MARGIN + sum(column_width[:c]) + COLUMN_GAP * c for c in range(columns)]
    boxes = {ident: Box(ident, nodes[ident], column[ident], column_x[column[ident]],
                        MARGIN + tops[ident], widths[ident])
             for ident in nodes}                               # in tree order, as _graph numbered them
    width = column_x[-1] + column_width[-1] + MARGIN
    height = 2 * MARGIN + (leaves - 1) * ROW_H + BOX_H
    return Layout(boxes, edges, primary, width, height)


def _tops(root: str, kids: dict[str, list[str]]) -> dict[str, int]:
    """Each node's top in pixels: leaves one row after another in depth-first order, a parent in the
    middle of its first and last child (rounded down to the pixel)."""
    tops: dict[str, int] = {}
    leaves = 0
    stack: list[tuple[str, bool]] = [(root, False)]
    while stack:
        ident, done = stack.pop()
        if done:
            first, last = kids[ident][0], kids[ident][-1]
            tops[ident] = (tops[first] + tops[last]) // 2
        elif kids[ident]:
            stack.append((ident, True))
            stack.extend((child, False) for child in reversed(kids[ident]))
        else:
            tops[ident] = leaves * ROW_H
            leaves += 1
    return tops


def svg(root: Node, href: Href, *, title: str | None = None, prefix: str = "lineage") -> Markup:
    """``root`` drawn as an ``<svg>`` element (Markup: a template inserts it as it is).

    ``href`` maps a node's ``link`` to its page (None: no page; the box links to itself); only
    relative, http and https addresses are used. ``prefix`` starts every id in the picture, so a
    page can hold several. ``title`` names the picture (default: the root's label).
    """
    if not _PREFIX.fullmatch(prefix):
        raise ValueError(f"prefix: expected a letter, then letters, digits, '-' or '_'; got {prefix!r}")
    drawn = layout(root)
    name = _text(title if title is not None else root.label)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="lineage" id="{prefix}" role="group" '
           f'aria-labelledby="{prefix}-title" width="{drawn.width}" height="{drawn.height}" '
           f'viewBox="0 0 {drawn.width} {drawn.height}" font-family="ui-monospace, \'DejaVu Sans Mono\', monospace">',
           f'<title id="{prefix}-title">{name}</title>',
           "<style>"
           f"#{prefix} .edge{{fill:none;stroke:#555;stroke-width:1.2}}"
           f"#{prefix} .edge.shared{{stroke-dasharray:4 3}}"
           f"#{prefix} .node rect{{stroke:#555;stroke-width:1}}"
           f"#{prefix} .node text{{fill:#111}}"
           f"#{prefix} .node .detail{{fill:#444}}"
           f"#{prefix} .node:hover rect{{stroke-width:2}}"
           f"#{prefix} .node:focus{{outline:none}}"
           f"#{prefix} .node:focus-visible rect{{stroke:#1a56db;stroke-width:3}}"
           "</style>",
           f'<defs><marker id="{prefix}-arrow" viewBox="0 0 8 8" refX="8" refY="4" markerWidth="8" markerHeight="8" '
           f'orient="auto"><path d="M0,0 L8,4 L0,8 z" fill="#555"/></marker></defs>',
           '<g class="edges">']
    for parent, child in drawn.edges:
        a, b = drawn.boxes[parent], drawn.boxes[child]
        x1, y1, x2, y2 = a.x + a.width, a.y + a.height // 2, b.x, b.y + b.height // 2
        bend = max(COLUMN_GAP // 2, (x2 - x1) // 2)
        shared = "" if (parent, child) in drawn.primary else " shared"
        out.append(f'<path class="edge{shared}" data-from="{prefix}-{parent}" data-to="{prefix}-{child}" '
                   f'd="M{x1},{y1} C{x1 + bend},{y1} {x2 - bend},{y2} {x2},{y2}" marker-end="url(#{prefix}-arrow)"/>')
    out.append('</g><g class="nodes">')
    for box in drawn.boxes.values():
        out.append(_box(box, href, prefix))
    out.append("</g></svg>")
    return Markup("\n".join(out) + "\n")


def _box(box: Box, href: Href, prefix: str) -> str:
    node = box.node
    ident = f"{prefix}-{box.ident}"
    target = _address(href(node.link) if node.link else None) or f"#{ident}"
    tooltip = "\n".join(_text(line) for line in [node.label, *node.details])
    kind = node.kind if node.kind in _FILL else "other"
    baseline = box.y + (17 if node.details else 24)           # a lone label sits in the middle of its box
    lines = [f'<text x="{box.x + PAD}" y="{baseline}" font-size="{FONT_PX}">{_text(_cut(node.label))}</text>']
    if node.details:
        lines.append(f'<text class="detail" x="{box.x + PAD}" y="{box.y + 33}" font-size="{DETAIL_PX}">'
                     f"{_text(_cut(node.details[0]))}</text>")
    return (f'<a class="node kind-{kind}" id="{ident}" href="{escape(target)}" data-kind="{escape(node.kind)}">'
            f"<title>{tooltip}</title>"
            f'<rect x="{box.x}" y="{box.y}" width="{box.width}" height="{box.height}" rx="6" '
            f'fill="{_FILL.get(node.kind, "#ffffff")}"/>' + "".join(lines) + "</a>")


def _box_width(node: Node) -> int:
    """Wide enough for the label (12 px) and the first detail (11 px) in a monospace font."""
    label = len(_cut(node.label)) * FONT_PX * 6 // 10
    detail = len(_cut(node.details[0])) * DETAIL_PX * 6 // 10 if node.details else 0
    return 2 * PAD + max(label, detail, 40)


def _cut(line: str) -> str:
    line = redact_text(line)
    return line if len(line) <= MAX_CHARS else line[:MAX_CHARS - 1] + "…"


def _text(line: str) -> str:
    return str(escape(redact_text(line)))


def _address(target: str | None) -> str | None:
    """``target`` if it is a page address (relative, http or https), else None: a link made of
    registry data must not become ``javascript:``."""
    if not target:
        return None
    try:
        scheme = urlsplit(target).scheme
    except ValueError:
        return None
    return target if scheme in ("", "http", "https") else None


__all__ = ["Box", "Href", "Layout", "layout", "svg"]
