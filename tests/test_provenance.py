"""C2PA verification and signing, trust anchors, and ``reelvault verify``.

Every certificate here is generated in the test run, by the same library function that
``reelvault signing init`` calls.
"""

from __future__ import annotations

import json
import re
import shutil
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from catalog.models import Asset
from catalog.queries import verifications_for
from core.api.errors import NotFoundError, PluginError, ReelvaultError, RequestError
from core.api.settings import Settings
from core.api.types import VerificationResult, VerificationState
from core.generation import derive
from core.host.app import Reelvault
from core.provenance.credentials import verify, verify_target
from core.provenance.signing import DOCUMENT_SIGNING, init_signing, signing_status
from core.provenance.trust import add_anchors, fingerprint, list_anchors, remove_anchor
from plugins.c2pa_verifier import MAX_MANIFESTS, manifest_tree, read_credentials
from tests.conftest import textured_image
from tests.provenance_support import (
    KMS_KEY_ENV,
    TAMPERS,
    SignedLibrary,
    Tamper,
    quick_clip,
    sign_image,
    signed_library,
    stored_path,
)

__all__ = ["signed_library"]  # a fixture, used by name

TRAINED = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"


def c2pa_result(app: Reelvault, asset_id: str) -> VerificationResult:
    """A fresh C2PA verification of a stored asset, through the verify hook."""
    with app.session() as session:
        asset = session.get(Asset, asset_id)
    (result,) = [
        r
        for r in verify(app.host, app.store.root / asset.stored_path, asset.mime, app.settings)
        if r.verifier == "c2pa_verifier"
    ]
    return result


def write_config(home: Path, text: str) -> Reelvault:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(text)
    return Reelvault(Settings.load(home=home))


# -- signing init ----------------------------------------------------------------------


def test_signing_init_makes_a_chain_c2pa_rs_accepts_and_trusts_its_ca(app: Reelvault):
    setup = init_signing(app.settings)

    assert stat.S_IMODE(setup.key_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(setup.key_path.parent.stat().st_mode) == 0o700
    leaf, ca = x509.load_pem_x509_certificates(setup.chain_path.read_bytes())
    usage = leaf.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature and not usage.value.key_cert_sign
    ekus = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(ekus) == {ExtendedKeyUsageOID.EMAIL_PROTECTION, DOCUMENT_SIGNING}
    assert ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE not in ekus
    for cert in (leaf, ca):
        cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
        cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier)
    constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca
    ca_usage = ca.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ca_usage.key_cert_sign and ca_usage.crl_sign
    leaf.verify_directly_issued_by(ca)

    anchors, problems = list_anchors(app.settings)
    assert [a.subject for a in anchors] == [ca.subject.rfc4514_string()] and not problems
    status = signing_status(app.settings)
    assert status.configured and status.trusted_here and status.problem is None

    with pytest.raises(RequestError, match="already set up"):
        init_signing(app.settings)
    again = init_signing(app.settings, force=True)
    assert again.anchor.fingerprint != setup.anchor.fingerprint
    assert len(list_anchors(app.settings)[0]) == 2  # clips signed before stay trusted


def test_signing_init_and_status_through_the_cli(run, home: Path):
    assert "not signing: no certificate chain" in run("signing", "status").output
    out = run("signing", "init").output
    assert "readable only by you" in out and "trusted" in out
    assert run("signing", "init", expect=2).output.startswith("Error: signing is already set up")
    status = json.loads(run("signing", "status", "--json").stdout)
    assert status["configured"] and status["trusted_here"] and status["backends"] == ["local"]
    assert "BEGIN" not in json.dumps(status)  # never the key, not even the chain's text


# -- verification states ---------------------------------------------------------------


def test_a_local_clip_is_valid_before_its_ca_is_an_anchor_and_trusted_after(
    app: Reelvault, still: Path, run
):
    setup = init_signing(app.settings)
    remove_anchor(app.settings, setup.anchor.fingerprint)
    clip = quick_clip(app, still)

    with app.session() as session:
        (record,) = verifications_for(session, clip.output_asset_id)
    assert record.state == "valid" and record.verifier == "c2pa_verifier"
    assert "signingCredential.untrusted" in record.codes  # listed even though it is fine
    assert record.details["summary"] == "signed, signer not trusted; content matches"

    shown = run("verify", clip.id, "--require", "trusted", expect=1).output
    assert "valid: signed, signer not trusted" in shown and "INVALID" not in shown
    assert "Error: " in shown and "trusted required" in shown
    run("verify", clip.id)  # --require valid (the default) is met

    run("trust", "add", app.settings.signing_dir / "ca.pem")
    shown = run("verify", clip.id, "--require", "trusted").output
    assert "trusted: signed by a trusted signer" in shown
    with app.session() as session:
        history = [v.state for v in verifications_for(session, clip.output_asset_id)]
    assert history == ["valid", "valid", "valid", "trusted"]  # every check is kept


def test_the_credentials_say_how_a_clip_and_its_remix_were_made(app: Reelvault, still: Path):
    init_signing(app.settings)
    clip = quick_clip(app, still, "slow push in, then pan left", seed=11)
    remix = derive(app, clip.id, "tilt up").generation
    with app.session() as session:
        source = session.get(Asset, clip.source_asset_id)
        clip_video = session.get(Asset, clip.output_asset_id)

    made = c2pa_result(app, clip.output_asset_id)
    assert made.state == VerificationState.TRUSTED and made.codes == ()
    manifest = made.details["manifest"]
    assert manifest["claim_generator"].startswith("reelvault ")
    assert manifest["signer"].startswith("reelvault development signer")
    assert manifest["actions"] == [{"action": "c2pa.created", "digital_source_type": TRAINED}]
    (ingredient,) = manifest["ingredients"]
    assert ingredient["relationship"] == "inputTo" and ingredient["format"] == "image/jpeg"
    generation = manifest["generation"]
    assert generation["prompt"] == "slow push in, then pan left"
    assert generation["model"] == "local-motion" and generation["generation_id"] == clip.id
    assert generation["parameters"]["seed"] == 11
    assert [s["clause"] for s in generation["motion_plan"]] == ["slow push in", "pan left"]
    assert generation["source"]["sha256"] == source.sha256
    assert "path" not in json.dumps(generation["source"])  # no local paths in the file

    remixed = c2pa_result(app, remix.output_asset_id).details["manifest"]
    assert [a["action"] for a in remixed["actions"]] == ["c2pa.opened", "c2pa.edited"]
    parent = next(i for i in remixed["ingredients"] if i["relationship"] == "parentOf")
    assert parent["manifest"]["label"] == manifest["label"] == clip_video.manifest_label
    assert parent["manifest"]["generation"]["prompt"] == "slow push in, then pan left"
    assert remixed["generation"]["parent"]["sha256"] == clip_video.sha256
    assert remixed["generation"]["parent"]["generation_id"] == clip.id


def test_the_generation_assertion_is_hash_bound(app: Reelvault, still: Path, tmp_path: Path):
    init_signing(app.settings)
    clip = quick_clip(app, still, "pan right")
    data = stored_path(app, clip.output_asset_id).read_bytes()
    edited = data.replace(b"pan right", b"pan lefts")  # same length, prompt changed
    assert edited != data
    (tmp_path / "edited.mp4").write_bytes(edited)
    result = read_credentials(
        tmp_path / "edited.mp4", "video/mp4", app.settings.trust_anchors_pem()
    )
    assert result.state == VerificationState.INVALID
    assert "assertion.hashedURI.mismatch" in result.codes


@pytest.mark.parametrize("tamper", TAMPERS, ids=[t.name for t in TAMPERS])
def test_every_tamper_case_is_reported_never_raised(
    signed_library: SignedLibrary, tamper: Tamper, tmp_path: Path
):
    original = getattr(signed_library, tamper.file)
    damaged = tmp_path / original.name
    damaged.write_bytes(tamper.damage(original.read_bytes()))
    mime = "image/png" if tamper.file == "still" else "video/mp4"
    anchors = signed_library.ca_pem.read_text()

    result = read_credentials(damaged, mime, anchors)

    assert result.state in tamper.states, (result.state, result.codes, result.details)
    if tamper.code:
        assert tamper.code in result.codes
    assert read_credentials(original, mime, anchors).state == VerificationState.TRUSTED


def test_verify_a_path_outside_the_catalog(signed_library: SignedLibrary, run, tmp_path: Path):
    report = json.loads(run("verify", signed_library.remix, "--json").stdout)
    assert report["ok"] and report["asset_id"] is None
    (result,) = report["results"]
    assert result["state"] == "valid"  # this home has no anchors
    tree = result["details"]["manifest"]
    parent = next(i for i in tree["ingredients"] if i["relationship"] == "parentOf")
    assert parent["manifest"]["generation"]["prompt"] == "pan right"
    still = next(i for i in parent["manifest"]["ingredients"] if i["relationship"] == "inputTo")
    assert still["manifest"]["claim_generator"] == "test-camera 1.0"

    text = run("verify", signed_library.remix).output
    assert "parentOf" in text and "inputTo" in text and "test-camera 1.0" in text

    (tmp_path / "junk.mp4").write_bytes(b"\0junk" * 50)
    out = run("verify", tmp_path / "junk.mp4", expect=1).output
    assert "UNREADABLE" in out and "Error: junk.mp4 is unreadable" in out
    plain = tmp_path / "plain.png"
    shutil.copy(signed_library.folder.parent / "raw.png", plain)
    assert "absent: no Content Credentials" in run("verify", plain, expect=1).output
    run("verify", "clip_nothing", expect=1)


def test_verify_by_id_refuses_what_has_no_file(app: Reelvault, still: Path):
    clip = quick_clip(app, still)
    with pytest.raises(NotFoundError, match="no clip or asset"):
        verify_target(app, "vid_ffff")
    path = stored_path(app, clip.output_asset_id)
    path.chmod(0o644)
    path.unlink()
    with pytest.raises(RequestError, match="is missing"):
        verify_target(app, clip.id)


# -- what gets signed ------------------------------------------------------------------


def test_nothing_is_signed_before_signing_init(app: Reelvault, still: Path):
    clip = quick_clip(app, still)
    assert c2pa_result(app, clip.output_asset_id).state == VerificationState.ABSENT
    assert list((app.settings.work_dir / "c2pa_signer").glob("*")) == []


def test_only_the_configured_backends_outputs_are_signed(home: Path, still: Path):
    app = write_config(home, "[signing]\nbackends = []\n")
    try:
        init_signing(app.settings)
        clip = quick_clip(app, still)
        assert c2pa_result(app, clip.output_asset_id).state == VerificationState.ABSENT
    finally:
        app.close()


def test_a_kms_key_signs_through_a_callback(
    home: Path, still: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    kms = tmp_path / "kms"
    init_signing(Settings.load(home=kms))  # a chain whose key only the "KMS" holds
    monkeypatch.setenv(KMS_KEY_ENV, str(kms / "signing" / "key.pem"))
    app = write_config(
        home,
        f'[signing]\ncert = "{kms / "signing" / "chain.pem"}"\n'
        'callback = "tests.provenance_support:kms_sign"\n',
    )
    try:
        add_anchors(app.settings, kms / "signing" / "ca.pem")
        clip = quick_clip(app, still)
        result = c2pa_result(app, clip.output_asset_id)
        assert result.state == VerificationState.TRUSTED, result.codes
        assert not (home / "signing").exists()  # no key file in this home at all
    finally:
        app.close()


def test_a_broken_signing_setup_fails_the_clip_instead_of_skipping_signing(home: Path, still: Path):
    app = write_config(home, '[signing]\ncert = "nowhere/chain.pem"\n')
    try:
        with pytest.raises(PluginError, match="does not exist"):
            quick_clip(app, still)
        assert list((app.settings.work_dir / "c2pa_signer").glob("*")) == []
    finally:
        app.close()


def test_an_expired_signing_certificate_is_refused(app: Reelvault, still: Path):
    from datetime import UTC, datetime, timedelta

    from core.api import write_atomic
    from core.provenance.signing import make_dev_chain

    chain = make_dev_chain(now=datetime.now(UTC) - timedelta(days=30), leaf_days=1)
    write_atomic(app.settings.signing_dir / "chain.pem", chain.chain_pem, mode=0o644)
    write_atomic(app.settings.signing_dir / "key.pem", chain.key_pem, mode=0o600)
    assert "validity" in (signing_status(app.settings).problem or "")
    with pytest.raises(PluginError, match="C2PA signing failed"):
        quick_clip(app, still)


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
