"""Policy checks through the CLI: each built-in rule both ways, failing plugins, records.

Every command here runs on an application built afresh from the home's ``config.toml``,
as a new ``reelvault`` process would, so configuration written by a test takes effect.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from PIL import Image

from core.api.hookspecs import hookimpl
from core.api.settings import Settings
from core.api.types import Outcome, PolicyContext, PolicyDecision
from core.cli import cli
from core.host.app import Reelvault
from plugins.local_backend import MODEL, LocalBackend
from tests.conftest import REPO, textured_image

Plugins = Sequence[tuple[str, object]]
Invoke = Callable[..., Result]
QUICK = ("--seconds", "1", "--size", "640x360")


@pytest.fixture
def rv(home: Path) -> Invoke:
    """Run ``reelvault ARGS`` and check the exit code; ``plugins`` are added to the host."""

    def invoke(*args: object, expect: int = 0, plugins: Plugins = ()) -> Result:
        app = Reelvault(Settings.load(home=home))
        for name, plugin in plugins:
            app.host.register(plugin, name, "test")
        assert not app.host.failures, app.host.failures
        try:
            result = CliRunner().invoke(cli, [str(a) for a in args], obj=app)
        finally:
            app.close()
        if result.exception and not isinstance(result.exception, SystemExit):
            raise result.exception
        assert result.exit_code == expect, (result.exit_code, result.output)
        return result

    return invoke


def write_config(home: Path, text: str) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(text)


def decisions(result: Result) -> dict[tuple[str, str], str]:
    """``(plugin, rule_id) -> outcome`` from ``policy check --json``."""
    report = json.loads(result.stdout)
    return {(d["plugin"], d["rule_id"]): d["outcome"] for d in report["decisions"]}


def rejected_ids(rv: Invoke) -> list[str]:
    return [c["id"] for c in json.loads(rv("list", "--status", "rejected", "--json").stdout)]


def generate_json(rv: Invoke, image: Path, *args: object, plugins: Plugins = ()) -> dict:
    result = rv("generate", image, *args, *QUICK, "--json", plugins=plugins)
    return json.loads(result.stdout)


def refused(rv: Invoke, image: Path, *args: object, plugins: Plugins = ()) -> tuple[str, Result]:
    """Generate expecting a policy denial; returns the rejected clip's id and the result."""
    before = set(rejected_ids(rv))
    result = rv("generate", image, *args, *QUICK, expect=1, plugins=plugins)
    assert "denied by policy" in result.stderr
    (new,) = set(rejected_ids(rv)) - before
    assert new in result.stderr  # the user is told where the attempt is recorded
    return new, result


def shown_decisions(rv: Invoke, clip_id: str) -> dict[tuple[str, str], str]:
    data = json.loads(rv("show", clip_id, "--json").stdout)
    return {(d["plugin"], d["rule_id"]): d["outcome"] for d in data["policy_decisions"]}


# --- request fit -----------------------------------------------------------------------


class StrictBackend(LocalBackend):
    """The local renderer under a backend whose model does not fit stills itself."""

    name = "strict"

    def models(self):  # type: ignore[no-untyped-def]
        return (dataclasses.replace(MODEL, fits_input_image=False),)


class StrictPlugin:
    @hookimpl
    def register_backends(self, register, settings):  # type: ignore[no-untyped-def]
        register(StrictBackend(settings.work_dir / "strict"))


STRICT = [("strict", StrictPlugin())]


def test_a_request_that_fits_is_allowed_and_every_rule_is_on_record(rv: Invoke, still: Path):
    clip = generate_json(rv, still, "-p", "pan right")
    assert clip["status"] == "completed"
    recorded = {(d["plugin"], d["rule_id"]): d["outcome"] for d in clip["policy_decisions"]}
    assert set(recorded.values()) == {"allow"}
    assert {("likeness", "likeness.consent"), ("protected_names", "names.protected")} <= set(
        recorded
    )
    fit_rules = {rule for plugin, rule in recorded if plugin == "request_fit"}
    assert fit_rules == {
        "fit.model", "fit.seconds_size", "fit.prompt_length", "fit.image",
        "fit.image_type", "fit.image_bytes", "fit.image_pixels", "fit.image_size",
    }  # fmt: skip
    text = rv("show", clip["id"]).stdout
    assert "policy decisions" in text
    assert "allow request_fit/fit.image_size: the 960x540 still is fitted to 640x360" in text


def test_policy_check_denies_seconds_size_and_unknown_models_without_writing(
    rv: Invoke, still: Path
):
    result = rv("policy", "check", still, "-p", "pan right", "--seconds", "99", "--json", expect=1)
    assert decisions(result)[("request_fit", "fit.seconds_size")] == "deny"
    assert "does not allow 99 seconds" in result.stdout
    assert "request_fit/fit.seconds_size" in result.stderr
    result = rv("policy", "check", still, "-p", "x", "--size", "333x333", "--json", expect=1)
    assert "does not allow size 333x333" in result.stdout

    result = rv("policy", "check", still, "-p", "pan right", "--model", "nope", expect=1)
    assert "deny   request_fit/fit.model: model 'nope' is not offered by any loaded backend" in (
        result.stdout
    )
    assert result.stdout.splitlines()[-1] == "deny: ? / nope"
    assert json.loads(rv("list", "--json").stdout) == []  # a dry run records nothing


def test_prompt_length_limits_come_from_config(rv: Invoke, home: Path, still: Path):
    write_config(home, "[plugins.request_fit]\nprompt_max_chars = 20\n")
    clip = generate_json(rv, still, "-p", "pan right")
    assert shown_decisions(rv, clip["id"])[("request_fit", "fit.prompt_length")] == "allow"
    clip_id, result = refused(rv, still, "-p", "a slow pan right over the whole harbor")
    assert "the prompt has 38 characters; at most 20 allowed" in result.stderr
    assert shown_decisions(rv, clip_id)[("request_fit", "fit.prompt_length")] == "deny"


def test_image_type_bytes_and_pixels_are_limited(rv: Invoke, home: Path, tmp_path: Path):
    gif = tmp_path / "still.gif"
    Image.open(textured_image(tmp_path / "t.png", 320, 180)).convert("P").save(gif)
    _, result = refused(rv, gif, "-p", "pan right")
    assert "request_fit/fit.image_type: image/gif is not allowed" in result.stderr

    write_config(
        home,
        '[plugins.request_fit]\nimage_types = ["image/gif"]\n'
        "max_image_bytes = 1000\nmax_image_pixels = 10000\n",
    )
    result = rv("policy", "check", gif, "-p", "pan right", "--json", expect=1)
    got = decisions(result)
    assert got[("request_fit", "fit.image_type")] == "allow"
    assert got[("request_fit", "fit.image_bytes")] == "deny"
    assert got[("request_fit", "fit.image_pixels")] == "deny"
    assert "57,600 pixels (320x180); at most 10,000 allowed" in result.stdout

    write_config(home, '[plugins.request_fit]\nimage_types = ["image/gif"]\n')
    clip = generate_json(rv, gif, "-p", "pan right")
    assert clip["status"] == "completed"


def test_an_undecodable_still_is_denied_by_the_dry_run_and_refused_by_generate(
    rv: Invoke, tmp_path: Path
):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    result = rv("policy", "check", broken, "-p", "pan right", "--json", expect=1)
    got = decisions(result)
    assert got[("request_fit", "fit.image")] == "deny"
    assert got[("likeness", "likeness.consent")] == "deny"  # who is in it cannot be told
    result = rv("generate", broken, "-p", "pan right", expect=2)
    assert result.stderr.startswith("Error: ") and len(result.stderr.splitlines()) == 1
    assert json.loads(rv("list", "--json").stdout) == []


def test_a_still_of_another_size_is_never_cropped_unasked(rv: Invoke, still: Path, tmp_path: Path):
    args = ("-p", "pan right", "--backend", "strict", "--model", "local-motion")
    result = rv("policy", "check", still, *args, *QUICK, expect=1, plugins=STRICT)
    refusal = "is 960x540 but model local-motion needs exactly 640x360"
    assert f"deny   request_fit/fit.image_size: the still {refusal}" in result.stdout
    refused = rv("generate", still, *args, *QUICK, expect=2, plugins=STRICT)  # before any row
    assert f"still.jpg {refusal}" in refused.stderr  # one rule, in the same words, both places
    assert json.loads(rv("list", "--json").stdout) == []

    for fit in ("cover", "contain"):
        result = rv("policy", "check", still, *args, *QUICK, "--fit", fit, plugins=STRICT)
        line = f"allow  request_fit/fit.image_size: the 960x540 still is fitted to 640x360 by {fit}"
        assert line + ", as asked" in result.stdout
    clip = generate_json(rv, still, *args, "--fit", "cover", plugins=STRICT)
    assert clip["status"] == "completed" and clip["backend"] == "strict"
    assert shown_decisions(rv, clip["id"])[("request_fit", "fit.image_size")] == "allow"

    exact = textured_image(tmp_path / "exact.png", 640, 360)
    clip = generate_json(rv, exact, *args, plugins=STRICT)
    assert clip["status"] == "completed"
    recorded = json.loads(rv("show", clip["id"], "--json").stdout)["policy_decisions"]
    (size_rule,) = [d for d in recorded if d["rule_id"] == "fit.image_size"]
    assert size_rule["reason"] == "the still is 640x360, as requested"


def test_an_unknown_fit_mode_is_denied(app: Reelvault, still: Path):
    from core.generation.consent import check_policy

    report = check_policy(app, still, "pan right", parameters={"fit": "stretch"})
    (deny,) = [d for d in report.decisions if d.outcome == Outcome.DENY]
    assert (deny.plugin, deny.rule_id) == ("request_fit", "fit.image_size")
    assert "'stretch'" in deny.reason


# --- protected names --------------------------------------------------------------------

NAMES = """
[plugins.protected_names]
terms = ["Mickey Mouse", "Beyoncé", "Jordan"]
allow = ["Jordan River"]
"""


def test_protected_names_ship_empty(rv: Invoke, still: Path):
    result = rv("policy", "check", still, "-p", "Mickey Mouse waves", "--json")
    assert decisions(result)[("protected_names", "names.protected")] == "allow"
    assert "no protected names are configured" in result.stdout


@pytest.mark.parametrize(
    ("prompt", "named"),
    [
        ("a MICKEY-mouse parade, pan right", "Mickey Mouse"),
        ("beyonce on stage, push in", "Beyoncé"),
        ("BEYONCÉ on stage", "Beyoncé"),
        ("Jordan dunks while the jordan river flows", "Jordan"),
        ("Mic\u200bkey Mouse waves", "Mickey Mouse"),  # a zero-width space hides nothing
        ("Мiсkеу Mouse waves", "Mickey Mouse"),  # nor do Cyrillic М, с, е, у
    ],
)
def test_a_protected_name_in_the_prompt_is_denied(
    rv: Invoke, home: Path, still: Path, prompt: str, named: str
):
    write_config(home, NAMES)
    clip_id, result = refused(rv, still, "-p", prompt)
    assert f"protected_names/names.protected: the prompt names {named!r}" in result.stderr
    assert shown_decisions(rv, clip_id)[("protected_names", "names.protected")] == "deny"


@pytest.mark.parametrize(
    "prompt",
    ["a boat on the Jordan River, pan right", "Jordanian food market", "a mouse named Mickey"],
)
def test_allowed_phrases_and_partial_words_pass(rv: Invoke, home: Path, still: Path, prompt: str):
    write_config(home, NAMES)
    result = rv("policy", "check", still, "-p", prompt, "--json")
    assert decisions(result)[("protected_names", "names.protected")] == "allow"
    assert "the prompt names none of 3 protected terms" in result.stdout


def test_the_example_list_loads_from_a_file(rv: Invoke, home: Path, still: Path):
    example = REPO / "examples" / "protected-names.example.toml"
    write_config(home, f"[plugins.protected_names]\nfile = {json.dumps(str(example))}\n")
    result = rv("policy", "check", still, "-p", "darth vader walks in", expect=1)
    assert "the prompt names 'Darth Vader'" in result.stdout
    rv("policy", "check", still, "-p", "a boat on the River Jordan")


# --- failing plugins, warnings, switching plugins off -----------------------------------


class Crasher:
    @hookimpl
    def check_request(self, request):  # type: ignore[no-untyped-def]
        raise RuntimeError("rule database unreachable")


class Warner:
    @hookimpl
    def check_request(self, request, context: PolicyContext):  # type: ignore[no-untyped-def]
        assert context.model is not None and context.image is not None
        return PolicyDecision(Outcome.WARN, "cost.long", f"{context.model.name} clips cost more")


def test_a_failing_plugin_blocks_and_the_attempt_is_listed_as_rejected(rv: Invoke, still: Path):
    clip_id, result = refused(rv, still, "-p", "pan right", plugins=[("crasher", Crasher())])
    assert "crasher/plugin-error: policy check crashed: RuntimeError: rule database" in (
        result.stderr
    )
    listed = rv("list", "--status", "rejected").stdout
    assert clip_id in listed and "rejected" in listed
    recorded = shown_decisions(rv, clip_id)
    assert recorded[("crasher", "plugin-error")] == "deny"
    assert recorded[("request_fit", "fit.model")] == "allow"  # the others were still heard
    shown = json.loads(rv("show", clip_id, "--json").stdout)
    assert shown["status"] == "rejected" and shown["remote_job_id"] is None
    assert shown["video"] is None

    result = rv("policy", "check", still, "-p", "pan right", expect=1, plugins=[("c", Crasher())])
    assert "deny   c/plugin-error" in result.stdout


def test_a_misconfigured_rule_fails_closed(rv: Invoke, home: Path, still: Path):
    write_config(home, '[plugins.protected_names]\nfile = "missing.toml"\n')
    _, result = refused(rv, still, "-p", "pan right")
    assert "protected_names/plugin-error" in result.stderr and "missing.toml" in result.stderr
    write_config(home, '[plugins.request_fit]\nmax_image_bytes = "lots"\n')
    result = rv("policy", "check", still, "-p", "pan right", expect=1)
    assert "request_fit/plugin-error" in result.stdout and "max_image_bytes" in result.stdout


def test_warnings_are_shown_and_do_not_block(rv: Invoke, still: Path):
    result = rv("generate", still, "-p", "pan right", *QUICK, plugins=[("warner", Warner())])
    assert "warning: policy warner/cost.long: local-motion clips cost more" in result.stderr
    assert "warn  warner/cost.long" in result.stdout  # and on the clip's record
    result = rv("policy", "check", still, "-p", "pan right", plugins=[("warner", Warner())])
    assert result.stdout.splitlines()[-1] == "warn: local / local-motion"


def test_each_built_in_rule_can_be_switched_off(rv: Invoke, home: Path, still: Path):
    write_config(home, NAMES)
    rv("policy", "check", still, "-p", "Mickey Mouse waves", expect=1)
    write_config(home, 'disabled_plugins = ["protected_names", "request_fit"]\n' + NAMES)
    result = rv("policy", "check", still, "-p", "Mickey Mouse waves", "--seconds", "99", "--json")
    assert {plugin for plugin, _ in decisions(result)} == {"likeness"}
    names = {p["name"] for p in json.loads(rv("plugins", "--json").stdout)["plugins"]}
    assert {"likeness", "local"} <= names and not names & {"protected_names", "request_fit"}


def test_the_dry_run_is_deterministic(rv: Invoke, home: Path, still: Path):
    write_config(home, NAMES)
    first = rv("policy", "check", still, "-p", "Jordan, pan right", "--json", expect=1).stdout
    second = rv("policy", "check", still, "-p", "Jordan, pan right", "--json", expect=1).stdout
    assert first == second
    plugins = [d["plugin"] for d in json.loads(first)["decisions"]]
    assert plugins == sorted(plugins)


# --- likeness and consent ---------------------------------------------------------------


@pytest.fixture
def face(tmp_path: Path) -> Path:
    """A real photograph of a person: scikit-image's astronaut (Eileen Collins, NASA)."""
    from skimage import data

    path = tmp_path / "astronaut.jpg"
    Image.fromarray(data.astronaut()).save(path, quality=90)
    return path


def add_consent(rv: Invoke, *args: object) -> dict:
    return json.loads(rv("consent", "add", *args, "--json").stdout)


def test_a_face_passes_only_while_a_consent_covers_it(rv: Invoke, face: Path):
    first, result = refused(rv, face, "-p", "slow push in")
    assert "likeness/likeness.consent: 1 face found in the still and no consent" in result.stderr
    assert shown_decisions(rv, first)[("likeness", "likeness.consent")] == "deny"

    consent = add_consent(rv, "--subject", "Eileen Collins", "--image", face)
    assert consent["status"] == "active" and consent["images"][0]["original_name"] == face.name
    clip = generate_json(rv, face, "-p", "slow push in")
    assert clip["status"] == "completed"
    (likeness,) = [d for d in clip["policy_decisions"] if d["plugin"] == "likeness"]
    assert likeness["outcome"] == "allow"
    assert f"covered by {consent['id']} from 'Eileen Collins'" in likeness["reason"]
    remix = json.loads(rv("remix", clip["id"], "-p", "pan left", *QUICK, "--json").stdout)
    assert remix["status"] == "completed" and remix["parent_id"] == clip["id"]

    revoked = json.loads(
        rv("consent", "revoke", consent["id"], "--reason", "withdrawn", "--json").stdout
    )
    assert revoked["status"] == "revoked" and revoked["revoked_reason"] == "withdrawn"
    again, result = refused(rv, face, "-p", "slow push in")
    assert "no consent covers it" in result.stderr
    result = rv("remix", clip["id"], "-p", "pan right", *QUICK, expect=1)  # remixes too
    assert "likeness/likeness.consent" in result.stderr
    assert {first, again} < set(rejected_ids(rv))

    # The clip made under the consent keeps the decision that let it through.
    assert f"covered by {consent['id']}" in rv("show", clip["id"]).stdout
    (listed,) = json.loads(rv("consent", "list", "--json").stdout)
    assert listed["id"] == consent["id"] and listed["revoked_at"] is not None


def test_consent_covers_exact_bytes_only(rv: Invoke, face: Path, still: Path, tmp_path: Path):
    add_consent(rv, "--subject", "Someone Else", "--image", still)
    rv("policy", "check", face, "-p", "pan right", expect=1)
    resaved = tmp_path / "resaved.png"
    Image.open(face).save(resaved)
    add_consent(rv, "-s", "Eileen Collins", "-i", resaved)
    rv("policy", "check", face, "-p", "pan right", expect=1)  # other bytes, no consent
    rv("policy", "check", resaved, "-p", "pan right")


def test_stills_without_faces_need_no_consent(rv: Invoke, still: Path):
    for image in (still, REPO / "examples" / "harbor.jpg"):
        result = rv("policy", "check", image, "-p", "pan right", "--json")
        assert decisions(result)[("likeness", "likeness.consent")] == "allow"
        assert "no human face found" in result.stdout


def test_an_expired_consent_no_longer_covers(rv: Invoke, app: Reelvault, face: Path):
    from datetime import timedelta

    from catalog.models import ConsentRecord, utcnow

    consent = add_consent(rv, "-s", "Eileen Collins", "-i", face, "--expires", "2099-01-01")
    assert consent["expires_at"].startswith("2099-01-01T00:00:00")
    rv("policy", "check", face, "-p", "pan right")
    with app.session() as session:  # time passes
        row = session.get(ConsentRecord, consent["id"])
        row.expires_at = utcnow() - timedelta(minutes=1)
    result = rv("policy", "check", face, "-p", "pan right", expect=1)
    assert "no consent covers it" in result.stdout
    assert "expired" in rv("consent", "list").stdout


def test_consent_commands_refuse_bad_input_and_record_nothing(
    rv: Invoke, face: Path, tmp_path: Path
):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    for args in (
        ("-s", "A", "-i", tmp_path / "missing.jpg"),
        ("-s", "A", "-i", face, "-i", broken),
        ("-s", "   ", "-i", face),
        ("-s", "A", "-i", face, "--expires", "2001-01-01"),
        ("-s", "A", "-i", face, "--expires", "next tuesday"),
    ):
        result = rv("consent", "add", *args, expect=2)
        assert result.stderr.startswith("Error: ") and len(result.stderr.splitlines()) == 1
    assert json.loads(rv("consent", "list", "--json").stdout) == []
    assert "no consents recorded" in rv("consent", "list").stderr
    rv("consent", "revoke", "consent_nothing", expect=1)


def test_consent_subjects_and_names_that_look_like_markup_print_as_typed(
    rv: Invoke, still: Path, tmp_path: Path
):
    odd = tmp_path / "[bold]still.jpg"
    odd.write_bytes(still.read_bytes())
    add_consent(rv, "-s", "[/x] [red]Ann :smile:", "-i", odd)
    listed = rv("consent", "list").stdout
    assert "[/x] [red]Ann :smile:" in listed and "[bold]still.jpg" in listed


def test_consent_ids_resolve_by_prefix_and_revoke_once(rv: Invoke, face: Path, still: Path):
    consent = add_consent(rv, "-s", "Eileen Collins", "-i", face, "-i", still, "-i", face)
    assert len(consent["images"]) == 2  # the same bytes twice are one image
    short = consent["id"].removeprefix("consent_")[:6]
    assert "revoked: Eileen Collins" in rv("consent", "revoke", short).stdout
    result = rv("consent", "revoke", consent["id"], expect=2)
    assert "already revoked" in result.stderr


def test_the_likeness_check_can_be_switched_off(rv: Invoke, home: Path, face: Path):
    write_config(home, 'disabled_plugins = ["likeness"]\n')
    clip = generate_json(rv, face, "-p", "slow push in")
    assert clip["status"] == "completed"
    assert "likeness" not in {d["plugin"] for d in clip["policy_decisions"]}
