"""The reelvault plugin API: every hook a plugin can implement.

A plugin is a module (or object) with functions decorated by :data:`hookimpl` and named
after the hooks below. Install it with an entry point in the ``reelvault`` group::

    [project.entry-points.reelvault]
    my_backend = "my_package.my_module"

or, for quick experiments, list the module in ``REELVAULT_PLUGINS=pkg.mod,other.mod``.
Built-in plugins are registered the same way, through the same entry-point group.

Hook implementations may accept any subset of a hook's arguments, by name, so hooks
can gain arguments without breaking existing plugins. Plugins import only the public
package :mod:`core.api` (this module, types, errors, settings, ids and provider
profiles), never the catalog, the host's internals or other plugins.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from collections.abc import Iterable

    import click

    from core.api.lifecycle import ModelLifecycle
    from core.api.settings import Settings
    from core.api.types import (
        Backend,
        ClipView,
        DerivedRequest,
        GenerationRequest,
        PolicyContext,
        PolicyDecision,
        VerificationResult,
    )

__all__ = [
    "PROJECT",
    "hookimpl",
    "hookspec",
]

PROJECT = "reelvault"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_backends(register: Callable[[Backend], None], settings: Settings) -> None:
    """Register generator backends by calling ``register(backend)`` once per backend.

    A backend is any object satisfying :class:`core.api.types.Backend`: a unique ``name``,
    a ``description``, ``models()`` listing each model's allowed seconds and sizes, and
    the job methods ``submit``, ``poll``, ``download`` and ``derive``. ``settings`` says
    where the backend may keep working files (``settings.work_dir / backend.name``) and
    holds the user's configuration. Registering two backends with one name is an error.
    Optional extras the host uses when present: ``list_jobs`` (:class:`~core.api.types.ListsJobs`,
    for ``sync``), ``poll_many`` (:class:`~core.api.types.PollsMany`: many jobs' statuses
    in one request, shared by every job the process waits for), ``close`` and ``release``.

    Plugins are called one at a time, in plugin-name order. A plugin whose hook raises
    is reported (``reelvault plugins`` lists it as FAILED; commands print a warning line)
    and contributes no backend, not even one it registered before raising; every other
    plugin's backends load and commands that do not need the missing ones keep working.
    ``register`` refusing an object (not a backend, or a name already taken) is a
    :class:`core.api.errors.PluginError` for the command instead.
    """


@hookspec
def check_request(
    request: GenerationRequest | DerivedRequest,
    backend: str,
    settings: Settings,
    context: PolicyContext,
) -> PolicyDecision | list[PolicyDecision] | None:
    """Judge a generation request before anything is submitted or spent.

    ``backend`` names the backend the request is for (model names may repeat across
    backends). ``context`` (a :class:`core.api.types.PolicyContext`) offers the model's
    ``ModelInfo``, what the host read from the input still (type, size, SHA-256) and a
    consent lookup, so a rule needs neither the catalog nor its own image probe.
    Plugins run in plugin-name order, so the record reads the same every time.

    Called for every request (generate and remix) in every policy plugin, each on its
    own: a plugin that raises is recorded as a deny (fail closed) and the others still
    run. Return a :class:`core.api.types.PolicyDecision`, a list of them, or ``None`` when
    the plugin has nothing to say. Any deny blocks the request; every decision is kept
    in the catalog with the attempt.
    """


@hookspec
def verify_asset(path: Path, mime: str, settings: Settings) -> VerificationResult | None:
    """Check an asset's provenance (e.g. its C2PA Content Credentials).

    Called for every asset that enters the catalog, and again by ``reelvault verify`` and
    ``reelvault audit``. Return a :class:`core.api.types.VerificationResult`, or ``None`` when
    this verifier does not handle the file's type. Raising is recorded as an
    ``unreadable`` result by this verifier, never a crash of the caller. A verifier that
    reads a manifest puts it, normalised, in ``details["manifest"]``; lineage is only
    taken from ``trusted`` or ``valid`` results.
    """


@hookspec(firstresult=True)
def sign_output(path: Path, mime: str, claims: dict[str, Any], settings: Settings) -> Path | None:
    """Sign a freshly made output and return the path of the signed copy.

    ``claims`` describes the generation (prompt, model, parameters, the backend's
    ``details`` such as a motion plan, source and parent assets with their files) for the
    signer to bind into the credentials. Sign into a *new* file and
    return its path; never rewrite ``path`` in place. Return ``None`` to decline.

    Signers are asked one at a time in plugin-name order (not pluggy's
    last-registered-first order, which would depend on how plugins were installed); the
    first that returns a path wins and the rest are not asked. A signer that raises fails
    the clip with a :class:`core.api.errors.PluginError` naming it: the output is not
    cataloged unsigned and no later signer stands in (fail closed, as a provenance tool
    must), and the job stays resumable once the signer is fixed or disabled.
    """


@hookspec
def clip_cataloged(clip: ClipView, settings: Settings) -> None:
    """Be told that a generation finished and its clip is in the catalog.

    ``clip`` is a read-only :class:`core.api.types.ClipView`. Use this for notifications,
    indexing or syncing elsewhere; an exception here is reported but does not undo the
    catalog entry.
    """


@hookspec
def register_commands(cli: click.Group) -> None:
    """Add commands to the ``reelvault`` CLI, e.g. ``@cli.command()``.

    Keep commands thin: a command should call a library function that tests can call too.
    """


@hookspec
def model_lifecycle(settings: Settings) -> Iterable[ModelLifecycle] | None:
    """Add to the model lifecycle registry (:mod:`core.api.lifecycle`).

    Return :class:`core.api.lifecycle.ModelLifecycle` entries saying which models (of
    any backend, usually the plugin's own) are available, deprecated or retired, since
    when, and what to use instead. ``reelvault models`` shows them; a request to a model
    retired everywhere (no ``where``) fails before anything is sent, naming the
    alternatives. Entries from plugins replace the built-in ones for the same
    ``(backend, model, where)``; the user's ``[lifecycle]`` in config.toml replaces both.
    A plugin that raises here is reported and left out; the other entries still count.
    """
