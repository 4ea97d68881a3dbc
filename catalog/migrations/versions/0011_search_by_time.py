"""the SQLite search index keyed by creation time

Revision ID: 0011_search_by_time
Revises: 0009_organise
Create Date: 2026-12-02

On SQLite a search document's id (the FTS5 rowid) becomes its clip's or asset's creation
time slot and a counter (:func:`catalog.search_schema._sqlite_key`), so that a listing
newest first can read the newest matches of a search straight from the index instead of
gathering every match (:mod:`catalog.search`). The index is rebuilt from the catalog's
rows, with the triggers that key new documents so. PostgreSQL's index is unchanged.
"""

from __future__ import annotations

from alembic import op

from catalog import search_schema

revision = "0011_search_by_time"
down_revision = "0009_organise"
branch_labels = None
depends_on = None

_REKEYING_TRIGGERS = ("search_generations_au_created", "search_assets_au_created")


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    search_schema.drop(bind)
    search_schema.create(bind)


def downgrade() -> None:
    # The documents keep their keys: they are valid rowids for the index as it was, which
    # keyed new documents by insertion order and never changed a key.
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    for name in _REKEYING_TRIGGERS:
        bind.exec_driver_sql(f"DROP TRIGGER IF EXISTS {name}")
