"""Searching clips and assets by the words of their prompt, title, note, file name and tags.

A search is split into words (runs of letters and digits, case folded as the catalog
folds prompts); a clip or asset matches when every word begins one of the words of its
search document (:mod:`catalog.search_schema`). So ``harb`` finds ``harbor.jpg`` and
``HARBOR`` finds ``over the harbor``, but ``rbor`` finds neither: matching is by word
prefix, which is what a full-text index answers fast (an FTS5 prefix query on SQLite,
``to_tsquery('simple', 'harb:*')`` against a GIN index on PostgreSQL), at a million
clips as at ten. Text with no letters or digits in it matches nothing.

A listing newest (or oldest) first does not gather every match: on SQLite it reads the
newest matches from the index, in the order of the documents' creation-time keys, and
proves that no other match sorts before its page (:func:`listed_matching`), so a common
word costs what a rare one does. Other orders, and PostgreSQL, filter by the whole set.
"""

from __future__ import annotations

import json
import re
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.visitors import InternalTraversal

from catalog.models import fold_case
from catalog.search_schema import DOCUMENTS, FTS, TIME_SLOT_BITS
from core.api.errors import RequestError

MAX_SEARCH_TEXT = 200
"""The longest search text accepted (``list --text``, the web page's ``q``), in
characters: a search is a few words, a longer one would only make a slower query, and
refusing it here gives one clear line (a 400 on the web) instead of a database error."""

_WORD = re.compile(r"[^\W_]+")


def check_search_text(text: str) -> None:
    """Refuse a search text longer than :data:`MAX_SEARCH_TEXT`."""
    if len(text) > MAX_SEARCH_TEXT:
        raise RequestError(
            f"the search text is {len(text):,} characters long; the limit is {MAX_SEARCH_TEXT:,}"
        )


def search_words(text: str) -> list[str]:
    """The words of a search, folded; refuses text longer than :data:`MAX_SEARCH_TEXT`."""
    check_search_text(text)
    return list(dict.fromkeys(_WORD.findall(fold_case(text) or "")))


class _Matches(sa.sql.expression.ColumnElement[bool]):
    """``id_column IN (ids whose document matches every word)``, compiled per database."""

    # Cached like any other construct, keyed by the words as well: the words reach the
    # SQL as a bound value made while compiling (its form depends on the database), so a
    # compilation may be reused for the same words only. Compiling the listing anew for
    # every search cost several times what the search itself costs on a large catalog.
    inherit_cache = True
    _traverse_internals = [  # noqa: RUF012 (SQLAlchemy declares it per instance)
        ("id_column", InternalTraversal.dp_clauseelement),
        ("owner", InternalTraversal.dp_string),
        ("words", InternalTraversal.dp_string_list),
    ]
    type = sa.Boolean()

    def __init__(self, id_column: sa.ColumnElement[Any], owner: str, words: list[str]) -> None:
        self.id_column = id_column
        self.owner = owner  # "generation_id" or "asset_id"
        self.words = words


def _fts_query(words: list[str]) -> str:
    """An FTS5 query: every word, each as a prefix."""
    return " ".join(f'"{word}"*' for word in words)  # words hold no quote


@compiles(_Matches)
def _sqlite_matches(element: _Matches, compiler: Any, **kw: Any) -> str:
    query = _fts_query(element.words)
    return (
        f"{compiler.process(element.id_column, **kw)} IN (SELECT d.{element.owner} "
        f"FROM {DOCUMENTS} AS d JOIN {FTS} ON {FTS}.rowid = d.id "
        f"WHERE {FTS} MATCH {compiler.process(sa.literal(query), **kw)})"
    )


@compiles(_Matches, "postgresql")
def _postgresql_matches(element: _Matches, compiler: Any, **kw: Any) -> str:
    query = " & ".join(f"{word}:*" for word in element.words)
    return (
        f"{compiler.process(element.id_column, **kw)} IN (SELECT d.{element.owner} "
        f"FROM {DOCUMENTS} AS d WHERE to_tsvector('simple', d.body) "
        f"@@ to_tsquery('simple', {compiler.process(sa.literal(query), **kw)}))"
    )


def matches_text(id_column: Any, owner: str, text: str) -> sa.ColumnElement[bool]:
    """A WHERE clause: the clips (``owner="generation_id"``) or assets (``"asset_id"``)
    whose search document holds every word of ``text`` (see the module docstring)."""
    words = search_words(text)
    if not words:
        return sa.false()
    return _Matches(id_column, owner, words)


# --- SQLite: the newest matches, straight from the index ----------------------------------

FIRST_WINDOW = 256
"""How many of the newest matches a listing reads first (a window grows eightfold while
it cannot prove its page, see :func:`listed_matching`)."""
LARGEST_WINDOW = 2_048
"""Past this many matches in its window a listing gathers every match instead: the
page's other filters keep few of them, and reading a window costs a few microseconds a
match (16,384 of them took about as long as gathering 25,000 matches at once)."""


def _window_sql(owner: str, newest_first: bool) -> str:
    """SQL: the ids and owners of the ``:size`` matching documents of ``owner``'s kind with
    the highest (``newest_first``) or lowest ids, read in id order from the FTS5 index,
    which stops after ``:size`` of them instead of gathering every match."""
    direction = "DESC" if newest_first else "ASC"
    return (
        f"SELECT d.id, d.{owner} FROM {FTS} JOIN {DOCUMENTS} AS d ON d.id = {FTS}.rowid "
        f"WHERE {FTS} MATCH :query AND d.{owner} IS NOT NULL "
        f"ORDER BY {FTS}.rowid {direction} LIMIT :size"
    )


# --- PostgreSQL: a rare word answered from its matches --------------------------------------

FEW_MATCHES = 5_000
"""PostgreSQL: a search with fewer matches than this is listed from its matches' ids
(0: never)."""


def _few_matches_on_postgresql(session: Any, owner: str, words: list[str]) -> list[str] | None:
    """The owners whose document matches every word, when fewer than :data:`FEW_MATCHES`
    do; else ``None``. PostgreSQL cannot estimate how many documents a prefix query
    matches, so for a rare word it walked the newest clips one by one, computing each
    document's words, through the whole catalog (4 s at a million clips); the GIN index
    answers the rare word at once, and a common word's listing still walks the newest
    clips, finding its page in a few hundred of them."""
    if FEW_MATCHES <= 0:
        return None
    query = " & ".join(f"{word}:*" for word in words)
    found = (
        session.execute(
            sa.text(
                f"SELECT d.{owner} FROM {DOCUMENTS} AS d WHERE d.{owner} IS NOT NULL "
                f"AND to_tsvector('simple', d.body) @@ to_tsquery('simple', :query) LIMIT :cap"
            ),
            {"query": query, "cap": FEW_MATCHES},
        )
        .scalars()
        .all()
    )
    return list(found) if len(found) < FEW_MATCHES else None


def listed_matching(
    session: Any,
    stmt: sa.Select[Any],
    id_column: Any,
    owner: str,
    text: str | None,
    *,
    limit: int | None,
    by_creation: bool,
    newest_first: bool = True,
) -> list[Any]:
    """The rows of a listing ``stmt`` (ordered, paged) whose owner matches ``text``.

    A listing in creation order on SQLite reads a window of the newest (or oldest) matches
    from the index rather than every match: search documents are keyed by their owner's
    creation time (:mod:`catalog.search_schema`), so the FTS5 index yields them in listing
    order, a millisecond's worth of ties aside, and stops after the window. The listing
    then runs over the window's clips or assets only. Its page is the page of all matches
    when the window holds every match, or when the page is full and its last row's time
    slot is strictly newer (older) than that of the window's last match: every match
    outside the window is then in an older (newer) slot, created before (after) that
    row, so it sorts after the page. Otherwise the window grows, up to
    :data:`LARGEST_WINDOW`, then every match is gathered as on PostgreSQL (where the GIN
    index answers the whole set fast). ``stmt`` must order by creation time then id,
    newest (``newest_first``) or oldest first, when ``by_creation``; ``limit`` is its
    page size, ``session`` a SQLModel session.
    """
    if not text:
        return list(session.exec(stmt))
    words = search_words(text)
    dialect = session.get_bind().dialect.name
    if words and dialect == "postgresql":
        few = _few_matches_on_postgresql(session, owner, words)
        if few is not None:
            ids = sa.bindparam("matching_ids", few, type_=sa.ARRAY(sa.String()))
            return list(session.exec(stmt.where(id_column == sa.any_(ids))))
    if not (words and by_creation and limit and dialect == "sqlite"):
        return list(session.exec(stmt.where(matches_text(id_column, owner, text))))
    find = sa.text(_window_sql(owner, newest_first))
    size = FIRST_WINDOW
    while size <= LARGEST_WINDOW:
        window = session.execute(find, {"query": _fts_query(words), "size": size}).all()
        keys = {ident: key for key, ident in window}
        # The window's owners as one JSON parameter (SQLite's JSON functions are built in
        # since 3.38): the listing looks each one up, and the index is searched once.
        listed = sa.func.json_each(sa.literal(json.dumps(list(keys)))).table_valued("value")
        rows = list(session.exec(stmt.where(id_column.in_(sa.select(listed.c.value)))))
        if len(window) < size:
            return rows  # the window holds every match
        if len(rows) == limit:
            last_slot = keys[rows[-1].id] >> TIME_SLOT_BITS
            edge_slot = window[-1][0] >> TIME_SLOT_BITS
            if last_slot > edge_slot if newest_first else last_slot < edge_slot:
                return rows
        size *= 8
    return list(session.exec(stmt.where(matches_text(id_column, owner, text))))
