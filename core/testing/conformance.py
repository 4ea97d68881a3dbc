"""A reusable conformance suite for remote backends, run through the CLI a user types.

Every remote backend owes the same guarantees: it makes a clip (create, poll, download);
it reports a running job's progress, which the catalog keeps; it records the job id
before polling, so ``reelvault resume`` finishes a job whose process stopped polling or
was killed, without a second create; it waits out a 429 storm; it gets the video despite
a 5xx or a connection cut during the download; it records a refusal with the provider's
reason as a deny decision; it reports expired output as expired; it says a bad key in
one line; Ctrl-C either cancels the job at the provider (``--cancel-remote``, when the
backend can) or leaves it for ``resume``; and no key reaches the catalog, the logs or an
export. This module checks all of that against a loopback stand-in of the backend's
API, through the CLI a user types.

A backend's tests subclass :class:`BackendConformance` and provide one fixture,
``stand_in``: the running stand-in (a :class:`core.testing.loopback.LoopbackService`
offering ``hold``, ``release()``, ``created``, ``refuse_next()``, ``expire_all()``,
``storm()``, ``fail_downloads()``, ``cut_next_download()`` and, for a backend that
cancels, ``cancelled``; and an ``api_key``), with the backend's provider profile
pointed at it::

    from core.testing.conformance import BackendConformance

    class TestMyBackend(BackendConformance):
        backend = "mine"
        model = "mine-1"
        key_env = "MINE_KEY"

        @pytest.fixture
        def stand_in(self, conformance_home, monkeypatch):
            with MyStandIn(api_key="k-test") as server:
                monkeypatch.setenv("MINE_KEY", "k-test")
                monkeypatch.setenv("MINE_BASE_URL", server.base_url)
                yield server

The suite brings its own home (``conformance_home``, in ``tmp_path``) and still; it
needs nothing from reelvault's own test fixtures.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner, Result
from PIL import Image

from core.cli import cli

Invoke = Callable[..., Result]


class BackendConformance:
    """The suite; see the module docstring for how a backend's tests use it."""

    backend: str = ""
    model: str = ""
    size: str = "1280x720"
    seconds: int | None = None
    key_env: str = ""
    extra_args: tuple[str, ...] = ()
    """More ``generate`` options, e.g. ``("--provider", "NAME")``."""
    supports_cancel: bool = False
    """Whether the backend stops a job at its provider on Ctrl-C with ``generate
    --cancel-remote``; its stand-in then counts ``cancelled`` jobs. Without it, Ctrl-C
    must leave the job running for ``reelvault resume``."""

    # --- fixtures ----------------------------------------------------------------------

    @pytest.fixture
    def conformance_home(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
        home = tmp_path / "conformance-home"
        home.mkdir()
        monkeypatch.setenv("REELVAULT_HOME", str(home))
        monkeypatch.delenv("REELVAULT_DB", raising=False)
        return home

    @pytest.fixture
    def stand_in(self) -> Iterator[Any]:  # pragma: no cover - the subclass provides it
        raise NotImplementedError("a BackendConformance subclass provides the stand_in fixture")

    @pytest.fixture
    def conformance_still(self, tmp_path: Path) -> Path:
        """A smooth still of exactly ``size``: nothing a likeness policy mistakes for a face."""
        width, height = (int(n) for n in self.size.split("x"))
        y, x = np.mgrid[0:height, 0:width]
        pixels = np.dstack([(x * 255 // width), (y * 255 // height),
                            ((np.sin(x / 37.0) + np.sin(y / 23.0)) * 60 + 128)])  # fmt: skip
        path = tmp_path / "conformance-still.png"
        Image.fromarray(pixels.astype(np.uint8)).save(path)
        return path

    # --- helpers -----------------------------------------------------------------------

    @staticmethod
    def cli(*args: object, expect: int = 0) -> Result:
        result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=True)
        if result.exception and not isinstance(result.exception, SystemExit):
            raise result.exception
        assert result.exit_code == expect, (result.exit_code, result.output)
        return result

    def generate_args(self, still: Path, prompt: str = "a harbour") -> list[str]:
        args = ["generate", str(still), "-p", prompt, "-b", self.backend, "-m", self.model,
                "--size", self.size, *self.extra_args, "--json"]  # fmt: skip
        if self.seconds is not None:
            args += ["--seconds", str(self.seconds)]
        return args

    def generate(self, still: Path, *, expect: int = 0, prompt: str = "a harbour") -> Result:
        return self.cli(*self.generate_args(still, prompt), expect=expect)

    def jobs(self) -> list[dict[str, Any]]:
        return list(json.loads(self.cli("jobs", "--json").stdout))

    def show(self, clip_id: str) -> dict[str, Any]:
        return json.loads(self.cli("show", clip_id, "--json").stdout)

    @staticmethod
    def stop_polling_soon(home: Path) -> None:
        """``poll_timeout`` as a top-level key, ahead of any table the stand-in wrote."""
        config = home / "config.toml"
        existing = config.read_text() if config.exists() else ""
        config.write_text("poll_timeout = 0.3\n" + existing)

    def in_flight(self, still: Path, stand_in: Any, home: Path) -> dict[str, Any]:
        """A job left running remotely after its process stopped polling."""
        self.stop_polling_soon(home)
        stand_in.hold = True
        waiting = self.generate(still, expect=1)
        assert "`reelvault resume` picks it up later" in waiting.output
        (job,) = self.jobs()
        assert job["remote_job_id"] and stand_in.created == 1
        return job

    def stopped(
        self, still: Path, stand_in: Any, how: signal.Signals, *options: str
    ) -> tuple[str, int, str]:
        """``generate`` run as a user runs it, sent ``how`` (SIGINT: Ctrl-C; SIGKILL: a
        crash) while its job runs remotely; the clip id, the exit status and stderr."""
        stand_in.hold = True
        command = [sys.executable, "-m", "core", *self.generate_args(still), *options]
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ
        )
        try:
            deadline = time.monotonic() + 60
            running: list[dict[str, Any]] = []
            while not running:  # the job id is on record and the service has the job
                assert process.poll() is None, process.communicate()
                assert time.monotonic() < deadline, "the job never started remotely"
                time.sleep(0.05)
                if stand_in.created:
                    running = [j for j in self.jobs() if j["remote_job_id"]]
            process.send_signal(how)
            _, stderr = process.communicate(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        (job,) = running
        return str(job["id"]), process.returncode, stderr

    # --- the suite ---------------------------------------------------------------------

    def test_generate_polls_downloads_and_catalogs(
        self, stand_in: Any, conformance_still: Path
    ) -> None:
        clip = json.loads(self.generate(conformance_still).stdout)
        assert clip["status"] == "completed" and clip["backend"] == self.backend
        assert f"{clip['video']['width']}x{clip['video']['height']}" == self.size
        assert stand_in.created == 1

    def test_resume_after_polling_stopped_never_creates_twice(
        self, stand_in: Any, conformance_still: Path, conformance_home: Path
    ) -> None:
        job = self.in_flight(conformance_still, stand_in, conformance_home)
        stand_in.release()
        assert f"{job['id']} completed" in self.cli("resume").stdout
        assert stand_in.created == 1 and self.show(job["id"])["status"] == "completed"

    def test_a_killed_run_is_resumed_without_a_second_create(
        self, stand_in: Any, conformance_still: Path
    ) -> None:
        clip, status, _ = self.stopped(conformance_still, stand_in, signal.SIGKILL)
        assert status == -signal.SIGKILL and stand_in.created == 1
        stand_in.release()
        assert f"{clip} completed" in self.cli("resume").stdout
        assert stand_in.created == 1 and self.show(clip)["status"] == "completed"

    def test_a_429_storm_is_waited_out(self, stand_in: Any, conformance_still: Path) -> None:
        stand_in.storm(3, 0.05)
        clip = json.loads(self.generate(conformance_still).stdout)
        assert clip["status"] == "completed" and stand_in.created == 1

    def test_a_refusal_is_recorded_with_the_providers_reason(
        self, stand_in: Any, conformance_still: Path
    ) -> None:
        stand_in.refuse_next("blocked by the conformance safety check")
        failed = json.loads(self.generate(conformance_still, expect=1).stdout)
        shown = self.show(failed["id"])
        assert shown["status"] == "failed"
        assert "blocked by the conformance safety check" in shown["error"]["message"]
        denies = [d for d in shown["policy_decisions"] if d["plugin"] == self.backend]
        assert denies and denies[0]["outcome"] == "deny"
        assert "blocked by the conformance safety check" in denies[0]["reason"]

    def test_expired_output_is_reported_as_expired(
        self, stand_in: Any, conformance_still: Path, conformance_home: Path
    ) -> None:
        job = self.in_flight(conformance_still, stand_in, conformance_home)
        stand_in.release()
        stand_in.expire_all()
        assert "expired" in self.cli("resume", expect=1).output
        shown = self.show(job["id"])
        assert shown["status"] == "failed" and shown["error"]["code"] == "expired"
        assert stand_in.created == 1

    def test_a_bad_key_is_one_clear_line(
        self, stand_in: Any, conformance_still: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv(self.key_env, "not-the-key-0000")
        line = self.generate(conformance_still, expect=1).output.strip().splitlines()[-1]
        assert line.startswith("Error: provider ") and "did not accept the API key" in line
        assert f"${self.key_env}" in line and "not-the-key-0000" not in line

    def test_no_key_in_the_catalog_logs_or_exports(
        self,
        stand_in: Any,
        conformance_still: Path,
        conformance_home: Path,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        caplog.set_level(logging.DEBUG)
        clip = json.loads(self.generate(conformance_still).stdout)
        outputs = [self.cli(*args).output for args in (
            ("show", clip["id"], "--json"), ("jobs", "--json"), ("providers", "list", "--json"),
            ("export",), ("export", "--format", "csv"), ("export", "--format", "prov-json"),
        )]  # fmt: skip
        assert clip["id"] in outputs[3]
        key = stand_in.api_key
        texts = {"output": "\n".join(outputs), "logs": caplog.text}
        for path in conformance_home.rglob("*"):
            if path.is_file():  # the SQLite catalog too
                texts[str(path)] = path.read_bytes().decode("latin-1")
        leaks = [where for where, text in texts.items() if key in text or key[4:-4] in text]
        assert leaks == [], leaks

    def test_progress_is_reported_while_the_job_runs(
        self, stand_in: Any, conformance_still: Path, conformance_home: Path
    ) -> None:
        job = self.in_flight(conformance_still, stand_in, conformance_home)
        assert job["status"] in ("queued", "in_progress"), job  # the polled state, on record
        assert 0 <= job["progress"] < 100
        stand_in.release()
        self.cli("resume")
        shown = self.show(job["id"])
        assert shown["status"] == "completed" and shown["progress"] == 100

    def test_a_5xx_and_a_cut_during_download_still_get_the_whole_video(
        self, stand_in: Any, conformance_still: Path
    ) -> None:
        stand_in.fail_downloads(1, 503)  # retried in place
        stand_in.cut_next_download(after=512)  # started over into a fresh file
        clip = json.loads(self.generate(conformance_still).stdout)
        assert clip["status"] == "completed" and stand_in.created == 1
        assert f"{clip['video']['width']}x{clip['video']['height']}" == self.size
        assert clip["video"]["duration"] > 0  # the whole file probed, not a cut one
        assert stand_in.download_faults_left() == 0  # both faults were met

    def test_ctrl_c_cancels_at_the_provider_or_leaves_the_job_for_resume(
        self, stand_in: Any, conformance_still: Path
    ) -> None:
        options = ("--cancel-remote",) if self.supports_cancel else ()
        clip, status, said = self.stopped(conformance_still, stand_in, signal.SIGINT, *options)
        assert status == 130 and said.strip().splitlines()[-1].startswith("interrupted: "), said
        assert stand_in.created == 1
        if self.supports_cancel:  # stopped there and recorded so: nothing left running
            assert stand_in.cancelled == 1, said
            shown = self.show(clip)
            assert shown["status"] == "failed" and shown["error"]["code"] == "cancelled"
            assert self.jobs() == []
        else:  # left going there, and finished later without a second create
            assert "`reelvault resume`" in said and self.jobs()[0]["id"] == clip
            stand_in.release()
            assert f"{clip} completed" in self.cli("resume").stdout
            assert stand_in.created == 1 and self.show(clip)["status"] == "completed"
