"""``reelvault media``: where the library's files are, and moving them."""

from __future__ import annotations

import click

from core.api.errors import StorageError
from core.cli.base import cli, echo_err, get_app, json_option, print_json, progress_bar
from core.remote.storage import migrate


@cli.group(name="media")
def media_group() -> None:
    """The media store: a local folder or S3-compatible object storage."""


@media_group.command(name="where")
@click.pass_context
def media_where(ctx: click.Context) -> None:
    """Print where the library's files are (a folder, or s3://bucket/prefix)."""
    click.echo(get_app(ctx, warn_failed_plugins=False).store.url)


@media_group.command(name="migrate")
@click.option("--to", "to", required=True, metavar="URL", help="s3://bucket/prefix or a folder.")
@click.option("--dry-run", is_flag=True, help="Only say how much would be copied.")
@json_option
@click.pass_context
def media_migrate(ctx: click.Context, to: str, dry_run: bool, as_json: bool) -> None:
    """Copy every stored file to another store, checking each hash, then switch to it.

    Safe to run again after an interruption: files already there are skipped.
    """
    app = get_app(ctx)
    with progress_bar("copying") as on_progress:
        report = migrate(app, to, dry_run=dry_run, on_progress=on_progress)
    if as_json:
        print_json(report.to_json())
    else:
        verb = "would copy" if dry_run else "copied"
        click.echo(
            f"{verb} {report.copied} file(s), {report.copied_bytes:,} bytes, to {report.target}; "
            f"{report.already_there} already there"
        )
        for sha in report.damaged:
            echo_err(f"damaged, not copied: {app.store.location(sha)} (`reelvault audit`)")
        if report.switched:
            click.echo(f"config.toml now says media = {report.target!r}")
    if report.damaged or report.missing:
        problems = len(report.damaged) + len(report.missing)
        raise StorageError(f"{problems} file(s) could not be moved; the library stays where it is")
