"""Listings on a terminal too narrow for their table: one block per row instead.

Ids are never cut or wrapped, since people copy them from listings; the other columns
give way. That works while the ids leave the other columns room, as a clip's 17 characters
do at 80 columns. An asset's id is 68 (its kind and the file's SHA-256), and a remix's row
holds two clip ids: beside them at 80 columns the table would squeeze the other columns to
a few letters a line. Then each row is printed as a block: its first column (the id) alone
on the first line, and under it, indented and packed to the terminal's width, every other
cell that has a value, after its heading; a heading and its value stay on one line.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text

MIN_READABLE = 6
"""Characters a column that gives way needs to stay readable (or its heading's, if less)."""
GAP = 2  # between the columns of a table without a box, as rich prints it
INDENT = 4  # of the lines under a block's ids


def fits_as_table(
    headings: Sequence[str],
    cells: Sequence[Sequence[str | Text]],
    whole: Collection[str],
    width: int,
) -> bool:
    """Whether a table of ``cells`` leaves every column readable in ``width`` characters,
    the ``whole`` columns being as wide as their longest cell."""
    needed = GAP * (len(headings) - 1)
    for index, heading in enumerate(headings):
        if heading in whole:
            needed += max([len(heading), *(len(row[index]) for row in cells)])
        else:
            needed += min(len(heading), MIN_READABLE)
    return needed <= width


def print_stacked(
    out: Console,
    headings: Sequence[str],
    cells: Sequence[Sequence[str | Text]],
    whole: Collection[str],
) -> None:
    """Each row as a block: its first cell (the id) alone on a line, never wrapped; the
    other cells with a value, each after its heading, packed onto indented lines under it.
    A pair is never split across lines, so another id (a ``whole`` cell: at most 68
    characters, and :func:`fits_as_table` has made sure it fits) stays in one piece; only
    a value longer than a line (a long prompt) wraps."""
    from rich.padding import Padding
    from rich.text import Text

    def text(cell: str | Text) -> Text:
        return Text(cell) if isinstance(cell, str) else cell

    room = max(out.width - INDENT, MIN_READABLE)
    for row in cells:
        out.print(text(row[0]), soft_wrap=True)
        pairs = list(zip(headings, row, strict=True))[1:]
        lines: list[Text] = []
        for heading, cell in pairs:
            if not len(cell):
                continue
            pair = Text.assemble((heading, "bold"), " ", text(cell))
            if lines and lines[-1].cell_len + GAP + pair.cell_len <= room:
                lines[-1].append(" " * GAP).append_text(pair)
            else:
                lines.append(pair)
        for line in lines:
            out.print(Padding(line, (0, 0, 0, INDENT)), soft_wrap=False)
