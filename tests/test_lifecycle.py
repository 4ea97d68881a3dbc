"""The model lifecycle registry: built-in entries, a plugin's, the user's config.toml."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner

from core.api.errors import RequestError
from core.api.hookspecs import hookimpl
from core.api.lifecycle import BUILTIN, ModelLifecycle, ModelStatus, from_config
from core.api.settings import Settings
from core.cli import cli
from core.generation import generate
from core.host.app import Reelvault
from core.host.plugins import load_host
from tests.sora_support import write_config


class RetiresLocal:
    """A plugin that says the local backend's model was switched off."""

    @hookimpl
    def model_lifecycle(self, settings):
        return [
            ModelLifecycle(
                "local",
                "local-motion",
                ModelStatus.RETIRED,
                date(2026, 11, 1),
                alternatives=("veo:veo-3.0-generate-001", "--provider elsewhere"),
                note="switched off for the test",
            )
        ]


class Broken:
    @hookimpl
    def model_lifecycle(self):
        return ["not an entry"]


def app_with(home: Path, *plugins: tuple[str, object]) -> Reelvault:
    host = load_host()
    for name, plugin in plugins:
        host.register(plugin, name, "test")
    return Reelvault(Settings.load(home=home), host=host)


def test_a_model_a_plugin_retires_is_refused_before_anything_is_made(home: Path, still: Path):
    app = app_with(home, ("retires", RetiresLocal()), ("broken", Broken()))
    with pytest.raises(RequestError) as refused:
        generate(app, still, "pan right", seconds=1, size="640x360")
    assert str(refused.value) == (
        "model local-motion (local) is retired since 2026-11-01 (switched off for the test); "
        "use instead: --backend veo -m veo-3.0-generate-001, --provider elsewhere"
    )
    assert not (home / "media").exists() or not any((home / "media").rglob("*.mp4"))
    assert any(
        f.name == "broken" and f.error.startswith("model_lifecycle raised")
        for f in app.host.hook_failures
    )

    result = CliRunner().invoke(cli, ["models", "--json"], obj=app)
    (local,) = [r for r in json.loads(result.stdout) if r["backend"] == "local"]
    assert local["status"].startswith("retired since 2026-11-01")
    assert local["lifecycle"][0]["alternatives"][0] == "veo:veo-3.0-generate-001"
    app.close()


def test_config_toml_overrides_and_adds_entries(home: Path, still: Path):
    write_config(
        home,
        '[lifecycle."local:local-motion"]\nstatus = "deprecated"\nsince = 2026-01-01\n'
        'alternatives = ["veo:veo-2.0-generate-001"]\n',
    )
    app = app_with(home, ("retires", RetiresLocal()))  # the user's word wins over a plugin's
    clip = generate(app, still, "pan right", seconds=1, size="640x360").generation
    assert clip.status == "completed"
    result = CliRunner().invoke(cli, ["models"], obj=app)
    assert "deprecated since 2026-01-01" in result.stdout
    assert "instead of local-motion:\n  --backend veo -m veo-2.0-generate-001\n" in result.stdout
    app.close()
    with pytest.raises(Exception, match="status must be one of available, deprecated, retired"):
        from_config({"lifecycle": {"a:b": {"status": "gone"}}})


def test_the_builtin_registry_knows_the_sora_shutdown():
    (sora2,) = [e for e in BUILTIN if (e.backend, e.model) == ("sora", "sora-2")]
    assert sora2.where == "api.openai.com" and sora2.retired(date(2026, 9, 24))
    assert not sora2.retired(date(2026, 9, 23))
    assert sora2.describe(date(2026, 9, 1)) == (
        "deprecated at api.openai.com; retiring on 2026-09-24"
    )
    assert "veo:veo-3.0-generate-001" in sora2.alternatives
