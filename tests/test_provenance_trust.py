"""Trust anchors, certificates and manifests as ``verify`` and ``signing status`` report
them, and the configuration they come from.

Every certificate here is generated in the test run, by the same library function that
``reelvault signing init`` calls.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from cryptography import x509

from catalog.queries import verifications_for
from core.api.errors import ReelvaultError, RequestError
from core.api.settings import Settings
from core.api.types import VerificationState
from core.host.app import Reelvault
from core.provenance.credentials import verify_target
from core.provenance.signing import init_signing, signing_status
from core.provenance.trust import fingerprint, list_anchors, remove_anchor
from plugins.c2pa_verifier import MAX_MANIFESTS, manifest_tree, read_credentials
from tests.conftest import textured_image
from tests.provenance_support import (
    SignedLibrary,
    quick_clip,
    sign_image,
    signed_library,
    stored_path,
)

__all__ = ["signed_library"]  # a fixture, used by name


# -- trust anchors ---------------------------------------------------------------------


def test_trust_anchors_can_be_added_listed_and_removed(run, home: Path, tmp_path: Path):
    settings = Settings.load(home=home)
    first = init_signing(Settings.load(home=tmp_path / "a")).anchor.path
    second = init_signing(Settings.load(home=tmp_path / "b")).anchor.path
    folder = tmp_path / "anchors"
    folder.mkdir()
    shutil.copy(first, folder / "one.pem")
    shutil.copy(second, folder / "two.crt")
    (folder / "notes.txt").write_text("not a certificate")

    assert len(run("trust", "add", folder).output.splitlines()) == 2
    run("trust", "add", folder / "one.pem")  # again: nothing changes
    listed = json.loads(run("trust", "list", "--json").stdout)
    assert len(listed["anchors"]) == 2 and all(a["managed"] for a in listed["anchors"])
    assert "not a certificate" not in settings.trust_anchors_pem()

    (tmp_path / "bad.pem").write_text("hello")
    assert "no PEM certificate" in run("trust", "add", tmp_path / "bad.pem", expect=2).output
    run("trust", "remove", "zz", expect=1)
    fingerprint = listed["anchors"][0]["fingerprint"]
    assert "removed" in run("trust", "remove", fingerprint[:10]).output
    assert len(json.loads(run("trust", "list", "--json").stdout)["anchors"]) == 1


def test_configured_anchor_folders_are_used_but_not_managed(home: Path, tmp_path: Path):
    extra = tmp_path / "company-anchors"
    extra.mkdir()
    shutil.copy(init_signing(Settings.load(home=tmp_path / "x")).anchor.path, extra / "ca.pem")
    home.mkdir(parents=True)
    (home / "config.toml").write_text(f'[trust]\nanchors = ["{extra}", "missing.pem"]\n')
    settings = Settings.load(home=home)
    anchors, problems = list_anchors(settings)
    (anchor,) = anchors
    assert not anchor.managed and anchor.path == extra / "ca.pem"
    assert [p.path for p in problems] == [home / "missing.pem"]
    with pytest.raises(RequestError, match="remove it there"):
        remove_anchor(settings, anchor.fingerprint)


# -- the hook contract -----------------------------------------------------------------


def test_the_plugins_are_installed_through_entry_points(app: Reelvault):
    hooks = {p.name: p.hooks for p in app.host.plugins()}
    assert hooks["c2pa_verifier"] == ("verify_asset",)
    assert hooks["c2pa_signer"] == ("sign_output",)
    assert not [f for f in app.host.failures if f.name.startswith("c2pa")]


# -- review regressions ------------------------------------------------------------------


def manifest_nodes(manifest: dict | None) -> list[dict]:
    """Every manifest node of a normalised tree, the root included."""
    if not manifest:
        return []
    found = [manifest]
    for ingredient in manifest.get("ingredients") or []:
        found += manifest_nodes(ingredient.get("manifest"))
    return found


def test_a_manifest_named_many_times_is_expanded_once(app: Reelvault, tmp_path: Path):
    init_signing(app.settings)
    raw = textured_image(tmp_path / "raw.jpg", 64, 64, seed=2)
    levels = 12  # each level names the one below twice: 8191 nodes if walked as a tree
    previous = sign_image(app.settings, raw, tmp_path / "level0.jpg", "image/jpeg")
    for level in range(1, levels + 1):
        twice = [(previous, "image/jpeg", "componentOf")] * 2
        previous = sign_image(
            app.settings, raw, tmp_path / f"level{level}.jpg", "image/jpeg", ingredients=twice
        )

    result = read_credentials(previous, "image/jpeg", app.settings.trust_anchors_pem())

    assert result.state == VerificationState.TRUSTED
    nodes = manifest_nodes(result.details["manifest"])
    labels = {n["label"] for n in nodes}
    assert len(labels) == levels + 1  # every manifest is there...
    assert len([n for n in nodes if not n.get("repeated")]) == levels + 1  # ...in full once
    assert len(nodes) == 2 * levels + 1
    assert len(json.dumps(result.details)) < 100_000


def test_the_manifest_tree_is_cut_off_past_its_budget():
    width = MAX_MANIFESTS * 2
    store = {
        "manifests": {
            "root": {"ingredients": [{"active_manifest": f"m{i}"} for i in range(width)]},
            **{f"m{i}": {"ingredients": []} for i in range(width)},
            "a": {"ingredients": [{"active_manifest": "b"}]},
            "b": {"ingredients": [{"active_manifest": "a"}]},
        }
    }

    nodes = manifest_nodes(manifest_tree(store, "root"))

    assert len(nodes) == width + 1  # one node per ingredient named
    truncated = [n for n in nodes if n.get("truncated")]
    assert len(truncated) == width + 1 - MAX_MANIFESTS
    assert all(set(n) == {"label", "truncated", "ingredients"} for n in truncated)
    loop = manifest_nodes(manifest_tree(store, "a"))  # a store may loop: a -> b -> a
    assert [(n["label"], bool(n.get("repeated"))) for n in loop] == [
        ("a", False),
        ("b", False),
        ("a", True),
    ]


def test_untrusted_text_prints_as_it_is_never_as_markup(
    run, app: Reelvault, still: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    import sys

    from rich.console import Console

    import core.cli.provenance as commands
    from core.provenance.signing import make_dev_chain

    # The strictest console, with markup on: what is printed must not depend on it being off.
    monkeypatch.setattr(commands, "console", lambda: Console(file=sys.stdout, width=10_000))
    init_signing(app.settings)
    clip = quick_clip(app, still, "[/oops] pan right [bold]")
    part = tmp_path / "[red]part.mp4"  # an ingredient's title is its file name here
    shutil.copy(stored_path(app, clip.output_asset_id), part)
    titled = sign_image(
        app.settings, still, tmp_path / "titled.jpg", "image/jpeg",
        ingredients=[(part, "video/mp4", "parentOf")],
    )  # fmt: skip

    assert "'[/oops] pan right [bold]'" in run("verify", clip.id).output
    shown = run("verify", titled).output
    assert "'[red]part.mp4'" in shown and "'[/oops] pan right [bold]'" in shown
    assert "credentials trusted" in run("audit").output

    (tmp_path / "ca.pem").write_bytes(make_dev_chain("[/oops]").ca_pem)
    run("trust", "add", tmp_path / "ca.pem")
    assert "reelvault development CA [/oops]" in run("trust", "list").output


def test_every_report_uses_one_text_per_state(app: Reelvault, still: Path, run):
    from core.cli.provenance import state_text

    for state in VerificationState:
        name, _, meaning = state_text(state).partition(": ")
        assert (name.lower(), meaning) == (state.value, state.summary)
    clip = quick_clip(app, still)
    with app.session() as session:
        (record,) = verifications_for(session, clip.output_asset_id)
    assert record.details["summary"] == VerificationState.ABSENT.summary
    assert state_text(VerificationState.ABSENT) in run("verify", clip.id, expect=1).output


def test_every_c2pa_context_is_built_from_the_same_settings(
    app: Reelvault, still: Path, monkeypatch: pytest.MonkeyPatch
):
    import c2pa

    from core.api.settings import c2pa_settings
    from plugins import c2pa_verifier

    made: list[dict] = []
    from_dict = c2pa.Context.from_dict
    monkeypatch.setattr(
        c2pa.Context, "from_dict", lambda settings: made.append(settings) or from_dict(settings)
    )
    c2pa_verifier._context.cache_clear()
    init_signing(app.settings)
    quick_clip(app, still)  # signed (a builder context), then verified (a reader context)

    expected = c2pa_settings(app.settings.trust_anchors_pem())
    assert len(made) >= 2 and all(settings == expected for settings in made)
    assert expected["verify"] == {"remote_manifest_fetch": False, "ocsp_fetch": False}
    assert "BEGIN CERTIFICATE" in expected["trust"]["user_anchors"]


def damaged(pem: bytes) -> bytes:
    """A certificate block that is still base64 but no longer a certificate (cut short)."""
    lines = pem.strip().splitlines()
    return b"\n".join(lines[:4] + lines[-1:]) + b"\n"


def test_a_damaged_certificate_spoils_only_itself_everywhere(
    run, app: Reelvault, still: Path, tmp_path: Path
):
    from core.provenance.signing import make_dev_chain

    setup = init_signing(app.settings)
    ca = setup.anchor.path
    block = damaged(make_dev_chain().ca_pem)
    line = len(ca.read_bytes().splitlines()) + 1
    ca.write_bytes(ca.read_bytes() + block)
    clip = quick_clip(app, still)

    anchors, problems = list_anchors(app.settings)
    assert [a.fingerprint for a in anchors] == [setup.anchor.fingerprint]
    assert [(p.path, p.problem.split(" is ")[0]) for p in problems] == [
        (ca, f"certificate 2 (line {line})")
    ]
    given = app.settings.trust_anchors_pem()  # what c2pa gets: the good certificate only
    assert [fingerprint(c) for c in x509.load_pem_x509_certificates(given.encode())] == [
        setup.anchor.fingerprint
    ]
    assert "trusted: " in run("verify", clip.id, "--require", "trusted").output
    assert f"certificate 2 (line {line}) is damaged" in run("trust", "list").output
    assert signing_status(app.settings).trusted_here

    assert "removed" in run("trust", "remove", setup.anchor.short).output
    assert ca.read_bytes() == block  # the damaged block stays, the user's to delete
    anchors, problems = list_anchors(app.settings)
    assert anchors == [] and len(problems) == 1
    status = signing_status(app.settings)  # a damaged anchor alone: no crash, not trusted
    assert status.configured and not status.trusted_here


def test_a_pem_block_without_an_end_line_does_not_swallow_the_next(tmp_path: Path):
    from core.api.settings import read_pem_file
    from core.provenance.signing import make_dev_chain

    good = make_dev_chain().ca_pem
    path = tmp_path / "anchors.pem"
    path.write_bytes(good.split(b"-----END")[0] + good)

    pem_file = read_pem_file(path)

    assert len(pem_file.certificates) == 1
    assert pem_file.problems == ["certificate 1 (line 1) has no END line"]


def test_signing_status_checks_the_signing_certificate_itself_chains_to_an_anchor(
    app: Reelvault,
):
    from core.api import write_atomic
    from core.provenance.signing import make_dev_chain

    trusted_ca = init_signing(app.settings).anchor.path.read_bytes()
    stranger = make_dev_chain()  # a leaf nobody here trusts, followed by the trusted CA
    leaf = (
        stranger.chain_pem.split(b"-----END CERTIFICATE-----")[0] + b"-----END CERTIFICATE-----\n"
    )
    write_atomic(app.settings.signing_dir / "chain.pem", leaf + trusted_ca, mode=0o644)
    write_atomic(app.settings.signing_dir / "key.pem", stranger.key_pem, mode=0o600)

    assert not signing_status(app.settings).trusted_here


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[signing]\nbackends = 5\n", "[signing] backends"),
        ('[signing]\nbackends = ["local", 5]\n', "[signing] backends"),
        ("[signing]\ncert = 5\n", "[signing] cert"),
        ("[signing]\ntsa_url = 5\n", "[signing] tsa_url"),
        ("[trust]\nanchors = 5\n", "[trust] anchors"),
        ("trust = 5\n", "[trust] must be a table"),
    ],
)
def test_a_badly_typed_config_value_is_one_clear_error_naming_it(
    run, home: Path, text: str, key: str
):
    home.mkdir(parents=True)
    (home / "config.toml").write_text(text)
    with pytest.raises(ReelvaultError, match=re.escape(key)):
        Settings.load(home=home)
    out = run("signing", "status", expect=1).output
    assert out.startswith("Error: ") and key in out and "Traceback" not in out


def test_a_config_toml_that_is_a_folder_is_one_clear_error(run, home: Path):
    (home / "config.toml").mkdir(parents=True)
    with pytest.raises(ReelvaultError, match=r"config\.toml: cannot read it"):
        Settings.load(home=home)
    run("trust", "list", expect=1)


def test_verify_a_file_reelvault_cannot_probe(
    app: Reelvault, signed_library: SignedLibrary, monkeypatch: pytest.MonkeyPatch
):
    import core.api.sniff

    def denied(path: Path):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(core.api.sniff, "read_head", denied)
    report = verify_target(app, str(signed_library.still))
    assert report.mime == "image/png" and report.results[0].state == VerificationState.VALID
