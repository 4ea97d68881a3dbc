"""What every command shares: the click group, option bundles and printing helpers.

The command line is a thin layer over the library.

Each command parses its options, calls one library function and prints the result,
as a table or tree for people and as JSON with ``--json`` for scripts. Expected
failures (:class:`core.api.errors.ReelvaultError`) become one line on stderr and a non-zero
exit; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import functools
import os
import re
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from core.cli.lazy import LazyGroup
from core.cli.text import printable
from core.views import json_text

# Everything heavier is imported where it is used: this module is imported by every
# command, including ``--help``, which must not pay for the catalog or the renderer.
if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text

    from catalog.queries import ClipFilter
    from core.api.types import ProgressCallback
    from core.host.app import Reelvault
    from core.host.plugins import PluginFailure, PluginHost


@cache
def default_host() -> PluginHost:
    """The plugins whose commands this process offers, loaded once at import time, before
    ``--home`` is parsed (so from the default home's ``disabled_plugins``). Only for
    ``register_commands``: every command runs on its home's own host (:func:`get_app`)."""
    from core.api.errors import ReelvaultError
    from core.api.settings import Settings
    from core.host.plugins import load_host

    try:
        disabled = Settings.load().disabled_plugins()
    except ReelvaultError:
        disabled = frozenset()  # a broken config.toml is reported when a command opens it
    return load_host(disabled)


def get_app(ctx: click.Context, warn_failed_plugins: bool = True) -> Reelvault:
    """The application for this invocation; tests may pass one in as ``obj``.

    Its plugins are loaded for the home the command works on: that home's
    ``disabled_plugins`` apply, whatever ``$REELVAULT_HOME`` says.
    """
    from core.api.settings import Settings
    from core.host.app import Reelvault

    root = ctx.find_root()
    if not isinstance(root.obj, Reelvault):
        params = root.params
        settings = Settings.load(
            home=params.get("home"), db_url=params.get("db"), media=params.get("media")
        )
        root.obj = Reelvault(settings)  # loads the host from these settings
        root.obj.announce = echo_err
        root.call_on_close(root.obj.close)
    app: Reelvault = root.obj
    if warn_failed_plugins:
        for failure in app.host.failures:
            warn(f"plugin {failure.name} failed to load (see `reelvault plugins`)")
        app.host.on_hook_failure = _warn_hook_failure  # a hook may fail later, mid-command
    return app


def _warn_hook_failure(failure: PluginFailure) -> None:
    """One line for a plugin hook that raised while the command went on without it."""
    warn(f"plugin {failure.name} failed: {failure.error} (see `reelvault plugins`)")


def quiet() -> bool:
    """Whether ``--quiet`` was given: no progress bars and no warnings, errors only."""
    ctx = click.get_current_context(silent=True)
    return bool(ctx is not None and ctx.find_root().params.get("quiet"))


def no_color() -> bool:
    """Whether ``NO_COLOR`` is set (https://no-color.org): then no ANSI styling at all,
    bold included (rich alone would drop colours and keep bold)."""
    return bool(os.environ.get("NO_COLOR"))


def warn(message: str) -> None:
    """A problem that did not stop the command, on stderr unless ``--quiet``."""
    if not quiet():
        echo_err(f"warning: {message}")


def console() -> Console:
    """Standard output for tables and trees.

    Markup and emoji codes are off: what is printed is mostly what users typed (prompts,
    file names, consent subjects), and ``[/x]`` or ``:smile:`` in it must print as typed,
    not be parsed (an unmatched closing tag would raise ``MarkupError``).
    """
    from rich.console import Console

    terminal = sys.stdout.isatty()
    return Console(
        file=sys.stdout,
        width=None if terminal else 10_000,
        color_system=None if no_color() else "auto",
        highlight=False,
        soft_wrap=True,
        markup=False,
        emoji=False,
    )


def plain(text: str) -> Text:
    """Untrusted text for a rich table cell or tree label: shown as it is, whatever
    console it is printed on (a ``str`` label is parsed as markup by default), with its
    control characters escaped (:func:`core.cli.text.printable`)."""
    from rich.text import Text

    return Text(printable(text))


def say(*lines: str, err: bool = False) -> None:
    """Print each of ``lines`` as one line of human output, control characters escaped:
    a newline inside a prompt or file name shows as ``\\n``, it cannot forge a line."""
    click.echo("\n".join(printable(line) for line in lines), err=err)


def echo_err(message: str) -> None:
    """One line on stderr (a warning, a failure), control characters escaped."""
    say(message, err=True)


JSON_INDENT_LEVELS = 32
"""Nesting deeper than this is indented no further (a lineage nests two levels per remix:
a 10,000-deep chain indented all the way would print gigabytes of spaces)."""


def print_json(data: Any) -> None:
    """Pretty JSON on stdout, at any nesting depth."""
    text = json_text.dumps(data, indent=2, ensure_ascii=False, indent_levels=JSON_INDENT_LEVELS)
    click.echo(text)


Row = TypeVar("Row")
Columns = Mapping[str, Callable[[Row], "str | Text"]] | Callable[[Row], str]
"""A table's columns, each heading with the cell it shows for a row; or one line per row."""


def print_rows(
    rows: Sequence[Row],
    columns: Columns[Row],
    *,
    as_json: bool,
    empty_message: str | None,
    json_document: Any = None,
    whole: Sequence[str] = ("id", "model"),
    numbers: Sequence[str] = (),
) -> None:
    """How every listing command answers: the rows as JSON with ``--json``, else a table
    (or one line per row), or ``empty_message`` on stderr when there is nothing to list.

    With ``--json`` the rows are printed as they are, unless the command's document holds
    more than them (``json_document``). Without an ``empty_message`` an empty listing
    still prints its headings. ``whole`` columns are never cut or wrapped (ids are copied
    from them); the others wrap, or, where the ids leave them no room, each row becomes a
    block (:mod:`core.cli.layout`); ``numbers`` are set flush right. Cells built from what
    users or certificates wrote should be :func:`plain` text, never markup.
    """
    if as_json:
        print_json(rows if json_document is None else json_document)
        return
    if not rows and empty_message is not None:
        echo_err(empty_message)
        return
    if not isinstance(columns, Mapping):
        for row in rows:
            say(columns(row))
        return
    from core.cli.layout import print_laid_out

    cells = [[cell(row) for cell in columns.values()] for row in rows]
    print_laid_out(console(), list(columns), cells, whole, numbers)


@contextmanager
def progress_bar(label: str) -> Iterator[ProgressCallback | None]:
    """A rich progress bar on stderr when it is a terminal; nothing otherwise, or with
    ``--quiet``."""
    if not sys.stderr.isatty() or quiet():
        yield None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
    )
    stderr = Console(stderr=True, color_system=None if no_color() else "auto")
    with Progress(*columns, console=stderr, transient=True) as progress:
        task = progress.add_task(label, total=100)

        def update(state: str, percent: int) -> None:
            progress.update(task, completed=percent, description=f"{label} ({state})")

        yield update


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    help="Library folder (default: $REELVAULT_HOME or the per-user data folder).",
)
@click.option("--db", help="Catalog database URL (default: $REELVAULT_DB or SQLite in the home).")
@click.option(
    "--media",
    metavar="URL",
    help="Where the files are: a folder or s3://bucket/prefix (default: $REELVAULT_MEDIA, "
    "`media` in config.toml, else media/ in the home). See docs/storage.md.",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bars and no warnings: errors only.")
@click.version_option(package_name="reelvault")
def cli(home: Path | None, db: str | None, media: str | None, quiet: bool) -> None:
    """Turn stills into short clips and keep a trustworthy record of every clip."""


seconds_option = click.option("--seconds", type=click.IntRange(min=1), help="Clip length.")
size_option = click.option("--size", help="WIDTHxHEIGHT, e.g. 1280x720.")
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")
fit_option = click.option(
    "--fit",
    type=click.Choice(["cover", "contain", "none"]),
    help="Fit a still of another size to --size: cover crops, contain pads "
    "(default none: refuse a mismatch where the model needs an exact size).",
)
output_option = click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    help="Also copy the new clip's video here: a file, or a folder for a named file.",
)


def check_output_free(output: Path | None) -> None:
    """Refuse an ``-o`` file that exists before any work is done (``get`` never replaces
    a file without ``--force``, and finding out after a long render would waste it)."""
    from core.api.errors import RequestError

    if output is not None and output.exists() and not output.is_dir():
        raise RequestError(f"{output} exists: choose another name (nothing was made)")


text_option = click.option(
    "--text",
    "-t",
    help="Only those whose prompt, title, note, file name or tags have words starting with "
    "every word of this text (at most 200 characters).",
)


def status_choice() -> click.Choice[str]:
    """A status by name from the one enum; imported on use, as ``--help`` needs none."""
    from core.api.types import GenerationStatus

    return click.Choice([status.value for status in GenerationStatus])


tag_option = click.option(
    "--tag", "tags", multiple=True, help="Only those with this tag (repeat: with every one)."
)
sort_option = click.option(
    "--sort",
    type=click.Choice(["created", "title", "rating"]),
    default="created",
    show_default=True,
    help="Newest first, by title (A-Z, untitled last) or by rating (best first).",
)
provider_option = click.option(
    "--provider", help="Provider profile a remote model runs at (see `reelvault providers`)."
)


def request_parameters(
    fit: str | None, provider: str | None, model: str | None, backend: str | None
) -> dict[str, str]:
    """The backend parameters ``--fit`` and ``--provider`` stand for."""
    from core.api.errors import RequestError

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
        """Keyword arguments for :func:`core.generation.generate` (and the policy
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


_RELATIVE = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_when(text: str) -> datetime:
    """An ISO date or time (UTC unless it says otherwise), or an age such as ``7d``."""
    from core.api.errors import RequestError

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
    from catalog.queries import asset_by_sha, get_asset
    from core.api.errors import RequestError
    from core.media.store import hash_file

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
    tags: tuple[str, ...]

    def to_filter(self, app: Reelvault, **extra: Any) -> ClipFilter:
        from catalog.queries import ClipFilter

        return ClipFilter(
            model=self.model,
            backend=self.backend,
            status=self.status,
            text=self.text,
            source_asset_id=source_asset_id(app, self.source) if self.source else None,
            since=parse_when(self.since) if self.since else None,
            until=parse_when(self.until) if self.until else None,
            provenance=self.provenance,
            tags=self.tags,
            **extra,
        )


def clip_filter_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add the ``list`` filters; the command receives them as one ``filters: FilterRequest``."""
    from catalog.queries import PROVENANCE_STATES

    return _bundled(
        command,
        "filters",
        FilterRequest,
        (
            click.option("--model", "-m", help="Only this model."),
            click.option("--backend", "-b", help="Only this backend."),
            click.option("--status", "-s", type=status_choice(), help="Only this status."),
            text_option,
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
            tag_option,
        ),
    )


def clip_text(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
