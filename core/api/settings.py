"""Where reelvault keeps things, and the user's configuration.

Everything lives under one home folder so a whole library can be moved or backed up
as a unit: ``catalog.db`` (the default SQLite catalog), ``media/`` (the content store),
``work/`` (backends' scratch space) and ``config.toml``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import platformdirs

from core.api.errors import PluginError, ReelvaultError
from core.api.files import write_atomic

if TYPE_CHECKING:  # cryptography loads where certificates are read: start-up stays quick
    from cryptography import x509

__all__ = [
    "DB_ENV",
    "HOME_ENV",
    "MEDIA_ENV",
    "NEWLINE",
    "PEM_SUFFIXES",
    "PemBlock",
    "PemFile",
    "Settings",
    "c2pa_settings",
    "check_config_keys",
    "parse_pem_certificates",
    "read_pem_file",
]

HOME_ENV = "REELVAULT_HOME"
DB_ENV = "REELVAULT_DB"
MEDIA_ENV = "REELVAULT_MEDIA"
DEFAULT_MEDIA_CACHE_MIB = 2048
MAX_PRESIGN_SECONDS = 7 * 24 * 3600
"""S3 refuses presigned URLs valid for longer than a week."""
PEM_SUFFIXES = (".pem", ".crt", ".cer")
ANCHORS_CACHE = "trust-anchors.json"
"""The trust anchors as c2pa gets them, kept under ``cache/`` (see ``trust_anchors_pem``)."""
_PEM_BEGIN = b"-----BEGIN CERTIFICATE-----"
_PEM_END = b"-----END CERTIFICATE-----"
NEWLINE = b"\n"


@dataclass(frozen=True)
class Settings:
    home: Path
    db_url: str
    config: Mapping[str, Any] = field(default_factory=dict)
    media_override: str | None = None
    """``--media`` or ``$REELVAULT_MEDIA``, which win over ``media`` in config.toml."""

    @property
    def media_dir(self) -> Path:
        """The local store's folder, when the library keeps its files locally."""
        return self.home / "media"

    @property
    def media(self) -> str:
        """Where the library's files are: a folder (default ``media/`` in the home) or an
        ``s3://bucket/prefix`` location. Credentials never go here: the AWS environment
        variables and profiles hold them."""
        value = self.media_override or self.config.get("media") or str(self.media_dir)
        if not isinstance(value, str):
            raise ReelvaultError(f"{self.config_path}: media must be a string, not {value!r}")
        return value

    @property
    def media_cache_bytes(self) -> int:
        """How much of a bucket this machine keeps in its local cache
        (``media_cache_mib`` in config.toml)."""
        value = self.config.get("media_cache_mib", DEFAULT_MEDIA_CACHE_MIB)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ReelvaultError(
                f"{self.config_path}: media_cache_mib must be a positive integer, not {value!r}"
            )
        return value << 20

    @property
    def media_presign_seconds(self) -> int:
        """``media_presign_seconds`` in config.toml: when set, ``serve`` answers a file in
        a bucket with a redirect to a presigned URL valid that long (the browser then
        reads the bucket itself), instead of streaming it through this machine. 0, the
        default, streams."""
        value = self.config.get("media_presign_seconds", 0)
        if (
            not isinstance(value, int)
            or isinstance(value, bool)
            or not 0 <= value <= MAX_PRESIGN_SECONDS
        ):
            raise ReelvaultError(
                f"{self.config_path}: media_presign_seconds must be a whole number of "
                f"seconds from 0 to {MAX_PRESIGN_SECONDS:,} (a week), not {value!r}"
            )
        return value

    @property
    def work_dir(self) -> Path:
        return self.home / "work"

    @property
    def config_path(self) -> Path:
        return self.home / "config.toml"

    @property
    def trust_dir(self) -> Path:
        """Trust anchors added by ``reelvault trust add`` and ``signing init`` (PEM files)."""
        return self.home / "trust"

    @property
    def signing_dir(self) -> Path:
        """The development certificate chain and key made by ``reelvault signing init``."""
        return self.home / "signing"

    def table(self, name: str) -> Mapping[str, Any]:
        """A top-level table of config.toml (``[signing]``, ``[trust]``), empty if absent."""
        value = self.config.get(name, {})
        if not isinstance(value, Mapping):
            raise ReelvaultError(f"{self.config_path}: [{name}] must be a table")
        return value

    def signing_paths(self) -> tuple[Path, Path]:
        """The signing certificate chain and its private key.

        ``cert`` and ``key`` under ``[signing]`` in config.toml when set (relative paths are
        read from the home folder), else the pair ``reelvault signing init`` writes.
        """
        cert = self._home_path(self._string("signing", "cert"))
        key = self._home_path(self._string("signing", "key"))
        return cert or self.signing_dir / "chain.pem", key or self.signing_dir / "key.pem"

    def signing_backends(self) -> tuple[str, ...]:
        """Whose outputs reelvault signs: ``[signing] backends``, by default the local one
        (a hosted service's clips carry the service's own credentials)."""
        value = self._string_list("signing", "backends")
        return ("local",) if value is None else value

    def trust_anchor_sources(self) -> list[Path]:
        """Where trust anchors come from: the trust folder, then ``[trust] anchors`` entries.

        Each configured entry is a PEM file or a folder of them; relative paths are read
        from the home folder, so a library can be moved as a unit.
        """
        entries = self._string_list("trust", "anchors") or ()
        return [self.trust_dir, *(p for p in map(self._home_path, entries) if p)]

    def trust_anchor_files(self) -> list[Path]:
        """Every existing PEM file holding trust anchors, in a stable order."""
        files: list[Path] = []
        for source in self.trust_anchor_sources():
            if source.is_dir():
                files += sorted(
                    p for p in source.iterdir() if p.is_file() and p.suffix.lower() in PEM_SUFFIXES
                )
            elif source.is_file():
                files.append(source)
        return files

    def trust_anchor_pem_files(self) -> list[PemFile]:
        """Every trust anchor file, read: its good certificates and what is wrong in it."""
        return [read_pem_file(path) for path in self.trust_anchor_files()]

    def trust_anchor_certificates(self) -> list[x509.Certificate]:
        """Every certificate that parses in the trust anchor files, each once.

        A damaged block spoils only itself (``reelvault trust list`` reports it), so
        every reader of the anchors (c2pa, ``trust``, ``signing status``) agrees on them.
        """
        return _distinct_certificates(self.trust_anchor_pem_files())

    def trust_anchors_pem(self) -> str:
        """The trust anchors as one PEM text, re-serialised from the parsed certificates, so
        c2pa is never handed a block that reelvault itself could not read.

        Parsing takes cryptography, whose import alone is a tenth of what ``verify`` costs
        before c2pa starts. So the text is kept in ``cache/trust-anchors.json`` under the
        SHA-256 of the anchor files' paths and bytes (reading a few small files is cheap),
        and read back for as long as those stay the same: any change parses them again.
        """
        try:
            contents = [(path, path.read_bytes()) for path in self.trust_anchor_files()]
        except OSError:  # vanished or unreadable meanwhile: parse what can be read, no cache
            return _pem_text(_distinct_certificates(self.trust_anchor_pem_files()))
        if not contents:
            return ""
        digest = hashlib.sha256()
        for path, data in contents:
            digest.update(b"%s\0%d\0%s" % (os.fsencode(path), len(data), data))
        key = digest.hexdigest()
        cache = self.home / "cache" / ANCHORS_CACHE
        with contextlib.suppress(OSError, ValueError):
            kept = json.loads(cache.read_text(encoding="utf-8"))
            if (
                isinstance(kept, dict)
                and kept.get("key") == key
                and isinstance(kept.get("pem"), str)
            ):
                return kept["pem"]
        files = [PemFile(path, tuple(parse_pem_certificates(data))) for path, data in contents]
        pem = _pem_text(_distinct_certificates(files))
        with contextlib.suppress(OSError):  # a read-only home: parse again next time
            write_atomic(cache, json.dumps({"key": key, "pem": pem}))
        return pem

    def _string(self, table: str, key: str) -> str | None:
        """``[table] key``, a string, or ``None`` when absent or empty."""
        value = self.table(table).get(key)
        if value is None or isinstance(value, str):
            return value or None
        raise self._bad_value(table, key, "a string", value)

    def _string_list(self, table: str, key: str) -> tuple[str, ...] | None:
        """``[table] key``, a list of strings (one string is a list of one), or ``None``."""
        value = self.table(table).get(key)
        if value is None:
            return None
        if isinstance(value, str):
            return (value,)
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return tuple(value)
        raise self._bad_value(table, key, "a string or a list of strings", value)

    def _bad_value(self, table: str, key: str, wanted: str, value: object) -> ReelvaultError:
        """A wrongly typed value is named where it is written, not met as a crash where it
        is used."""
        return ReelvaultError(
            f"{self.config_path}: [{table}] {key} must be {wanted}, not {value!r}"
        )

    def _home_path(self, value: str | None) -> Path | None:
        if not value:
            return None
        path = Path(value).expanduser()
        return path if path.is_absolute() else self.home / path

    def disabled_plugins(self) -> frozenset[str]:
        """The plugins switched off in config.toml (top-level ``disabled_plugins``).

        One reading for everyone who asks (the host loading plugins, policy deciding which
        load failures to forgive), so they cannot disagree about a plugin. A single name
        counts as a list of one, as for every list of names in config.toml.
        """
        value = self.config.get("disabled_plugins", [])
        if isinstance(value, str):
            return frozenset((value,))
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return frozenset(value)
        raise ReelvaultError(
            f"{self.config_path}: disabled_plugins must be a list of plugin names, not {value!r}"
        )

    def section(self, name: str, known: Iterable[str] | None = None) -> Mapping[str, Any]:
        """A plugin's own table in config.toml (``[plugins.NAME]``), empty if absent.

        With ``known``, a key outside it is refused (:func:`check_config_keys`).
        """
        plugins = self.config.get("plugins", {})
        value = plugins.get(name, {}) if isinstance(plugins, Mapping) else {}
        section = value if isinstance(value, Mapping) else {}
        if known is not None:
            check_config_keys(name, section, known)
        return section

    @classmethod
    def load(
        cls, home: str | Path | None = None, db_url: str | None = None, media: str | None = None
    ) -> Settings:
        """Resolve settings from arguments, then the environment, then defaults."""
        home_path = Path(
            home or os.environ.get(HOME_ENV) or platformdirs.user_data_dir("reelvault")
        ).expanduser()
        url = db_url or os.environ.get(DB_ENV) or f"sqlite:///{home_path / 'catalog.db'}"
        config = _read_config(home_path / "config.toml")
        media = media or os.environ.get(MEDIA_ENV) or None
        settings = cls(home=home_path, db_url=url, config=config, media_override=media)
        settings.check()
        return settings

    def check(self) -> None:
        """Refuse badly typed values of the keys read here, when the settings are loaded
        rather than halfway through a generation (the message names the key)."""
        self.signing_paths()
        self.signing_backends()
        for key in ("alg", "callback", "tsa_url"):  # read by the C2PA signer
            self._string("signing", key)
        self.trust_anchor_sources()
        self.disabled_plugins()
        _ = self.media, self.media_cache_bytes, self.media_presign_seconds


def _read_config(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        return {}
    except tomllib.TOMLDecodeError as exc:
        raise ReelvaultError(f"{path}: not valid TOML: {exc}") from None
    except OSError as exc:  # a folder, no permission
        raise ReelvaultError(f"{path}: cannot read it ({exc.strerror})") from None


# -- certificates in PEM files ---------------------------------------------------------


@dataclass(frozen=True)
class PemBlock:
    """One ``BEGIN CERTIFICATE`` block of a PEM file: its certificate, or why there is none.

    ``start`` and ``end`` are byte offsets, so one block can be cut out of a file the
    user maintains without rewriting the rest.
    """

    start: int
    end: int
    certificate: x509.Certificate | None
    problem: str | None = None


@dataclass(frozen=True)
class PemFile:
    path: Path
    blocks: tuple[PemBlock, ...] = ()
    problem: str | None = None  # about the whole file: unreadable, or no certificate at all

    @property
    def certificates(self) -> list[x509.Certificate]:
        return [b.certificate for b in self.blocks if b.certificate is not None]

    @property
    def problems(self) -> list[str]:
        found = [b.problem for b in self.blocks if b.problem]
        return [self.problem, *found] if self.problem else found


def read_pem_file(path: Path) -> PemFile:
    """The certificates in a PEM file, each block parsed on its own.

    A damaged block is reported and skipped, never allowed to hide the good ones around it
    (``load_pem_x509_certificates`` fails the whole file) nor handed on as if it were good.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        return PemFile(path, problem=f"cannot read it ({exc.strerror})")
    blocks = parse_pem_certificates(data)
    if not blocks:
        return PemFile(path, problem="no PEM certificate in it")
    return PemFile(path, tuple(blocks))


def parse_pem_certificates(data: bytes) -> list[PemBlock]:
    """Every ``CERTIFICATE`` block in PEM text, in order (other kinds of block are skipped).

    A block runs from its BEGIN line to the first END line before the next BEGIN, so a
    block missing its END line cannot swallow the good block after it.
    """
    from cryptography import x509

    begins = [m.start() for m in re.finditer(re.escape(_PEM_BEGIN), data)]
    blocks: list[PemBlock] = []
    for number, start in enumerate(begins, 1):
        limit = begins[number] if number < len(begins) else len(data)
        where = f"certificate {number} (line {data.count(NEWLINE, 0, start) + 1})"
        end = data.find(_PEM_END, start, limit)
        if end < 0:
            blocks.append(PemBlock(start, limit, None, f"{where} has no END line"))
            continue
        end += len(_PEM_END)
        try:
            cert = x509.load_pem_x509_certificate(data[start:end])
        except ValueError as exc:
            reason = str(exc).split(" See https://")[0][:160]
            blocks.append(PemBlock(start, end, None, f"{where} is damaged: {reason}"))
        else:
            blocks.append(PemBlock(start, end, cert))
    return blocks


def _distinct_certificates(files: list[PemFile]) -> list[x509.Certificate]:
    """The good certificates of ``files`` in order, each once (by its DER bytes)."""
    from cryptography.hazmat.primitives import serialization

    found: dict[bytes, x509.Certificate] = {}
    for pem_file in files:
        for cert in pem_file.certificates:
            found.setdefault(cert.public_bytes(serialization.Encoding.DER), cert)
    return list(found.values())


def _pem_text(certificates: list[x509.Certificate]) -> str:
    from cryptography.hazmat.primitives import serialization

    return "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in certificates)


def check_config_keys(name: str, section: Mapping[str, Any], known: Iterable[str]) -> None:
    """Refuse a ``[plugins.NAME]`` key the plugin does not read: a misspelt option
    (``max_sides``) would otherwise be ignored in silence and the default used."""
    unknown = set(section) - set(known)
    if unknown:
        raise PluginError(f"[plugins.{name}] has unknown keys: {', '.join(sorted(unknown))}")


def c2pa_settings(anchors_pem: str) -> dict[str, Any]:
    """The c2pa-python ``Context`` settings of every reader and builder reelvault makes.

    Nothing is fetched from the network (remote manifests, OCSP); manifests embed no
    thumbnails; and ``anchors_pem`` (:meth:`Settings.trust_anchors_pem`) are the user's
    trust anchors, which also freeze into an ingredient's validation results at signing.
    """
    settings: dict[str, Any] = {
        "builder": {"thumbnail": {"enabled": False}},
        "verify": {"remote_manifest_fetch": False, "ocsp_fetch": False},
    }
    if anchors_pem:
        settings["trust"] = {"user_anchors": anchors_pem}
    return settings
