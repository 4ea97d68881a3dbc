"""Getting files out of the library under names people can use.

The store names a file by its hash, with no extension; a copy handed to a person is
named after what it is: ``<clip id>-<slug of the prompt>.mp4`` for a clip's video (and
``-thumbnail.jpg``, ``-spritesheet.jpg`` for its other files), the original name for an
imported file or still. The same name goes in the web app's ``Content-Disposition``.

A copy is written to a temporary file beside the target, fsynced, and only then put in
place, so a failure leaves no partial file; an existing file is never replaced unless
the caller forces it.
"""

from __future__ import annotations

import mimetypes
import os
import re
import shutil
import tempfile
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from sqlmodel import Session

from catalog.lookups import asset_by_id, clip_of_file
from catalog.models import Asset, Generation
from catalog.queries import resolve
from core.api.errors import NotFoundError, RequestError
from core.host.app import Reelvault

VARIANTS = ("video", "thumbnail", "spritesheet", "source")
_COLUMN = {
    "video": "output_asset_id",
    "thumbnail": "thumbnail_asset_id",
    "spritesheet": "spritesheet_asset_id",
    "source": "source_asset_id",
}
_EXTENSIONS = {
    "video/mp4": ".mp4",
    "video/quicktime": ".mov",
    "video/webm": ".webm",
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/webp": ".webp",
    "image/gif": ".gif",
}
SLUG_LENGTH = 48


def slug(text: str, limit: int = SLUG_LENGTH) -> str:
    """Lowercase ASCII words joined by ``-``: safe in a file name on every system."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    words = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    return words[:limit].rstrip("-")


def extension_for(mime: str) -> str:
    return _EXTENSIONS.get(mime) or mimetypes.guess_extension(mime) or ""


def file_name(asset: Asset, clip: Generation | None, variant: str = "video") -> str:
    """The name a copy of ``asset`` gets (see the module docstring)."""
    ext = extension_for(asset.mime)
    if clip is not None and variant != "source":
        words = slug(clip.prompt)
        stem = f"{clip.id}-{words}" if words else clip.id
        return stem + ("" if variant == "video" else f"-{variant}") + ext
    if asset.original_name:
        original = Path(asset.original_name)
        words = slug(original.stem)
        ext = ext or re.sub(r"[^A-Za-z0-9.]", "", original.suffix)  # safe in a header too
        return f"{asset.id}-{words}{ext}" if words else asset.id + ext
    return asset.id + ext


def download_name(session: Session, asset: Asset) -> str:
    """The name of ``asset`` as a download: after the clip it belongs to, if any."""
    clip = clip_of_file(session, asset.id)
    variant = "video"
    if clip is not None:
        variant = next(v for v in VARIANTS if getattr(clip, _COLUMN[v]) == asset.id)
    return file_name(asset, clip, variant)


@dataclass(frozen=True)
class Wanted:
    """The stored file a ``get`` asks for and the name it gets."""

    asset: Asset
    name: str


def wanted_file(session: Session, identifier: str, variant: str | None) -> Wanted:
    """The file of a clip (its video, or ``variant``) or of an asset, by id or prefix."""
    found = resolve(session, identifier)
    asset: Asset | None
    clip: Generation | None
    if isinstance(found, Asset):
        if variant not in (None, "source"):
            raise RequestError(f"{found.id} is a file, not a clip: it has no {variant}")
        asset, clip = found, None
    else:
        variant = variant or "video"
        asset_id = getattr(found, _COLUMN[variant])
        asset = asset_by_id(session, asset_id)
        if asset is None:
            raise NotFoundError(f"{found.id} has no {variant} (status {found.status})")
        clip = found
    if asset.is_placeholder or not asset.sha256:
        raise NotFoundError(f"{asset.id} is known from credentials only: there is no file")
    return Wanted(asset, file_name(asset, clip, variant or "video"))


def target_path(output: Path | None, name: str) -> Path:
    """Where the copy goes: ``output`` itself, or ``name`` inside it when it is a folder
    (or ends with a separator); ``name`` in the current folder without ``output``."""
    if output is None:
        return Path(name)
    text = str(output)
    if output.is_dir() or text.endswith((os.sep, "/")):
        return output / name
    return output


def get_file(
    app: Reelvault, identifier: str, output: Path | None, variant: str | None, force: bool
) -> Path:
    """Copy a clip's or asset's file out of the store; the path written."""
    with app.session() as session:
        wanted = wanted_file(session, identifier, variant)
    target = target_path(output, wanted.name)
    if target.exists() and not force:
        raise RequestError(f"{target} exists: choose another name, or --force to replace it")
    assert wanted.asset.sha256 is not None
    copy_out(app.store.local_path(wanted.asset.sha256), target, force)
    return target


def copy_out(source: Path, target: Path, force: bool) -> None:
    """Copy ``source`` to ``target`` all or nothing (see the module docstring)."""
    folder = target.parent
    if not folder.is_dir():
        raise RequestError(f"{folder} is not a folder")
    try:
        fd, name = tempfile.mkstemp(dir=folder, prefix=f".{target.name}-", suffix=".part")
    except OSError as exc:
        raise RequestError(f"cannot write in {folder}: {exc.strerror}") from None
    temporary = Path(name)
    try:
        with os.fdopen(fd, "wb") as out, source.open("rb") as src:
            shutil.copyfileobj(src, out, 1 << 20)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, 0o644)
        _put_in_place(temporary, target, force)
    except OSError as exc:
        raise RequestError(f"cannot write {target}: {exc.strerror}") from None
    finally:
        temporary.unlink(missing_ok=True)


def _put_in_place(temporary: Path, target: Path, force: bool) -> None:
    if force:
        os.replace(temporary, target)
        return
    try:
        os.link(temporary, target)  # fails if the target appeared meanwhile: never replaced
    except FileExistsError:
        raise RequestError(f"{target} exists: choose another name, or --force") from None
    except OSError:  # no hard links on this file system
        if target.exists():
            raise RequestError(f"{target} exists: choose another name, or --force") from None
        os.replace(temporary, target)
