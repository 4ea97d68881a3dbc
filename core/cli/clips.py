"""Commands that make clips and finish them: ``generate``, ``remix``, ``regenerate``,
``jobs``, ``resume``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from catalog.queries import list_ended
from core.api.errors import JobInterrupted, ReelvaultError, RequestError
from core.api.types import GenerationStatus, Relation
from core.cli.base import (
    ClipRequest,
    Columns,
    check_output_free,
    cli,
    clip_text,
    echo_err,
    fit_option,
    get_app,
    json_option,
    output_option,
    plain,
    print_json,
    print_rows,
    progress_bar,
    provider_option,
    say,
    seconds_option,
    size_option,
    warn,
)
from core.cli.batch import BatchItem, batch_progress, items_from_arguments, items_from_csv
from core.cli.library import print_generation
from core.generation import GenerationResult, derive, generate, in_flight, regenerate, resume
from core.generation import cancel_remote as cancel_job
from core.host.app import Reelvault
from core.views.report import generation_dict, generation_summary


def show_result(
    app: Reelvault, result: GenerationResult, as_json: bool, output: Path | None = None
) -> None:
    """Print the clip made (and, with ``-o``, copy its video out); fail if it did not
    complete."""
    generation = result.generation
    with app.session() as session:
        data = generation_dict(session, generation, app.store)
    for warning in result.warnings:
        warn(warning)
    if as_json:
        print_json(data)
    else:
        print_generation(data)
    if generation.status != GenerationStatus.COMPLETED:
        error = data["error"] or {}
        raise ReelvaultError(
            f"{generation.id} {generation.status}: {error.get('code')}: {error.get('message')}"
        )
    if output is not None:
        from core.library.files import get_file

        echo_err(f"wrote {get_file(app, generation.id, output, None, force=False)}")


INTERRUPTED_EXIT = 130
"""What a shell reports for a command stopped by Ctrl-C (128 + SIGINT)."""


@contextmanager
def resumable_on_interrupt(
    app: Reelvault | None = None, cancel_remote: bool = False
) -> Iterator[None]:
    """Ctrl-C while a clip is being made ends in a line that says how to finish it.

    Nothing is lost: the row was written before anything was sent, the job goes on at
    the backend, and ``reelvault resume`` polls and catalogs it without sending it again.
    With ``cancel_remote`` the job is cancelled at its provider instead and the clip
    recorded as cancelled (:func:`core.generation.cancel.cancel_remote`).
    """
    try:
        yield
    except KeyboardInterrupt as exc:
        clip = exc.generation_id if isinstance(exc, JobInterrupted) else None
        if cancel_remote and app is not None and clip is not None:
            try:
                echo_err(f"interrupted: {cancel_job(app, clip)}")
            except ReelvaultError as failure:
                echo_err(f"interrupted: {failure}")
            raise click.exceptions.Exit(INTERRUPTED_EXIT) from None
        echo_err(
            "interrupted: the job was not cancelled and nothing is lost; "
            "run `reelvault resume` to finish it"
        )
        raise click.exceptions.Exit(INTERRUPTED_EXIT) from None


@cli.command(name="generate")
@click.argument("images", nargs=-1, type=click.Path(path_type=Path), metavar="IMAGE…|DIR")
@click.option("--from", "rows_file", type=click.Path(path_type=Path, dir_okay=False),
              help="A CSV file with a clip per row (columns still, prompt, seconds, size, "
              "model; empty cells take the options given here).")  # fmt: skip
@click.option("--prompt", "-p", help="What happens; camera verbs steer motion.")
@click.option("--model", "-m", help="Model name (default: the local backend's model).")
@click.option("--backend", "-b", help="Backend name, when a model name is not unique.")
@seconds_option
@size_option
@fit_option
@provider_option
@click.option(
    "--cancel-remote",
    is_flag=True,
    help="On Ctrl-C, cancel the job at its provider (fal, replicate) and record the clip as "
    "cancelled, instead of leaving it running for `reelvault resume`.",
)
@json_option
@output_option
@click.pass_context
def generate_command(
    ctx: click.Context,
    images: tuple[Path, ...],
    rows_file: Path | None,
    prompt: str | None,
    as_json: bool,
    output: Path | None,
    cancel_remote: bool,
    **options: Any,
) -> None:
    """Make a clip from IMAGE and PROMPT, and catalog it with its lineage.

    Several stills, or a folder of them, make one clip each with the same prompt and
    options; --from rows.csv gives each clip its own. A still that fails is reported and
    the others go on; the exit status is 1 if any failed.
    """
    request = ClipRequest(image=Path(), prompt=prompt or "", **options)
    if rows_file is not None and images:
        raise RequestError("give stills or --from rows.csv, not both")
    if rows_file is None and not images:
        raise RequestError("give a still (or several, or a folder), or --from rows.csv")
    if rows_file is None and not prompt:
        raise RequestError("give --prompt (-p): what should happen in the clip")
    single = len(images) == 1 and not images[0].is_dir()
    if single:  # one clip: the result in full, as it has always been shown
        check_output_free(output)
        app = get_app(ctx)
        with resumable_on_interrupt(app, cancel_remote), progress_bar("generating") as on_progress:
            result = generate(
                app, images[0], request.prompt, on_progress=on_progress, **request.options()
            )
        show_result(app, result, as_json, output)
        return
    if output is not None and not output.is_dir():
        raise RequestError("-o with several clips names a folder: each clip gets a named file")
    items = (
        items_from_csv(rows_file, request) if rows_file else items_from_arguments(images, request)
    )
    app = get_app(ctx)
    with resumable_on_interrupt(app, cancel_remote):
        run_batch(app, items, as_json, output)


def run_batch(
    app: Reelvault, items: list[BatchItem], as_json: bool, output: Path | None = None
) -> None:
    """Generate every item in turn; report each outcome and a summary; fail if any failed."""
    results: list[dict[str, Any]] = []
    warnings: list[str] = []
    with batch_progress(len(items)) as progress_of:
        for index, item in enumerate(items):
            clip, problem = None, None
            try:
                result = generate(
                    app,
                    item.request.image,
                    item.request.prompt,
                    on_progress=progress_of(index),
                    **item.request.options(),
                )
                generation = result.generation
                warnings += result.warnings
                clip = generation.id
                if generation.status != GenerationStatus.COMPLETED:
                    problem = f"{generation.status}: {generation.error_code}: "
                    problem += f"{generation.error_message}"
                elif output is not None:
                    from core.library.files import get_file

                    get_file(app, generation.id, output, None, force=False)
            except ReelvaultError as exc:
                problem = str(exc)
                clip = getattr(exc, "generation_id", None)  # a denial is kept as a clip
            results.append({"still": item.label, "clip": clip, "error": problem})
            if not as_json:
                outcome = f"failed: {problem}" if problem else GenerationStatus.COMPLETED
                click.echo(f"{item.label}  {clip or '-'}  {outcome}")
    failed = sum(1 for r in results if r["error"])
    for warning in dict.fromkeys(warnings):
        warn(warning)
    if as_json:
        print_json({"clips": results, "made": len(results) - failed, "failed": failed})
    else:
        click.echo(f"made {len(results) - failed} of {len(results)} clips; {failed} failed")
    if failed:
        raise ReelvaultError(f"{failed} of {len(results)} stills failed")


@cli.command(name="remix")
@click.argument("clip")
@click.option("--prompt", "-p", required=True, help="The new prompt.")
@seconds_option
@size_option
@click.option(
    "--backend",
    "-b",
    help="For an imported clip: the backend that animates its first frame (default local).",
)
@json_option
@output_option
@click.pass_context
def remix_command(
    ctx: click.Context,
    clip: str,
    prompt: str,
    seconds: int | None,
    size: str | None,
    backend: str | None,
    as_json: bool,
    output: Path | None,
) -> None:
    """Make a new clip from CLIP with a new prompt; lineage records the parent."""
    derive_and_show(
        ctx,
        clip,
        prompt,
        Relation.REMIX_OF,
        as_json=as_json,
        seconds=seconds,
        size=size,
        output=output,
        backend=backend,
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
    output: Path | None = None,
    backend: str | None = None,
) -> None:
    """The body of ``remix``, ``edit`` and ``extend``: derive with a progress bar, print."""
    check_output_free(output)
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
            backend=backend,
        )
    show_result(app, result, as_json, output)


@cli.command(name="regenerate")
@click.argument("clip")
@click.option("--model", "-m", required=True, help="The model to make the shot with now.")
@click.option("--backend", "-b", help="Backend name, when a model name is not unique.")
@provider_option
@click.option("--seconds", type=click.IntRange(min=1), help="Clip length (default: CLIP's).")
@click.option("--size", help="WIDTHxHEIGHT (default: CLIP's size).")
@fit_option
@click.option("--wait/--no-wait", default=True, show_default=True,
              help="Make it now, or only queue it for `reelvault worker` (as `submit` does) "
              "and print its id.")  # fmt: skip
@json_option
@output_option
@click.pass_context
def regenerate_command(
    ctx: click.Context,
    clip: str,
    wait: bool,
    as_json: bool,
    output: Path | None,
    **options: Any,
) -> None:
    """Make CLIP's shot again with another model; lineage records it as variant_of CLIP.

    The same source still, prompt, seconds and size (and --fit), through the same checks
    and policy as `generate`; `lineage` shows the variants and the web page compares them.
    """
    if output is not None and not wait:
        raise RequestError("-o needs the clip made now: leave out --no-wait")
    check_output_free(output)
    app = get_app(ctx)
    if not wait:
        queued = regenerate(app, clip, queue=True, **options).generation
        if as_json:
            print_json(generation_summary(queued))
        else:
            click.echo(queued.id)
        return
    with resumable_on_interrupt(), progress_bar("regenerating") as on_progress:
        result = regenerate(app, clip, on_progress=on_progress, **options)
    show_result(app, result, as_json, output)


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
        resumed = resume(app, on_progress=on_progress, retry=retry)
    outcomes = resumed.outcomes
    for asset in resumed.abandoned:
        echo_err(f"removed {asset}: cataloged by a run killed before its clip was recorded")
    problems = 0
    for generation, problem in outcomes:
        if problem is None and generation.status == GenerationStatus.COMPLETED:
            click.echo(f"{generation.id} completed")
        else:
            problems += 1
            reason = problem or f"{generation.error_code}: {generation.error_message}"
            say(f"{generation.id} {generation.status}: {reason}")
    if not outcomes and not resumed.abandoned:
        echo_err("nothing to resume")
    if problems:
        raise ReelvaultError(f"{problems} of {len(outcomes)} jobs did not complete")
