"""The ``reelvault`` command line: the click group and one module per command area.

Command modules are imported when one of their commands runs (see :mod:`core.cli.lazy`),
so ``import core.cli`` and ``reelvault --help`` load neither the catalog nor the media
libraries; plugins' commands are added when a name is not a built-in one, or when the
whole list is shown.
"""

from __future__ import annotations

import click

from core.cli.base import cli, default_host
from core.cli.lazy import COMMANDS, LazyGroup

__all__ = ["COMMANDS", "cli", "main"]


def _register_plugin_commands(group: click.Group) -> None:
    default_host().hook.register_commands(cli=group)


assert isinstance(cli, LazyGroup)
cli.plugin_commands = _register_plugin_commands


def main() -> None:
    cli(prog_name="reelvault")
