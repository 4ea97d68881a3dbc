"""``reelvault policy check`` and ``reelvault consent``: thin commands over
:mod:`core.generation.consent`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from core.api.errors import ReelvaultError
from core.api.times import timestamp_text
from core.api.types import Outcome
from core.cli.base import (
    ClipRequest,
    Columns,
    cli,
    clip_text,
    generation_options,
    get_app,
    json_option,
    plain,
    print_json,
    print_rows,
)
from core.generation.consent import (
    add_consent,
    check_policy,
    list_consents,
    parse_expiry,
    revoke_consent,
)


@cli.group(name="policy")
def policy_group() -> None:
    """The rules every request must pass before anything is generated."""


@policy_group.command(name="check")
@generation_options
@click.pass_context
def policy_check_command(ctx: click.Context, request: ClipRequest, as_json: bool) -> None:
    """Run every policy check on a request as `generate` would, generating nothing.

    Takes the same arguments as `generate`. Prints each rule's decision; exits 0 when
    the request would be allowed (warnings included) and 1 when any rule denies it.
    """
    report = check_policy(get_app(ctx), request.image, request.prompt, **request.options())
    if as_json:
        print_json(report.as_dict())
    else:
        for d in report.decisions:
            click.echo(f"{d.outcome:<5}  {d.plugin}/{d.rule_id}: {d.reason}")
        target = f"{report.backend or '?'} / {report.model or '?'}"
        click.echo(f"{report.outcome}: {target}" if report.decisions else f"allow: {target}")
    if report.outcome == Outcome.DENY:
        denied = [f"{d.plugin}/{d.rule_id}" for d in report.decisions if d.outcome == Outcome.DENY]
        raise ReelvaultError(f"the request would be denied by {', '.join(denied)}")


@cli.group(name="consent")
def consent_group() -> None:
    """Consent to the use of a person's likeness in particular images."""


@consent_group.command(name="add")
@click.option("--subject", "-s", required=True, help="The person who consents.")
@click.option(
    "--image",
    "-i",
    "images",
    multiple=True,
    required=True,
    type=click.Path(path_type=Path),
    help="An image the consent covers, by its exact bytes (repeat for several).",
)
@click.option("--expires", help="When the consent ends: a date or time, e.g. 2027-06-30.")
@click.option("--note", help="Where the consent is documented (a form number, a link).")
@json_option
@click.pass_context
def consent_add_command(
    ctx: click.Context,
    subject: str,
    images: tuple[Path, ...],
    expires: str | None,
    note: str | None,
    as_json: bool,
) -> None:
    """Record that SUBJECT consents to their likeness in each --image."""
    record = add_consent(
        get_app(ctx),
        subject,
        list(images),
        expires=parse_expiry(expires) if expires else None,
        note=note,
    )
    if as_json:
        print_json(record)
        return
    count = len(record["images"])
    until = f" until {record['expires_at']}" if record["expires_at"] else ""
    click.echo(
        f"{record['id']}: {record['subject']} consents to {count} "
        f"image{'s' if count > 1 else ''}{until}"
    )
    for image in record["images"]:
        click.echo(f"  {image['sha256'][:12]}  {image['original_name'] or ''}".rstrip())


@consent_group.command(name="list")
@json_option
@click.pass_context
def consent_list_command(ctx: click.Context, as_json: bool) -> None:
    """Every consent ever recorded, newest first: active, expired or revoked."""
    records = list_consents(get_app(ctx))
    columns: Columns[dict[str, Any]] = {
        "id": lambda r: r["id"],
        "status": lambda r: r["status"],
        "subject": lambda r: plain(clip_text(r["subject"], 40)),
        "granted": lambda r: _when(r["granted_at"]),
        "expires": lambda r: _when(r["expires_at"]),
        "revoked": lambda r: _when(r["revoked_at"]),
        "images": lambda r: plain(_images(r["images"])),
    }
    print_rows(records, columns, as_json=as_json, empty_message="no consents recorded")


@consent_group.command(name="revoke")
@click.argument("consent_id", metavar="ID")
@click.option("--reason", help="Why the consent is withdrawn, for the record.")
@json_option
@click.pass_context
def consent_revoke_command(
    ctx: click.Context, consent_id: str, reason: str | None, as_json: bool
) -> None:
    """Withdraw a consent from now on; its record stays, stamped with the time."""
    record = revoke_consent(get_app(ctx), consent_id, reason)
    if as_json:
        print_json(record)
        return
    click.echo(f"{record['id']} revoked: {record['subject']} ({_when(record['revoked_at'])})")


def _when(value: str | None) -> str:
    """Consent times to the minute: grants are made and read by people, not machines."""
    return timestamp_text(value, seconds=False)


def _images(images: list[dict[str, Any]]) -> str:
    return ", ".join(i["original_name"] or i["sha256"][:12] for i in images)
