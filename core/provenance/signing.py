"""Signing credentials: a local development CA, and what the signer will use.

``reelvault signing init`` makes a throwaway certificate authority and a signing
certificate that c2pa-rs accepts (see ``docs/provenance.md`` for why each extension is
there), writes the chain and key under ``home/signing/`` (the key readable only by the
user) and adds the CA to the trust anchors, so the clips this library makes verify as
``trusted`` here and as ``valid`` ("signed, signer not trusted") anywhere else. The CA's
own key is discarded: it can never sign anything again, and a new ``init --force`` makes a
new CA rather than re-using the old one.

Production signing uses a real chain: ``[signing] cert`` and ``key`` in config.toml, or
``[signing] callback`` for a key held in a KMS or HSM.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

from core.api.errors import RequestError
from core.api.files import write_atomic
from core.api.settings import Settings
from core.provenance.trust import Anchor, add_anchors, fingerprint, read_certificates

DOCUMENT_SIGNING = ObjectIdentifier("1.3.6.1.5.5.7.3.36")
CA_DAYS = 3650
LEAF_DAYS = 730
CLOCK_SKEW = timedelta(minutes=5)
"""Certificates start a little in the past, so a clock slightly behind still accepts them."""


@dataclass(frozen=True)
class DevChain:
    """PEM text of a development CA certificate, a leaf + CA chain, and the leaf's key."""

    ca_pem: bytes
    chain_pem: bytes
    key_pem: bytes


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "reelvault development"),
        ]
    )


def _key_usage(*, sign: bool, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def make_dev_chain(
    label: str | None = None,
    *,
    now: datetime | None = None,
    leaf_days: int = LEAF_DAYS,
) -> DevChain:
    """A CA and an ES256 signing certificate with exactly the extensions c2pa-rs requires.

    CA: BasicConstraints ca=True (critical), keyUsage keyCertSign+cRLSign, SKI and AKI.
    Leaf: keyUsage digitalSignature only (critical), an EKU list without anyEKU
    (emailProtection and documentSigning), SKI and AKI. A self-signed leaf is refused by
    c2pa-rs at signing time, which is why there are two certificates.
    """
    label = label or secrets.token_hex(3)
    now = now or datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name(f"reelvault development CA {label}")
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(sign=False, ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(_name(f"reelvault development signer {label}"))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + timedelta(days=leaf_days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(sign=True, ca=False), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION, DOCUMENT_SIGNING]),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    return DevChain(
        ca_pem=ca.public_bytes(pem),
        chain_pem=leaf.public_bytes(pem) + ca.public_bytes(pem),
        key_pem=key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
    )


@dataclass(frozen=True)
class SigningSetup:
    chain_path: Path
    key_path: Path
    anchor: Anchor
    overrides: bool  # config.toml names another cert/key, which the signer uses instead


def init_signing(settings: Settings, *, force: bool = False) -> SigningSetup:
    """Make a development CA and signing certificate and trust the CA.

    Refuses to replace an existing pair without ``force``: clips signed with it would
    still verify (their CA stays an anchor) but the key would be gone for good.
    """
    folder = settings.signing_dir
    chain_path, key_path = folder / "chain.pem", folder / "key.pem"
    if not force and (chain_path.exists() or key_path.exists()):
        raise RequestError(
            f"signing is already set up in {folder}; `reelvault signing init --force` "
            "replaces it (the old CA stays a trust anchor)"
        )
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    chain = make_dev_chain()
    write_atomic(key_path, chain.key_pem, mode=0o600)
    write_atomic(chain_path, chain.chain_pem, mode=0o644)
    write_atomic(folder / "ca.pem", chain.ca_pem, mode=0o644)
    (anchor,) = add_anchors(settings, folder / "ca.pem")
    return SigningSetup(
        chain_path, key_path, anchor, settings.signing_paths() != (chain_path, key_path)
    )


@dataclass(frozen=True)
class SigningStatus:
    """What the C2PA signer will sign with, and whether verifiers here will trust it."""

    configured: bool
    chain_path: Path
    key_path: Path | None  # None: a callback signs (``[signing] callback``)
    callback: str | None
    subject: str | None = None
    issuer: str | None = None
    not_after: datetime | None = None
    trusted_here: bool = False
    problem: str | None = None
    backends: tuple[str, ...] = ("local",)

    def to_json(self) -> dict[str, object]:
        return {
            "configured": self.configured,
            "chain": str(self.chain_path),
            "key": str(self.key_path) if self.key_path else None,
            "callback": self.callback,
            "subject": self.subject,
            "issuer": self.issuer,
            "not_after": self.not_after.isoformat() if self.not_after else None,
            "trusted_here": self.trusted_here,
            "problem": self.problem,
            "backends": list(self.backends),
        }


def signing_status(settings: Settings) -> SigningStatus:
    """Read the configured chain (never the key's contents) and compare it with the anchors."""
    table = settings.table("signing")
    chain_path, key_path = settings.signing_paths()
    callback = table.get("callback") if isinstance(table.get("callback"), str) else None
    backends = settings.signing_backends()
    base = SigningStatus(
        configured=False,
        chain_path=chain_path,
        key_path=None if callback else key_path,
        callback=callback,
        backends=backends,
    )
    if not chain_path.is_file():
        return replace(base, problem="no certificate chain: run `reelvault signing init`")
    if not callback and not key_path.is_file():
        return replace(base, problem=f"no private key at {key_path}")
    try:
        certs = read_certificates(chain_path)
    except RequestError as exc:
        return replace(base, problem=str(exc))
    leaf = certs[0]
    trusted = chains_to_anchor(certs, settings.trust_anchor_certificates())
    now = datetime.now(UTC)
    expired = not (leaf.not_valid_before_utc <= now <= leaf.not_valid_after_utc)
    return replace(
        base,
        configured=not expired,
        subject=leaf.subject.rfc4514_string(),
        issuer=leaf.issuer.rfc4514_string(),
        not_after=leaf.not_valid_after_utc,
        trusted_here=trusted,
        problem="the signing certificate is outside its validity period" if expired else None,
    )


def chains_to_anchor(chain: list[x509.Certificate], anchors: list[x509.Certificate]) -> bool:
    """Whether the signing certificate (``chain[0]``) reaches an anchor link by link.

    Each certificate must be signed by the next one in the chain until one of them is an
    anchor or is signed by one; an anchor elsewhere in the file proves nothing about a
    leaf that does not chain to it. (Validity periods and key usages are c2pa's to judge.)
    """
    known = {fingerprint(a) for a in anchors}
    for position, cert in enumerate(chain):
        if fingerprint(cert) in known or any(_issued_by(cert, a) for a in anchors):
            return True
        following = chain[position + 1] if position + 1 < len(chain) else None
        if following is None or not _issued_by(cert, following):
            return False
    return False


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True
