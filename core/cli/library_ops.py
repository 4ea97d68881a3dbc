"""Commands that look after the library as a whole: ``get``, ``rm``, ``gc`` and ``info``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from core.cli.base import (
    STATUS,
    cli,
    echo_err,
    get_app,
    json_option,
    parse_when,
    print_json,
)
from core.library.files import VARIANTS, get_file
from core.library.info import library_info
from core.library.removal import collect_garbage, remove_items


@cli.command(name="get")
@click.argument("identifier", metavar="ID")
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    help="File to write, or a folder to write the named file in (default: here).",
)
@click.option(
    "--variant",
    type=click.Choice(VARIANTS),
    help="Which of a clip's files (default video); source is the still it was made from.",
)
@click.option("--force", is_flag=True, help="Replace the file if it exists.")
@click.pass_context
def get_command(
    ctx: click.Context, identifier: str, output: Path | None, variant: str | None, force: bool
) -> None:
    """Copy a clip's video (or another of its files, or an asset) out as a named file."""
    written = get_file(get_app(ctx), identifier, output, variant, force)
    click.echo(str(written))


@cli.command(name="rm")
@click.argument("identifiers", metavar="[ID]...", nargs=-1)
@click.option("--status", "-s", type=STATUS, help="Also every clip with this status (e.g. failed).")
@click.option("--before", help="Only clips created before this: a date, or an age like 7d.")
@click.option("--with-descendants", is_flag=True, help="Also remove every clip derived from them.")
@click.option("--dry-run", "-n", is_flag=True, help="Say what would go; remove nothing.")
@json_option
@click.pass_context
def rm_command(
    ctx: click.Context,
    identifiers: tuple[str, ...],
    status: str | None,
    before: str | None,
    with_descendants: bool,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Remove clips or assets from the catalog, all or none; `gc` then frees their files."""
    removed = remove_items(
        get_app(ctx),
        identifiers,
        status=status,
        before=parse_when(before) if before else None,
        with_descendants=with_descendants,
        dry_run=dry_run,
    )
    if as_json:
        print_json({"dry_run": dry_run, **removed.__dict__})
        return
    verb = "would remove" if dry_run else "removed"
    for clip in removed.clips:
        click.echo(f"{verb} clip {clip}")
    for asset in removed.assets:
        click.echo(f"{verb} file {asset}")
    if not removed.clips and not removed.assets:
        echo_err("nothing matches: nothing removed")
    elif not dry_run:
        echo_err(f"{_size(removed.bytes)} can be freed with `reelvault gc`")


@cli.command(name="gc")
@click.option("--dry-run", "-n", is_flag=True, help="Say what would be deleted; delete nothing.")
@json_option
@click.pass_context
def gc_command(ctx: click.Context, dry_run: bool, as_json: bool) -> None:
    """Delete stored files no clip or asset refers to, and leftovers of interrupted work."""
    collected = collect_garbage(get_app(ctx), dry_run=dry_run)
    if as_json:
        print_json({"dry_run": dry_run, **collected.__dict__})
        return
    verb = "would delete" if dry_run else "deleted"
    for where in collected.files + collected.leftovers:
        click.echo(f"{verb} {where}")
    count = len(collected.files) + len(collected.leftovers)
    freed = "would free" if dry_run else "freed"
    click.echo(f"{count} item(s), {freed} {_size(collected.bytes)}")


@cli.command(name="info")
@json_option
@click.pass_context
def info_command(ctx: click.Context, as_json: bool) -> None:
    """Which home, catalog and media store are in use, what they hold, what runs here."""
    data = library_info(get_app(ctx))
    if as_json:
        print_json(data)
        return
    click.echo("\n".join(info_lines(data)))


def info_lines(data: dict[str, Any]) -> list[str]:
    signing = data["signing"]
    if signing["subject"]:
        trusted = "trusted here" if signing["trusted_here"] else "not trusted here"
        signs = f"{signing['subject']} ({trusted})"
    else:
        signs = f"not signing: {signing['problem'] or 'not set up'}"
    plugins = ", ".join(p["name"] for p in data["plugins"])
    lines = [
        f"home      {data['home']}",
        f"catalog   {data['catalog']}",
        f"media     {data['media']}",
        f"clips     {data['clips']:,}",
        f"stills    {data['stills']:,}",
        f"videos    {data['videos']:,}",
        f"stored    {data['files']:,} files, {_size(data['bytes'])}",
        f"signing   {signs}",
        f"plugins   {plugins}",
    ]
    if data["failed_plugins"]:
        lines.append(f"failed    {', '.join(data['failed_plugins'])} (see `reelvault plugins`)")
    return lines


def _size(count: int) -> str:
    """Bytes for people: ``12,345 bytes (12.3 MB)``."""
    size = float(count)
    for unit in ("bytes", "kB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{count:,} bytes" + (f" ({size:.1f} {unit})" if unit != "bytes" else "")
        size /= 1000
    return f"{count:,} bytes"
