"""Commands that organise the library: ``tag``, ``untag``, ``annotate`` and ``assets``."""

from __future__ import annotations

from typing import Any

import click

from catalog.asset_listing import LISTED_KINDS, AssetFilter, lineage_summaries, list_assets
from catalog.organise import UNSET, add_tags, annotate, organised, organised_by_id, remove_tags
from catalog.queries import PROVENANCE_STATES, latest_states
from catalog.queries import resolve as resolve_id
from core.api.errors import RequestError
from core.api.ids import short
from core.api.times import timestamp_text
from core.cli.base import (
    Columns,
    cli,
    clip_text,
    get_app,
    json_option,
    plain,
    print_json,
    print_rows,
    sort_option,
    tag_option,
    text_option,
)
from core.views.report import asset_dict


def _print_tags(identifier: str, tags: list[str], as_json: bool) -> None:
    if as_json:
        print_json({"id": identifier, "tags": tags})
    else:
        click.echo(f"{identifier}  " + (" ".join(tags) if tags else "(no tags)"))


@cli.command(name="tag")
@click.argument("identifier")
@click.argument("tags", nargs=-1, required=True)
@json_option
@click.pass_context
def tag_command(ctx: click.Context, identifier: str, tags: tuple[str, ...], as_json: bool) -> None:
    """Tag a clip or an asset (ID) with TAGS; prints all its tags."""
    app = get_app(ctx)
    with app.session() as session:
        item = resolve_id(session, identifier)
        now = add_tags(session, item, tags)
    _print_tags(item.id, now, as_json)


@cli.command(name="untag")
@click.argument("identifier")
@click.argument("tags", nargs=-1, required=True)
@json_option
@click.pass_context
def untag_command(
    ctx: click.Context, identifier: str, tags: tuple[str, ...], as_json: bool
) -> None:
    """Take TAGS off a clip or an asset (ID); prints the tags it keeps."""
    app = get_app(ctx)
    with app.session() as session:
        item = resolve_id(session, identifier)
        now = remove_tags(session, item, tags)
    _print_tags(item.id, now, as_json)


@cli.command(name="annotate")
@click.argument("identifier")
@click.option("--title", help="A title (empty text clears it).")
@click.option("--note", help="A note (empty text clears it).")
@click.option("--rating", type=click.IntRange(0, 5), help="A rating from 0 to 5.")
@click.option("--clear-rating", is_flag=True, help="Remove the rating.")
@json_option
@click.pass_context
def annotate_command(
    ctx: click.Context,
    identifier: str,
    title: str | None,
    note: str | None,
    rating: int | None,
    clear_rating: bool,
    as_json: bool,
) -> None:
    """Give a clip or an asset (ID) a title, a note or a rating (0-5)."""
    if title is None and note is None and rating is None and not clear_rating:
        raise RequestError("give --title, --note, --rating or --clear-rating")
    if clear_rating and rating is not None:
        raise RequestError("--rating and --clear-rating contradict each other")
    app = get_app(ctx)
    with app.session() as session:
        item = resolve_id(session, identifier)
        annotate(
            session,
            item,
            title=UNSET if title is None else title,
            note=UNSET if note is None else note,
            rating=None if clear_rating else (UNSET if rating is None else rating),
        )
        data = {"id": item.id, **organised(session, item).as_dict()}
    if as_json:
        print_json(data)
        return
    lines = [f"{data['id']}"]
    lines += [f"  title   {data['title']}"] if data["title"] else []
    lines += [f"  rating  {data['rating']}"] if data["rating"] is not None else []
    lines += [f"  note    {data['note']}"] if data["note"] else []
    click.echo("\n".join(lines))


@cli.command(name="assets")
@click.option("--kind", type=click.Choice(LISTED_KINDS), help="Only stills or only videos.")
@click.option("--mime", help="Only this media type, e.g. image/jpeg.")
@click.option(
    "--provenance",
    type=click.Choice(PROVENANCE_STATES),
    help="Only files whose latest verification has this state.",
)
@tag_option
@text_option
@sort_option
@click.option(
    "-n",
    "limit",
    type=click.IntRange(min=0),
    default=50,
    show_default=True,
    help="At most this many files (0: no limit).",
)
@json_option
@click.pass_context
def assets_command(
    ctx: click.Context,
    kind: str | None,
    mime: str | None,
    provenance: str | None,
    tags: tuple[str, ...],
    text: str | None,
    sort: str,
    limit: int,
    as_json: bool,
) -> None:
    """Every file of the library (stills, clips' videos, imports) with its lineage summary."""
    app = get_app(ctx)
    filters = AssetFilter(kind, mime, provenance, tags, text, sort, limit or None)
    with app.session() as session:
        assets = list_assets(session, filters)
        ids = [a.id for a in assets]
        summaries = lineage_summaries(session, ids)
        extras = organised_by_id(session, ids, clips=False)
        states = latest_states(session, ids)
    rows = [
        {
            **asset_dict(a),
            **extras[a.id].as_dict(),
            "provenance": states.get(a.id),
            "parents": summaries[a.id].parents,
            "children": summaries[a.id].children,
            "clip": summaries[a.id].clip,
        }
        for a in assets
    ]
    columns: Columns[dict[str, Any]] = {
        "id": lambda row: row["id"],
        "created": lambda row: timestamp_text(row["created_at"]),
        "type": lambda row: row["mime"],
        "size": lambda row: f"{row['width']}x{row['height']}" if row["width"] else "",
        "provenance": lambda row: row["provenance"] or "unchecked",
        "parents": lambda row: str(row["parents"]),
        "children": lambda row: str(row["children"]),
        "name": lambda row: plain(clip_text(_name(row), 50)),
    }
    print_rows(rows, columns, as_json=as_json, empty_message="no files match")


def _name(row: dict[str, Any]) -> str:
    """What a file is called: its title, else its file name, else the clip it belongs to."""
    name = (
        row["title"] or row["original_name"] or (f"video of {row['clip']}" if row["clip"] else "")
    )
    tags = "  " + " ".join(f"#{t}" for t in row["tags"]) if row["tags"] else ""
    return f"{name}{tags}" or short(row["id"])
