"""Commands about the plugin host: ``plugins`` and ``models``."""

from __future__ import annotations

import re
import shutil
import textwrap
from datetime import UTC, date, datetime
from typing import Any

import click

from core.api.errors import PluginError
from core.api.lifecycle import ModelLifecycle, ModelStatus, hint
from core.cli.base import (
    Columns,
    cli,
    echo_err,
    get_app,
    json_option,
    print_json,
    print_rows,
)


@cli.command(name="plugins")
@json_option
@click.pass_context
def plugins_command(ctx: click.Context, as_json: bool) -> None:
    """Loaded plugins, the hooks each implements, and any that failed to load or to
    register their backends."""
    app = get_app(ctx, warn_failed_plugins=False)
    host = app.host
    try:
        _ = app.backends  # built here so that a plugin whose register_backends raises shows
    except PluginError as exc:  # two plugins claim one name: say so, list the rest anyway
        echo_err(f"FAILED backends: {exc}")
    plugins = [
        {"name": p.name, "source": p.source, "version": p.version, "hooks": list(p.hooks)}
        for p in host.plugins()
    ]
    failures = [
        {"name": f.name, "source": f.source, "error": f.error}
        for f in [*host.failures, *host.hook_failures]
    ]
    columns: Columns[dict[str, Any]] = {
        "plugin": lambda p: p["name"],
        "hooks": lambda p: ", ".join(p["hooks"]),
        "from": lambda p: p["source"],
    }
    document = {"plugins": plugins, "failures": failures}
    print_rows(plugins, columns, as_json=as_json, empty_message=None, json_document=document)
    if as_json:
        return
    for failure in failures:
        echo_err(f"FAILED {failure['name']} ({failure['source']}): {failure['error']}")


@cli.command(name="models")
@json_option
@click.pass_context
def models_command(ctx: click.Context, as_json: bool) -> None:
    """Every model of every backend: seconds, sizes, and where it stands in its lifecycle.

    The status comes from the backend (sora says which provider serves it) or, when the
    backend says only "available", from the lifecycle registry; models the registry
    knows but no loaded backend offers any more are listed too, as retired ones.
    """
    app = get_app(ctx)
    today = datetime.now(UTC).date()
    registry = app.lifecycle()
    rows = []
    for backend in app.backends.values():
        for info in backend.models():
            entries = app.lifecycle_of(backend.name, info.name)
            rows.append(
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
                    "status": _status(info.status, [e.describe(today) for e in entries]),
                    "lifecycle": [e.to_json(today) for e in entries],
                }
            )
    offered = {(r["backend"], r["model"]) for r in rows}
    gone = [e for (b, m, _), e in registry.items() if (b, m) not in offered]
    listed = rows + [
        {"backend": e.backend, "model": e.model, "seconds": [], "sizes": [], "input_image": "",
         "remix": None, "status": e.describe(today)}
        for e in gone
    ]  # fmt: skip
    document = rows + [_gone_row(e, today) for e in gone]
    if as_json:
        print_json(document)
        return
    columns: Columns[dict[str, Any]] = {
        "model": lambda row: row["model"],
        "secs": lambda row: _ranges(row["seconds"]),
        "sizes": lambda row: _sizes(row["sizes"]),
        "remix": lambda row: {True: "yes", False: "no", None: ""}[row["remix"]],
        "status": lambda row: _short_status(row["status"]),
    }
    for name in dict.fromkeys(row["backend"] for row in listed):
        click.echo(f"{name}:")  # a heading per backend leaves the width to the models
        group = [row for row in listed if row["backend"] == name]
        print_rows(group, columns, as_json=False, empty_message=None, whole=WHOLE)
    advice: dict[tuple[str, ...], list[str]] = {}
    for entry in registry.values():
        if entry.status_on(today) != ModelStatus.AVAILABLE and entry.alternatives:
            advice.setdefault(entry.alternatives, []).append(entry.model)
    width = shutil.get_terminal_size().columns
    for alternatives, models in advice.items():
        names = ", ".join(dict.fromkeys(models))
        click.echo(textwrap.fill(f"instead of {names}:", width, subsequent_indent="  "))
        for alternative in alternatives:
            click.echo(textwrap.fill(hint(alternative), width, initial_indent="  ",
                                     subsequent_indent="    "))  # fmt: skip


WHOLE = ("model", "secs", "sizes", "remix")
"""Cells never wrapped: a model name must stay copyable; only the status wraps."""


def _sizes(sizes: list[str]) -> str:
    """The default size and how many more: a model's full list is in ``--json``, and a
    dozen sizes per row would push the table past a terminal's width."""
    return sizes[0] + (f" +{len(sizes) - 1}" if len(sizes) > 1 else "") if sizes else ""


def _short_status(status: str) -> str:
    """A status without its explanations and advice: what to use instead follows the
    table, and ``--json`` keeps every word. Where a model is served (a host in
    parentheses) stays: it is what tells two providers of one model apart."""
    states = [
        re.sub(r" \([^()]*\s[^()]*\)", "", part)
        for part in status.split("; ")
        if part.startswith(("available", "deprecated", "retired"))
    ]
    return "; ".join(states)


def _status(reported: str, registry: list[str]) -> str:
    """The backend's own note, plus what the registry adds that it does not say."""
    if not registry:
        return reported
    notes = [] if reported == "available" else [reported]
    notes += [text for text in registry if text not in reported]
    return "; ".join(notes)


def _gone_row(entry: ModelLifecycle, today: date) -> dict[str, object]:
    return {
        "backend": entry.backend,
        "model": entry.model,
        "offered": False,
        "status": entry.describe(today),
        "lifecycle": [entry.to_json(today)],
    }


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
