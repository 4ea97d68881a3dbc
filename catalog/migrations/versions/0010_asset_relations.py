"""asset_relations: C2PA ingredient relations between any two assets; assets.instance_id

Revision ID: 0010_asset_relations
Revises: 0007_folded_prompts
Create Date: 2026-12-01

A branch of its own (off 0007_folded_prompts, as other features branch off it too):
lineage between images, and between an image and a video beyond a clip's source still,
as the files' Content Credentials name them. Each row says that one asset names another
as its ``parentOf``, ``componentOf`` or ``inputTo`` ingredient. ``assets.instance_id``
is the id ingredients name a file by when no hash is claimed for it.
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import catalog.models

revision = "0010_asset_relations"
down_revision = "0007_folded_prompts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("assets", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("instance_id", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True)
        )
        batch_op.create_index(batch_op.f("ix_assets_instance_id"), ["instance_id"])
    op.create_table(
        "asset_relations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("child_asset_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("parent_asset_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("relationship", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("created_at", catalog.models.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["child_asset_id"],
            ["assets.id"],
            name=op.f("fk_asset_relations_child_asset_id_assets"),
        ),
        sa.ForeignKeyConstraint(
            ["parent_asset_id"],
            ["assets.id"],
            name=op.f("fk_asset_relations_parent_asset_id_assets"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_asset_relations")),
        sa.UniqueConstraint(
            "child_asset_id",
            "parent_asset_id",
            "relationship",
            name=op.f("uq_asset_relations_child_asset_id"),
        ),
    )
    with op.batch_alter_table("asset_relations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_asset_relations_child_asset_id"), ["child_asset_id"])
        batch_op.create_index(batch_op.f("ix_asset_relations_parent_asset_id"), ["parent_asset_id"])


def downgrade() -> None:
    op.drop_table("asset_relations")
    with op.batch_alter_table("assets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_assets_instance_id"))
        batch_op.drop_column("instance_id")
