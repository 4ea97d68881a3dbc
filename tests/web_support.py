"""A small library of real clips for the browse and export tests, made once per module.

Real clips from the local backend (1 s at 640x360, about half a second each): a clip,
its remix, the remix's remix, a clip from a second still, and an attempt the policy
rejected. Signing is set up after the first clip, so the others carry Content
Credentials (``trusted``) and the first has none (``absent``). A fake API key sits in the
environment the whole time, and the signing key lies in the home, so the tests can check
that nothing secret leaks into pages or exports.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from catalog.models import Generation
from core.api.errors import PolicyDenied
from core.api.settings import Settings
from core.cli import cli
from core.generation import derive, generate
from core.host.app import Reelvault
from core.provenance.signing import init_signing
from tests.conftest import fresh_catalog_url, textured_image

FAKE_SECRET = "sk-test-DO-NOT-EXPORT-5f0c1e9a7b"
PROTECTED = '[plugins.protected_names]\nterms = ["Mickey Mouse"]\n'
FIRST_PROMPT = 'pan right, "slowly" over #1 <harbor>'
OTHER_PROMPT = "zoom out\nthen hold"


@dataclass(frozen=True)
class Library:
    app: Reelvault
    home: Path
    db_url: str
    harbor: Path  # the still of first, remix, grandchild and the rejected attempt
    forest: Path  # the still of other
    first: Generation
    remix: Generation
    grandchild: Generation
    other: Generation
    rejected_id: str

    @property
    def all_ids(self) -> set[str]:
        clips = (self.first, self.remix, self.grandchild, self.other)
        return {c.id for c in clips} | {self.rejected_id}

    @property
    def secrets(self) -> list[str]:
        """Text that must never appear in a page or an export: the API key, the signing key."""
        key_lines = (self.home / "signing" / "key.pem").read_text().splitlines()
        return [FAKE_SECRET, *(line for line in key_lines[1:-1] if len(line) >= 32)]

    def cli(self, *args: object, expect: int = 0) -> Result:
        """Run a command against this library, as a user would."""
        argv = ["--home", str(self.home), "--db", self.db_url, *(str(a) for a in args)]
        result = CliRunner().invoke(cli, argv, catch_exceptions=True)
        if result.exception and not isinstance(result.exception, SystemExit):
            raise result.exception
        assert result.exit_code == expect, (result.exit_code, result.output)
        return result


@contextmanager
def open_library(folder: Path) -> Iterator[Library]:
    """Make the library under ``folder`` (SQLite, or PostgreSQL when the suite runs on it)."""
    home = folder / "home"
    home.mkdir(parents=True)
    (home / "config.toml").write_text(PROTECTED)
    with fresh_catalog_url(home) as url, pytest.MonkeyPatch.context() as env:
        env.setenv("OPENAI_API_KEY", FAKE_SECRET)
        app = Reelvault(Settings.load(home=home, db_url=url))
        try:
            harbor = textured_image(folder / "harbor.jpg", seed=1)
            forest = textured_image(folder / "forest.jpg", seed=2)
            first = generate(app, harbor, FIRST_PROMPT, seconds=1, size="640x360").generation
            init_signing(app.settings)  # the clips after the first carry Content Credentials
            remix = derive(app, first.id, "tilt up", seconds=1).generation
            grandchild = derive(app, remix.id, "push in", seconds=1).generation
            other = generate(app, forest, OTHER_PROMPT, seconds=1, size="640x360").generation
            with pytest.raises(PolicyDenied) as denied:
                generate(app, harbor, "Mickey Mouse waves", seconds=1, size="640x360")
            yield Library(
                app=app,
                home=home,
                db_url=url,
                harbor=harbor,
                forest=forest,
                first=first,
                remix=remix,
                grandchild=grandchild,
                other=other,
                rejected_id=denied.value.generation_id,
            )
        finally:
            app.close()
