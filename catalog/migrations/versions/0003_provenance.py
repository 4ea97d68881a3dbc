"""provenance: placeholder assets known from manifests, manifest labels, output index

Revision ID: 0003
Revises: 0001
Create Date: 2026-11-25

An asset may now be known only from another file's Content Credentials (a placeholder
with no stored file and perhaps no hash), so ``sha256``, ``bytes`` and ``stored_path``
become nullable.

SQLite cannot change a column's nullability, so the ``assets`` table is rebuilt there.
Alembic's batch mode would copy into a new table, drop the old one and rename the copy;
with foreign keys on, dropping ``assets`` orphans every generation and verification row
that points at it, and the rename does not adopt them, so the commit fails. The rebuild
below keeps the data aside, drops ``assets``, and re-creates and refills a table of the
same name, which re-adopts the referencing rows. It copies the table as it finds it, so
columns other feature branches added to ``assets`` survive.
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision = "0003"
down_revision = "0001"
branch_labels = None
depends_on = None

NOW_NULLABLE = ("sha256", "bytes", "stored_path")


def _new_columns() -> list[sa.Column]:
    return [
        sa.Column("is_placeholder", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("manifest_label", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
        sa.Column("placeholder_info", sa.JSON(), nullable=True),
    ]


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        _rebuild_sqlite_assets(bind)
    else:
        with op.batch_alter_table("assets", schema=None) as batch_op:
            for name in NOW_NULLABLE:
                batch_op.alter_column(name, nullable=True)
            for column in _new_columns():
                batch_op.add_column(column)
    with op.batch_alter_table("assets", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_assets_manifest_label"), ["manifest_label"])
    with op.batch_alter_table("generations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_generations_output_asset_id"), ["output_asset_id"])


def _rebuild_sqlite_assets(bind: sa.Connection) -> None:
    old = sa.Table("assets", sa.MetaData(), autoload_with=bind)
    names = [c.name for c in old.columns]
    indexes = [(i.name, [c.name for c in i.columns], i.unique) for i in old.indexes]
    uniques = [(u.name, [c.name for c in u.columns]) for u in old.constraints
               if isinstance(u, sa.UniqueConstraint)]  # fmt: skip
    foreign_keys = [
        (fk.name, [c.name for c in fk.columns], [e.target_fullname for e in fk.elements])
        for fk in old.foreign_key_constraints
    ]
    op.execute("PRAGMA defer_foreign_keys = ON")  # checked at commit, once all rows are back
    op.execute("CREATE TABLE _assets_0003 AS SELECT * FROM assets")
    op.drop_table("assets")
    columns = [
        sa.Column(
            c.name,
            c.type,
            nullable=True if c.name in NOW_NULLABLE else c.nullable,
            server_default=c.server_default,
        )
        for c in old.columns
    ]
    op.create_table(
        "assets",
        *columns,
        *_new_columns(),
        sa.PrimaryKeyConstraint(*(c.name for c in old.primary_key), name=op.f("pk_assets")),
        *(sa.UniqueConstraint(*cols, name=name) for name, cols in uniques),
        *(sa.ForeignKeyConstraint(cols, refs, name=name) for name, cols, refs in foreign_keys),
    )
    listed = ", ".join(f'"{n}"' for n in names)
    op.execute(f"INSERT INTO assets ({listed}) SELECT {listed} FROM _assets_0003")
    op.drop_table("_assets_0003")
    for name, cols, unique in indexes:
        op.create_index(name, "assets", cols, unique=unique)


def downgrade() -> None:
    placeholders = (
        op.get_bind()
        .execute(sa.text("SELECT count(*) FROM assets WHERE is_placeholder"))
        .scalar_one()
    )
    if placeholders:  # the old schema cannot hold an asset without a file
        raise RuntimeError(f"{placeholders} placeholder assets would be lost by the downgrade")
    with op.batch_alter_table("generations", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_generations_output_asset_id"))
    with op.batch_alter_table("assets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_assets_manifest_label"))
    if op.get_bind().dialect.name == "sqlite":
        # DROP COLUMN needs no rebuild; the relaxed NOT NULLs stay, harmless to old code.
        for column in reversed(_new_columns()):
            op.execute(f'ALTER TABLE assets DROP COLUMN "{column.name}"')
        return
    with op.batch_alter_table("assets", schema=None) as batch_op:
        for column in reversed(_new_columns()):
            batch_op.drop_column(column.name)
        for name in NOW_NULLABLE:
            batch_op.alter_column(name, nullable=False)
