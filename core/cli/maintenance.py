"""Commands that look after the library itself: ``backup`` and ``doctor``."""

from __future__ import annotations

from pathlib import Path

import click

from core.cli.base import cli, echo_err, get_app, json_option, print_json


@cli.command(name="backup")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.pass_context
def backup_command(ctx: click.Context, path: Path) -> None:
    """Copy the catalog to PATH, consistently, while other commands keep working.

    Uses SQLite's online backup API; a PostgreSQL catalog is backed up with pg_dump.
    The media store is not copied: back up its folder or bucket as files.
    """
    from catalog.health import backup

    app = get_app(ctx)
    size = backup(app.engine, path)
    click.echo(f"catalog backed up to {path} ({size:,} bytes)")


@cli.command(name="doctor")
@click.option(
    "--fix",
    is_flag=True,
    help="Remove leftovers in the work folder (the only fix that is always safe).",
)
@json_option
@click.pass_context
def doctor_command(ctx: click.Context, fix: bool, as_json: bool) -> None:
    """Check the catalog's integrity, stuck jobs, orphan files and work-folder leftovers.

    Exits 1 when something needs attention; each finding says what to do.
    """
    from dataclasses import asdict

    from core.library.doctor import doctor

    app = get_app(ctx)
    report = doctor(app, fix=fix)
    if as_json:
        print_json({**asdict(report), "healthy": report.healthy})
    else:
        _print_report(report)
    if not report.healthy:
        ctx.exit(1)


def _print_report(report: object) -> None:
    from core.library.doctor import DoctorReport

    assert isinstance(report, DoctorReport)
    if report.integrity:
        click.echo(
            f"catalog damaged: {report.integrity[0]} — restore it from a backup "
            "(`reelvault backup` makes one)"
        )
        return
    click.echo("catalog integrity: ok")
    if report.stuck:
        click.echo(f"stuck jobs: {len(report.stuck)} — run `reelvault resume` to finish them")
        for generation_id in report.stuck:
            click.echo(f"  {generation_id}")
    else:
        click.echo("stuck jobs: none")
    if report.orphans:
        click.echo(
            f"orphan files: {len(report.orphans)} stored files no clip references "
            "(kept: `reelvault import` catalogs them again)"
        )
    else:
        click.echo("orphan files: none")
    if report.removed_files:
        click.echo(
            f"files of removed items: {len(report.removed_files)} (`reelvault gc` deletes them)"
        )
    if not report.leftovers:
        click.echo("work-folder leftovers: none")
    elif report.fixed:
        click.echo(
            f"work-folder leftovers: removed {len(report.leftovers)} "
            f"({report.removed_bytes:,} bytes)"
        )
    else:
        click.echo(
            f"work-folder leftovers: {len(report.leftovers)} ({report.leftover_bytes:,} bytes)"
            " — `reelvault doctor --fix` removes them"
        )
    if report.abandoned:
        what = "removed" if report.fixed else "to remove (`reelvault doctor --fix`)"
        click.echo(
            f"stills of killed requests: {len(report.abandoned)} cataloged by a run killed "
            f"before its clip was recorded, {what}"
        )
        for asset in report.abandoned:
            click.echo(f"  {asset}")
    if report.healthy:
        echo_err("no problems found")
