"""Browse and export commands: ``serve`` (core.web.app) and ``export`` (core.views.exports).

``reelvault lineage --format`` lives with ``lineage`` in core.cli.base and renders through
core.views.lineage and core.views.exports, like the web page's lineage does.
"""

from __future__ import annotations

import sys

import click

from core.cli.base import FilterRequest, cli, clip_filter_options, echo_err, get_app
from core.views.exports import FORMATS, export

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
    from core.web.app import is_loopback, serve  # the web stack loads only for this command

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


@cli.command(name="export")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="jsonl", show_default=True,
              help="jsonl: one clip per line, everything; csv: one row per clip; "
                   "prov-json: W3C PROV lineage.")  # fmt: skip
@clip_filter_options
@click.pass_context
def export_command(ctx: click.Context, fmt: str, filters: FilterRequest) -> None:
    """Write the catalog (or the part the filters select) to stdout, oldest first."""
    app = get_app(ctx)
    count = export(app, fmt, filters.to_filter(app, limit=None), sys.stdout)
    echo_err(f"exported {count} clip{'s' if count != 1 else ''} as {fmt}")
