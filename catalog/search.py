"""Searching clips and assets by the words of their prompt, title, note, file name and tags.

A search is split into words (runs of letters and digits, case folded as the catalog
folds prompts); a clip or asset matches when every word begins one of the words of its
search document (:mod:`catalog.search_schema`). So ``harb`` finds ``harbor.jpg`` and
``HARBOR`` finds ``over the harbor``, but ``rbor`` finds neither: matching is by word
prefix, which is what a full-text index answers fast (an FTS5 prefix query on SQLite,
``to_tsquery('simple', 'harb:*')`` against a GIN index on PostgreSQL), at a million
clips as at ten. Text with no letters or digits in it matches nothing.
"""

from __future__ import annotations

import re
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.visitors import InternalTraversal

from catalog.models import fold_case
from catalog.search_schema import DOCUMENTS, FTS
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


@compiles(_Matches)
def _sqlite_matches(element: _Matches, compiler: Any, **kw: Any) -> str:
    query = " ".join(f'"{word}"*' for word in element.words)  # words hold no quote
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
