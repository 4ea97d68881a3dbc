"""Shared fixtures: a throwaway library home and test images with real texture."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result
from PIL import Image

from core.app import Reelvault
from core.cli import cli
from core.config import Settings

REPO = Path(__file__).resolve().parent.parent


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
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("REELVAULT_HOME", str(home))
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
