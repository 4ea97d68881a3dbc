"""Commands about the plugin host: ``plugins`` and ``models``."""

from __future__ import annotations

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
    columns: Columns[dict[str, Any]] = {
        "backend": lambda row: row["backend"],
        "model": lambda row: row["model"],
        "seconds": lambda row: _ranges(row["seconds"]),
        "sizes": lambda row: " ".join(row["sizes"]),
        "image": lambda row: row["input_image"],
        "remix": lambda row: {True: "yes", False: "no", None: ""}[row["remix"]],
        "status": lambda row: row["status"],
    }
    document = rows + [_gone_row(e, today) for e in gone]
    print_rows(listed, columns, as_json=as_json, empty_message=None, json_document=document)
    if as_json:
        return
    advice: dict[tuple[str, ...], list[str]] = {}
    for entry in registry.values():
        if entry.status_on(today) != ModelStatus.AVAILABLE and entry.alternatives:
            advice.setdefault(entry.alternatives, []).append(entry.model)
    for alternatives, models in advice.items():
        names = ", ".join(dict.fromkeys(models))
        click.echo(f"instead of {names}: " + "; ".join(hint(a) for a in alternatives))


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
