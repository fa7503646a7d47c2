"""A lineage tree and its pictures: text (rich), Mermaid, Graphviz dot, PNG (through ``dot``);
SVG with links for a web page is :mod:`featurekit.lineage.svg`.

The tree is plain data (:class:`Node`), built by the pipeline from the registry's artifacts and
the run reports; here it is only drawn. In the graph forms, nodes with the same ``key`` are one
node (two feature sets made by the same job run point at one run).
"""

from __future__ import annotations

import io
import shutil
import subprocess
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from featurekit.errors import InfraError, UsageError, arg

if TYPE_CHECKING:
    from rich.tree import Tree

FORMATS = ("text", "mermaid", "dot", "png")
_STYLE = {"model_version": "bold", "training_set": "bold cyan", "feature_set": "bold green", "delta": "yellow",
          "job_run": "magenta", "source": "blue", "note": "dim"}
_FILL = {"model_version": "#e8eaf6", "training_set": "#e0f7fa", "feature_set": "#e8f5e9", "delta": "#fff8e1",
         "job_run": "#f3e5f5", "source": "#e3f2fd", "note": "#fafafa"}


@dataclass
class Node:
    kind: str                  # model_version, training_set, feature_set, delta, job_run, source, note
    label: str                 # one line
    key: str = ""              # identity in the graph forms (default: the label)
    details: list[str] = field(default_factory=list)
    children: list["Node"] = field(default_factory=list)
    # what the node is about, for a face to link it to its page: {"model", "version"}, {"view"},
    # {"job"}, {"job", "run_id"}, {"training_set"}; empty when it has no page of its own
    link: dict[str, str] = field(default_factory=dict)

    def add(self, child: "Node") -> "Node":
        self.children.append(child)
        return child


def render(root: Node, fmt: str) -> str | bytes:
    """``root`` drawn as ``text``, ``mermaid``, ``dot`` (str) or ``png`` (bytes)."""
    if fmt == "text":
        return text(root)
    if fmt == "mermaid":
        return mermaid(root)
    if fmt == "dot":
        return dot(root)
    if fmt == "png":
        return png(root)
    raise UsageError("format", f"{arg('format')}: expected one of {', '.join(FORMATS)}; got {fmt!r}")


def rich_tree(root: Node) -> "Tree":
    """The tree as a rich ``Tree`` (a console prints it in colour)."""
    from rich.markup import escape
    from rich.tree import Tree

    def label(node: Node) -> str:
        style = _STYLE.get(node.kind, "")
        head = f"[{style}]{escape(node.label)}[/]" if style else escape(node.label)
        return "\n".join([head, *(f"[dim]{escape(d)}[/]" for d in node.details)])

    def grow(tree: Tree, node: Node) -> None:
        for child in node.children:
            grow(tree.add(label(child)), child)

    tree = Tree(label(root))
    grow(tree, root)
    return tree


def text(root: Node, width: int = 240) -> str:
    """The tree as plain text (for a file, a log, a test); lines longer than ``width`` wrap."""
    from rich.console import Console

    buffer = io.StringIO()
    Console(file=buffer, width=width, color_system=None, highlight=False).print(rich_tree(root), soft_wrap=False)
    return buffer.getvalue()


def _graph(root: Node) -> tuple[dict[str, tuple[str, Node]], list[tuple[str, str]]]:
    """Nodes by key (with their graph id) and the edges between ids, each once, in tree order."""
    ids: dict[str, tuple[str, Node]] = {}
    edges: list[tuple[str, str]] = []

    def ident(node: Node) -> str:
        key = node.key or f"{node.kind}:{node.label}"
        if key not in ids:
            ids[key] = (f"n{len(ids)}", node)
        return ids[key][0]

    def visit(node: Node) -> None:
        parent = ident(node)
        for child in node.children:
            edge = (parent, ident(child))
            if edge not in edges:
                edges.append(edge)
            visit(child)

    visit(root)
    return ids, edges


def mermaid(root: Node) -> str:
    """A Mermaid flowchart (paste into Markdown between ```mermaid fences)."""

    def quoted(node: Node) -> str:
        lines = [node.label, *node.details]
        text_ = "<br/>".join(line.replace("&", "#amp;").replace('"', "#quot;").replace("<", "#lt;").replace(">", "#gt;")
                             for line in lines)
        return f'"{text_}"'

    ids, edges = _graph(root)
    out = ["flowchart LR"]
    for ident, node in ids.values():
        out.append(f"  {ident}[{quoted(node)}]")
    out += [f"  {a} --> {b}" for a, b in edges]
    used = {node.kind for _, node in ids.values()}
    for kind in _FILL:
        if kind in used:
            out.append(f"  classDef {kind} fill:{_FILL[kind]},stroke:#555")
            members = ",".join(i for i, node in ids.values() if node.kind == kind)
            out.append(f"  class {members} {kind}")
    return "\n".join(out) + "\n"


def dot(root: Node) -> str:
    """A Graphviz digraph (``dot -Tsvg``/``-Tpng`` draws it)."""

    def escaped(line: str) -> str:
        return line.replace("\\", "\\\\").replace('"', '\\"')

    ids, edges = _graph(root)
    out = ["digraph lineage {", "  rankdir=LR;",
           '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=10];']
    for ident, node in ids.values():
        label = "\\l".join(escaped(line) for line in [node.label, *node.details]) + "\\l"
        out.append(f'  {ident} [label="{label}", fillcolor="{_FILL.get(node.kind, "#ffffff")}"];')
    out += [f"  {a} -> {b};" for a, b in edges]
    out.append("}")
    return "\n".join(out) + "\n"


def png(root: Node) -> bytes:
    binary = shutil.which("dot")
    if binary is None:
        raise InfraError("--format png needs Graphviz's `dot` program, which is not installed "
                         "(apt-get install graphviz, or brew install graphviz); "
                         "--format dot or --format mermaid need nothing")
    done = subprocess.run([binary, "-Tpng"], input=dot(root).encode(), capture_output=True, timeout=120)
    if done.returncode != 0:
        raise InfraError(f"Graphviz's dot failed: {done.stderr.decode(errors='replace').strip()[:400]}")
    return done.stdout
