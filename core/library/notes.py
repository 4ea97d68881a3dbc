"""A request's note in the work folder: the stills it cataloged before its clip's row.

A ``generate`` catalogs its still (and the fitted copy it sends) before it writes the
clip's row, since the row refers to them. Killed in between, it would leave a still in
the library that no clip was made from and that the user never imported. So a request
notes in ``work/requests/<clip id>.json`` each asset it adds to the catalog new (not one
that was there before, nor a placeholder it filled in), and deletes the note once the
row is written. A request that fails before its row (an exception, Ctrl-C) removes those
assets itself. A note left behind, whose clip has no row and whose process is gone,
marks what a kill left: :func:`settle_abandoned` (run by ``reelvault resume`` and
``reelvault doctor --fix``) removes those assets, unless a clip has come to use them
since, and the note. The removal is recorded like any ``rm``; the files go with ``gc``.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from catalog.lookups import asset_by_id, generation_by_id
from catalog.removals import plan_removal, remove
from core.api.files import write_atomic
from core.api.processes import process_ended
from core.host.app import Reelvault
from core.library.removal import who
from core.media.leftovers import NOTES_FOLDER

if TYPE_CHECKING:
    from core.provenance.ingest import Ingested


@dataclass
class RequestNote:
    """The note of one request in flight; :meth:`add` it each ingested file."""

    path: Path
    clip_id: str
    assets: list[str] = field(default_factory=list)
    """What the request added and has yet to account for: emptied once its row is written."""

    def add(self, ingested: Ingested) -> Ingested:
        """Note the asset of ``ingested`` if this request added it to the catalog, before
        anything else happens (the note on disk is what a kill leaves)."""
        if not (ingested.existed or ingested.filled):
            self.assets.append(ingested.asset.id)
            document = {
                "clip": self.clip_id,
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "assets": self.assets,
            }
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(self.path, json.dumps(document))
        return ingested

    def row_written(self) -> None:
        """The clip's row is committed: it refers to the assets, the note is done."""
        self.assets = []
        self.path.unlink(missing_ok=True)


@contextmanager
def request_note(app: Reelvault, clip_id: str) -> Iterator[RequestNote]:
    """A note for the request of ``clip_id``; if the block ends (by an exception) before
    :meth:`RequestNote.row_written`, the assets it noted are removed again. Should that
    removal fail too (the catalog is unreachable), the note stays for ``resume`` or
    ``doctor --fix``, and the first error is the one reported."""
    note = RequestNote(app.settings.work_dir / NOTES_FOLDER / f"{clip_id}.json", clip_id)
    try:
        yield note
    except BaseException:
        if note.assets:
            with contextlib.suppress(Exception):
                _remove_unused(app, clip_id, note.assets)
                note.path.unlink(missing_ok=True)
        raise


def settle_abandoned(app: Reelvault, *, dry_run: bool = False) -> list[str]:
    """Remove what requests killed before their clip's row left: the assets they added
    (unless a clip uses them by now) and their notes. The ids of the assets removed (or,
    with ``dry_run``, that would be, and nothing changes)."""
    folder = app.settings.work_dir / NOTES_FOLDER
    removed: list[str] = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            note = json.loads(path.read_text(encoding="utf-8"))
            clip_id, assets = str(note["clip"]), [str(a) for a in note["assets"]]
            pid, host = int(note["pid"]), str(note["host"])
        except (OSError, ValueError, KeyError, TypeError):
            continue  # not a note reelvault wrote (notes are written whole): left alone
        if host == socket.gethostname() and not process_ended(pid):
            continue  # its request is still running
        removed += _remove_unused(app, clip_id, assets, dry_run=dry_run)
        if not dry_run:
            path.unlink(missing_ok=True)
    return removed


def _remove_unused(
    app: Reelvault, clip_id: str, asset_ids: list[str], *, dry_run: bool = False
) -> list[str]:
    """Remove the assets a request of ``clip_id`` added, if its row was never written
    and no clip refers to them; the ids removed."""
    with app.session() as session:
        if generation_by_id(session, clip_id) is not None:
            return []  # the row was written after all: it refers to them
        assets = [a for a in (asset_by_id(session, i) for i in asset_ids) if a is not None]
        plan = plan_removal(session, [], assets, with_descendants=False)
        for used in plan.blocked:  # a clip made from the same still since: kept
            plan.assets.pop(used, None)
        if plan.assets and not dry_run:
            remove(session, plan, who(), datetime.now(UTC))
        return sorted(plan.assets)
