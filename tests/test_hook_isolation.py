"""register_backends and sign_output go through the host's isolating call (call_each).

A plugin whose register_backends raises is reported and leaves every other command
working; signers run in plugin-name order, and one that raises stops the clip (fail
closed) without losing the job.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from catalog.models import Asset
from core.api.errors import PluginError
from core.api.hookspecs import hookimpl
from core.api.settings import Settings
from core.cli import cli
from core.generation import generate, in_flight, resume
from core.host.app import Reelvault
from core.host.plugins import load_host

BROKEN_BACKENDS = """
from core.api import hookimpl
from plugins.local_backend import LocalBackend

class Half(LocalBackend):
    name = "half"


@hookimpl
def register_backends(register, settings):
    register(Half(settings.work_dir / "half"))  # registered, then the hook fails
    raise RuntimeError("backend config unreadable")
"""


@pytest.fixture
def broken_backends(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    (tmp_path / "broken_backends.py").write_text(BROKEN_BACKENDS)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("REELVAULT_PLUGINS", "broken_backends")
    return "broken_backends"


def test_a_raising_register_backends_is_reported_and_other_commands_work(
    home: Path, still: Path, broken_backends: str
):
    runner = CliRunner()
    models = runner.invoke(cli, ["models", "--json"])
    assert models.exit_code == 0, models.output
    backends = {row["backend"] for row in json.loads(models.stdout)}
    assert "local" in backends and "half" not in backends  # nothing from the failed call
    assert (
        "warning: plugin broken_backends failed: register_backends raised RuntimeError: "
        "backend config unreadable" in models.stderr
    )

    listing = runner.invoke(cli, ["plugins", "--json"])
    assert listing.exit_code == 0, listing.output
    report = json.loads(listing.stdout)
    (failure,) = report["failures"]
    assert failure["name"] == "broken_backends"
    assert failure["error"] == "register_backends raised RuntimeError: backend config unreadable"
    assert "broken_backends" in {p["name"] for p in report["plugins"]}  # still loaded
    table = runner.invoke(cli, ["plugins"])
    assert table.exit_code == 0
    assert "FAILED broken_backends (REELVAULT_PLUGINS=broken_backends): register_backends" in (
        table.stderr
    )

    made = runner.invoke(
        cli,
        [
            "generate",
            str(still),
            "-p",
            "pan right",
            "--seconds",
            "1",
            "--size",
            "640x360",
            "--json",
        ],
    )
    assert made.exit_code == 0, made.output  # a hook failure is no load failure: no deny
    assert json.loads(made.stdout)["status"] == "completed"
    assert "plugin broken_backends failed" in made.stderr


def test_the_failure_is_recorded_once_however_often_backends_load(home: Path, broken_backends: str):
    host = load_host()
    for _ in range(2):
        app = Reelvault(Settings.load(home=home), host=host)
        assert "local" in app.backends
        app.close()
    assert [f.name for f in host.hook_failures] == ["broken_backends"]
    assert host.failures == []  # load failures stay what they were: plugins that did not load


class Signer:
    """Signs by appending a free MP4 box carrying its name; or declines, or raises."""

    def __init__(self, name: str, *, decline: bool = False, crash: bool = False) -> None:
        self.name, self.decline, self.crash = name, decline, crash
        self.asked = 0

    @hookimpl
    def sign_output(self, path: Path, mime: str) -> Path | None:
        self.asked += 1
        if self.crash:
            raise RuntimeError("HSM unreachable")
        if self.decline:
            return None
        signed = path.with_name(f"{path.name}.{self.name}")
        tag = self.name.encode()
        signed.write_bytes(path.read_bytes() + (8 + len(tag)).to_bytes(4, "big") + b"free" + tag)
        return signed


def app_with(home: Path, *signers: Signer) -> Reelvault:
    host = load_host(frozenset({"c2pa_signer"}))
    for signer in signers:
        host.register(signer, signer.name, "test")
    return Reelvault(Settings.load(home=home), host=host)


def stored_video(app: Reelvault, asset_id: str | None) -> bytes:
    with app.session() as session:
        asset = session.get(Asset, asset_id)
        assert asset is not None
        return (app.store.root / asset.stored_path).read_bytes()


def test_signers_are_asked_in_plugin_name_order_and_the_first_path_wins(home: Path, still: Path):
    zed, alpha, beta = Signer("zed"), Signer("alpha", decline=True), Signer("beta")
    app = app_with(home, beta, zed, alpha)  # pluggy (last registered first) would pick zed
    clip = generate(app, still, "pan right", seconds=1, size="640x360").generation
    assert clip.status == "completed"
    assert stored_video(app, clip.output_asset_id).endswith(b"freebeta")
    assert (alpha.asked, beta.asked, zed.asked) == (1, 1, 0)
    app.close()


def test_a_signer_that_raises_stops_the_clip_clearly_and_the_job_resumes(home: Path, still: Path):
    broken, later = Signer("a_broken", crash=True), Signer("b_fine")
    app = app_with(home, broken, later)
    with pytest.raises(PluginError) as refused:
        generate(app, still, "pan right", seconds=1, size="640x360")
    message = str(refused.value)
    assert message.startswith("signer a_broken failed on ")
    assert "RuntimeError: HSM unreachable" in message and "reelvault resume" in message
    assert later.asked == 0  # fail closed: no other signer stands in, nothing unsigned kept
    (waiting,) = in_flight(app)
    assert waiting.output_asset_id is None
    assert list((home / "work" / "incoming").iterdir()) == []
    app.close()

    fixed = app_with(home, Signer("a_broken", decline=True), Signer("b_fine"))
    ((finished, problem),) = resume(fixed).outcomes
    assert problem is None and finished.status == "completed"
    assert stored_video(fixed, finished.output_asset_id).endswith(b"freeb_fine")
    fixed.close()


def test_a_signer_that_raises_is_one_error_line_from_the_cli(home: Path, still: Path):
    app = app_with(home, Signer("a_broken", crash=True))
    result = CliRunner().invoke(
        cli,
        ["generate", str(still), "-p", "pan right", "--seconds", "1", "--size", "640x360"],
        obj=app,
    )
    assert result.exit_code == 1
    assert "signer a_broken failed on" in result.stderr
    assert "Traceback" not in result.output
    app.close()
