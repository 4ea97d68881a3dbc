"""How a listing's cells are laid out on a terminal: a table, or one block per row when
the terminal is too narrow for the table.

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


def print_laid_out(
    out: Console,
    headings: Sequence[str],
    cells: Sequence[Sequence[str | Text]],
    whole: Collection[str],
    numbers: Collection[str],
) -> None:
    """``cells`` as a borderless table whose ``whole`` columns are never cut or wrapped
    (ids must stay copyable) and whose other columns wrap, nothing lost (``numbers`` set
    flush right); or, where the ids leave the others no room, one block per row."""
    if not fits_as_table(headings, cells, whole, out.width):
        print_stacked(out, headings, cells, whole)
        return
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for index, heading in enumerate(headings):
        if heading in whole:
            longest = max([len(heading), *(len(line[index]) for line in cells)])
            table.add_column(heading, no_wrap=True, min_width=longest)
        else:
            table.add_column(
                heading, overflow="fold", justify="right" if heading in numbers else "left"
            )
    for line in cells:
        table.add_row(*line)
    out.print(table)
