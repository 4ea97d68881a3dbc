"""The command group that imports a command's module only when that command runs.

Start-up time is import time: every command module pulls in what its commands use (the
catalog, the renderer, C2PA, the web server), and importing them all made
``reelvault --help`` take a second. The group knows each built-in command by name from
:data:`COMMANDS`, with the short help ``--help`` lists, and imports the module that
defines it when it is looked up to run (or to show its own help). Plugins' commands are
added the first time a name is not built in, or when the whole list is wanted. A test
checks the table against the commands the modules really define.

This module imports click and nothing else of weight, and neither does anything the
group touches before a command is chosen.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import click

COMMANDS: dict[str, tuple[str, str]] = {
    # name: (the module that defines it, its short help as ``--help`` shows it)
    "annotate": (
        "core.cli.organise",
        "Give a clip or an asset (ID) a title, a note or a rating (0-5).",
    ),
    "assets": (
        "core.cli.organise",
        "Every file of the library (stills, clips' videos, imports) with its lineage summary.",
    ),
    "audit": (
        "core.cli.provenance",
        "Re-hash every stored file, re-verify its credentials and check lineage against them.",
    ),
    "backup": (
        "core.cli.maintenance",
        "Copy the catalog to PATH, consistently, while other commands keep working.",
    ),
    "consent": (
        "core.cli.policy",
        "Consent to the use of a person's likeness in particular images.",
    ),
    "doctor": (
        "core.cli.maintenance",
        "Check the catalog's integrity, stuck jobs, orphan files and work-folder leftovers.",
    ),
    "edit": (
        "core.cli.remote",
        "Make an edited copy of CLIP; lineage records it as edit_of its parent.",
    ),
    "export": (
        "core.cli.web",
        "Write the catalog (or the part the filters select) to stdout, oldest first.",
    ),
    "extend": (
        "core.cli.remote",
        "Continue CLIP by SECONDS more; lineage records it as extension_of its parent.",
    ),
    "gc": (
        "core.cli.library_ops",
        "Delete stored files no clip or asset refers to, and leftovers of interrupted work.",
    ),
    "generate": (
        "core.cli.clips",
        "Make a clip from IMAGE and PROMPT, and catalog it with its lineage.",
    ),
    "get": (
        "core.cli.library_ops",
        "Copy a clip's video (or another of its files, or an asset) out as a named file.",
    ),
    "import": (
        "core.cli.provenance",
        "Catalog existing images and videos; rebuild lineage from their credentials.",
    ),
    "info": (
        "core.cli.library_ops",
        "Which home, catalog and media store are in use, what they hold, what runs here.",
    ),
    "jobs": (
        "core.cli.clips",
        "Queued and running work (and, with --ended, what recently finished or failed).",
    ),
    "keys": (
        "core.cli.remote",
        "API keys and webhook secrets, kept in the home's keys.toml (mode 0600).",
    ),
    "lineage": (
        "core.cli.library",
        "Where a clip came from and what was made from it (or from a still), as a tree.",
    ),
    "list": ("core.cli.library", "List clips, newest first."),
    "media": (
        "core.cli.media",
        "The media store: a local folder or S3-compatible object storage.",
    ),
    "models": (
        "core.cli.plugins",
        "Every model of every backend: seconds, sizes, and where it stands in its lifecycle.",
    ),
    "plugins": (
        "core.cli.plugins",
        "Loaded plugins, the hooks each implements, and any that failed to load or to "
        "register their backends.",
    ),
    "policy": (
        "core.cli.policy",
        "The rules every request must pass before anything is generated.",
    ),
    "providers": (
        "core.cli.remote",
        "Where remote backends send requests: provider profiles of every kind.",
    ),
    "regenerate": (
        "core.cli.clips",
        "Make CLIP's shot again with another model; lineage records it as variant_of CLIP.",
    ),
    "remix": (
        "core.cli.clips",
        "Make a new clip from CLIP with a new prompt; lineage records the parent.",
    ),
    "resume": (
        "core.cli.clips",
        "Finish every job interrupted by a crash or Ctrl-C, without submitting it again.",
    ),
    "rm": (
        "core.cli.library_ops",
        "Remove clips or assets from the catalog, all or none; `gc` then frees their files.",
    ),
    "serve": (
        "core.cli.web",
        "Browse the library in a web browser: thumbnails, clips, lineage (read-only).",
    ),
    "show": (
        "core.cli.library",
        "Everything known about one clip: request, result, files, lineage, decisions.",
    ),
    "signing": ("core.cli.provenance", "The certificate the clips made here are signed with."),
    "submit": (
        "core.cli.queue",
        "Queue a clip for a worker: validated and policy-checked now, made later.",
    ),
    "sync": (
        "core.cli.remote",
        "Import the account's videos that the catalog lacks, with their remix lineage.",
    ),
    "tag": ("core.cli.organise", "Tag a clip or an asset (ID) with TAGS; prints all its tags."),
    "trust": (
        "core.cli.provenance",
        "Trust anchors: signers that chain to one verify as trusted, others as valid.",
    ),
    "untag": (
        "core.cli.organise",
        "Take TAGS off a clip or an asset (ID); prints the tags it keeps.",
    ),
    "verify": (
        "core.cli.provenance",
        "Check the Content Credentials of a file (PATH) or a cataloged clip or asset (ID).",
    ),
    "webhooks": (
        "core.cli.remote",
        "Receive webhooks (Videos API, Replicate, fal) and finish the jobs they announce.",
    ),
    "worker": (
        "core.cli.queue",
        "Take queued jobs from the catalog and run them; several workers may share it.",
    ),
}


class LazyGroup(click.Group):
    """A group whose built-in commands load on first use (see the module docstring), and
    whose expected errors end in one clear line and the error's exit code."""

    plugin_commands: Callable[[click.Group], None] | None = None
    """Adds the plugins' commands to the group; set by :mod:`core.cli`, called once."""

    _plugins_added = False

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._add_plugin_commands()
        return sorted({*COMMANDS, *self.commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands:
            if cmd_name in COMMANDS:
                importlib.import_module(COMMANDS[cmd_name][0])  # its commands attach here
            else:
                self._add_plugin_commands()
        return self.commands.get(cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list of ``--help``, from the table: no command module is imported."""
        names = self.list_commands(ctx)
        if not names:
            return
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = []
        for name in names:
            loaded = self.commands.get(name)
            if loaded is not None:
                if loaded.hidden:
                    continue
                text = loaded.get_short_help_str(limit)
            else:
                text = click.utils.make_default_short_help(COMMANDS[name][1], limit)
            rows.append((name, text))
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> Any:
        from core.api.errors import ReelvaultError

        try:
            return super().invoke(ctx)
        except ReelvaultError as exc:
            from core.cli.text import printable

            error = click.ClickException(printable(str(exc)))
            error.exit_code = exc.exit_code
            raise error from None

    def _add_plugin_commands(self) -> None:
        if self._plugins_added or self.plugin_commands is None:
            return
        self._plugins_added = True
        self.plugin_commands(self)
