"""Commands that make clips and finish them: ``generate``, ``remix``, ``jobs``, ``resume``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click

from catalog.queries import list_ended
from core.api.errors import ReelvaultError
from core.api.types import GenerationStatus, Relation
from core.cli.base import (
    ClipRequest,
    Columns,
    cli,
    clip_text,
    echo_err,
    generation_options,
    get_app,
    json_option,
    plain,
    print_json,
    print_rows,
    progress_bar,
    say,
    seconds_option,
    size_option,
)
from core.cli.library import print_generation
from core.generation import GenerationResult, derive, generate, in_flight, resume
from core.host.app import Reelvault
from core.views.report import generation_dict, generation_summary


def show_result(app: Reelvault, result: GenerationResult, as_json: bool) -> None:
    generation = result.generation
    with app.session() as session:
        data = generation_dict(session, generation, app.store)
    for warning in result.warnings:
        echo_err(f"warning: {warning}")
    if as_json:
        print_json(data)
    else:
        print_generation(data)
    if generation.status != GenerationStatus.COMPLETED:
        error = data["error"] or {}
        raise ReelvaultError(
            f"{generation.id} {generation.status}: {error.get('code')}: {error.get('message')}"
        )


INTERRUPTED_EXIT = 130
"""What a shell reports for a command stopped by Ctrl-C (128 + SIGINT)."""


@contextmanager
def resumable_on_interrupt() -> Iterator[None]:
    """Ctrl-C while a clip is being made ends in a line that says how to finish it.

    Nothing is lost: the row was written before anything was sent, the job goes on at
    the backend, and ``reelvault resume`` polls and catalogs it without sending it again.
    """
    try:
        yield
    except KeyboardInterrupt:
        echo_err(
            "interrupted: the job was not cancelled and nothing is lost; "
            "run `reelvault resume` to finish it"
        )
        raise click.exceptions.Exit(INTERRUPTED_EXIT) from None


@cli.command(name="generate")
@generation_options
@click.pass_context
def generate_command(ctx: click.Context, request: ClipRequest, as_json: bool) -> None:
    """Make a clip from IMAGE and PROMPT, and catalog it with its lineage."""
    app = get_app(ctx)
    with resumable_on_interrupt(), progress_bar("generating") as on_progress:
        result = generate(
            app, request.image, request.prompt, on_progress=on_progress, **request.options()
        )
    show_result(app, result, as_json)


@cli.command(name="remix")
@click.argument("clip")
@click.option("--prompt", "-p", required=True, help="The new prompt.")
@seconds_option
@size_option
@json_option
@click.pass_context
def remix_command(
    ctx: click.Context,
    clip: str,
    prompt: str,
    seconds: int | None,
    size: str | None,
    as_json: bool,
) -> None:
    """Make a new clip from CLIP with a new prompt; lineage records the parent."""
    derive_and_show(
        ctx, clip, prompt, Relation.REMIX_OF, as_json=as_json, seconds=seconds, size=size
    )


def derive_and_show(
    ctx: click.Context,
    clip: str,
    prompt: str,
    relation: Relation,
    *,
    as_json: bool,
    seconds: int | None = None,
    size: str | None = None,
) -> None:
    """The body of ``remix``, ``edit`` and ``extend``: derive with a progress bar, print."""
    app = get_app(ctx)
    label = {Relation.REMIX_OF: "remixing", Relation.EDIT_OF: "editing"}.get(relation, "extending")
    with resumable_on_interrupt(), progress_bar(label) as on_progress:
        result = derive(
            app,
            clip,
            prompt,
            relation=relation,
            seconds=seconds,
            size=size,
            on_progress=on_progress,
        )
    show_result(app, result, as_json)


@cli.command(name="jobs")
@click.option(
    "--ended",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Also show this many of the latest finished, failed or rejected jobs.",
)
@json_option
@click.pass_context
def jobs_command(ctx: click.Context, ended: int, as_json: bool) -> None:
    """Queued and running work (and, with --ended, what recently finished or failed)."""
    app = get_app(ctx)
    generations = in_flight(app)
    if ended:
        with app.session() as session:
            generations += list_ended(session, ended)
    rows = [
        {
            **generation_summary(g),
            "remote_job_id": g.remote_job_id,
            "progress": g.progress,
            "worker": g.lease_owner,
            "attempts": g.attempts,
            "error": g.error_message,
        }
        for g in generations
    ]
    columns: Columns[dict[str, Any]] = {
        "id": lambda row: row["id"],
        "status": lambda row: row["status"],
        "progress": lambda row: f"{row['progress']}%",
        "backend/model": lambda row: f"{row['backend']}/{row['model']}",
        "job": lambda row: row["remote_job_id"] or "(none)",
        "worker": lambda row: row["worker"] or "",
        "prompt": lambda row: plain(clip_text(row["prompt"], 50)),
    }
    print_rows(rows, columns, as_json=as_json, empty_message="no jobs in flight")


@cli.command(name="resume")
@click.option(
    "--retry",
    is_flag=True,
    help="Also send again the jobs interrupted before they reached the backend.",
)
@click.pass_context
def resume_command(ctx: click.Context, retry: bool) -> None:
    """Finish every job interrupted by a crash or Ctrl-C, without submitting it again."""
    app = get_app(ctx)
    with progress_bar("resuming") as on_progress:
        outcomes = resume(app, on_progress=on_progress, retry=retry).outcomes
    problems = 0
    for generation, problem in outcomes:
        if problem is None and generation.status == GenerationStatus.COMPLETED:
            click.echo(f"{generation.id} completed")
        else:
            problems += 1
            reason = problem or f"{generation.error_code}: {generation.error_message}"
            say(f"{generation.id} {generation.status}: {reason}")
    if not outcomes:
        echo_err("nothing to resume")
    if problems:
        raise ReelvaultError(f"{problems} of {len(outcomes)} jobs did not complete")
