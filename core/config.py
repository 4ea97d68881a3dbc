"""Where reelvault keeps things, and the user's configuration.

Everything lives under one home folder so a whole library can be moved or backed up
as a unit: ``catalog.db`` (the default SQLite catalog), ``media/`` (the content store),
``work/`` (backends' scratch space) and ``config.toml``.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import platformdirs

from core.errors import ReelvaultError

HOME_ENV = "REELVAULT_HOME"
DB_ENV = "REELVAULT_DB"


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
