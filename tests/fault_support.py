"""What the ``test_faults*`` modules share: one clip made through the CLI, the check that
a fault ends in exactly one line and exit status 2, and a Ctrl-C while a job finishes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import on_postgresql

sqlite_only = pytest.mark.skipif(on_postgresql(), reason="damages a SQLite catalog file")


def make_clip(run, still: Path) -> str:
    data = json.loads(run("generate", still, "-p", "pan right", "--json").stdout)
    return data["id"]


def one_line_exit_2(run, *args: str) -> str:
    result = run(*args, expect=2)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert "Traceback" not in result.output
    return lines[0]


@contextmanager
def ctrl_c_while_cataloging(kind: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Within the block, a finishing job is interrupted (Ctrl-C) as it catalogs its
    ``kind`` file (``video``, ``thumbnail``, ...): what came before is kept, the rest is
    for ``resume``."""
    import core.generation.finish as finish_module

    real_ingest = finish_module.ingest

    def interrupted(app, path, file_kind, **options):
        if file_kind == kind:
            raise KeyboardInterrupt
        return real_ingest(app, path, file_kind, **options)

    with monkeypatch.context() as patched:
        patched.setattr(finish_module, "ingest", interrupted)
        yield
