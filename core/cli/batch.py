"""``reelvault generate`` over many stills: which stills, one progress bar, one summary.

A batch is a list of :class:`BatchItem` (a still and the request for it), from the stills
and folders on the command line (one prompt and set of options for all) or from a CSV
file (a row per clip). Each still is generated on its own: a still that fails (a policy
denial, a file that is no image, a backend error) is reported and the batch goes on.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from core.api.errors import RequestError
from core.cli.base import ClipRequest, no_color, quiet

if TYPE_CHECKING:
    from core.api.types import ProgressCallback

STILL_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"})
"""The files of a folder that a batch takes as stills (other files are left alone)."""
CSV_COLUMNS = ("still", "prompt", "seconds", "size", "model")
MAX_CSV_BYTES = 10 << 20


@dataclass(frozen=True)
class BatchItem:
    label: str  # how the still is named in the report: as given, or "rows.csv:3"
    request: ClipRequest


def stills_from_arguments(paths: Sequence[Path]) -> list[Path]:
    """The stills named on the command line, each folder replaced by its stills (sorted by
    name, not recursing); a folder without any is an error, since nothing would be made."""
    stills: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in STILL_SUFFIXES)
            if not found:
                suffixes = ", ".join(sorted(STILL_SUFFIXES))
                raise RequestError(f"{path} holds no stills ({suffixes})")
            stills += [p for p in found if p.is_file()]
        else:
            stills.append(path)  # a missing or bad file fails on its own, in the batch
    return stills


def items_from_arguments(paths: Sequence[Path], request: ClipRequest) -> list[BatchItem]:
    return [BatchItem(str(p), replace(request, image=p)) for p in stills_from_arguments(paths)]


def items_from_csv(rows_file: Path, defaults: ClipRequest) -> list[BatchItem]:
    """One item per row of ``rows_file`` (columns :data:`CSV_COLUMNS`; only ``still`` and
    ``prompt`` are needed, an empty cell takes the command line's option). A still's path
    is relative to the CSV file's folder. Every row is checked before anything is made."""
    try:
        if rows_file.stat().st_size > MAX_CSV_BYTES:
            raise RequestError(f"{rows_file} is larger than {MAX_CSV_BYTES >> 20} MB")
        text = rows_file.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise RequestError(f"cannot read {rows_file}: {exc}") from None
    reader = csv.DictReader(text.splitlines())
    columns = [c.strip().lower() for c in reader.fieldnames or []]
    unknown = sorted(set(columns) - set(CSV_COLUMNS))
    if "still" not in columns or unknown:
        raise RequestError(
            f"{rows_file}: the columns must be among {', '.join(CSV_COLUMNS)} and include "
            f"still" + (f" (unknown: {', '.join(unknown)})" if unknown else "")
        )
    items = []
    for number, raw in enumerate(reader, start=2):  # line 1 is the header
        row = {k.strip().lower(): (v or "").strip() for k, v in raw.items() if k}
        where = f"{rows_file.name}:{number}"
        if not row.get("still"):
            raise RequestError(f"{where}: no still")
        prompt = row.get("prompt") or defaults.prompt
        if not prompt:
            raise RequestError(f"{where}: no prompt (give one in the row or with --prompt)")
        seconds = defaults.seconds
        if row.get("seconds"):
            if not row["seconds"].isdigit() or int(row["seconds"]) < 1:
                raise RequestError(
                    f"{where}: seconds must be a whole number, not {row['seconds']!r}"
                )
            seconds = int(row["seconds"])
        still = Path(row["still"]).expanduser()
        request = replace(
            defaults,
            image=still if still.is_absolute() else rows_file.parent / still,
            prompt=prompt,
            seconds=seconds,
            size=row.get("size") or defaults.size,
            model=row.get("model") or defaults.model,
        )
        items.append(BatchItem(f"{where} {row['still']}", request))
    if not items:
        raise RequestError(f"{rows_file} has no rows")
    return items


@contextmanager
def batch_progress(count: int) -> Iterator[Callable[[int], ProgressCallback | None]]:
    """One progress bar for the whole batch on a terminal's stderr (nothing otherwise, or
    with ``--quiet``; no colour with ``NO_COLOR``), like a single clip's
    (:func:`core.cli.base.progress_bar`): yields a function giving the progress callback
    of item ``index``."""
    if not sys.stderr.isatty() or quiet():
        yield lambda index: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn

    columns = (TextColumn("{task.description}"), BarColumn(), TaskProgressColumn())
    stderr = Console(stderr=True, color_system=None if no_color() else "auto")
    with Progress(*columns, console=stderr, transient=True) as bar:
        task = bar.add_task("generating", total=100 * count)

        def for_item(index: int) -> ProgressCallback:
            def update(state: str, percent: int) -> None:
                label = f"generating {index + 1} of {count} ({state})"
                bar.update(task, completed=100 * index + percent, description=label)

            return update

        yield for_item
