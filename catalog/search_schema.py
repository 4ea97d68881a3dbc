"""The full-text search index: its tables, triggers and indexes, per database.

Every clip and every asset has one row in ``search_documents`` whose ``body`` holds the
words a search may match: a clip's prompt, its source still's file name, its title,
note and tags; an asset's file name, title, note and tags. Triggers in the database
keep the rows current, so whatever writes a clip (a command, a worker, ``sync``, an
import, or a bare ``INSERT``) is searchable at once, and a deleted clip or asset takes
its document with it (a delete trigger; tags and annotations cascade).

- SQLite: an FTS5 table over ``search_documents`` (external content, kept in step by the
  standard three triggers), tokenised by ``unicode61`` with diacritics kept, so ``école``
  and ``ecole`` are different words there as on PostgreSQL.
- PostgreSQL: a GIN index on ``to_tsvector('simple', body)``; ``simple`` neither stems nor
  drops stop words, so a word matches as typed on both databases. ASCII punctuation is
  turned into spaces first (the ``body`` expression), because PostgreSQL's parser would
  otherwise index ``harbor.jpg`` as one host-name token, where SQLite sees two words.

These objects are not SQLModel tables (an FTS5 table cannot be one, and the generic
foreign-key rewrites of imports must not touch the index): :func:`outside_the_models`
tells the schema comparison to leave them out.
"""

from __future__ import annotations

import sqlalchemy as sa

DOCUMENTS = "search_documents"
FTS = "search_fts"
PUNCTUATION = "!\"#$&'()*+,-./:;<=>?@[\\]^_`{|}~"
"""ASCII punctuation, but for ``%`` (written as ``chr(37)``: a driver may read a bare one
as a parameter placeholder)."""


def outside_the_models(name: str | None, type_: str, parent_names: object = None) -> bool:
    """``include_name`` for Alembic's comparison: False for the search index's objects."""
    return not (type_ == "table" and name is not None and name.startswith(("search_",)))


_NOTE = "coalesce(n.title_folded, '') || ' ' || coalesce(n.note_folded, '')"


def _clip_body(dialect: str) -> str:
    concat = "group_concat(t.name, ' ')" if dialect == "sqlite" else "string_agg(t.name, ' ')"
    return f"""
        coalesce(g.prompt_folded, g.prompt, '')
        || ' ' || coalesce((SELECT a.original_name FROM assets AS a
                            WHERE a.id = g.source_asset_id), '')
        || ' ' || coalesce((SELECT {_NOTE} FROM annotations AS n
                            WHERE n.generation_id = g.id), '')
        || ' ' || coalesce((SELECT {concat} FROM tags AS t WHERE t.generation_id = g.id), '')"""


def _asset_body(dialect: str) -> str:
    concat = "group_concat(t.name, ' ')" if dialect == "sqlite" else "string_agg(t.name, ' ')"
    return f"""
        coalesce(a.original_name, '')
        || ' ' || coalesce((SELECT {_NOTE} FROM annotations AS n WHERE n.asset_id = a.id), '')
        || ' ' || coalesce((SELECT {concat} FROM tags AS t WHERE t.asset_id = a.id), '')"""


def _body(expression: str, dialect: str) -> str:
    if dialect == "sqlite":
        return expression
    quoted = PUNCTUATION.replace("'", "''")
    spaces = " " * (len(PUNCTUATION) + 1)
    return f"translate({expression}, '{quoted}' || chr(37), '{spaces}')"


TIME_SLOT_BITS = 20
"""On SQLite a document's id is its owner's creation time slot shifted left by this many
bits, plus a counter within the slot (see :func:`_sqlite_key`)."""
_SLOT_MS = 8_000_000_000_000
"""Creation times are counted in milliseconds since 1970 and clamped to ± this (about 250
years), so that a slot shifted by :data:`TIME_SLOT_BITS` fits a 64-bit integer."""


def _time_slot(created_at: str) -> str:
    """SQLite: the creation time ``created_at`` (an SQL expression) in milliseconds since
    1970, clamped; all that matters is that it never decreases as the time increases."""
    ms = f"CAST((julianday({created_at}) - 2440587.5) * 86400000 AS INTEGER)"
    return f"max(-{_SLOT_MS}, min({_SLOT_MS}, {ms}))"


def _sqlite_key(created_at: str) -> str:
    """SQLite: the id of a new document whose owner was created at ``created_at``.

    FTS5 hands out the matches of a query in rowid order, newest rowid first if asked,
    without reading them all: keying documents by creation time makes that order the
    listings' newest-first order, up to documents that share a time slot (one
    millisecond), so :mod:`catalog.search` can take the newest matches from the index and
    prove that no other match sorts before them. The counter makes ids unique within a
    slot (a million clips created in the same millisecond would spill into the next).
    """
    slot = f"({_time_slot(created_at)} << {TIME_SLOT_BITS})"
    return (
        f"coalesce((SELECT max(k.id) + 1 FROM {DOCUMENTS} AS k WHERE k.id >= {slot} "
        f"AND k.id < {slot} + {1 << TIME_SLOT_BITS}), {slot})"
    )


def refresh_clips(where: str, dialect: str, rows: str = "generations") -> str:
    """SQL that rewrites the documents of the clips ``where`` selects (alias ``g``) from
    ``rows`` (the table, or a trigger's transition table of new rows); on SQLite a new
    document is keyed by the clip's creation time (:func:`_sqlite_key`), one clip per
    statement: the key is read from the documents already there."""
    key, ident = ("", "") if dialect != "sqlite" else (_sqlite_key("g.created_at") + ", ", "id, ")
    return (
        f"INSERT INTO {DOCUMENTS} ({ident}generation_id, body) "
        f"SELECT {key}g.id, {_body(_clip_body(dialect), dialect)} FROM {rows} AS g "
        f"WHERE {where} "
        "ON CONFLICT (generation_id) DO UPDATE SET body = excluded.body"
    )


def refresh_assets(where: str, dialect: str, rows: str = "assets") -> str:
    """SQL that rewrites the documents of the assets ``where`` selects (alias ``a``) from
    ``rows`` (as :func:`refresh_clips`, keyed by the asset's creation time on SQLite)."""
    key, ident = ("", "") if dialect != "sqlite" else (_sqlite_key("a.created_at") + ", ", "id, ")
    return (
        f"INSERT INTO {DOCUMENTS} ({ident}asset_id, body) "
        f"SELECT {key}a.id, {_body(_asset_body(dialect), dialect)} FROM {rows} AS a "
        f"WHERE {where} "
        "ON CONFLICT (asset_id) DO UPDATE SET body = excluded.body"
    )


def _sqlite_fill() -> list[str]:
    """SQLite: every document at once, into an empty table, keyed as :func:`_sqlite_key`
    keys them one by one (the counter is a row number within each time slot here: a
    statement does not see the rows it inserts)."""
    d = "sqlite"
    owners = (
        ("generation_id", "g", "generations", _clip_body(d)),
        ("asset_id", "a", "assets", _asset_body(d)),
    )
    statements = []
    for owner, alias, table, body in owners:
        slot = _time_slot(f"{alias}.created_at")
        statements.append(
            f"INSERT INTO {DOCUMENTS} (id, {owner}, body) "
            f"SELECT coalesce((SELECT max(k.id) + 1 FROM {DOCUMENTS} AS k "
            f"WHERE k.id >= (s.slot << {TIME_SLOT_BITS}) "
            f"AND k.id < ((s.slot + 1) << {TIME_SLOT_BITS})), s.slot << {TIME_SLOT_BITS}) "
            f"+ row_number() OVER (PARTITION BY s.slot ORDER BY s.owner) - 1, s.owner, s.body "
            f"FROM (SELECT {slot} AS slot, {alias}.id AS owner, {body} AS body "
            f"FROM {table} AS {alias}) AS s WHERE true"
        )
    return statements


def _documents_table(dialect: str) -> list[str]:
    # SQLite: an INTEGER primary key is the rowid, which the FTS5 table is keyed by.
    # No foreign keys: triggers delete a document with its clip or asset, and a foreign
    # key check per insert went slower and slower on PostgreSQL in a long transaction
    # (its cached plan scanned the table that was empty when it was planned).
    ident = "INTEGER NOT NULL" if dialect == "sqlite" else "BIGINT GENERATED BY DEFAULT AS IDENTITY"
    return [
        f"""CREATE TABLE {DOCUMENTS} (
            id {ident},
            generation_id VARCHAR,
            asset_id VARCHAR(80),
            body TEXT NOT NULL,
            CONSTRAINT pk_{DOCUMENTS} PRIMARY KEY (id),
            CONSTRAINT uq_{DOCUMENTS}_generation_id UNIQUE (generation_id),
            CONSTRAINT uq_{DOCUMENTS}_asset_id UNIQUE (asset_id)
        )"""
    ]


# --- SQLite ------------------------------------------------------------------------------


def _sqlite_triggers() -> list[str]:
    """Every trigger, as ``CREATE TRIGGER IF NOT EXISTS`` (see :func:`ensure_triggers`)."""
    d = "sqlite"
    clip = lambda ref: refresh_clips(f"g.id = {ref}", d)  # noqa: E731
    asset = lambda ref: refresh_assets(f"a.id = {ref}", d)  # noqa: E731

    def trigger(name: str, event: str, *statements: str) -> str:
        body = "; ".join(statements)
        return f"CREATE TRIGGER IF NOT EXISTS {name} {event} BEGIN {body}; END"

    both = lambda row: (clip(f"{row}.generation_id"), asset(f"{row}.asset_id"))  # noqa: E731
    return [
        trigger(f"{DOCUMENTS}_ai", f"AFTER INSERT ON {DOCUMENTS}",
                f"INSERT INTO {FTS} (rowid, body) VALUES (new.id, new.body)"),
        trigger(f"{DOCUMENTS}_ad", f"AFTER DELETE ON {DOCUMENTS}",
                f"INSERT INTO {FTS} ({FTS}, rowid, body) VALUES ('delete', old.id, old.body)"),
        trigger(f"{DOCUMENTS}_au", f"AFTER UPDATE ON {DOCUMENTS}",
                f"INSERT INTO {FTS} ({FTS}, rowid, body) VALUES ('delete', old.id, old.body)",
                f"INSERT INTO {FTS} (rowid, body) VALUES (new.id, new.body)"),
        trigger("search_generations_ai", "AFTER INSERT ON generations", clip("new.id")),
        trigger("search_generations_au",
                "AFTER UPDATE OF prompt, prompt_folded, source_asset_id ON generations",
                clip("new.id")),
        # A clip's document is keyed by its creation time: a new time, a new key.
        trigger("search_generations_au_created", "AFTER UPDATE OF created_at ON generations",
                f"DELETE FROM {DOCUMENTS} WHERE generation_id = new.id", clip("new.id")),
        trigger("search_assets_au_created", "AFTER UPDATE OF created_at ON assets",
                f"DELETE FROM {DOCUMENTS} WHERE asset_id = new.id", asset("new.id")),
        trigger("search_generations_ad", "AFTER DELETE ON generations",
                f"DELETE FROM {DOCUMENTS} WHERE generation_id = old.id"),
        trigger("search_assets_ai", "AFTER INSERT ON assets", asset("new.id")),
        trigger("search_assets_ad", "AFTER DELETE ON assets",
                f"DELETE FROM {DOCUMENTS} WHERE asset_id = old.id"),
        trigger("search_assets_au", "AFTER UPDATE OF original_name ON assets", asset("new.id"),
                refresh_clips("g.source_asset_id = new.id", d)),
        trigger("search_tags_ai", "AFTER INSERT ON tags", *both("new")),
        trigger("search_tags_ad", "AFTER DELETE ON tags", *both("old")),
        trigger("search_tags_au", "AFTER UPDATE ON tags", *both("old"), *both("new")),
        trigger("search_annotations_ai", "AFTER INSERT ON annotations", *both("new")),
        trigger("search_annotations_ad", "AFTER DELETE ON annotations", *both("old")),
        trigger("search_annotations_au", "AFTER UPDATE ON annotations",
                *both("old"), *both("new")),
    ]  # fmt: skip


def _sqlite_objects() -> list[str]:
    return [
        *_documents_table("sqlite"),
        f"CREATE VIRTUAL TABLE {FTS} USING fts5(body, content='{DOCUMENTS}', "
        "content_rowid='id', tokenize='unicode61 remove_diacritics 0')",
        *_sqlite_triggers(),
    ]


# --- PostgreSQL --------------------------------------------------------------------------


def _postgresql_objects() -> list[str]:
    d = "postgresql"

    def function(name: str, body: str) -> str:
        return (
            f"CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $fn$\n"
            f"BEGIN\n{body}\nRETURN NULL;\nEND\n$fn$"
        )

    both = lambda row: (  # noqa: E731
        f"{refresh_clips(f'g.id = {row}.generation_id', d)};\n"
        f"{refresh_assets(f'a.id = {row}.asset_id', d)};"
    )
    either = (
        f"IF TG_OP IN ('UPDATE', 'DELETE') THEN\n{both('OLD')}\nEND IF;\n"
        f"IF TG_OP IN ('INSERT', 'UPDATE') THEN\n{both('NEW')}\nEND IF;"
    )
    return [
        *_documents_table("postgresql"),
        f"CREATE INDEX ix_{DOCUMENTS}_body ON {DOCUMENTS} USING gin (to_tsvector('simple', body))",
        # Rows inserted by one statement are indexed by one statement, read from the
        # transition table itself (joining it back to its table made the planner scan
        # the whole table for every insert).
        function("rv_search_new_generations", f"{refresh_clips('TRUE', d, 'new_rows')};"),
        function("rv_search_new_assets", f"{refresh_assets('TRUE', d, 'new_rows')};"),
        function("rv_search_generation", f"{refresh_clips('g.id = NEW.id', d)};"),
        function(
            "rv_search_asset",
            f"{refresh_assets('a.id = NEW.id', d)};\n"
            f"{refresh_clips('g.source_asset_id = NEW.id', d)};",
        ),
        function("rv_search_organised", either),
        function(
            "rv_search_forget",
            f"IF TG_TABLE_NAME = 'generations' THEN\n"
            f"DELETE FROM {DOCUMENTS} WHERE generation_id = OLD.id;\n"
            f"ELSE\nDELETE FROM {DOCUMENTS} WHERE asset_id = OLD.id;\nEND IF;",
        ),
        "CREATE TRIGGER rv_search_forget AFTER DELETE ON generations "
        "FOR EACH ROW EXECUTE FUNCTION rv_search_forget()",
        "CREATE TRIGGER rv_search_forget AFTER DELETE ON assets "
        "FOR EACH ROW EXECUTE FUNCTION rv_search_forget()",
        "CREATE TRIGGER rv_search_new_generations AFTER INSERT ON generations "
        "REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT "
        "EXECUTE FUNCTION rv_search_new_generations()",
        "CREATE TRIGGER rv_search_new_assets AFTER INSERT ON assets "
        "REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT "
        "EXECUTE FUNCTION rv_search_new_assets()",
        "CREATE TRIGGER rv_search_generation AFTER UPDATE OF prompt, prompt_folded, "
        "source_asset_id ON generations FOR EACH ROW EXECUTE FUNCTION rv_search_generation()",
        "CREATE TRIGGER rv_search_asset AFTER UPDATE OF original_name ON assets "
        "FOR EACH ROW EXECUTE FUNCTION rv_search_asset()",
        "CREATE TRIGGER rv_search_tags AFTER INSERT OR UPDATE OR DELETE ON tags "
        "FOR EACH ROW EXECUTE FUNCTION rv_search_organised()",
        "CREATE TRIGGER rv_search_annotations AFTER INSERT OR UPDATE OR DELETE ON annotations "
        "FOR EACH ROW EXECUTE FUNCTION rv_search_organised()",
    ]


# --- creating, keeping, dropping -------------------------------------------------------------


def create(conn: sa.Connection) -> None:
    """Create the index and fill it from the rows already in the catalog."""
    dialect = conn.dialect.name
    objects = _sqlite_objects() if dialect == "sqlite" else _postgresql_objects()
    for statement in objects:
        conn.exec_driver_sql(statement)
    if dialect == "sqlite":
        for statement in _sqlite_fill():
            conn.exec_driver_sql(statement)
        return
    conn.exec_driver_sql(refresh_clips("1 = 1", dialect))
    conn.exec_driver_sql(refresh_assets("1 = 1", dialect))


def ensure_triggers(conn: sa.Connection) -> None:
    """Put back any SQLite trigger a later migration dropped with its table.

    SQLite alters a table by copying it, dropping the old one and renaming the copy, and
    the old table's triggers go with it; :func:`catalog.db.upgrade` calls this after every
    upgrade. PostgreSQL alters tables in place and keeps their triggers.
    """
    if conn.dialect.name != "sqlite":
        return
    if not sa.inspect(conn).has_table(DOCUMENTS):
        return
    for statement in _sqlite_triggers():
        conn.exec_driver_sql(statement)


def drop(conn: sa.Connection) -> None:
    if conn.dialect.name == "sqlite":
        for statement in _sqlite_triggers():
            name = statement.split()[5]
            conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {name}")
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {FTS}")
    else:
        for table, trigger in (("generations", "rv_search_generation"),
                               ("generations", "rv_search_new_generations"),
                               ("assets", "rv_search_asset"), ("assets", "rv_search_new_assets"),
                               ("generations", "rv_search_forget"),
                               ("assets", "rv_search_forget"), ("tags", "rv_search_tags"),
                               ("annotations", "rv_search_annotations")):  # fmt: skip
            conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {trigger} ON {table}")
        for name in ("rv_search_generation", "rv_search_new_generations", "rv_search_asset",
                     "rv_search_new_assets", "rv_search_organised",
                     "rv_search_forget"):  # fmt: skip
            conn.exec_driver_sql(f"DROP FUNCTION IF EXISTS {name}()")
    conn.exec_driver_sql(f"DROP TABLE IF EXISTS {DOCUMENTS}")
