"""Writing to the catalog: small, idempotent operations shared by every command."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlmodel import Session, SQLModel, col, select

from catalog.models import Asset, Generation, PolicyDecisionRecord, utcnow
from core.api.deferred import deferred_import
from core.api.types import GenerationStatus, PolicyDecision

if TYPE_CHECKING:
    from sqlalchemy.dialects import postgresql, sqlite
else:  # the dialect a catalog does not use is never imported (PostgreSQL's: 30 ms)
    postgresql = deferred_import("sqlalchemy.dialects.postgresql")
    sqlite = deferred_import("sqlalchemy.dialects.sqlite")

OUTCOME_FIELDS = (
    "status",
    "progress",
    "output_asset_id",
    "thumbnail_asset_id",
    "spritesheet_asset_id",
    "completed_at",
    "error_code",
    "error_message",
)
"""What a finished generation learned from its job: taken over with the job's id."""


def insert_or_ignore(session: Session, row: SQLModel) -> bool:
    """Insert a row unless it conflicts with a unique key; says whether it went in.

    Two processes may write the same thing at the same moment (the same source image in
    two ``generate`` runs, the same remote job in two ``sync`` runs), so this is an
    insert that ignores the conflict rather than a check followed by an insert.
    """
    table = type(row)
    dialect = session.get_bind().dialect.name
    if dialect not in ("postgresql", "sqlite"):
        try:
            with session.begin_nested():
                session.add(row)
        except sa.exc.IntegrityError:
            return False
        return True
    keys = sa.inspect(table).primary_key
    # A key the database assigns (an identity column) is left out, not sent as NULL.
    values = {
        name: value
        for name, value in row.model_dump().items()
        if value is not None or name not in {key.name for key in keys}
    }
    stmt = (
        postgresql.insert(table).values(**values).on_conflict_do_nothing().returning(*keys)
        if dialect == "postgresql"
        else sqlite.insert(table).values(**values).on_conflict_do_nothing().returning(*keys)
    )
    return session.execute(stmt).first() is not None  # rowcount is not reliable here


def ensure_asset(session: Session, asset: Asset) -> Asset:
    """Insert an asset unless its bytes are already cataloged; return the stored row."""
    insert_or_ignore(session, asset)
    stored = session.get(Asset, asset.id)
    assert stored is not None, "asset vanished right after its insert"
    return stored


def touch(generation: Generation, **changes: object) -> None:
    """Apply changes to a generation and stamp ``updated_at``."""
    for key, value in changes.items():
        setattr(generation, key, value)
    generation.updated_at = utcnow()


def record_downloaded(session: Session, generation_id: str, variant: str, asset_id: str) -> None:
    """Note on the row that one output of a job is stored (``details["downloaded"]``), so
    a finish that is interrupted and resumed does not fetch it again."""
    row = lock_generation(session, generation_id)
    if row is None:
        return
    details = dict(row.details or {})
    done = {**details.get("downloaded", {}), variant: asset_id}
    storing = {k: v for k, v in details.get("storing", {}).items() if k != variant}
    details = {**details, "downloaded": done, "storing": storing}
    if not storing:
        details.pop("storing")  # the intent is fulfilled: the asset id says it now
    touch(row, details=details)


def record_storing(session: Session, generation_id: str, variant: str, sha256: str) -> None:
    """Note on the row the SHA-256 of the output about to be stored
    (``details["storing"]``), before it is put in the store.

    A signed video differs on every signing, so a finish killed between storing the file
    and cataloging it cannot find that file by signing again; this write-ahead lets the
    resumed finish catalog the stored file instead of leaving it orphaned.
    """
    row = lock_generation(session, generation_id)
    if row is None:
        return
    storing = {**(row.details or {}).get("storing", {}), variant: sha256}
    touch(row, details={**(row.details or {}), "storing": storing})


def storing_intents(session: Session, generation_id: str) -> dict[str, str]:
    """The outputs of a job a finish set out to store, by variant, not yet cataloged."""
    row = lock_generation(session, generation_id)
    return dict((row.details or {}).get("storing", {})) if row else {}


def reopen_for_retry(session: Session, generation_id: str, code: str) -> Generation | None:
    """Put a row that failed with ``code`` back to ``submitting``, to be sent again;
    ``None`` when it is not (or no longer) such a row."""
    row = lock_generation(session, generation_id)
    if row is None or row.status != GenerationStatus.FAILED or row.error_code != code:
        return None
    touch(row, status=GenerationStatus.SUBMITTING, error_code=None, error_message=None)
    row.completed_at = None
    session.add(row)
    return row


def lock_generation(session: Session, generation_id: str) -> Generation | None:
    """Load a generation for update, so two finishers of one job cannot both write it."""
    stmt = sa.select(Generation).where(col(Generation.id) == generation_id)
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    return session.execute(stmt).scalar_one_or_none()


def adopt_job_id(
    session: Session, generation: Generation, job_id: str, *, listed: bool
) -> str | None:
    """Record ``job_id`` on a locked generation; returns the id of a row taken over.

    A ``listed`` job (its backend lists its jobs: one job per create) is one clip:
    ``sync`` may have imported it between the moment its create returned and now. That
    import is the same job, so it is folded into this row (the one with the request,
    its policy decisions and its lineage), whatever points at it is pointed here, and it
    is deleted, all in the caller's transaction. The unique ``listed_job_id`` makes a
    concurrent import wait for this transaction and then find the job recorded.
    """
    other: Generation | None = None
    if listed:
        stmt = select(Generation).where(
            Generation.listed_job_id == job_id, col(Generation.id) != generation.id
        )
        if session.get_bind().dialect.name == "postgresql":
            stmt = stmt.with_for_update()
        other = session.exec(stmt).first()
    if other is not None:
        if other.status == GenerationStatus.COMPLETED:
            for name in OUTCOME_FIELDS:
                setattr(generation, name, getattr(other, name))
        generation.details = {**generation.details, "merged_import": other.id}
        repoint_references(session, Generation.__tablename__, other.id, generation.id)
        other.remote_job_id = other.listed_job_id = None
        session.add(other)
        session.flush()
        session.delete(other)
    touch(generation, remote_job_id=job_id, listed_job_id=job_id if listed else None)
    session.add(generation)
    session.flush()
    return other.id if other is not None else None


def repoint_references(session: Session, table_name: str, old_id: str, new_id: str) -> None:
    """Rewrite every foreign key into ``table_name`` (in any feature's tables) to ``new_id``.

    Used when two rows turn out to be one thing (an imported clip and the generation
    that made it, a placeholder and the file it stood for): whatever pointed at the row
    that goes now points at the one that stays. A row never comes to point at itself
    (a clip whose parent was the row it replaces), and a row that would repeat one the
    survivor already has (the same tag on both, two annotations) is folded into it first.
    """
    for table in SQLModel.metadata.sorted_tables:
        for fk in table.foreign_keys:
            if fk.column.table.name != table_name:
                continue
            _fold_clashing_rows(session, table, fk.parent, old_id, new_id)
            values: dict[str, Any] = {fk.parent.name: new_id}
            stmt = table.update().where(fk.parent == old_id)
            if table.name == table_name:
                stmt = stmt.where(fk.column != new_id)
            session.execute(stmt.values(values))


def _unique_column_sets(table: sa.Table) -> list[list[sa.Column[Any]]]:
    """The column sets a unique constraint or unique index of ``table`` covers."""
    sets = [list(c.columns) for c in table.constraints if isinstance(c, sa.UniqueConstraint)]
    sets += [list(index.columns) for index in table.indexes if index.unique]
    return [columns for columns in sets if columns]


def _fold_clashing_rows(
    session: Session, table: sa.Table, moving: sa.Column[Any], old_id: str, new_id: str
) -> None:
    """Before ``moving`` goes from ``old_id`` to ``new_id``: each row of ``old_id`` that
    would break a unique key the survivor's row already holds gives the survivor what it
    lacks (its empty columns) and is dropped, so the move never fails and keeps what a
    person wrote on either side (a title on one, a note on the other)."""
    for columns in _unique_column_sets(table):
        if moving not in columns:
            continue
        others = [c for c in columns if c is not moving]
        survivor = table.alias("survivor")
        same_key = sa.and_(
            survivor.c[moving.name] == new_id, *(survivor.c[c.name] == c for c in others)
        )
        departing = table.alias("departing")
        fillable = [
            c for c in table.columns
            if c.nullable and not c.primary_key and not c.foreign_keys and c not in columns
        ]  # fmt: skip
        if fillable:
            match = sa.and_(
                departing.c[moving.name] == old_id,
                *(departing.c[c.name] == table.c[c.name] for c in others),
            )
            session.execute(
                table.update()
                .where(moving == new_id, sa.exists().where(match))
                .values({
                    c.name: sa.func.coalesce(
                        c, sa.select(departing.c[c.name]).where(match).scalar_subquery()
                    )
                    for c in fillable
                })
            )  # fmt: skip
        session.execute(table.delete().where(moving == old_id, sa.exists().where(same_key)))


def save(session: Session, *rows: SQLModel) -> None:
    """Write rows changed (or made) by the caller in this session's transaction."""
    session.add_all(rows)
    session.flush()


def add_decisions(
    session: Session, generation_id: str, decisions: Iterable[PolicyDecision]
) -> None:
    """Keep every policy verdict on a request, allow and warn included: an audit of a
    clip shows what was checked, not only what was refused."""
    session.add_all(
        PolicyDecisionRecord(
            generation_id=generation_id,
            plugin=d.plugin,
            rule_id=d.rule_id,
            outcome=d.outcome,
            reason=d.reason,
        )
        for d in decisions
    )


def add_generation(
    session: Session, generation: Generation, decisions: Iterable[PolicyDecision]
) -> None:
    """The write-ahead row of a request, with the policy decisions taken on it."""
    save(session, generation)
    add_decisions(session, generation.id, decisions)
