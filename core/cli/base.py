"""The ``reelvault`` command line: a thin layer over the library.

Each command parses its options, calls one library function and prints the result,
as a table or tree for people and as JSON with ``--json`` for scripts. Expected
failures (:class:`core.api.errors.ReelvaultError`) become one line on stderr and a non-zero
exit; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import functools
import json
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from catalog.models import Generation
from catalog.queries import (
    PROVENANCE_STATES,
    ClipFilter,
    asset_by_sha,
    get_asset,
    get_generation,
    list_ended,
    list_generations,
)
from catalog.queries import resolve as resolve_id
from core.api.errors import ReelvaultError, RequestError
from core.api.ids import short
from core.api.settings import Settings
from core.api.types import Relation
from core.generation.generate import ProgressCallback, derive, generate, in_flight, resume
from core.host.app import Reelvault
from core.host.plugins import PluginHost, load_host
from core.media.store import hash_file
from core.views.report import generation_dict, generation_summary, lineage_dict


class ReelvaultGroup(click.Group):
    """Turns expected errors into one clear line and the error's exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ReelvaultError as exc:
            error = click.ClickException(str(exc))
            error.exit_code = exc.exit_code
            raise error from None


@cache
def default_host() -> PluginHost:
    """The plugins whose commands this process offers, loaded once at import time, before
    ``--home`` is parsed (so from the default home's ``disabled_plugins``). Only for
    ``register_commands``: every command runs on its home's own host (:func:`get_app`)."""
    try:
        disabled = frozenset(Settings.load().config.get("disabled_plugins", []))
    except ReelvaultError:
        disabled = frozenset()  # a broken config.toml is reported when a command opens it
    return load_host(disabled)


def get_app(ctx: click.Context, warn_failed_plugins: bool = True) -> Reelvault:
    """The application for this invocation; tests may pass one in as ``obj``.

    Its plugins are loaded for the home the command works on: that home's
    ``disabled_plugins`` apply, whatever ``$REELVAULT_HOME`` says.
    """
    root = ctx.find_root()
    if not isinstance(root.obj, Reelvault):
        params = root.params
        settings = Settings.load(home=params.get("home"), db_url=params.get("db"))
        root.obj = Reelvault(settings)  # loads the host from these settings
        root.call_on_close(root.obj.close)
    app: Reelvault = root.obj
    if warn_failed_plugins:
        for failure in app.host.failures:
            echo_err(f"warning: plugin {failure.name} failed to load (see `reelvault plugins`)")
    return app


def console() -> Console:
    """Standard output for tables and trees.

    Markup and emoji codes are off: what is printed is mostly what users typed (prompts,
    file names, consent subjects), and ``[/x]`` or ``:smile:`` in it must print as typed,
    not be parsed (an unmatched closing tag would raise ``MarkupError``).
    """
    terminal = sys.stdout.isatty()
    return Console(
        file=sys.stdout,
        width=None if terminal else 10_000,
        highlight=False,
        soft_wrap=True,
        markup=False,
        emoji=False,
    )


def plain(text: str) -> Text:
    """Untrusted text for a rich table cell or tree label: shown exactly as it is, whatever
    console it is printed on (a ``str`` label is parsed as markup by default)."""
    return Text(text)


def echo_err(message: str) -> None:
    click.echo(message, err=True)


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


@contextmanager
def progress_bar(label: str) -> Iterator[ProgressCallback | None]:
    """A rich progress bar on stderr when it is a terminal; nothing otherwise."""
    if not sys.stderr.isatty():
        yield None
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task(label, total=100)

        def update(state: str, percent: int) -> None:
            progress.update(task, completed=percent, description=f"{label} ({state})")

        yield update


@click.group(cls=ReelvaultGroup)
@click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    help="Library folder (default: $REELVAULT_HOME or the per-user data folder).",
)
@click.option("--db", help="Catalog database URL (default: $REELVAULT_DB or SQLite in the home).")
@click.version_option(package_name="reelvault")
def cli(home: Path | None, db: str | None) -> None:
    """Turn stills into short clips and keep a trustworthy record of every clip."""


def _show_result(app: Reelvault, generation: Generation, as_json: bool) -> None:
    with app.session() as session:
        data = generation_dict(session, generation, app.store)
    for warning in app.warnings:
        echo_err(f"warning: {warning}")
    if as_json:
        print_json(data)
    else:
        _print_generation(data)
    if generation.status != "completed":
        error = data["error"] or {}
        raise ReelvaultError(
            f"{generation.id} {generation.status}: {error.get('code')}: {error.get('message')}"
        )


seconds_option = click.option("--seconds", type=click.IntRange(min=1), help="Clip length.")
size_option = click.option("--size", help="WIDTHxHEIGHT, e.g. 1280x720.")
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")
fit_option = click.option(
    "--fit",
    type=click.Choice(["cover", "contain", "none"]),
    help="Fit a still of another size to --size: cover crops, contain pads "
    "(default none: refuse a mismatch where the model needs an exact size).",
)
provider_option = click.option(
    "--provider", help="Provider profile a remote model runs at (see `reelvault providers`)."
)


def request_parameters(
    fit: str | None, provider: str | None, model: str | None, backend: str | None
) -> dict[str, str]:
    """The backend parameters ``--fit`` and ``--provider`` stand for."""
    if provider and not (model or backend):
        raise RequestError("--provider picks where a remote model runs: give --model too")
    parameters = {"fit": fit} if fit and fit != "none" else {}
    return {**parameters, "provider": provider} if provider else parameters


@dataclass(frozen=True)
class ClipRequest:
    """What the user asked for on the command line, as ``generate`` takes it."""

    image: Path
    prompt: str
    model: str | None
    backend: str | None
    seconds: int | None
    size: str | None
    fit: str | None
    provider: str | None

    def options(self) -> dict[str, Any]:
        """Keyword arguments for :func:`~core.generation.generate.generate` (and the policy
        dry run)."""
        return {
            "model": self.model,
            "backend": self.backend,
            "seconds": self.seconds,
            "size": self.size,
            "parameters": request_parameters(self.fit, self.provider, self.model, self.backend),
        }


def _bundled(
    command: Callable[..., Any],
    name: str,
    bundle: type[Any],
    options: tuple[Callable[[Callable[..., Any]], Callable[..., Any]], ...],
) -> Callable[..., Any]:
    """Add click ``options`` whose values reach ``command`` as one dataclass ``bundle``,
    passed as keyword ``name``, so commands sharing options share their handling too."""

    @functools.wraps(command)
    def with_bundle(*args: Any, **kwargs: Any) -> Any:
        fields = {field: kwargs.pop(field) for field in bundle.__dataclass_fields__}
        return command(*args, **{name: bundle(**fields)}, **kwargs)

    wrapped: Callable[..., Any] = with_bundle
    for option in reversed(options):
        wrapped = option(wrapped)
    return wrapped


def generation_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The options that describe a new clip, shared by ``generate``, ``submit`` and
    ``policy check``; the command receives them as one ``request: ClipRequest``."""

    return _bundled(
        command,
        "request",
        ClipRequest,
        (
            click.argument("image", type=click.Path(path_type=Path)),
            click.option(
                "--prompt", "-p", required=True, help="What happens; camera verbs steer motion."
            ),
            click.option("--model", "-m", help="Model name (default: the local backend's model)."),
            click.option("--backend", "-b", help="Backend name, when a model name is not unique."),
            seconds_option,
            size_option,
            fit_option,
            provider_option,
            json_option,
        ),
    )


@cli.command(name="generate")
@generation_options
@click.pass_context
def generate_command(ctx: click.Context, request: ClipRequest, as_json: bool) -> None:
    """Make a clip from IMAGE and PROMPT, and catalog it with its lineage."""
    app = get_app(ctx)
    with progress_bar("generating") as on_progress:
        generation = generate(
            app, request.image, request.prompt, on_progress=on_progress, **request.options()
        )
    _show_result(app, generation, as_json)


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
    with progress_bar(label) as on_progress:
        generation = derive(
            app,
            clip,
            prompt,
            relation=relation,
            seconds=seconds,
            size=size,
            on_progress=on_progress,
        )
    _show_result(app, generation, as_json)


_RELATIVE = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_when(text: str) -> datetime:
    """An ISO date or time (UTC unless it says otherwise), or an age such as ``7d``."""
    text = text.strip()
    if match := _RELATIVE.match(text):
        amount, unit = match.groups()
        return datetime.now(UTC) - timedelta(**{_UNITS[unit]: int(amount)})
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise RequestError(
            f"{text!r} is not a date: use e.g. 2026-11-25, 2026-11-25T14:00 or 7d"
        ) from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def source_asset_id(app: Reelvault, text: str) -> str:
    """A source given as an asset id prefix or as the path of the original file."""
    path = Path(text)
    # Hashed before the session opens: reading a large file must not hold the catalog.
    sha = hash_file(path)[0] if path.is_file() else None
    with app.session() as session:
        if sha is not None:
            asset = asset_by_sha(session, sha)
            if asset is None:
                raise RequestError(f"{text} has never been used as a source")
            return asset.id
        return get_asset(session, text).id


@dataclass(frozen=True)
class FilterRequest:
    """The ``list`` filters as typed on the command line, shared by every command that
    takes a part of the catalog (``list``, ``export``)."""

    model: str | None
    backend: str | None
    status: str | None
    text: str | None
    source: str | None
    since: str | None
    until: str | None
    provenance: str | None

    def to_filter(self, app: Reelvault, **extra: Any) -> ClipFilter:
        return ClipFilter(
            model=self.model,
            backend=self.backend,
            status=self.status,
            text=self.text,
            source_asset_id=source_asset_id(app, self.source) if self.source else None,
            since=parse_when(self.since) if self.since else None,
            until=parse_when(self.until) if self.until else None,
            provenance=self.provenance,
            **extra,
        )


def clip_filter_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add the ``list`` filters; the command receives them as one ``filters: FilterRequest``."""

    return _bundled(
        command,
        "filters",
        FilterRequest,
        (
            click.option("--model", "-m", help="Only this model."),
            click.option("--backend", "-b", help="Only this backend."),
            click.option(
                "--status", "-s", help="Only this status (completed, failed, rejected, ...)."
            ),
            click.option("--text", "-t", help="Only prompts containing this text."),
            click.option(
                "--source", help="Only clips made from this image (asset id or file path)."
            ),
            click.option("--since", help="Created at or after: a date, a time, or an age like 7d."),
            click.option("--until", help="Created before: a date, a time, or an age like 1h."),
            click.option(
                "--provenance",
                type=click.Choice(PROVENANCE_STATES),
                help="Only clips whose video's latest verification has this state.",
            ),
        ),
    )


@cli.command(name="list")
@clip_filter_options
@click.option(
    "-n",
    "limit",
    type=click.IntRange(min=0),
    default=50,
    show_default=True,
    help="At most this many clips (0: no limit).",
)
@json_option
@click.pass_context
def list_command(ctx: click.Context, filters: FilterRequest, limit: int, as_json: bool) -> None:
    """List clips, newest first."""
    app = get_app(ctx)
    clip_filter = filters.to_filter(app, limit=limit or None)
    with app.session() as session:
        rows = [generation_summary(g) for g in list_generations(session, clip_filter)]
    if as_json:
        print_json(rows)
        return
    if not rows:
        echo_err("no clips match")
        return
    table = Table(box=None, pad_edge=False)
    for column in ("id", "created", "status", "backend/model", "secs", "size", "parent", "prompt"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row["id"],
            row["created_at"][:19].replace("T", " "),
            row["status"],
            f"{row['backend']}/{row['model']}",
            str(row["seconds"]),
            row["size"],
            row["parent_id"] or "",
            plain(clip_text(row["prompt"], 60)),
        )
    console().print(table)


def clip_text(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


@cli.command(name="show")
@click.argument("clip")
@json_option
@click.pass_context
def show_command(ctx: click.Context, clip: str, as_json: bool) -> None:
    """Everything known about one clip: request, result, files, lineage, decisions."""
    app = get_app(ctx)
    with app.session() as session:
        data = generation_dict(session, get_generation(session, clip), app.store)
    if as_json:
        print_json(data)
    else:
        _print_generation(data)


def _print_generation(data: dict[str, Any]) -> None:
    lines = [
        f"clip      {data['id']}",
        f"status    {data['status']}",
        f"backend   {data['backend']} / model {data['model']}",
        f"prompt    {data['prompt']}",
        f"request   {data['seconds']}s at {data['size']}",
    ]
    extra = {k: v for k, v in data["parameters"].items() if k not in ("seconds", "size")}
    if extra:
        lines.append(f"params    {json.dumps(extra, sort_keys=True)}")
    if data["parent_id"]:
        lines.append(f"parent    {data['parent_id']} ({data['relation']})")
    if data["remote_job_id"]:
        lines.append(f"job       {data['remote_job_id']}")
    lines.append(f"created   {data['created_at']}")
    if data["completed_at"]:
        lines.append(f"finished  {data['completed_at']}")
    if data["error"]:
        lines.append(f"error     {data['error']['code']}: {data['error']['message']}")
    for label, key in (("source", "source"), ("sent", "input"), ("video", "video"),
                       ("thumbnail", "thumbnail"), ("sprites", "spritesheet")):  # fmt: skip
        asset = data[key]
        if asset:
            lines.append(f"{label:<10}{short(asset['id'])}  {_asset_line(asset)}")
            lines += [  # the whole history, oldest first: a state that changed shows
                f"          verified by {v['verifier']}: {v['state']}"
                + (f" ({v['details']['summary']})" if v["details"].get("summary") else "")
                + f"  {(v['checked_at'] or '')[:19].replace('T', ' ')}"
                for v in asset["verifications"]
            ]
    explanation = data["details"].get("explanation") if data["details"] else None
    if explanation:
        lines.append("motion plan" if "motion_plan" in data["details"] else "backend notes")
        lines += [f"  {line}" for line in explanation]
    if data["policy_decisions"]:
        lines.append("policy decisions")
        lines += [
            f"  {d['outcome']:<5} {d['plugin']}/{d['rule_id']}: {d['reason']}"
            for d in data["policy_decisions"]
        ]
    click.echo("\n".join(lines))


def _asset_line(asset: dict[str, Any]) -> str:
    parts = [asset["mime"]]
    if asset["width"]:
        parts.append(f"{asset['width']}x{asset['height']}")
    if asset["duration"]:
        parts.append(f"{asset['duration']:.2f}s")
    if asset["fps"]:
        parts.append(f"{asset['fps']:g} fps")
    if asset["frame_count"]:
        parts.append(f"{asset['frame_count']} frames")
    if asset["bytes"] is not None:
        parts.append(f"{asset['bytes']:,} bytes")
    if asset["original_name"]:
        parts.append(asset["original_name"])
    parts.append(asset["path"] or "(placeholder: known from credentials, file not imported)")
    return "  ".join(parts)


LINEAGE_FORMATS = ("tree", "json", "dot", "mermaid", "prov-json")


@cli.command(name="lineage")
@click.argument("identifier")
@click.option("--format", "fmt", type=click.Choice(LINEAGE_FORMATS), default="tree",
              show_default=True, help="tree for people; json, dot (Graphviz), mermaid or "
              "prov-json (W3C PROV) for tools.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print JSON (same as --format json).")
@click.pass_context
def lineage_command(ctx: click.Context, identifier: str, fmt: str, as_json: bool) -> None:
    """Where a clip came from and what was made from it (or from a still), as a tree."""
    from core.views import exports
    from core.views import lineage as lineage_render  # prov and pydot load only for this command

    if as_json and fmt not in ("tree", "json"):
        raise RequestError(f"--json means --format json; it cannot go with --format {fmt}")
    fmt = "json" if as_json else fmt
    app = get_app(ctx)
    with app.session() as session:
        target = resolve_id(session, identifier)
        data = lineage_dict(session, target, app.store)
        if fmt == "prov-json":
            click.echo(exports.prov_json(exports.lineage_prov(session, target)))
            return
    if fmt == "json":
        print_json(data)
        return
    if fmt in ("dot", "mermaid"):
        render = lineage_render.to_dot if fmt == "dot" else lineage_render.to_mermaid
        click.echo(render(data), nl=False)
        return
    source = data["source"]
    if source:
        label = f"{short(source['id'])}  {source['original_name'] or ''}  {_dims(source)}"
        label += "  (placeholder: file not imported)" if source.get("placeholder") else ""
    else:
        label = "(no source image)"
    tree = Tree(plain(label.rstrip()))
    _add_clips(tree, data["clips"], data["target"])
    console().print(tree)


def _dims(asset: dict[str, Any]) -> str:
    return (
        f"{asset['mime']} {asset['width']}x{asset['height']}" if asset["width"] else asset["mime"]
    )


def _add_clips(tree: Tree, clips: list[dict[str, Any]], target: str) -> None:
    for clip in clips:
        marker = "  ◀" if clip["id"] == target else ""
        relation = f"{clip['relation']}  " if clip["relation"] else ""
        fitted = clip.get("input_asset_id")
        sent = f"  (sent fitted {short(fitted)})" if fitted else ""
        label = (
            f"{clip['id']}  {relation}{clip['status']}  {clip['backend']}/{clip['model']}  "
            f"{clip['prompt']!r}{sent}{marker}"
        )
        _add_clips(tree.add(plain(label)), clip["children"], target)


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
    if as_json:
        print_json(rows)
        return
    if not rows:
        echo_err("no jobs in flight")
        return
    table = Table(box=None, pad_edge=False)
    for column in ("id", "status", "progress", "backend/model", "job", "worker", "prompt"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row["id"],
            row["status"],
            f"{row['progress']}%",
            f"{row['backend']}/{row['model']}",
            row["remote_job_id"] or "(none)",
            row["worker"] or "",
            plain(clip_text(row["prompt"], 50)),
        )
    console().print(table)


@cli.command(name="resume")
@click.pass_context
def resume_command(ctx: click.Context) -> None:
    """Finish every job interrupted by a crash or Ctrl-C, without submitting it again."""
    app = get_app(ctx)
    with progress_bar("resuming") as on_progress:
        outcomes = resume(app, on_progress=on_progress)
    problems = 0
    for generation, problem in outcomes:
        if problem is None and generation.status == "completed":
            click.echo(f"{generation.id} completed")
        else:
            problems += 1
            reason = problem or f"{generation.error_code}: {generation.error_message}"
            click.echo(f"{generation.id} {generation.status}: {reason}")
    if not outcomes:
        echo_err("nothing to resume")
    if problems:
        raise ReelvaultError(f"{problems} of {len(outcomes)} jobs did not complete")


@cli.command(name="plugins")
@json_option
@click.pass_context
def plugins_command(ctx: click.Context, as_json: bool) -> None:
    """Loaded plugins, the hooks each implements, and any that failed to load."""
    host = get_app(ctx, warn_failed_plugins=False).host
    plugins = [
        {"name": p.name, "source": p.source, "version": p.version, "hooks": list(p.hooks)}
        for p in host.plugins()
    ]
    failures = [{"name": f.name, "source": f.source, "error": f.error} for f in host.failures]
    if as_json:
        print_json({"plugins": plugins, "failures": failures})
        return
    table = Table(box=None, pad_edge=False)
    for column in ("plugin", "hooks", "from"):
        table.add_column(column)
    for p in plugins:
        table.add_row(p["name"], ", ".join(p["hooks"]), p["source"])
    console().print(table)
    for failure in failures:
        echo_err(f"FAILED {failure['name']} ({failure['source']}): {failure['error']}")


@cli.command(name="models")
@json_option
@click.pass_context
def models_command(ctx: click.Context, as_json: bool) -> None:
    """Every model of every backend, with the seconds and sizes it allows."""
    app = get_app(ctx)
    rows = [
        {
            "backend": backend.name,
            "model": info.name,
            "seconds": list(info.seconds),
            "sizes": list(info.sizes),
            "default_seconds": info.default_seconds,
            "default_size": info.default_size,
            "input_image": "required"
            if info.requires_input_image
            else ("optional" if info.accepts_input_image else "no"),
            "remix": info.supports_remix,
            "variants": [str(v) for v in info.variants],
            "status": info.status,
        }
        for backend in app.backends.values()
        for info in backend.models()
    ]
    if as_json:
        print_json(rows)
        return
    table = Table(box=None, pad_edge=False)
    for column in ("backend", "model", "seconds", "sizes", "image", "remix", "status"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row["backend"],
            row["model"],
            _ranges(row["seconds"]),
            " ".join(row["sizes"]),
            row["input_image"],
            "yes" if row["remix"] else "no",
            row["status"],
        )
    console().print(table)


def _ranges(values: list[int]) -> str:
    """``[1, 2, 3, 5]`` as ``1-3, 5``: a model allowing 1..20 s should not print 20 numbers."""
    spans: list[list[int]] = []
    for v in sorted(values):
        if spans and v == spans[-1][1] + 1:
            spans[-1][1] = v
        else:
            spans.append([v, v])
    return ", ".join(f"{a}-{b}" if b > a + 1 else ", ".join(map(str, range(a, b + 1)))
                     for a, b in spans)  # fmt: skip
