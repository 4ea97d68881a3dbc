"""Browse and export commands: ``serve`` (core.web) and ``export`` (core.exports).

``reelvault lineage --format`` lives with ``lineage`` in core.cli and renders through
core.lineage_render and core.exports, like the web page's lineage does.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import click

from catalog.queries import PROVENANCE_STATES, ClipFilter
from core.cli import cli, echo_err, get_app, parse_when, source_asset_id
from core.exports import FORMATS, export

DEFAULT_HOST = "127.0.0.1"  # loopback: nobody else can reach the library unless told to
DEFAULT_PORT = 8000


@cli.command(name="serve")
@click.option("--host", default=DEFAULT_HOST, show_default=True,
              help="Address to listen on; anything but loopback exposes the library.")  # fmt: skip
@click.option("--port", type=click.IntRange(0, 65535), default=DEFAULT_PORT, show_default=True,
              help="Port to listen on (0: any free port).")  # fmt: skip
@click.pass_context
def serve_command(ctx: click.Context, host: str, port: int) -> None:
    """Browse the library in a web browser: thumbnails, clips, lineage (read-only)."""
    from core.web import is_loopback, serve  # the web stack loads only for this command

    app = get_app(ctx)
    if not is_loopback(host):
        echo_err(
            f"warning: listening on {host}: anyone who can reach it can browse the whole "
            "library (there is no sign-in)"
        )

    def announce(url: str) -> None:
        click.echo(f"serving {url}  (Ctrl-C stops)")
        sys.stdout.flush()

    serve(app, host, port, announce=announce)


def clip_filter_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The filters of ``list``, for commands that take a part of the catalog."""
    options = (
        click.option("--model", "-m", help="Only this model."),
        click.option("--backend", "-b", help="Only this backend."),
        click.option("--status", "-s", help="Only this status (completed, failed, rejected, ...)."),
        click.option("--text", "-t", help="Only prompts containing this text."),
        click.option("--source", help="Only clips made from this image (asset id or file path)."),
        click.option("--since", help="Created at or after: a date, a time, or an age like 7d."),
        click.option("--until", help="Created before: a date, a time, or an age like 1h."),
        click.option(
            "--provenance",
            type=click.Choice(PROVENANCE_STATES),
            help="Only clips whose video's latest verification has this state.",
        ),
    )
    for option in reversed(options):
        command = option(command)
    return command


@cli.command(name="export")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="jsonl", show_default=True,
              help="jsonl: one clip per line, everything; csv: one row per clip; "
                   "prov-json: W3C PROV lineage.")  # fmt: skip
@clip_filter_options
@click.pass_context
def export_command(
    ctx: click.Context,
    fmt: str,
    model: str | None,
    backend: str | None,
    status: str | None,
    text: str | None,
    source: str | None,
    since: str | None,
    until: str | None,
    provenance: str | None,
) -> None:
    """Write the catalog (or the part the filters select) to stdout, oldest first."""
    app = get_app(ctx)
    filters = ClipFilter(
        model=model,
        backend=backend,
        status=status,
        text=text,
        source_asset_id=source_asset_id(app, source) if source else None,
        since=parse_when(since) if since else None,
        until=parse_when(until) if until else None,
        provenance=provenance,
        limit=None,
    )
    count = export(app, fmt, filters, sys.stdout)
    echo_err(f"exported {count} clip{'s' if count != 1 else ''} as {fmt}")
