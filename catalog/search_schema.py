"""The full-text search index: its tables, triggers and indexes, per database.

Every clip and every asset has one row in ``search_documents`` whose ``body`` holds the
words a search may match: a clip's prompt, its source still's file name, its title,
note and tags; an asset's file name, title, note and tags. Triggers in the database
keep the rows current, so whatever writes a clip (a command, a worker, ``sync``, an
import, or a bare ``INSERT``) is searchable at once, and a deleted clip or asset takes
its document with it (``ON DELETE CASCADE``).

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
PUNCTUATION = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"


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
    spaces = " " * len(PUNCTUATION)
    return f"translate({expression}, '{PUNCTUATION.replace(chr(39), chr(39) * 2)}', '{spaces}')"


def refresh_clips(where: str, dialect: str) -> str:
    """SQL that rewrites the documents of the clips ``where`` selects (alias ``g``)."""
    return (
        f"INSERT INTO {DOCUMENTS} (generation_id, body) "
        f"SELECT g.id, {_body(_clip_body(dialect), dialect)} FROM generations AS g "
        f"WHERE {where} "
        "ON CONFLICT (generation_id) DO UPDATE SET body = excluded.body"
    )


def refresh_assets(where: str, dialect: str) -> str:
    """SQL that rewrites the documents of the assets ``where`` selects (alias ``a``)."""
    return (
        f"INSERT INTO {DOCUMENTS} (asset_id, body) "
        f"SELECT a.id, {_body(_asset_body(dialect), dialect)} FROM assets AS a "
        f"WHERE {where} "
        "ON CONFLICT (asset_id) DO UPDATE SET body = excluded.body"
    )


def _documents_table() -> list[str]:
    return [
        f"""CREATE TABLE {DOCUMENTS} (
            id INTEGER NOT NULL,
            generation_id VARCHAR REFERENCES generations (id) ON DELETE CASCADE,
            asset_id VARCHAR(80) REFERENCES assets (id) ON DELETE CASCADE,
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
        trigger("search_assets_ai", "AFTER INSERT ON assets", asset("new.id")),
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
        *_documents_table(),
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
        *_documents_table(),
        f"CREATE INDEX ix_{DOCUMENTS}_body ON {DOCUMENTS} USING gin (to_tsvector('simple', body))",
        function("rv_search_generation", f"{refresh_clips('g.id = NEW.id', d)};"),
        function(
            "rv_search_asset",
            f"{refresh_assets('a.id = NEW.id', d)};\n"
            f"{refresh_clips('g.source_asset_id = NEW.id', d)};",
        ),
        function("rv_search_organised", either),
        "CREATE TRIGGER rv_search_generation AFTER INSERT OR UPDATE OF prompt, prompt_folded, "
        "source_asset_id ON generations FOR EACH ROW EXECUTE FUNCTION rv_search_generation()",
        "CREATE TRIGGER rv_search_asset AFTER INSERT OR UPDATE OF original_name ON assets "
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
                               ("assets", "rv_search_asset"), ("tags", "rv_search_tags"),
                               ("annotations", "rv_search_annotations")):  # fmt: skip
            conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {trigger} ON {table}")
        for name in ("rv_search_generation", "rv_search_asset", "rv_search_organised"):
            conn.exec_driver_sql(f"DROP FUNCTION IF EXISTS {name}()")
    conn.exec_driver_sql(f"DROP TABLE IF EXISTS {DOCUMENTS}")
