"""one row per listed remote job: generations.listed_job_id, unique; merges the branches

Revision ID: 0006
Revises: 0002, 0003, 0004, 0005
Create Date: 2026-11-25

``sync`` and ``send`` can learn the same remote job id at the same moment (two syncs on
PostgreSQL; a sync that lists a video whose create returned a moment before), and each
used to insert a row for it. ``listed_job_id`` repeats ``remote_job_id`` for the jobs of
backends that list their jobs (one job per create), under a unique index, which makes
that impossible from now on. ``remote_job_id`` itself stays shareable: identical
requests to a backend whose job ids name their inputs (the local one) share a job.

Existing rows of the one listing backend so far, ``sora``, are filled in. A catalog that
already holds duplicates keeps every row (nothing is deleted by an upgrade): one row per
job keeps the id, preferring the one that was downloaded, then the one reelvault made
(not an import), then the oldest. The others lose it, and those still in flight are
marked failed with ``duplicate_job`` so nothing polls them.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision = "0006"
down_revision = ("0002", "0003", "0004", "0005")
branch_labels = None
depends_on = None

INDEX = "ix_generations_listed_job_id"
LISTING_BACKENDS = ("sora",)
ENDED = ("completed", "failed", "rejected")

generations = sa.table(
    "generations",
    sa.column("id", sa.String),
    sa.column("backend", sa.String),
    sa.column("status", sa.String),
    sa.column("remote_job_id", sa.String),
    sa.column("listed_job_id", sa.String),
    sa.column("parameters", sa.JSON),
    sa.column("output_asset_id", sa.String),
    sa.column("created_at", sa.String),
    sa.column("error_code", sa.String),
    sa.column("error_message", sa.String),
)


def _keeper_rank(row: Any) -> tuple[bool, bool, str, str]:
    imported = isinstance(row.parameters, dict) and bool(row.parameters.get("imported"))
    downloaded = row.status == "completed" and row.output_asset_id is not None
    return (not downloaded, imported, str(row.created_at), str(row.id))


def _fill_in(conn: sa.Connection) -> None:
    listed = sa.and_(
        generations.c.backend.in_(LISTING_BACKENDS), generations.c.remote_job_id.is_not(None)
    )
    twice = (
        sa.select(generations.c.remote_job_id)
        .where(listed)
        .group_by(generations.c.remote_job_id)
        .having(sa.func.count() > 1)
    )
    for job_id in conn.execute(twice).scalars().all():
        rows = conn.execute(
            sa.select(generations).where(listed, generations.c.remote_job_id == job_id)
        ).all()
        keeper, *others = sorted(rows, key=_keeper_rank)
        for row in others:
            values: dict[str, Any] = {"remote_job_id": None}
            if row.status not in ENDED:
                values.update(
                    status="failed",
                    error_code="duplicate_job",
                    error_message=f"the same remote job as {keeper.id}, which keeps it",
                )
            conn.execute(generations.update().where(generations.c.id == row.id).values(values))
    conn.execute(
        generations.update().where(listed).values(listed_job_id=generations.c.remote_job_id)
    )


def upgrade() -> None:
    with op.batch_alter_table("generations", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("listed_job_id", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True)
        )
    _fill_in(op.get_bind())
    op.create_index(INDEX, "generations", ["listed_job_id"], unique=True)


def downgrade() -> None:
    op.drop_index(INDEX, table_name="generations")
    with op.batch_alter_table("generations", schema=None) as batch_op:
        batch_op.drop_column("listed_job_id")
