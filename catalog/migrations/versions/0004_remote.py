"""remote backends: the fitted still a generation actually sent

Revision ID: 0004
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision = "0004"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("generations", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("input_asset_id", sqlmodel.sql.sqltypes.AutoString(), nullable=True)
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_generations_input_asset_id_assets"),
            "assets",
            ["input_asset_id"],
            ["id"],
        )


def downgrade() -> None:
    with op.batch_alter_table("generations", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_generations_input_asset_id_assets"), type_="foreignkey"
        )
        batch_op.drop_column("input_asset_id")
