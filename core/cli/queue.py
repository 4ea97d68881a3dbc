"""Queued work: ``reelvault submit`` records a request, ``reelvault worker`` runs it."""

from __future__ import annotations

import click

from core.cli.base import ClipRequest, cli, echo_err, generation_options, get_app, print_json
from core.generation import generate
from core.generation.worker import Worker
from core.views.report import generation_summary


@cli.command(name="submit")
@generation_options
@click.pass_context
def submit_command(ctx: click.Context, request: ClipRequest, as_json: bool) -> None:
    """Queue a clip for a worker: validated and policy-checked now, made later."""
    app = get_app(ctx)
    queued = generate(
        app, request.image, request.prompt, queue=True, **request.options()
    ).generation
    if as_json:
        print_json(generation_summary(queued))
    else:
        click.echo(queued.id)


@cli.command(name="worker")
@click.option(
    "--concurrency",
    "-c",
    type=click.IntRange(min=1),
    default=4,
    show_default=True,
    help="Jobs run (and remote jobs polled) at once.",
)
@click.option(
    "--lease",
    type=click.FloatRange(min=1),
    default=60.0,
    show_default=True,
    help="Seconds a job stays ours unrenewed: how long a dead worker's jobs wait.",
)
@click.option("--until-idle", is_flag=True, help="Stop once no queued work is left.")
@click.option("--name", help="Worker name shown in `reelvault jobs` (default: host:pid:random).")
@click.pass_context
def worker_command(
    ctx: click.Context, concurrency: int, lease: float, until_idle: bool, name: str | None
) -> None:
    """Take queued jobs from the catalog and run them; several workers may share it."""
    app = get_app(ctx)
    app.engine  # noqa: B018 (opened before "started": a damaged catalog is the one line)
    worker = Worker(
        app,
        concurrency=concurrency,
        lease_seconds=lease,
        name=name,
        on_event=echo_err,
    )
    echo_err(f"worker {worker.name} started (concurrency {concurrency})")
    try:
        report = worker.run(until_idle=until_idle)
    except KeyboardInterrupt:
        # The worker said what it was handing back before it waited for its threads.
        echo_err(f"worker {worker.name} stopped; its unfinished jobs are back in the queue")
        raise SystemExit(130) from None
    echo_err(
        f"worker {worker.name} done: {len(report.completed)} completed, "
        f"{len(report.failed)} failed, {len(report.unfinished)} left unfinished, "
        f"{len(report.lost)} taken over by others"
    )
    if report.failed or report.unfinished:
        raise SystemExit(1)
