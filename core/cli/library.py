"""Commands that read the catalog: ``list``, ``show`` and ``lineage``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import click

from catalog.organise import organised, organised_by_id
from catalog.queries import get_generation, list_generations
from catalog.queries import resolve as resolve_id
from core.api.errors import RequestError
from core.api.ids import short
from core.api.times import timestamp_text
from core.cli.base import (
    Columns,
    FilterRequest,
    cli,
    clip_filter_options,
    clip_text,
    get_app,
    json_option,
    plain,
    print_json,
    print_rows,
    say,
    sort_option,
)
from core.views.checks import latest_per_verifier
from core.views.report import (
    generation_dict,
    generation_summary,
    ingredient_failure_lines,
    lineage_dict,
    variant_dicts,
)


@cli.command(name="list")
@clip_filter_options
@click.option(
    "-n",
    "limit",
    type=click.IntRange(min=0),
    default=50,
    show_default=True,
    help="At most this many clips (0: no limit).",
)
@sort_option
@json_option
@click.pass_context
def list_command(
    ctx: click.Context, filters: FilterRequest, limit: int, sort: str, as_json: bool
) -> None:
    """List clips, newest first."""
    app = get_app(ctx)
    clip_filter = filters.to_filter(app, limit=limit or None, sort=sort)
    with app.session() as session:
        clips = list_generations(session, clip_filter)
        extras = organised_by_id(session, [g.id for g in clips], clips=True)
    rows = [{**generation_summary(g), **extras[g.id].as_dict()} for g in clips]
    columns: Columns[dict[str, Any]] = {
        "id": lambda row: row["id"],
        "created": lambda row: timestamp_text(row["created_at"]),
        "status": lambda row: row["status"],
        "backend/model": lambda row: f"{row['backend']}/{row['model']}",
        "secs": lambda row: str(row["seconds"]),
        "size": lambda row: row["size"],
        "parent": lambda row: row["parent_id"] or "",
        "prompt": lambda row: plain(clip_text(_label(row), 60)),
    }
    print_rows(
        rows,
        columns,
        as_json=as_json,
        empty_message="no clips match",
        whole=("id", "status", "parent"),
    )


def _label(row: dict[str, Any]) -> str:
    """A clip's prompt, after its title and before its tags when it has them."""
    title = f"{row['title']}: " if row.get("title") else ""
    tags = "  " + " ".join(f"#{t}" for t in row["tags"]) if row.get("tags") else ""
    return f"{title}{row['prompt']}{tags}"


@cli.command(name="show")
@click.argument("clip")
@json_option
@click.pass_context
def show_command(ctx: click.Context, clip: str, as_json: bool) -> None:
    """Everything known about one clip: request, result, files, lineage, decisions."""
    app = get_app(ctx)
    with app.session() as session:
        generation = get_generation(session, clip)
        data = generation_dict(session, generation, app.store)
        data.update(organised(session, generation).as_dict())
        data["variants"] = variant_dicts(session, generation)
    if as_json:
        print_json(data)
    else:
        print_generation(data)


def print_generation(data: dict[str, Any]) -> None:
    lines = [
        f"clip      {data['id']}",
        f"status    {data['status']}",
        f"backend   {data['backend']} / model {data['model']}",
        f"prompt    {data['prompt']}",
        f"request   {data['seconds']}s at {data['size']}",
    ]
    if data.get("title"):
        lines.insert(1, f"title     {data['title']}")
    if data.get("tags"):
        lines.append(f"tags      {' '.join(data['tags'])}")
    if data.get("rating") is not None:
        lines.append(f"rating    {data['rating']} of 5")
    if data.get("note"):
        lines.append(f"note      {data['note']}")
    extra = {k: v for k, v in data["parameters"].items() if k not in ("seconds", "size")}
    if extra:
        lines.append(f"params    {json.dumps(extra, sort_keys=True)}")
    if data["parent_id"]:
        lines.append(f"parent    {data['parent_id']} ({data['relation']})")
    if data["remote_job_id"]:
        lines.append(f"job       {data['remote_job_id']}")
    lines.append(f"created   {timestamp_text(data['created_at'])}")
    if data["completed_at"]:
        lines.append(f"finished  {timestamp_text(data['completed_at'])}")
    if data["error"]:
        lines.append(f"error     {data['error']['code']}: {data['error']['message']}")
    for label, key in (("source", "source"), ("sent", "input"), ("video", "video"),
                       ("thumbnail", "thumbnail"), ("sprites", "spritesheet")):  # fmt: skip
        asset = data[key]
        if asset:
            lines.append(f"{label:<10}{short(asset['id'])}  {_asset_line(asset)}")
            for v in latest_per_verifier(asset["verifications"]):  # --json: whole history
                lines.append(
                    f"          verified by {v['verifier']}: {v['state']}"
                    + (f" ({v['details']['summary']})" if v["details"].get("summary") else "")
                    + f"  {timestamp_text(v['checked_at'])}"
                    + (f"  ({_earlier(v['earlier'])})" if v["earlier"] else "")
                )
                lines += [f"            {line}" for line in ingredient_failure_lines(v["details"])]
    lines += [f"warning   {warning}" for warning in (data["details"] or {}).get("warnings", [])]
    unsupported = (data["details"] or {}).get("claims_not_supported", {})
    lines += [
        f"claimed   {role} {sha} (claimed, not supported by ingredients)"
        for role, sha in unsupported.items()
    ]
    explanation = data["details"].get("explanation") if data["details"] else None
    if explanation:
        lines.append("motion plan" if "motion_plan" in data["details"] else "backend notes")
        lines += [f"  {line}" for line in explanation]
    if data.get("variants"):
        lines.append("variants  of the same shot (reelvault regenerate), oldest first")
        lines += [
            f"  {short(v['id'])}  {v['backend']}/{v['model']}"
            + (f" via {v['provider']}" if v["provider"] else "")
            + f"  {v['seconds']}s {v['size']}  {v['status']}"
            + ("  (this clip)" if v["this_clip"] else "")
            for v in data["variants"]
        ]
    if data["policy_decisions"]:
        lines.append("policy decisions")
        lines += [
            f"  {d['outcome']:<5} {d['plugin']}/{d['rule_id']}: {d['reason']}"
            for d in data["policy_decisions"]
        ]
    say(*lines)


def _earlier(count: int) -> str:
    return f"{count} earlier check" + ("s" if count > 1 else "")


def _asset_line(asset: dict[str, Any]) -> str:
    parts = [asset["mime"]]
    if asset["width"]:
        parts.append(f"{asset['width']}x{asset['height']}")
    if asset["duration"]:
        parts.append(f"{asset['duration']:.2f}s")
    if asset["fps"]:
        parts.append(f"{asset['fps']:g} fps")
    if asset["frame_count"]:
        parts.append(f"{asset['frame_count']} frames")
    if asset["bytes"] is not None:
        parts.append(f"{asset['bytes']:,} bytes")
    if asset["original_name"]:
        parts.append(asset["original_name"])
    parts.append(asset["path"] or "(placeholder: known from credentials, file not imported)")
    return "  ".join(parts)


LINEAGE_FORMATS = ("tree", "json", "dot", "mermaid", "prov-json")


@cli.command(name="lineage")
@click.argument("identifier")
@click.option("--format", "fmt", type=click.Choice(LINEAGE_FORMATS), default="tree",
              show_default=True, help="tree for people; json, dot (Graphviz), mermaid or "
              "prov-json (W3C PROV) for tools.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print JSON (same as --format json).")
@click.pass_context
def lineage_command(ctx: click.Context, identifier: str, fmt: str, as_json: bool) -> None:
    """Where a clip came from and what was made from it (or from a still), as a tree."""
    from core.views import exports
    from core.views import lineage as lineage_render  # prov and pydot load only for this command

    if as_json and fmt not in ("tree", "json"):
        raise RequestError(f"--json means --format json; it cannot go with --format {fmt}")
    fmt = "json" if as_json else fmt
    app = get_app(ctx)
    with app.session() as session:
        target = resolve_id(session, identifier)
        data = lineage_dict(session, target, app.store)
        if fmt == "prov-json":
            click.echo(exports.prov_json(exports.lineage_prov(session, target)))
            return
    if fmt == "json":
        print_json(data)
        return
    if fmt in ("dot", "mermaid"):
        render = lineage_render.to_dot if fmt == "dot" else lineage_render.to_mermaid
        click.echo(render(data), nl=False)
        return
    source = data["source"]
    if source:
        label = f"{short(source['id'])}  {source['original_name'] or ''}  {_dims(source)}"
        label += "  (placeholder: file not imported)" if source.get("placeholder") else ""
    else:
        label = "(no source image)"
    lines = [label.rstrip(), *tree_lines(data["clips"], data["target"])]
    for key, heading in (("ingredients", "made from"), ("derived", "used in")):
        if data.get(key):
            lines += [heading, *relation_lines(data[key], key)]
    say(*lines)


def _relation_label(entry: dict[str, Any], key: str) -> str:
    """One related asset: how it is related, its id (whole: ids are for copying), its name."""
    how = entry["relationship"] if key == "ingredients" else f"names it as {entry['relationship']}"
    parts = [how, entry["id"], entry["original_name"] or "", _dims(entry)]
    if entry.get("placeholder"):
        parts.append("(placeholder: file not imported)")
    if entry.get("repeated"):
        parts.append("(listed in full elsewhere in this tree)")
    return "  ".join(p for p in parts if p)


def relation_lines(entries: list[dict[str, Any]], key: str) -> Iterator[str]:
    """Related assets as a tree, drawn with a stack (the credentials may nest deep)."""
    stack = [(e, *_guides("", i == len(entries) - 1)) for i, e in enumerate(entries)]
    stack.reverse()
    while stack:
        entry, guide, indent = stack.pop()
        yield guide + _relation_label(entry, key)
        children = entry[key]
        last = len(children) - 1
        stack += [(c, *_guides(indent, i == last)) for i, c in reversed(list(enumerate(children)))]


def _dims(asset: dict[str, Any]) -> str:
    return (
        f"{asset['mime']} {asset['width']}x{asset['height']}" if asset["width"] else asset["mime"]
    )


def _clip_label(clip: dict[str, Any], target: str) -> str:
    marker = "  ◀" if clip["id"] == target else ""
    relation = f"{clip['relation']}  " if clip["relation"] else ""
    fitted = clip.get("input_asset_id")
    sent = f"  (sent fitted {short(fitted)})" if fitted else ""
    return (
        f"{clip['id']}  {relation}{clip['status']}  {clip['backend']}/{clip['model']}  "
        f"{clip['prompt']!r}{sent}{marker}"
    )


def tree_lines(clips: list[dict[str, Any]], target: str) -> Iterator[str]:
    """The clips under the source line, one per line, drawn with a stack (chains run deep).

    Siblings hang off ``├──``/``└──`` guides, one level further in than their parent; an
    only child is drawn straight below its parent at the same indent, so a remix chain
    reads top to bottom as a column instead of drifting right by four characters a clip.
    """
    # (clip, guide before it, the indent of its children if they branch)
    stack = [(clip, *_guides("", i == len(clips) - 1)) for i, clip in enumerate(clips)]
    stack.reverse()
    while stack:
        clip, guide, indent = stack.pop()
        yield guide + _clip_label(clip, target)
        children = clip["children"]
        if len(children) == 1:
            stack.append((children[0], indent, indent))
        else:
            last = len(children) - 1
            stack += [
                (c, *_guides(indent, i == last)) for i, c in reversed(list(enumerate(children)))
            ]


def _guides(indent: str, last: bool) -> tuple[str, str]:
    """The guide of a child among siblings, and the indent that child's own children get."""
    return (indent + ("└── " if last else "├── "), indent + ("    " if last else "│   "))
