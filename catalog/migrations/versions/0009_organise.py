"""tags, annotations (title, note, rating) and the full-text search index

Revision ID: 0009_organise
Revises: 0007
Create Date: 2026-12-01

A branch of its own off 0007 (the catalog upgrades to every head). The search index's
tables, triggers and indexes differ per database and are not SQLModel tables; they are
made by :mod:`catalog.search_schema`, which fills them from the rows already there.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import catalog.models
from catalog import search_schema

revision = "0009_organise"
down_revision = "0007_folded_prompts"
branch_labels = None
depends_on = None


def _owner_columns(table: str) -> list[Any]:
    """The clip-or-asset columns both tables share, with their cascading foreign keys."""
    return [
        sa.Column("generation_id", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("asset_id", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.ForeignKeyConstraint(
            ["generation_id"], ["generations.id"],
            name=op.f(f"fk_{table}_generation_id_generations"), ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["asset_id"], ["assets.id"],
            name=op.f(f"fk_{table}_asset_id_assets"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{table}")),
    ]  # fmt: skip


def upgrade() -> None:
    op.create_table(
        "tags",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("created_at", catalog.models.UTCDateTime(timezone=True), nullable=False),
        *_owner_columns("tags"),
        sa.UniqueConstraint("generation_id", "name", name=op.f("uq_tags_generation_id")),
        sa.UniqueConstraint("asset_id", "name", name=op.f("uq_tags_asset_id")),
    )
    op.create_index(op.f("ix_tags_name"), "tags", ["name"], unique=False)
    op.create_table(
        "annotations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("title", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column("title_folded", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column("note", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("note_folded", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("rating", sa.Integer(), nullable=True),
        sa.Column("updated_at", catalog.models.UTCDateTime(timezone=True), nullable=False),
        *_owner_columns("annotations"),
        sa.UniqueConstraint("generation_id", name=op.f("uq_annotations_generation_id")),
        sa.UniqueConstraint("asset_id", name=op.f("uq_annotations_asset_id")),
    )
    op.create_index(
        op.f("ix_annotations_title_folded"), "annotations", ["title_folded"], unique=False
    )
    op.create_index(op.f("ix_annotations_rating"), "annotations", ["rating"], unique=False)
    search_schema.create(op.get_bind())


def downgrade() -> None:
    search_schema.drop(op.get_bind())
    op.drop_index(op.f("ix_annotations_rating"), table_name="annotations")
    op.drop_index(op.f("ix_annotations_title_folded"), table_name="annotations")
    op.drop_table("annotations")
    op.drop_index(op.f("ix_tags_name"), table_name="tags")
    op.drop_table("tags")
