"""Where reelvault keeps things, and the user's configuration.

Everything lives under one home folder so a whole library can be moved or backed up
as a unit: ``catalog.db`` (the default SQLite catalog), ``media/`` (the content store),
``work/`` (backends' scratch space) and ``config.toml``.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import platformdirs

from core.errors import ReelvaultError

HOME_ENV = "REELVAULT_HOME"
DB_ENV = "REELVAULT_DB"
PEM_SUFFIXES = (".pem", ".crt", ".cer")
_PEM_CERTIFICATE = re.compile(
    r"-----BEGIN CERTIFICATE-----[A-Za-z0-9+/=\s]+?-----END CERTIFICATE-----"
)


@dataclass(frozen=True)
class Settings:
    home: Path
    db_url: str
    config: Mapping[str, Any] = field(default_factory=dict)

    @property
    def media_dir(self) -> Path:
        return self.home / "media"

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
        return value if isinstance(value, Mapping) else {}

    def signing_paths(self) -> tuple[Path, Path]:
        """The signing certificate chain and its private key.

        ``cert`` and ``key`` under ``[signing]`` in config.toml when set (relative paths are
        read from the home folder), else the pair ``reelvault signing init`` writes.
        """
        table = self.table("signing")
        cert = self._home_path(table.get("cert")) or self.signing_dir / "chain.pem"
        key = self._home_path(table.get("key")) or self.signing_dir / "key.pem"
        return cert, key

    def signing_backends(self) -> tuple[str, ...]:
        """Whose outputs reelvault signs: ``[signing] backends``, by default the local one
        (a hosted service's clips carry the service's own credentials)."""
        value = self.table("signing").get("backends", ["local"])
        return (value,) if isinstance(value, str) else tuple(str(v) for v in value)

    def trust_anchor_sources(self) -> list[Path]:
        """Where trust anchors come from: the trust folder, then ``[trust] anchors`` entries.

        Each configured entry is a PEM file or a folder of them; relative paths are read
        from the home folder, so a library can be moved as a unit.
        """
        entries = self.table("trust").get("anchors", [])
        if isinstance(entries, str):
            entries = [entries]
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

    def trust_anchors_pem(self) -> str:
        """The certificates of every trust anchor as one PEM text (other content dropped)."""
        blocks: list[str] = []
        for path in self.trust_anchor_files():
            try:
                blocks += _PEM_CERTIFICATE.findall(path.read_text(errors="replace"))
            except OSError:
                continue  # unreadable anchors are reported by `reelvault trust list`
        return "\n".join(dict.fromkeys(blocks))

    def _home_path(self, value: object) -> Path | None:
        if not isinstance(value, str) or not value:
            return None
        path = Path(value).expanduser()
        return path if path.is_absolute() else self.home / path

    def section(self, name: str) -> Mapping[str, Any]:
        """A plugin's own table in config.toml (``[plugins.NAME]``), empty if absent."""
        plugins = self.config.get("plugins", {})
        value = plugins.get(name, {}) if isinstance(plugins, Mapping) else {}
        return value if isinstance(value, Mapping) else {}

    @classmethod
    def load(cls, home: str | Path | None = None, db_url: str | None = None) -> Settings:
        """Resolve settings from arguments, then the environment, then defaults."""
        home_path = Path(
            home or os.environ.get(HOME_ENV) or platformdirs.user_data_dir("reelvault")
        ).expanduser()
        url = db_url or os.environ.get(DB_ENV) or f"sqlite:///{home_path / 'catalog.db'}"
        return cls(home=home_path, db_url=url, config=_read_config(home_path / "config.toml"))


def _read_config(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        return {}
    except tomllib.TOMLDecodeError as exc:
        raise ReelvaultError(f"{path}: not valid TOML: {exc}") from None
