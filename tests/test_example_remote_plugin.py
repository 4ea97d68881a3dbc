"""The documented example remote backend (docs/examples/reelvault-kite), installed as a
real distribution and checked by its own conformance tests, as its author would run them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from core.testing.conformance import BackendConformance
from tests.conftest import REPO

EXAMPLE = REPO / "docs" / "examples" / "reelvault-kite"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example installed with pip into a private folder, entry point and all."""
    target = tmp_path_factory.mktemp("site")
    build = tmp_path_factory.mktemp("build")
    source = build / "reelvault-kite"  # built from a copy: nothing is left in the repository
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("__pycache__", "tests"))
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(source)],
        check=True, capture_output=True, text=True, env={**os.environ, "TMPDIR": str(build)},
    )  # fmt: skip
    assert list(target.glob("reelvault_kite-*.dist-info/entry_points.txt"))
    return target


def environment(site: Path, home: Path) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(REPO)]),
           "REELVAULT_HOME": str(home)}  # fmt: skip
    for name in ("REELVAULT_PLUGINS", "REELVAULT_DB", "KITE_API_KEY", "KITE_BASE_URL"):
        env.pop(name, None)
    return env


@pytest.mark.slow
def test_the_installed_example_passes_its_own_conformance_tests(site: Path, tmp_path: Path):
    env = environment(site, tmp_path / "home")
    listed = subprocess.run([sys.executable, "-m", "core", "plugins", "--json"], env=env,
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    kite = next(p for p in json.loads(listed.stdout)["plugins"] if p["name"] == "kite")
    assert "reelvault-kite" in kite["source"] and kite["hooks"] == ["register_backends"]

    # The author's checkout without the module itself: the tests use the installed one.
    checkout = tmp_path / "checkout"
    shutil.copytree(EXAMPLE / "tests", checkout / "tests")
    shutil.copy(EXAMPLE / "pyproject.toml", checkout / "pyproject.toml")
    ran = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfE"],
        cwd=checkout, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stdout[-4000:] + ran.stderr[-2000:]
    counts = ran.stdout.strip().splitlines()[-1]
    suite = [name for name in dir(BackendConformance) if name.startswith("test_")]
    assert f"{len(suite)} passed" in counts and "failed" not in counts, counts
