"""The plugin host and every hook, exercised through plugins written here for the test."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from core.api import hookspecs
from core.api.errors import PluginError, PolicyDenied
from core.api.hookspecs import hookimpl
from core.api.settings import Settings
from core.api.types import (
    ClipView,
    Outcome,
    PolicyDecision,
    VerificationResult,
    VerificationState,
)
from core.cli import cli
from core.generation import generate
from core.host.app import Reelvault
from core.host.plugins import PluginHost, load_host
from tests.conftest import REPO


def host_with(*plugins: tuple[str, object]) -> PluginHost:
    host = load_host()
    for name, plugin in plugins:
        host.register(plugin, name, "test")
    assert not host.failures, host.failures
    return host


def make_app(home: Path, *plugins: tuple[str, object]) -> Reelvault:
    return Reelvault(Settings.load(home=home), host=host_with(*plugins))


def quick(app: Reelvault, still: Path, prompt: str = "pan right"):
    clip = generate(app, still, prompt, seconds=1, size="640x360").generation
    assert clip.status == "completed", (clip.error_code, clip.error_message)
    return clip


class Denier:
    @hookimpl
    def check_request(self, request):
        if "forbidden" in request.prompt:
            return PolicyDecision(Outcome.DENY, "no-forbidden", "the prompt says forbidden")
        return [PolicyDecision(Outcome.ALLOW, "no-forbidden", "nothing forbidden")]


class Crasher:
    @hookimpl
    def check_request(self, request, settings):
        raise RuntimeError("rule file unreadable")


def test_check_request_decisions_are_recorded_and_a_deny_blocks(home: Path, still: Path):
    app = make_app(home, ("denier", Denier()))
    allowed = quick(app, still)
    with app.session() as s:
        from catalog.queries import decisions_for

        mine = [d for d in decisions_for(s, allowed.id) if d.plugin == "denier"]
        assert [(d.plugin, d.outcome) for d in mine] == [("denier", "allow")]
    with pytest.raises(PolicyDenied, match="denier/no-forbidden") as denied:
        quick(app, still, "a forbidden move")
    with app.session() as s:
        from catalog.queries import get_generation

        rejected = get_generation(s, denied.value.generation_id)
        assert rejected.status == "rejected" and rejected.remote_job_id is None
        assert rejected.error_code == "policy_denied"


def test_a_crashing_policy_plugin_denies_without_silencing_the_others(home: Path, still: Path):
    app = make_app(home, ("denier", Denier()), ("crasher", Crasher()))
    with pytest.raises(PolicyDenied) as denied:
        quick(app, still)
    decisions = {(d.plugin, d.outcome, d.rule_id) for d in denied.value.decisions}
    assert decisions == {("crasher", "deny", "plugin-error")}
    with app.session() as s:
        from catalog.queries import decisions_for

        recorded = decisions_for(s, denied.value.generation_id)
    recorded = [d for d in recorded if d.plugin in ("crasher", "denier")]  # not the built-ins
    assert [(d.plugin, d.outcome) for d in recorded] == [("crasher", "deny"), ("denier", "allow")]
    assert "rule file unreadable" in recorded[0].reason


class Sloppy:
    """Decides with outcomes that are not :class:`Outcome` values (and one that is, as text)."""

    @hookimpl
    def check_request(self, request):
        return [
            PolicyDecision("DENY", "shouting", "upper case"),  # type: ignore[arg-type]
            PolicyDecision("block", "other-word", "not an outcome"),  # type: ignore[arg-type]
            PolicyDecision("allow", "as-text", "a plain string of a real outcome"),  # type: ignore[arg-type]
        ]


def test_an_outcome_that_is_not_an_outcome_is_a_deny(home: Path, still: Path):
    app = make_app(home, ("sloppy", Sloppy()))
    with pytest.raises(PolicyDenied) as denied:
        quick(app, still)
    reasons = [d.reason for d in denied.value.decisions]
    assert [(d.plugin, d.rule_id) for d in denied.value.decisions] == [
        ("sloppy", "plugin-error"),
        ("sloppy", "plugin-error"),
    ]
    assert "'shouting' decided 'DENY', not one of allow, warn, deny" in reasons[0]
    assert "'other-word' decided 'block'" in reasons[1]
    with app.session() as s:
        from catalog.queries import decisions_for

        recorded = [d for d in decisions_for(s, denied.value.generation_id) if d.plugin == "sloppy"]
    assert [d.outcome for d in recorded] == ["deny", "deny", "allow"]


class Verifier:
    @hookimpl
    def verify_asset(self, path, mime):
        if mime == "video/mp4":
            return VerificationResult(VerificationState.ABSENT, ("manifest.missing",))
        return None


class BrokenVerifier:
    @hookimpl
    def verify_asset(self, path):
        raise ValueError("parser exploded")


def test_verify_asset_results_are_stored_per_asset(home: Path, still: Path):
    app = make_app(home, ("verifier", Verifier()), ("broken", BrokenVerifier()))
    clip = quick(app, still)
    with app.session() as s:
        from catalog.queries import verifications_for

        video = verifications_for(s, clip.output_asset_id)
        source = verifications_for(s, clip.source_asset_id)
    ours = ("verifier", "broken")  # not the built-in c2pa_verifier
    video = [v for v in video if v.verifier in ours]
    source = [v for v in source if v.verifier in ours]
    assert {(v.verifier, v.state) for v in video} == {
        ("verifier", "absent"),
        ("broken", "unreadable"),
    }
    assert [(v.verifier, v.state) for v in source] == [("broken", "unreadable")]
    assert "parser exploded" in next(v for v in video if v.verifier == "broken").details["error"]


class Signer:
    def __init__(self) -> None:
        self.claims: list[dict] = []

    @hookimpl
    def sign_output(self, path: Path, mime, claims, settings):
        self.claims.append(claims)
        signed = path.with_name(path.name + ".signed")
        signed.write_bytes(path.read_bytes() + b"\0\0\0\x08free")  # a trailing MP4 box
        return signed


def test_sign_output_replaces_the_stored_video_with_the_signed_copy(home: Path, still: Path):
    signer = Signer()
    app = make_app(home, ("signer", signer))
    clip = quick(app, still)
    with app.session() as s:
        from catalog.models import Asset

        video = s.get(Asset, clip.output_asset_id)
    data = (app.store.root / video.stored_path).read_bytes()
    assert data.endswith(b"free")
    (claims,) = signer.claims
    assert claims["prompt"] == "pan right" and claims["source"]["id"] == clip.source_asset_id
    assert claims["parent"] is None
    assert list((home / "work" / "incoming").iterdir()) == []  # no scratch files left


class InPlaceSigner:
    @hookimpl
    def sign_output(self, path):
        return path


def test_a_signer_that_rewrites_in_place_is_refused(home: Path, still: Path):
    app = make_app(home, ("inplace", InPlaceSigner()))
    with pytest.raises(PluginError, match="new file"):
        quick(app, still)


class Listener:
    def __init__(self) -> None:
        self.seen: list[ClipView] = []

    @hookimpl
    def clip_cataloged(self, clip):
        self.seen.append(clip)


class LoudListener:
    @hookimpl
    def clip_cataloged(self, clip):
        raise RuntimeError("webhook down")


def test_clip_cataloged_is_told_about_each_finished_clip(home: Path, still: Path):
    listener = Listener()
    app = make_app(home, ("listener", listener), ("loud", LoudListener()))
    result = generate(app, still, "pan right", seconds=1, size="640x360")
    clip = result.generation
    (view,) = listener.seen
    assert view.id == clip.id and view.status == "completed"
    assert view.video_path is not None and view.video_path.is_file()
    assert result.warnings == ("plugin loud failed in clip_cataloged: RuntimeError: webhook down",)
    # Each call reports its own warnings, never an earlier call's again.
    again = generate(app, still, "tilt up", seconds=1, size="640x360")
    assert again.warnings == ("plugin loud failed in clip_cataloged: RuntimeError: webhook down",)


def test_register_commands_adds_cli_commands():
    class Commands:
        @hookimpl
        def register_commands(self, cli):
            @cli.command(name="hello-test")
            def hello() -> None:
                click.echo("hello from a plugin")

    group = click.Group(commands=dict(cli.commands))
    host_with(("commands", Commands())).hook.register_commands(cli=group)
    result = CliRunner().invoke(group, ["hello-test"])
    assert result.output == "hello from a plugin\n"


def test_register_backends_rejects_duplicates_and_non_backends(home: Path):
    class Duplicate:
        @hookimpl
        def register_backends(self, register, settings):
            from plugins.local_backend import LocalBackend

            register(LocalBackend(settings.work_dir / "again"))

    with pytest.raises(PluginError, match="two plugins register a backend named 'local'"):
        _ = make_app(home, ("dup", Duplicate())).backends

    class NotABackend:
        @hookimpl
        def register_backends(self, register):
            register(object())

    with pytest.raises(PluginError, match="not a backend"):
        _ = make_app(home, ("bad", NotABackend())).backends


def test_a_plugin_that_fails_to_import_is_reported_not_fatal(tmp_path: Path, home: Path):
    """Listing plugins and models still works; requests are denied until it is fixed (below)."""
    (tmp_path / "broken_plugin.py").write_text("import does_not_exist\n")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO)]),
        "REELVAULT_PLUGINS": "broken_plugin, tests.conftest",
        "REELVAULT_HOME": str(home),
    }
    run = [sys.executable, "-m", "core", "plugins", "--json"]
    result = subprocess.run(run, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    (failure,) = report["failures"]
    assert failure["name"] == "broken_plugin"
    assert "ModuleNotFoundError" in failure["error"] and "does_not_exist" in failure["error"]
    assert "broken_plugin.py:1" in failure["error"]
    assert "tests.conftest" in {p["name"] for p in report["plugins"]}
    models = subprocess.run(
        [sys.executable, "-m", "core", "models"], env=env, capture_output=True, text=True
    )
    assert models.returncode == 0 and "local-motion" in models.stdout
    assert "plugin broken_plugin failed to load" in models.stderr


def test_a_plugin_that_fails_to_load_denies_until_fixed_or_disabled(
    tmp_path: Path, home: Path, still: Path, monkeypatch: pytest.MonkeyPatch
):
    """It might have been a policy plugin: running without it would skip its checks."""
    (tmp_path / "broken_plugin.py").write_text("import does_not_exist\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("REELVAULT_PLUGINS", "broken_plugin")
    app = Reelvault(Settings.load(home=home))
    with pytest.raises(PolicyDenied, match="broken_plugin/plugin-load-failed") as denied:
        quick(app, still)
    (decision,) = [d for d in denied.value.decisions if d.plugin == "broken_plugin"]
    assert "does_not_exist" in decision.reason and "disabled_plugins" in decision.reason
    with app.session() as s:
        from catalog.queries import get_generation

        assert get_generation(s, denied.value.generation_id).status == "rejected"
    result = CliRunner().invoke(cli, ["policy", "check", str(still), "-p", "pan right"], obj=app)
    assert result.exit_code == 1
    assert "deny   broken_plugin/plugin-load-failed: plugin 'broken_plugin' failed" in (
        result.stdout
    )
    app.close()

    (home / "config.toml").write_text('disabled_plugins = ["broken_plugin"]\n')
    switched_off = Reelvault(Settings.load(home=home))
    assert quick(switched_off, still).status == "completed"
    switched_off.close()


def _hookspec_names() -> list[str]:
    return [name for name in dir(hookspecs) if hasattr(getattr(hookspecs, name), "reelvault_spec")]


def test_there_are_hookspecs():
    assert set(_hookspec_names()) >= {"register_backends", "check_request", "verify_asset"}


@pytest.mark.parametrize("hook", _hookspec_names())
def test_every_hook_is_documented(hook: str):
    guide = (REPO / "docs" / "plugins.md").read_text()
    assert re.search(rf"^#+ .*`{hook}`", guide, re.MULTILINE), f"{hook} has no section"


def _signature(function: ast.FunctionDef) -> str:
    """A function's name, parameters, annotations and return type, as one normal line."""
    returns = f" -> {ast.unparse(function.returns)}" if function.returns else ""
    return f"def {function.name}({ast.unparse(function.args)}){returns}"


def _hook_section(guide: str, hook: str) -> str:
    start = re.search(rf"^## `{hook}`$", guide, re.MULTILINE)
    assert start, f"docs/plugins.md has no '## `{hook}`' section"
    end = re.search(r"^## ", guide[start.end() :], re.MULTILINE)
    return guide[start.end() : start.end() + end.start()] if end else guide[start.end() :]


@pytest.mark.parametrize("hook", _hookspec_names())
def test_every_hook_signature_is_documented_exactly(hook: str):
    """The first code block of a hook's section is its signature, exactly as the hookspec
    declares it (layout aside): renaming an argument or changing a type updates the guide."""
    source = (REPO / "core" / "api" / "hookspecs.py").read_text()
    (spec,) = [
        node
        for node in ast.parse(source).body
        if isinstance(node, ast.FunctionDef) and node.name == hook
    ]
    section = _hook_section((REPO / "docs" / "plugins.md").read_text(), hook)
    block = re.search(r"^```python\n(.*?)^```$", section, re.MULTILINE | re.DOTALL)
    assert block, f"the `{hook}` section of docs/plugins.md starts with no python block"
    documented = [
        node for node in ast.parse(block.group(1)).body if isinstance(node, ast.FunctionDef)
    ]
    assert [_signature(node) for node in documented] == [_signature(spec)], (
        f"docs/plugins.md shows `{hook}` differently from core/api/hookspecs.py"
    )


@pytest.mark.parametrize("hook", _hookspec_names())
def test_every_hook_has_a_test_plugin_implementing_it(hook: str):
    implemented: set[str] = set()
    for test_file in (REPO / "tests").glob("test_*.py"):
        tree = ast.parse(test_file.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and any(
                isinstance(d, ast.Name) and d.id == "hookimpl" for d in node.decorator_list
            ):
                implemented.add(node.name)
    assert hook in implemented, f"no test implements {hook}"
