"""CLI commands for remote backends: provider profiles, keys, edit, extend, webhooks, sync."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from core.api.errors import ReelvaultError
from core.api.providers import (
    API_KEY,
    KINDS,
    SORA,
    WEBHOOK_SECRET,
    ProviderProfile,
    check_name,
    describe_profiles,
    stored_key_names,
)
from core.api.settings import Settings
from core.api.types import Relation
from core.cli.base import (
    Columns,
    cli,
    echo_err,
    get_app,
    json_option,
    output_option,
    print_json,
    print_rows,
)
from core.cli.clips import derive_and_show
from core.remote.profiles import add_profile, remove_key, remove_profile, set_default, set_key
from core.remote.sync import sync
from core.remote.webhooks import WebhookReceiver


def _settings(ctx: click.Context) -> Settings:
    """Settings without opening the catalog: profiles and keys never touch it."""
    return get_app(ctx, warn_failed_plugins=False).settings


# --- providers ---------------------------------------------------------------------------


@cli.group(name="providers")
def providers_group() -> None:
    """Where remote backends send requests: provider profiles of every kind."""


@providers_group.command(name="add")
@click.argument("name")
@click.option(
    "--kind",
    type=click.Choice(KINDS),
    default=SORA,
    show_default=True,
    help="The API it speaks: sora (OpenAI Videos API), veo (Gemini API), fal, replicate.",
)
@click.option("--base-url", required=True, help="The API root, e.g. https://api.cometapi.com/v1.")
@click.option("--key-env", help="Environment variable holding the key (else `keys set NAME`).")
@click.option("--azure", is_flag=True, help="Azure OpenAI: /openai/v1 paths, api-key header.")
@click.option("--api-version", help="Azure's api-version query (default: preview).")
@click.option("--webhook-secret-env", help="Environment variable holding the webhook secret.")
@click.option("--default", "make_default", is_flag=True, help="Use it when none is named.")
@click.pass_context
def providers_add(
    ctx: click.Context,
    name: str,
    kind: str,
    base_url: str,
    key_env: str | None,
    azure: bool,
    api_version: str | None,
    webhook_secret_env: str | None,
    make_default: bool,
) -> None:
    """Add (or replace) provider profile NAME in config.toml."""
    profile = ProviderProfile(
        name=name,
        base_url=base_url,
        kind=kind,
        key_env=key_env,
        azure=azure,
        api_version=api_version,
        webhook_secret_env=webhook_secret_env,
    )
    add_profile(_settings(ctx), profile, make_default=make_default)
    click.echo(
        f"{kind} provider {name} added: {profile.api_root}" + (" (default)" if make_default else "")
    )


@providers_group.command(name="list")
@json_option
@click.pass_context
def providers_list(ctx: click.Context, as_json: bool) -> None:
    """Every profile, where its key comes from (never the key) and whether it serves."""
    rows = describe_profiles(_settings(ctx), datetime.now(UTC).date())
    columns: Columns[dict[str, Any]] = {
        "provider": lambda row: row["name"] + (" *" if row["default"] else ""),
        "kind": lambda row: row["kind"],
        "api root": lambda row: row["api_root"],
        "key": lambda row: row["key"],
        "status": lambda row: row["status"],
    }
    print_rows(rows, columns, as_json=as_json, empty_message=None)


@providers_group.command(name="remove")
@click.argument("name")
@click.pass_context
def providers_remove(ctx: click.Context, name: str) -> None:
    """Remove provider profile NAME (its stored key stays until `keys remove`)."""
    remove_profile(_settings(ctx), name)
    click.echo(f"provider {name} removed")


@providers_group.command(name="default")
@click.argument("name")
@click.pass_context
def providers_default(ctx: click.Context, name: str) -> None:
    """Use provider NAME when a request names none."""
    set_default(_settings(ctx), name)
    click.echo(f"default provider: {name}")


# --- keys --------------------------------------------------------------------------------


@cli.group(name="keys")
def keys_group() -> None:
    """API keys and webhook secrets, kept in the home's keys.toml (mode 0600)."""


@keys_group.command(name="set")
@click.argument("name")
@click.option("--webhook-secret", is_flag=True, help="Store the webhook secret (whsec_...).")
@click.pass_context
def keys_set(ctx: click.Context, name: str, webhook_secret: bool) -> None:
    """Store the key of provider NAME, read from a hidden prompt or from stdin."""
    check_name(name)
    what = "webhook secret" if webhook_secret else "API key"
    if sys.stdin.isatty():
        value = click.prompt(f"{what} for {name}", hide_input=True, prompt_suffix=": ")
    else:
        value = sys.stdin.readline()
    set_key(_settings(ctx), name, value, WEBHOOK_SECRET if webhook_secret else API_KEY)
    click.echo(f"{what} for {name} stored")


@keys_group.command(name="list")
@json_option
@click.pass_context
def keys_list(ctx: click.Context, as_json: bool) -> None:
    """Which keys are stored, by profile: names only."""
    names = stored_key_names(_settings(ctx))
    print_rows(
        list(names.items()),
        lambda item: f"{item[0]}: {', '.join(k.replace('_', ' ') for k in item[1])}",
        as_json=as_json,
        empty_message="no keys stored",
        json_document=names,
    )


@keys_group.command(name="remove")
@click.argument("name")
@click.option("--webhook-secret", is_flag=True, help="Remove the webhook secret instead.")
@click.pass_context
def keys_remove(ctx: click.Context, name: str, webhook_secret: bool) -> None:
    """Forget the stored key of provider NAME."""
    remove_key(_settings(ctx), name, WEBHOOK_SECRET if webhook_secret else API_KEY)
    click.echo(f"removed the stored {'webhook secret' if webhook_secret else 'API key'} of {name}")


# --- edit and extend ---------------------------------------------------------------------


@cli.command(name="edit")
@click.argument("clip")
@click.option("--prompt", "-p", required=True, help="How to change the clip.")
@json_option
@output_option
@click.pass_context
def edit_command(
    ctx: click.Context, clip: str, prompt: str, as_json: bool, output: Path | None
) -> None:
    """Make an edited copy of CLIP; lineage records it as edit_of its parent."""
    derive_and_show(ctx, clip, prompt, Relation.EDIT_OF, as_json=as_json, output=output)


@cli.command(name="extend")
@click.argument("clip")
@click.option("--prompt", "-p", required=True, help="What happens next.")
@click.option("--seconds", type=click.IntRange(min=1), required=True, help="Length to add.")
@json_option
@output_option
@click.pass_context
def extend_command(
    ctx: click.Context, clip: str, prompt: str, seconds: int, as_json: bool, output: Path | None
) -> None:
    """Continue CLIP by SECONDS more; lineage records it as extension_of its parent."""
    derive_and_show(
        ctx,
        clip,
        prompt,
        Relation.EXTENSION_OF,
        as_json=as_json,
        seconds=seconds,
        output=output,
    )


# --- webhooks and sync -------------------------------------------------------------------


@cli.group(name="webhooks")
def webhooks_group() -> None:
    """Receive webhooks (Videos API, Replicate, fal) and finish the jobs they announce."""


@webhooks_group.command(name="serve")
@click.option("--port", type=click.IntRange(1, 65535), required=True, help="Port to listen on.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--provider",
    help="Profile whose deliveries to accept (a sora, replicate or fal profile; default: "
    "the Videos API's).",
)
@click.pass_context
def webhooks_serve(ctx: click.Context, port: int, host: str, provider: str | None) -> None:
    """Finish jobs as their webhooks arrive (signed deliveries only), until Ctrl-C."""
    receiver = WebhookReceiver(
        get_app(ctx), provider, host=host, port=port, on_message=lambda line: click.echo(line)
    )
    echo_err(f"listening on {receiver.url} for provider {receiver.profile.name}; Ctrl-C stops")
    try:
        receiver.serve_forever()
    except KeyboardInterrupt:
        echo_err("stopped")


@cli.command(name="sync")
@click.option("--provider", help="Provider profile to list (default: the default one).")
@click.option("--download", is_flag=True, help="Also download finished videos before they expire.")
@click.option("--backend", "-b", default="sora", show_default=True, help="Backend to sync.")
@json_option
@click.pass_context
def sync_command(
    ctx: click.Context, provider: str | None, download: bool, backend: str, as_json: bool
) -> None:
    """Import the account's videos that the catalog lacks, with their remix lineage."""
    app = get_app(ctx)
    report = sync(app, backend=backend, provider=provider, download=download)
    if as_json:
        print_json(
            {
                "listed": report.listed,
                "imported": [
                    {"id": g.id, "job": g.remote_job_id, "status": g.status}
                    for g in report.imported
                ],
                "adopted": [{"id": g.id, "job": g.remote_job_id} for g in report.adopted],
                "downloaded": [g.id for g in report.downloaded],
                "problems": report.problems,
            }
        )
    else:
        for generation in report.imported:
            click.echo(f"{generation.id} imported {generation.remote_job_id} ({generation.status})")
        for generation in report.adopted:
            click.echo(
                f"{generation.id} adopted {generation.remote_job_id}: its create had reached "
                "the provider (`reelvault resume` finishes it)"
            )
        for generation in report.downloaded:
            click.echo(f"{generation.id} downloaded")
        echo_err(
            f"{report.listed} listed, {len(report.imported)} imported, "
            f"{len(report.downloaded)} downloaded"
        )
    if report.problems:
        for problem in report.problems:
            echo_err(f"problem: {problem}")
        raise ReelvaultError(f"{len(report.problems)} videos could not be downloaded")
