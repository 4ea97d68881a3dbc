"""Trust anchors: the certificates whose signers reelvault reports as ``trusted``.

A C2PA signature that checks out but does not chain to an anchor is ``valid`` ("signed,
signer not trusted"). Anchors come from the home's ``trust/`` folder, which ``reelvault
trust add``/``remove`` manage (one PEM file per certificate, named by fingerprint), and
from ``[trust] anchors`` in config.toml (PEM files or folders the user maintains, which
are listed here but never modified).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from core.api.errors import AmbiguousIdError, NotFoundError, RequestError
from core.api.files import write_atomic
from core.api.settings import PEM_SUFFIXES, Settings, parse_pem_certificates, read_pem_file

FINGERPRINT_SHOWN = 16


@dataclass(frozen=True)
class Anchor:
    fingerprint: str  # SHA-256 of the DER certificate, hex
    subject: str
    issuer: str
    not_before: datetime
    not_after: datetime
    is_ca: bool
    path: Path
    managed: bool  # in the trust folder (removable here), not configured in config.toml

    @property
    def short(self) -> str:
        return self.fingerprint[:FINGERPRINT_SHOWN]

    def to_json(self) -> dict[str, object]:
        return {
            "fingerprint": self.fingerprint,
            "subject": self.subject,
            "issuer": self.issuer,
            "not_before": self.not_before.isoformat(),
            "not_after": self.not_after.isoformat(),
            "is_ca": self.is_ca,
            "path": str(self.path),
            "managed": self.managed,
        }


@dataclass(frozen=True)
class TrustProblem:
    """A configured anchor source that gives nothing usable, for ``trust list`` to say."""

    path: Path
    problem: str


def fingerprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex()


def _anchor(cert: x509.Certificate, path: Path, managed: bool) -> Anchor:
    try:
        is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    return Anchor(
        fingerprint=fingerprint(cert),
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        is_ca=is_ca,
        path=path,
        managed=managed,
    )


def read_certificates(path: Path) -> list[x509.Certificate]:
    """Every certificate in a PEM file the user hands over (to trust, or to sign with).

    Anything damaged in it is the user's input to fix, so it is refused whole, naming the
    first problem, rather than taken in part.
    """
    pem_file = read_pem_file(path)
    if pem_file.problems:
        raise RequestError(f"{path}: {pem_file.problems[0]}")
    return pem_file.certificates


def list_anchors(settings: Settings) -> tuple[list[Anchor], list[TrustProblem]]:
    """Every trust anchor in use, and every problem with where they come from.

    The anchors are exactly the certificates c2pa is given
    (:meth:`Settings.trust_anchor_certificates`): a damaged block in a file is one problem
    and does not hide the good certificates next to it.
    """
    anchors: dict[str, Anchor] = {}
    problems: list[TrustProblem] = []
    for source in settings.trust_anchor_sources()[1:]:
        if not source.exists():
            problems.append(TrustProblem(source, "configured in config.toml but missing"))
    for pem_file in settings.trust_anchor_pem_files():
        managed = pem_file.path.parent == settings.trust_dir
        problems += [TrustProblem(pem_file.path, problem) for problem in pem_file.problems]
        for cert in pem_file.certificates:
            anchors.setdefault(fingerprint(cert), _anchor(cert, pem_file.path, managed))
    return sorted(anchors.values(), key=lambda a: (a.subject, a.fingerprint)), problems


def add_anchors(settings: Settings, path: Path) -> list[Anchor]:
    """Copy the certificates in a PEM file (or a folder of them) into the trust folder.

    Each certificate gets its own file named by fingerprint, so adding one twice changes
    nothing and removing one never touches another.
    """
    if path.is_dir():
        files = sorted(
            p for p in path.iterdir() if p.is_file() and p.suffix.lower() in PEM_SUFFIXES
        )
        if not files:
            raise RequestError(f"{path}: no .pem, .crt or .cer files in this folder")
    elif path.is_file():
        files = [path]
    else:
        raise RequestError(f"{path}: no such file or folder")
    certs = [cert for file in files for cert in read_certificates(file)]
    settings.trust_dir.mkdir(parents=True, exist_ok=True)
    added = []
    for cert in certs:
        target = settings.trust_dir / f"{fingerprint(cert)[:32]}.pem"
        if not target.exists():
            write_atomic(target, cert.public_bytes(serialization.Encoding.PEM), mode=0o644)
        added.append(_anchor(cert, target, managed=True))
    return added


def remove_anchor(settings: Settings, ident: str) -> Anchor:
    """Remove one anchor from the trust folder, named by a fingerprint prefix or subject."""
    anchors, _ = list_anchors(settings)
    wanted = ident.strip().lower().replace(":", "")
    if not wanted:
        raise RequestError("give a fingerprint (prefix) or the exact subject of an anchor")
    matches = [a for a in anchors if a.fingerprint.startswith(wanted) or a.subject == ident]
    if not matches:
        raise NotFoundError(f"no trust anchor matches {ident!r} (`reelvault trust list`)")
    if len(matches) > 1:
        shown = ", ".join(a.short for a in matches)
        raise AmbiguousIdError(f"{ident!r} matches several anchors: {shown}")
    (anchor,) = matches
    if not anchor.managed:
        raise RequestError(
            f"{anchor.short} comes from {anchor.path}, configured under [trust] in "
            f"{settings.config_path}; remove it there"
        )
    for pem_file in settings.trust_anchor_pem_files():  # every copy in the trust folder
        held = {fingerprint(c) for c in pem_file.certificates}
        if pem_file.path.parent == settings.trust_dir and anchor.fingerprint in held:
            _cut_certificate(pem_file.path, anchor.fingerprint)
    return anchor


def _cut_certificate(path: Path, fingerprint_: str) -> None:
    """Remove one certificate's blocks from a trust file, leaving every other byte as it
    was (a damaged block stays, still reported); a file left without a block goes."""
    data = path.read_bytes()
    blocks = parse_pem_certificates(data)
    cut = [
        b
        for b in blocks
        if b.certificate is not None and fingerprint(b.certificate) == fingerprint_
    ]
    for block in reversed(cut):
        data = data[: block.start] + data[block.end :].lstrip(b"\r\n")
    if len(cut) == len(blocks):
        path.unlink()
    else:
        write_atomic(path, data, mode=0o644)
