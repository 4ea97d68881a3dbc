"""Moving a library's files to another store (``reelvault media migrate --to URL``).

Every file is checked on the way: it is read from the current store, hashed, and sent
only if it hashes to its name (a damaged file is reported, never copied). A file the
target already holds is skipped, so a migration killed half-way simply runs again and
carries on. Only when every file the catalog records is in the target does config.toml
switch to it; until then the library keeps working from where it was.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import tomlkit

from catalog.queries import stored_hashes
from core.api.errors import StorageError
from core.api.providers import load_document
from core.host.app import Reelvault
from core.media.store import ContentStore
from core.media.stores import open_store
from core.remote.profiles import write_config

MigrateProgress = Callable[[str, int], None]


@dataclass
class MigrationReport:
    target: str
    dry_run: bool
    copied: int = 0
    copied_bytes: int = 0
    already_there: int = 0
    damaged: list[str] = field(default_factory=list)
    """Files whose content no longer matches their name: left where they are."""
    missing: list[str] = field(default_factory=list)
    """Cataloged files the target still lacks after the copy (so config was not switched)."""
    switched: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "dry_run": self.dry_run,
            "copied": self.copied,
            "copied_bytes": self.copied_bytes,
            "already_there": self.already_there,
            "damaged": self.damaged,
            "missing": self.missing,
            "switched": self.switched,
        }


def migrate(
    app: Reelvault,
    to: str,
    *,
    dry_run: bool = False,
    on_progress: MigrateProgress | None = None,
) -> MigrationReport:
    """Copy every file of the current store into ``to``, then make ``to`` the store."""
    settings = app.settings
    target = open_store(to, settings.home, settings.media_cache_bytes)
    if target.url == app.store.url:
        raise StorageError(f"the library's files are already in {target.url}")
    report = MigrationReport(target.url, dry_run)
    digests = list(app.store.digests())
    for done, sha256 in enumerate(digests, 1):
        _move_one(app.store, target, sha256, report)
        if on_progress:
            on_progress(f"{done}/{len(digests)}", done * 100 // max(len(digests), 1))
    if dry_run:
        return report
    report.missing = [sha for sha in _cataloged(app) if not target.has(sha)]
    if not report.missing and not report.damaged:
        _switch_config(app, target.url)
        report.switched = True
    return report


def _move_one(
    source: ContentStore, target: ContentStore, sha256: str, report: MigrationReport
) -> None:
    if target.has(sha256):
        report.already_there += 1
        return
    with source.checked_copy(sha256) as copy:
        if copy.sha256 != sha256:
            report.damaged.append(sha256)
            return
        report.copied += 1
        report.copied_bytes += copy.size
        if report.dry_run:
            return
        stored = target.put_file(copy.path)
    if stored.sha256 != sha256:  # changed under us between the check and the send
        raise StorageError(f"{source.location(sha256)} changed while it was being copied")


def _cataloged(app: Reelvault) -> list[str]:
    """The SHA-256 of every file the catalog says is stored."""
    with app.session() as session:
        return stored_hashes(session)


def _switch_config(app: Reelvault, url: str) -> None:
    """``media = URL`` in config.toml, the rest of the file kept as it was."""
    doc = load_document(app.settings.config_path)
    doc["media"] = tomlkit.string(url)
    write_config(app.settings.config_path, tomlkit.dumps(doc))
