"""Shared pieces for the sora / Videos API tests: the loopback server, a key to hunt for."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from PIL import Image

from core.testing import VideosAPIServer

KEY = "sk-test-Zq8w3RkT0pLm5Vn1Xb7Yc4HdQe"
"""Distinctive enough that finding it anywhere it should not be is never a coincidence."""


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[VideosAPIServer]:
    """The Videos API on loopback, with the built-in openai profile pointed at it."""
    with VideosAPIServer(api_key=KEY, render_seconds=0.15, poll_after_ms=10) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", KEY)
        monkeypatch.delenv("OPENAI_WEBHOOK_SECRET", raising=False)
        yield server


def smooth_image(path: Path, width: int = 1280, height: int = 720) -> Path:
    """Gradients and waves: structure at every position, and nothing a face detector
    could mistake for a face (random texture sometimes is, and a likeness policy denies)."""
    y, x = np.mgrid[0:height, 0:width]
    red = (x * 255 // width).astype(np.uint8)
    green = (y * 255 // height).astype(np.uint8)
    blue = ((np.sin(x / 37.0) + np.sin(y / 23.0)) * 60 + 128).astype(np.uint8)
    Image.fromarray(np.dstack([red, green, blue])).save(path)
    return path


@pytest.fixture
def still_720p(tmp_path: Path) -> Path:
    """A still of exactly 1280x720, the size sora-2 makes in landscape."""
    return smooth_image(tmp_path / "harbour.png")


def catalog_dump(db_url: str) -> dict[str, list[list[str]]]:
    """Every row of every catalog table as text (for hunting secrets); {} if none exist."""
    url = sa.make_url(db_url)
    if url.get_backend_name() == "sqlite" and not Path(url.database or "").exists():
        return {}
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            tables = sa.inspect(conn).get_table_names()
            return {t: [list(map(str, r)) for r in conn.execute(sa.text(f"SELECT * FROM {t}"))]
                    for t in tables}  # fmt: skip
    finally:
        engine.dispose()


def write_config(home: Path, text: str) -> None:
    home.mkdir(parents=True, exist_ok=True)
    path = home / "config.toml"
    existing = path.read_text() if path.exists() else ""
    path.write_text(existing + text)
