"""Shared pieces for the fal and Replicate CLI tests: a loopback profile, the CLI calls.

Both backends are driven the same way: a provider profile added to config.toml as a user
would, pointing at the loopback stand-in; ``generate`` with the backend, model, size and
profile; a child ``python -m core generate`` to kill or interrupt while it polls; and a
hunt for the key in everything a run leaves behind.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from core.testing.loopback import LoopbackService
from tests import sora_support
from tests.conftest import REPO
from tests.sora_support import catalog_dump, write_config

still_720p = sora_support.still_720p
PROMPT = "a harbour at dawn"


@dataclass(frozen=True)
class Hosted:
    """One backend at one loopback provider profile, as its tests drive it."""

    backend: str
    model: str
    provider: str
    key: str
    key_env: str

    def connect(
        self, home: Path, monkeypatch: pytest.MonkeyPatch, base_url: str, extra: str = ""
    ) -> None:
        """Add the profile to config.toml (and ``extra`` lines) and put the key in its
        environment variable."""
        monkeypatch.setenv(self.key_env, self.key)
        write_config(
            home,
            f'[providers.{self.provider}]\nkind = "{self.backend}"\nbase_url = "{base_url}"\n'
            f'key_env = "{self.key_env}"\n{extra}',
        )

    @property
    def options(self) -> tuple[str, ...]:
        return ("--backend", self.backend, "--model", self.model, "--size", "1280x720",
                "--provider", self.provider)  # fmt: skip

    def make(
        self, run: Any, image: Path, *extra: str, prompt: str = PROMPT, expect: int = 0
    ) -> Any:
        """``generate --json``: the clip as a dict on success, else the CLI result."""
        result = run("generate", image, "--prompt", prompt, *self.options, *extra, "--json",
                     expect=expect)  # fmt: skip
        return json.loads(result.stdout) if expect == 0 else result

    def spawn(self, home: Path, image: Path, *extra: str) -> subprocess.Popen[str]:
        """``generate`` in a child process, as a user's shell runs it."""
        env = {**os.environ, "REELVAULT_HOME": str(home)}
        return subprocess.Popen(
            [sys.executable, "-m", "core", "generate", str(image), "-p", PROMPT,
             *self.options, *extra],
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip

    def signal_while_polling(
        self,
        home: Path,
        image: Path,
        api: LoopbackService,
        polls: Callable[[], bool],
        sig: signal.Signals,
        *extra: str,
    ) -> tuple[int, str]:
        """Start ``generate``, wait until ``polls()`` says it is polling, send ``sig``;
        the child's exit status and its stderr."""
        child = self.spawn(home, image, *extra)
        try:
            api.wait_for(polls, timeout=60)
        finally:
            child.send_signal(sig)
            _, stderr = child.communicate(timeout=60)
        return child.returncode, stderr


def key_leaks(
    home: Path, db_url: str, outputs: list[str], logs: str, hunted: list[str]
) -> list[tuple[str, str]]:
    """Where any of ``hunted`` shows up: CLI output, the catalog, logs, any file in home."""
    texts = {"output": "\n".join(outputs), "catalog": json.dumps(catalog_dump(db_url)),
             "logs": logs}  # fmt: skip
    for path in home.rglob("*"):
        if path.is_file():
            texts[str(path)] = path.read_bytes().decode("latin-1")
    return [(where, k) for where, text in texts.items() for k in hunted if k in text]


def show(run: Any, clip_id: str) -> dict[str, Any]:
    return json.loads(run("show", clip_id, "--json").stdout)


def jobs(run: Any) -> list[dict[str, Any]]:
    return json.loads(run("jobs", "--json").stdout)
