"""removals: who removed which clip or asset, and when

Revision ID: 0008_removals
Revises: 0007_folded_prompts
Create Date: 2026-12-01

``reelvault rm`` deletes rows; this table keeps the record of each removal so the audit
can tell a removed file from a lost one.
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import catalog.models

revision = "0008_removals"
down_revision = "0007_folded_prompts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "removals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("item_id", sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
        sa.Column("item_kind", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("removed_by", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("removed_at", catalog.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_removals")),
    )
    op.create_index(op.f("ix_removals_item_id"), "removals", ["item_id"], unique=False)
    op.create_index(op.f("ix_removals_sha256"), "removals", ["sha256"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_removals_sha256"), table_name="removals")
    op.drop_index(op.f("ix_removals_item_id"), table_name="removals")
    op.drop_table("removals")
