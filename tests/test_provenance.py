"""C2PA signing and verification: ``reelvault signing``, the states ``verify`` reports for
clips and files, and what gets signed.

Every certificate here is generated in the test run, by the same library function that
``reelvault signing init`` calls. Trust anchors, certificates and manifests as reports
show them: tests/test_provenance_trust.py.
"""

from __future__ import annotations

import json
import shutil
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from catalog.models import Asset
from catalog.queries import verifications_for
from core.api.errors import NotFoundError, PluginError, RequestError
from core.api.settings import Settings
from core.api.types import VerificationResult, VerificationState
from core.generation import derive
from core.host.app import Reelvault
from core.provenance.credentials import verify, verify_target
from core.provenance.signing import DOCUMENT_SIGNING, init_signing, signing_status
from core.provenance.trust import add_anchors, list_anchors, remove_anchor
from plugins.c2pa_verifier import read_credentials
from tests.provenance_support import (
    KMS_KEY_ENV,
    TAMPERS,
    SignedLibrary,
    Tamper,
    quick_clip,
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
