"""The lineage picture as SVG: layout, links, escaping, determinism."""

from __future__ import annotations

import random
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from urllib.parse import quote

import pytest

from featurekit.lineage.svg import BOX_H, Layout, layout, svg
from featurekit.lineage.tree import Node, _graph

SVG_NS = "{http://www.w3.org/2000/svg}"
KINDS = ["model_version", "training_set", "feature_set", "delta", "job_run", "source"]


def ui_href(link: Mapping[str, str]) -> str | None:
    """The UI's addresses (as featurekit ui maps them): a model version, a run, a view, a job."""
    if "model" in link and "version" in link:
        return f"/lineage/{quote(link['model'], safe='')}/{quote(link['version'], safe='')}"
    if "run_id" in link:
        return f"/runs/{quote(link['run_id'], safe='')}"
    if "view" in link:
        return f"/features/{quote(link['view'], safe='')}"
    if "job" in link:
        return f"/jobs/{quote(link['job'], safe='')}"
    return None


def model_tree() -> Node:
    """What TreeBuilder makes for a model trained on two views whose feature sets came from one job
    run (one Delta version): the Delta version, the run and its source are shared."""
    root = Node("model_version", "model driver-eta version 3", key="mv:1", link={"model": "driver-eta", "version": "3"},
                details=["registered model 1, model version 1"])
    training = root.add(Node("training_set", "training set driver_rates (run 20260302T080000Z-5e7f00d1)",
                             key="artifact:9", link={"training_set": "20260302T080000Z-5e7f00d1"},
                             details=["Delta /lake/train @ v0", "12 rows, artifact 9"]))
    training.add(Node("source", "spine /lake/spine @ v2", key="source:/lake/spine@2"))
    for artifact, view in ((4, "driver_stats"), (5, "driver_rates")):
        fs = training.add(Node("feature_set", f"offline feature set featurekit.{view}", key=f"artifact:{artifact}",
                               link={"view": view}, details=["features: conv_rate", f"artifact {artifact}"]))
        delta = fs.add(Node("delta", "Delta /lake/stats @ v3", key="delta:/lake/stats@3", link={"job": "stats"}))
        run = delta.add(Node("job_run", "job run stats 20260301T090000Z-0b5e7a11", key="run:20260301T090000Z-0b5e7a11",
                             link={"job": "stats", "run_id": "20260301T090000Z-0b5e7a11"}, details=["status succeeded"]))
        run.add(Node("source", "source stats: parquet /raw/stats", key="source:/raw/stats@None",
                     details=["7 rows read"]))
    root.add(Node("note", "deployed: inference service eta in prod", key="isvc:1"))
    return root


def random_tree(seed: int) -> Node:
    """A tree of lineage kinds with random fan-out, some keys shared between branches."""
    rng = random.Random(seed)
    shared = [f"shared:{i}" for i in range(3)]

    def grow(depth: int, path: str) -> Node:
        kind = KINDS[depth]
        key = rng.choice(shared) + f":{depth}" if depth >= 3 and rng.random() < 0.3 else f"{kind}:{path}"
        node = Node(kind, f"{kind} {path} " + "x" * rng.randrange(0, 70), key=key,
                    details=[f"detail {path}"] if rng.random() < 0.5 else [])
        if depth + 1 < len(KINDS):
            for i in range(rng.choice([0, 1, 1, 2, 3])):
                node.add(grow(depth + 1, f"{path}.{i}"))
        return node

    return grow(0, "r")


def overlaps(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    return ax < bx + bw and bx < ax + aw and ay < by + bh and by < ay + ah


def check_layout(root: Node, drawn: Layout) -> None:
    ids, edges = _graph(root)
    boxes = list(drawn.boxes.values())
    # every distinct node once, every edge once
    assert [b.ident for b in boxes] == [ident for ident, _ in ids.values()]
    assert drawn.edges == edges
    # no two boxes overlap, and all lie inside the picture
    rects = [(b.x, b.y, b.width, b.height) for b in boxes]
    for i, a in enumerate(rects):
        assert 0 <= a[0] and a[0] + a[2] <= drawn.width and 0 <= a[1] and a[1] + a[3] <= drawn.height
        for b in rects[i + 1:]:
            assert not overlaps(a, b), (a, b)
    # the layout's tree: each child one column right of its parent, the parent between its children
    children: dict[str, list[str]] = {}
    for parent, child in edges:
        if (parent, child) in drawn.primary:
            children.setdefault(parent, []).append(child)
            assert drawn.boxes[child].column == drawn.boxes[parent].column + 1
            assert drawn.boxes[child].x > drawn.boxes[parent].x + drawn.boxes[parent].width
    for parent, kids in children.items():
        ys = [drawn.boxes[k].y for k in kids]
        assert min(ys) <= drawn.boxes[parent].y <= max(ys)
        # centred on its first and last child, to the pixel
        assert abs(drawn.boxes[parent].y - (ys[0] + ys[-1]) / 2) <= 0.5
    # each node reached once by the layout's tree; the other edges join shared nodes
    assert len(drawn.primary) == len(boxes) - 1


def parsed(picture: str) -> ET.Element:
    return ET.fromstring(picture)


def test_a_model_tree_draws_shared_nodes_once_with_an_edge_from_each_parent() -> None:
    root = model_tree()
    drawn = layout(root)
    check_layout(root, drawn)
    labels = [b.node.label for b in drawn.boxes.values()]
    assert labels.count("Delta /lake/stats @ v3") == 1 and labels.count("job run stats 20260301T090000Z-0b5e7a11") == 1
    delta = next(b.ident for b in drawn.boxes.values() if b.node.kind == "delta")
    into_delta = [e for e in drawn.edges if e[1] == delta]
    assert len(into_delta) == 2 and sum(e in drawn.primary for e in into_delta) == 1

    element = parsed(svg(root, ui_href))
    paths = element.findall(f".//{SVG_NS}path[@class]")
    drawn_edges = [(p.get("data-from"), p.get("data-to")) for p in paths if p.get("class", "").startswith("edge")]
    assert drawn_edges == [(f"lineage-{a}", f"lineage-{b}") for a, b in drawn.edges]
    assert sum(p.get("class") == "edge shared" for p in paths) == len(drawn.edges) - len(drawn.primary) == 1


@pytest.mark.parametrize("seed", range(40))
def test_random_trees_lay_out_without_overlaps_and_with_parents_between_children(seed: int) -> None:
    root = random_tree(seed)
    drawn = layout(root)
    check_layout(root, drawn)
    element = parsed(svg(root, ui_href))
    anchors = element.findall(f".//{SVG_NS}a")
    assert [a.get("id") for a in anchors] == [f"lineage-{ident}" for ident in drawn.boxes]


def test_a_lone_node_and_a_deep_chain_are_drawn() -> None:
    lone = Node("note", "no dataset artifacts linked")
    drawn = layout(lone)
    assert (len(drawn.boxes), drawn.edges, drawn.height) == (1, [], BOX_H + 16)
    chain = Node("job_run", "run 0")
    tip = chain
    for i in range(1, 60):
        tip = tip.add(Node("job_run", f"run {i}"))
    deep = layout(chain)
    assert len(deep.boxes) == 60 and len({b.y for b in deep.boxes.values()}) == 1
    assert [b.column for b in deep.boxes.values()] == list(range(60))


def test_every_node_is_a_link_with_a_title_to_its_page_or_to_itself() -> None:
    element = parsed(svg(model_tree(), ui_href))
    anchors = {a.findtext(f"{SVG_NS}title", "").split("\n")[0]: a for a in element.findall(f".//{SVG_NS}a")}
    hrefs = {label: a.get("href") for label, a in anchors.items()}
    assert hrefs["model driver-eta version 3"] == "/lineage/driver-eta/3"
    assert hrefs["offline feature set featurekit.driver_stats"] == "/features/driver_stats"
    assert hrefs["Delta /lake/stats @ v3"] == "/jobs/stats"
    assert hrefs["job run stats 20260301T090000Z-0b5e7a11"] == "/runs/20260301T090000Z-0b5e7a11"
    # no page of its own: the box links to itself, so Tab still reaches it
    spine = anchors["spine /lake/spine @ v2"]
    assert spine.get("href") == f"#{spine.get('id')}"
    assert anchors["training set driver_rates (run 20260302T080000Z-5e7f00d1)"].get("href", "").startswith("#lineage-")
    # the whole text is in the title; the box shows the label (cut) and the first detail
    job = anchors["job run stats 20260301T090000Z-0b5e7a11"]
    assert job.findtext(f"{SVG_NS}title") == "job run stats 20260301T090000Z-0b5e7a11\nstatus succeeded"
    assert [t.text for t in job.findall(f"{SVG_NS}text")] == ["job run stats 20260301T090000Z-0b5e7a11",
                                                              "status succeeded"]
    assert {a.get("class") for a in anchors.values()} == {f"node kind-{k}" for k in [*KINDS, "note"]}
    assert element.get("role") == "group" and element.findtext(f"{SVG_NS}title") == "model driver-eta version 3"


def test_hostile_labels_and_links_stay_text() -> None:
    evil = '</text><script>alert(1)</script><text x="0">" onload="alert(2)'
    root = Node("model_version", evil, key="mv", details=[f"detail {evil}"], link={"model": evil, "version": "1"})
    root.add(Node("feature_set", "view & <friends>", key="fs", link={"view": 'a"/><script>x</script>'}))
    root.add(Node("job_run", "run", key="run", link={"run_id": "1"}))
    picture = svg(root, lambda link: "javascript:alert(3)" if "run_id" in link else ui_href(link),
                  title=f"lineage of {evil}")
    element = parsed(picture)                                  # well-formed despite everything
    assert not element.findall(f".//{SVG_NS}script") and not element.findall(".//script")
    assert all(not name.startswith("on") for e in element.iter() for name in e.attrib)
    assert element.findtext(f"{SVG_NS}title") == f"lineage of {evil}"
    first, view, run = element.findall(f".//{SVG_NS}a")
    assert first.findtext(f"{SVG_NS}title") == f"{evil}\ndetail {evil}"
    assert first.findall(f"{SVG_NS}text")[0].text == evil[:47] + "…"
    assert first.get("href") == f"/lineage/{quote(evil, safe='')}/1"
    assert view.findtext(f"{SVG_NS}text") == "view & <friends>"
    assert view.get("href") == "/features/a%22%2F%3E%3Cscript%3Ex%3C%2Fscript%3E"
    assert run.get("href") == f"#{run.get('id')}"              # a javascript: address is not used
    # the id prefix goes into ids, url(#...) references and CSS selectors: a name, or refused
    assert parsed(svg(root, ui_href, prefix="lin-1")).get("id") == "lin-1"
    with pytest.raises(ValueError, match="prefix: expected a letter, then letters, digits, '-' or '_'; got 'a b'"):
        svg(root, ui_href, prefix="a b")


@pytest.mark.parametrize("address", ["javascript:alert(1)", " JavaScript:alert(1)", "java\nscript:alert(1)",
                                     "\tjavascript:alert(1)", "data:text/html,<b>x</b>", "vbscript:x"])
def test_an_address_that_is_not_a_page_is_not_used(address: str) -> None:
    (anchor,) = parsed(svg(Node("job_run", "run", link={"run_id": "1"}), lambda link: address)).iter(f"{SVG_NS}a")
    assert anchor.get("href") == f"#{anchor.get('id')}"


def test_secrets_in_labels_are_masked() -> None:
    root = Node("source", "source raw: parquet s3a://reader:hunter2secret@minio/raw",
                details=["jdbc password=hunter2secret"])
    picture = svg(root, ui_href)
    assert "hunter2secret" not in picture
    assert picture.count("***") == 5       # the picture's title, the box's title (two lines), its two texts


def test_the_same_tree_gives_the_same_bytes() -> None:
    first = svg(model_tree(), ui_href).encode()
    assert svg(model_tree(), ui_href).encode() == first
    assert svg(random_tree(7), ui_href).encode() == svg(random_tree(7), ui_href).encode()
    assert svg(random_tree(7), ui_href) != svg(random_tree(8), ui_href)
