"""consents: who allowed their likeness in which images, with grant and revoke times

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import catalog.models

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "consents",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("subject", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("note", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("granted_at", catalog.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", catalog.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", catalog.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column("revoked_reason", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consents")),
    )
    op.create_index(op.f("ix_consents_subject"), "consents", ["subject"], unique=False)
    op.create_table(
        "consent_images",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("consent_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("image_sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("original_name", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
        sa.ForeignKeyConstraint(
            ["consent_id"], ["consents.id"], name=op.f("fk_consent_images_consent_id_consents")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent_images")),
    )
    op.create_index(
        op.f("ix_consent_images_consent_id"), "consent_images", ["consent_id"], unique=False
    )
    op.create_index(
        op.f("ix_consent_images_image_sha256"), "consent_images", ["image_sha256"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_consent_images_image_sha256"), table_name="consent_images")
    op.drop_index(op.f("ix_consent_images_consent_id"), table_name="consent_images")
    op.drop_table("consent_images")
    op.drop_index(op.f("ix_consents_subject"), table_name="consents")
    op.drop_table("consents")
