"""generations.prompt_folded: each prompt lowercased once, for the text filter

Revision ID: 0007_folded_prompts
Revises: 0006
Create Date: 2026-12-01

The text filter used to lower every prompt it looked at inside the query; on SQLite that
is a call into Python per row (SQLite's own ``lower()`` changes ASCII letters only). The
lowered prompt is now stored with the row, by the function that lowers the search text,
so both sides agree on either database. Existing rows are filled in here: on SQLite by
the catalog's registered ``rv_lower`` (the same function), on PostgreSQL by ``lower()``.
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision = "0007_folded_prompts"
down_revision = "0006"
branch_labels = None
depends_on = None

LOWER = {"sqlite": "rv_lower"}  # catalog.db.SQLITE_LOWER; PostgreSQL's lower() is right


def upgrade() -> None:
    with op.batch_alter_table("generations", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("prompt_folded", sqlmodel.sql.sqltypes.AutoString(), nullable=True)
        )
    bind = op.get_bind()
    lower = LOWER.get(bind.dialect.name, "lower")
    bind.exec_driver_sql(f"UPDATE generations SET prompt_folded = {lower}(prompt)")


def downgrade() -> None:
    with op.batch_alter_table("generations", schema=None) as batch_op:
        batch_op.drop_column("prompt_folded")
