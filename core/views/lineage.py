"""A clip's family drawn as a picture (layout for the web page's SVG), DOT or Mermaid text.

Everything here starts from :func:`core.views.report.lineage_dict`, the same nested data that
``reelvault lineage --json`` prints, so every format shows the same family. Lineage is a
tree (one source still, each clip with at most one parent), so a layered tree layout is
enough: leaves take consecutive columns and each parent sits centred over its children,
which never lets two subtrees overlap. No Graphviz binary is needed for any of it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pydot

from core.api.ids import short

NODE_WIDTH = 160
THUMB_HEIGHT = 90
CAPTION_HEIGHT = 36
H_GAP = 24
V_GAP = 44
MARGIN = 16
PROMPT_CHARS = 40


@dataclass
class _Node:
    """One box of the family: the source still or a clip, with its children below it."""

    id: str
    kind: str  # "still" | "clip" | "asset" (one named only by Content Credentials)
    title: str  # the full prompt, or the still's file name
    image_asset_id: str | None  # the clip's thumbnail, or the still itself
    status: str | None
    relation: str | None
    depth: int = 0
    children: list[_Node] = field(default_factory=list)
    made_by: str | None = None  # "backend/model": what tells a shot's variants apart


@dataclass(frozen=True)
class PlacedNode:
    id: str
    kind: str
    label: str
    caption: str
    title: str
    image_asset_id: str | None
    status: str | None
    is_target: bool
    x: int
    y: int
    width: int = NODE_WIDTH
    thumb_height: int = THUMB_HEIGHT
    box_height: int = THUMB_HEIGHT + CAPTION_HEIGHT


@dataclass(frozen=True)
class PlacedEdge:
    parent: str
    child: str
    relation: str
    path: str  # an SVG path from the parent's bottom edge to the child's top edge


@dataclass(frozen=True)
class LineageLayout:
    target: str
    nodes: tuple[PlacedNode, ...]
    edges: tuple[PlacedEdge, ...]
    width: int
    height: int


def _tree(data: Mapping[str, Any]) -> list[_Node]:
    """The lineage as nodes; built with a stack, as remix chains may be very long."""
    source = data["source"]
    still = None
    if source is not None:
        still = _Node(
            id=source["id"],
            kind="still",
            title=source.get("original_name") or source["id"],
            image_asset_id=None if source.get("placeholder") else source["id"],
            status=None,
            relation=None,
        )
    roots: list[_Node] = [still] if still else []
    first_depth = 1 if still else 0
    pending = [(c, still, first_depth) for c in reversed(data["clips"])]
    while pending:
        entry, parent, depth = pending.pop()
        node = _Node(
            id=entry["id"],
            kind="clip",
            title=entry["prompt"],
            image_asset_id=entry.get("thumbnail_asset_id"),
            status=entry["status"],
            relation=entry["relation"],
            depth=depth,
            made_by=f"{entry['backend']}/{entry['model']}" if entry.get("backend") else None,
        )
        (parent.children if parent else roots).append(node)
        pending += [(c, node, depth + 1) for c in reversed(entry["children"])]
    return roots


def _walk(roots: list[_Node]) -> Iterator[tuple[_Node | None, _Node]]:
    """Every (parent, node) pair, parents first, without recursion (chains can be long)."""
    stack: list[tuple[_Node | None, _Node]] = [(None, r) for r in reversed(roots)]
    while stack:
        parent, node = stack.pop()
        yield parent, node
        stack += [(node, c) for c in reversed(node.children)]


@dataclass(frozen=True)
class _RelationEdge:
    """An asset relation named by Content Credentials, as an edge of the picture; ``new``
    is the asset it brings in when no still or clip of the tree stands for it already."""

    parent: str
    child: str
    relationship: str
    new: _Node | None


def _relation_edges(data: Mapping[str, Any], tree: list[_Node]) -> list[_RelationEdge]:
    """The ``ingredients`` and ``derived`` of :func:`core.views.report.lineage_dict` as
    edges around the target, so a picture shows what the JSON and the tree show. A clip
    stands for its video and the source still for itself; every other asset becomes a
    node of its own. Edges the tree already draws (the still a clip was made from) are
    left out. Walked with a stack: credential chains can be long."""
    node_of = {n.id: n.id for _, n in _walk(tree)}
    pending = [c for c in data["clips"]]
    while pending:
        clip = pending.pop()
        if clip.get("output_asset_id"):
            node_of[clip["output_asset_id"]] = clip["id"]
        pending += clip["children"]
    drawn = {(p.id, n.id) for p, n in _walk(tree) if p is not None}
    edges: list[_RelationEdge] = []
    stack = [(data["target"], e, True) for e in reversed(data.get("ingredients") or [])]
    stack += [(data["target"], e, False) for e in reversed(data.get("derived") or [])]
    while stack:
        near, entry, upward = stack.pop()
        new = None
        if entry["id"] not in node_of:
            node_of[entry["id"]] = entry["id"]
            placeholder = " (placeholder)" if entry.get("placeholder") else ""
            new = _Node(id=entry["id"], kind="asset",
                        title=(entry.get("original_name") or entry["kind"]) + placeholder,
                        image_asset_id=None, status=None, relation=None)  # fmt: skip
        far = node_of[entry["id"]]
        parent, child = (far, near) if upward else (near, far)
        if (parent, child) not in drawn and parent != child:
            drawn.add((parent, child))
            edges.append(_RelationEdge(parent, child, entry["relationship"], new))
        elif new is not None:
            edges.append(_RelationEdge(parent, child, "", new))
        if not entry.get("repeated"):
            key = "ingredients" if upward else "derived"
            stack += [(far, e, upward) for e in reversed(entry.get(key) or [])]
    return edges


def _caption(node: _Node) -> str:
    if node.kind == "still":
        return "source still"
    relation = (node.relation or "").removesuffix("_of")
    return f"{relation} · {node.status}" if relation else str(node.status)


def layout(data: Mapping[str, Any]) -> LineageLayout:
    """Place every node of a lineage (as :func:`core.views.report.lineage_dict` gives it)."""
    roots = _tree(data)
    order = list(_walk(roots))
    column: dict[int, float] = {}
    leaves = 0
    for _, node in reversed(order):  # children before parents
        if node.children:
            column[id(node)] = (column[id(node.children[0])] + column[id(node.children[-1])]) / 2
        else:
            column[id(node)] = leaves
            leaves += 1
    row_height = THUMB_HEIGHT + CAPTION_HEIGHT + V_GAP
    placed: dict[int, PlacedNode] = {}
    for _, node in order:
        placed[id(node)] = PlacedNode(
            id=node.id,
            kind=node.kind,
            label=short(node.id),
            caption=_caption(node),
            title=node.title,
            image_asset_id=node.image_asset_id,
            status=node.status,
            is_target=node.id == data["target"],
            x=MARGIN + round(column[id(node)] * (NODE_WIDTH + H_GAP)),
            y=MARGIN + node.depth * row_height,
        )
    edges = []
    for parent, node in order:
        if parent is None:
            continue
        a, b = placed[id(parent)], placed[id(node)]
        x1, y1 = a.x + NODE_WIDTH // 2, a.y + THUMB_HEIGHT + CAPTION_HEIGHT
        x2, y2 = b.x + NODE_WIDTH // 2, b.y
        bend = V_GAP // 2
        path = f"M{x1},{y1} C{x1},{y1 + bend} {x2},{y2 - bend} {x2},{y2}"
        edges.append(PlacedEdge(parent.id, node.id, node.relation or "source", path))
    depth = max((n.depth for _, n in order), default=0)
    return LineageLayout(
        target=data["target"],
        nodes=tuple(placed[id(n)] for _, n in order),
        edges=tuple(edges),
        width=2 * MARGIN + max(leaves, 1) * (NODE_WIDTH + H_GAP) - H_GAP,
        height=2 * MARGIN + (depth + 1) * row_height - V_GAP,
    )


def _text_label(node: _Node) -> str:
    if node.kind in ("still", "asset"):
        return f"{short(node.id)}\n{node.title}"
    prompt = " ".join(node.title.split())
    prompt = prompt if len(prompt) <= PROMPT_CHARS else prompt[:PROMPT_CHARS] + "…"
    made_by = f"{node.made_by}\n" if node.made_by else ""
    return f"{node.id}\n{_caption(node)}\n{made_by}{prompt}"


def _dot_string(text: str) -> str:
    """``text`` as a quoted DOT string, each line a centred line of the label.

    pydot quotes a value by escaping ``"`` only, so a backslash (a still named
    ``photo\\``, a prompt ending in one) would escape the closing quote and break the
    file; and a value that already looks quoted or like ``<html>`` it passes on as is. A
    string quoted here, backslashes first, is one pydot leaves alone.
    """
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + "\\n".join(escaped.splitlines()) + '"'


def to_dot(data: Mapping[str, Any]) -> str:
    """Graphviz DOT text of a lineage; ``dot -Tsvg`` draws it."""
    graph = pydot.Dot("lineage", graph_type="digraph", rankdir="TB")
    graph.set_node_defaults(shape="box", fontname="Helvetica", fontsize="10")
    tree = _tree(data)
    for parent, node in _walk(tree):
        # Any, not str: pydot.Node also takes obj_dict by keyword, so str values do not fit.
        attrs: dict[str, Any] = {"label": _dot_string(_text_label(node))}
        if node.kind == "still":
            attrs["shape"] = "note"
        if node.id == data["target"]:
            attrs["penwidth"] = "3"
        graph.add_node(pydot.Node(node.id, **attrs))
        if parent is not None:
            relation = _dot_string(node.relation or "source")
            graph.add_edge(pydot.Edge(parent.id, node.id, label=relation))
    for edge in _relation_edges(data, tree):  # dashed: what credentials say, not a clip's row
        if edge.new is not None:
            graph.add_node(pydot.Node(edge.new.id, label=_dot_string(_text_label(edge.new)),
                                      shape="note", style="dashed"))  # fmt: skip
        if edge.relationship:
            label = _dot_string(edge.relationship)
            graph.add_edge(pydot.Edge(edge.parent, edge.child, label=label, style="dashed"))
    return graph.to_string()


_MERMAID_ESCAPES = {ord(c): f"#{ord(c)};" for c in '#&"<>`|'}


def _mermaid_text(text: str) -> str:
    """Mermaid quoted-label text on one line: its own entity codes for the characters it
    would parse, ``&`` included, so text that looks like an HTML entity shows as typed."""
    return " ".join(text.split()).translate(_MERMAID_ESCAPES)


def to_mermaid(data: Mapping[str, Any]) -> str:
    """A Mermaid flowchart of a lineage (renders in GitHub, GitLab and most wikis)."""
    lines = ["flowchart TD"]
    names: dict[str, str] = {}
    edges: list[str] = []
    tree = _tree(data)
    for parent, node in _walk(tree):
        name = names[node.id] = f"n{len(names)}"
        label = "<br/>".join(_mermaid_text(part) for part in _text_label(node).split("\n"))
        lines.append(f'    {name}["{label}"]')
        if parent is not None:
            relation = _mermaid_text(node.relation or "source")
            edges.append(f'    {names[parent.id]} -->|"{relation}"| {name}')
    for edge in _relation_edges(data, tree):  # dotted: what credentials say
        if edge.new is not None:
            name = names[edge.new.id] = f"n{len(names)}"
            label = "<br/>".join(_mermaid_text(part) for part in _text_label(edge.new).split("\n"))
            lines.append(f'    {name}["{label}"]')
        if edge.relationship:
            relation = _mermaid_text(edge.relationship)
            edges.append(f'    {names[edge.parent]} -.->|"{relation}"| {names[edge.child]}')
    lines += edges
    if data["target"] in names:
        lines += [
            "    classDef target stroke-width:3px",
            f"    class {names[data['target']]} target",
        ]
    return "\n".join(lines) + "\n"
