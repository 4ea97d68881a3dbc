"""Shared fixtures: a throwaway library home and test images with real texture.

Set ``REELVAULT_TEST_PG`` to a PostgreSQL URL (with rights to create databases) to run
the whole suite against PostgreSQL: every test then gets a fresh database of its own.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result
from PIL import Image

from core.api.settings import Settings
from core.cli import cli
from core.host.app import Reelvault

REPO = Path(__file__).resolve().parent.parent
PG_ENV = "REELVAULT_TEST_PG"


def on_postgresql() -> bool:
    return bool(os.environ.get(PG_ENV))


def textured_image(path: Path, width: int = 960, height: int = 540, seed: int = 1) -> Path:
    """A still with features at every scale, so motion between frames is measurable."""
    rng = np.random.default_rng(seed)
    noise = rng.random((height // 8, width // 8, 3))
    coarse = Image.fromarray((noise * 255).astype(np.uint8)).resize(
        (width, height), Image.Resampling.BICUBIC
    )
    fine = rng.integers(0, 60, (height, width, 3), dtype=np.uint8)
    pixels = np.clip(np.asarray(coarse, dtype=np.int16) + fine - 30, 0, 255).astype(np.uint8)
    Image.fromarray(pixels).save(path)
    return path


@pytest.fixture
def db_url(tmp_path: Path) -> Iterator[str]:
    """The catalog URL for this test: SQLite in the home, or a fresh PostgreSQL database."""
    with fresh_catalog_url(tmp_path / "home") as url:
        yield url


@contextmanager
def fresh_catalog_url(home: Path) -> Iterator[str]:
    """An empty catalog's URL: SQLite in ``home``, or a new PostgreSQL database (then dropped).

    Also for fixtures wider than one test, which cannot use the ``db_url`` fixture.
    """
    admin_url = os.environ.get(PG_ENV)
    if not admin_url:
        yield f"sqlite:///{home / 'catalog.db'}"
        return
    name = f"rv_test_{uuid.uuid4().hex[:16]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield sa.make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture
def home(tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("REELVAULT_HOME", str(home))
    if on_postgresql():
        monkeypatch.setenv("REELVAULT_DB", db_url)
    else:
        monkeypatch.delenv("REELVAULT_DB", raising=False)
    return home


@pytest.fixture
def still(tmp_path: Path) -> Path:
    return textured_image(tmp_path / "still.jpg")


@pytest.fixture
def app(home: Path) -> Reelvault:
    application = Reelvault(Settings.load(home=home))
    yield application
    application.close()


@pytest.fixture
def run(home: Path):
    """Invoke the CLI as a user would; fails the test on a crash (not an expected error)."""
    runner = CliRunner()

    def invoke(*args: str, expect: int = 0) -> Result:
        result = runner.invoke(cli, [str(a) for a in args], catch_exceptions=True)
        if result.exception and not isinstance(result.exception, SystemExit):
            raise result.exception
        assert result.exit_code == expect, (result.exit_code, result.output)
        return result

    return invoke
