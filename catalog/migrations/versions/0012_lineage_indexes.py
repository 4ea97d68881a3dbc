"""generations: the lineage recursion's indexes, (id, parent_id) and (parent_id, id)

Revision ID: 0012_lineage_indexes
Revises: 0011_search_by_time
Create Date: 2026-12-02

Each step of a lineage's recursive query looks a clip up by id to read its parent, or by
parent to read its children's ids. With both columns in one index the step is answered
from the index alone, never visiting the table: on PostgreSQL an index-only scan instead
of an index scan and a heap fetch per clip, on SQLite no second search by rowid. The index
on ``parent_id`` alone is replaced by (parent_id, id), which serves every query it served.
"""

from __future__ import annotations

from alembic import op

revision = "0012_lineage_indexes"
down_revision = "0011_search_by_time"
branch_labels = None
depends_on = None


# Plain index operations, not a batch: both databases create and drop an index in place,
# where SQLite's batch mode may copy the whole table.


def upgrade() -> None:
    op.create_index("ix_generations_id_parent_id", "generations", ["id", "parent_id"])
    op.create_index("ix_generations_parent_id_id", "generations", ["parent_id", "id"])
    op.drop_index("ix_generations_parent_id", table_name="generations")


def downgrade() -> None:
    op.create_index("ix_generations_parent_id", "generations", ["parent_id"])
    op.drop_index("ix_generations_parent_id_id", table_name="generations")
    op.drop_index("ix_generations_id_parent_id", table_name="generations")
