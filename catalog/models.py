"""The catalog's tables.

Every change here needs an Alembic migration in ``catalog/migrations/versions``; a test
compares these models with the migrated schema and fails on any drift.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlmodel import Field, SQLModel

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_name)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
SQLModel.metadata.naming_convention = NAMING


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """Timestamps are stored in UTC and always come back timezone-aware.

    SQLite has no time zones and returns naive values; without this, comparing a
    stored time with ``utcnow()`` would fail on one database and not the other.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the catalog; use an aware UTC time")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class IsoTimeText(sa.sql.functions.FunctionElement[str]):
    """A :class:`UTCDateTime` column as the text the catalog's JSON shows for it, written
    by the database: exactly ``value.isoformat()`` of the aware UTC time it reads back
    (``2026-11-25T14:03:07.500000+00:00``; no fraction when it is zero).

    Reading ten thousand times as datetimes only to write each back as text cost 15 ms,
    a third of the query that found them (see :func:`catalog.lineage.lineage_rows`); the
    database writes the text in about 4. On SQLite
    it relies on times being stored as SQLAlchemy writes them through this column type
    (``2026-11-25 14:03:07.500000``, in UTC).
    """

    type = sa.String()
    name = "iso_time_text"
    inherit_cache = True


@compiles(IsoTimeText)
def _sqlite_iso_time_text(element: IsoTimeText, compiler: Any, **kw: Any) -> str:
    stored = compiler.process(element.clauses, **kw)
    return f"replace(replace({stored}, ' ', 'T'), '.000000', '') || '+00:00'"


@compiles(IsoTimeText, "postgresql")
def _postgresql_iso_time_text(element: IsoTimeText, compiler: Any, **kw: Any) -> str:
    # One to_char per time (a third of the three it took to test the fraction apart): a
    # zero fraction is the only place '.000000' can appear in this text.
    utc = f"({compiler.process(element.clauses, **kw)} AT TIME ZONE 'UTC')"
    return f"replace(to_char({utc}, 'YYYY-MM-DD\"T\"HH24:MI:SS.US'), '.000000', '') || '+00:00'"


def fold_case(text: str | None) -> str | None:
    """Lowercase letter by letter, exactly as PostgreSQL's ``lower()`` does (checked against
    it for every code point), so a text filter finds the same rows on either database:
    ``str.lower`` without its two context rules, ``İ`` → ``i̇`` and a final ``Σ`` → ``ς``."""
    return None if text is None else text.replace("İ", "i").replace("Σ", "σ").lower()


def _folded_prompt(context: sa.engine.default.DefaultExecutionContext) -> str | None:
    return fold_case(context.get_current_parameters().get("prompt"))


def _time(**kwargs: Any) -> Any:
    return Field(sa_type=UTCDateTime, **kwargs)


def _json(**kwargs: Any) -> Any:
    return Field(sa_type=sa.JSON, **kwargs)


class Asset(SQLModel, table=True):
    """A file in the content store, identified by its SHA-256.

    A *placeholder* is an asset known only from the Content Credentials of another file
    (an ingredient whose file is not on disk): no stored file, perhaps no hash, and what
    the manifest says about it in ``placeholder_info``. It is filled in when the file
    turns up. ``manifest_label`` is the label of the file's active C2PA manifest, which
    is how other files' ingredients name it.
    """

    __tablename__ = "assets"

    id: str = Field(primary_key=True, max_length=80)
    sha256: str | None = Field(default=None, unique=True, max_length=64)
    kind: str = Field(index=True, max_length=20)  # image | video | thumbnail | spritesheet
    mime: str = Field(max_length=100)
    bytes: int | None = Field(default=None, sa_type=sa.BigInteger)
    width: int | None = None
    height: int | None = None
    duration: float | None = None
    fps: float | None = None
    frame_count: int | None = None
    stored_path: str | None = Field(default=None, max_length=200)  # relative to media/
    original_name: str | None = Field(default=None, max_length=500)
    created_at: datetime = _time(default_factory=utcnow)
    is_placeholder: bool = False
    manifest_label: str | None = Field(default=None, index=True, max_length=200)
    placeholder_info: dict[str, Any] | None = _json(default=None)
    # The instance id other files' C2PA ingredients name this file by: its active
    # manifest's, or for a file without credentials the XMP ``xmpMM:InstanceID``.
    instance_id: str | None = Field(default=None, index=True, max_length=200)

    @property
    def file_sha256(self) -> str:
        """The name of this asset's file in the media store.

        A placeholder (known only from another file's credentials) may have no hash;
        asking for its file is a bug in the caller, not a user error.
        """
        if self.sha256 is None:
            raise ValueError(f"{self.id} is a placeholder with no stored file")
        return self.sha256


class AssetRelation(SQLModel, table=True):
    """One C2PA ingredient relation between two assets: ``child`` names ``parent`` as its
    ``parentOf``, ``componentOf`` or ``inputTo`` ingredient.

    Lineage between clips lives on :class:`Generation` (source still, parent clip); these
    rows hold what else the files' credentials say, such as an image edited from another
    image or placed into it, at any depth. Either end may be a placeholder.
    """

    __tablename__ = "asset_relations"
    __table_args__ = (sa.UniqueConstraint("child_asset_id", "parent_asset_id", "relationship"),)

    id: int | None = Field(default=None, primary_key=True)
    child_asset_id: str = Field(foreign_key="assets.id", index=True)
    parent_asset_id: str = Field(foreign_key="assets.id", index=True)
    relationship: str = Field(max_length=20)  # parentOf | componentOf | inputTo
    created_at: datetime = _time(default_factory=utcnow)


class Generation(SQLModel, table=True):
    """One attempt to make a clip, from request to result, whatever its outcome.

    The row is written before anything is submitted (status ``submitting``) and the
    remote job id is recorded as soon as the backend returns it, so an interrupted
    run can always be resumed instead of submitted twice.
    """

    __tablename__ = "generations"
    # Each step of a lineage's recursion finds a clip by id (up to its parent) or by
    # parent (down to its children) and reads only the other of the two: with both in
    # one index, the step never visits the table (see catalog.lineage).
    __table_args__ = (
        sa.Index("ix_generations_id_parent_id", "id", "parent_id"),
        sa.Index("ix_generations_parent_id_id", "parent_id", "id"),
    )

    id: str = Field(primary_key=True, max_length=40)
    backend: str = Field(index=True, max_length=100)
    model: str = Field(index=True, max_length=100)
    prompt: str
    # ``prompt`` lowercased by :func:`fold_case` when the row is inserted (prompts are never
    # rewritten), for the text filter: comparing it costs no function call per row, where
    # lowering each prompt in the query called Python for every row SQLite looked at.
    prompt_folded: str | None = Field(default=None, sa_column_kwargs={"default": _folded_prompt})
    seconds: int
    size: str = Field(max_length=20)
    parameters: dict[str, Any] = _json(default_factory=dict)
    status: str = Field(index=True, max_length=20)
    progress: int = 0
    remote_job_id: str | None = Field(default=None, index=True, max_length=200)
    source_asset_id: str | None = Field(default=None, foreign_key="assets.id", index=True)
    parent_id: str | None = Field(default=None, foreign_key="generations.id")
    relation: str | None = Field(default=None, max_length=20)
    output_asset_id: str | None = Field(default=None, foreign_key="assets.id", index=True)
    thumbnail_asset_id: str | None = Field(default=None, foreign_key="assets.id")
    spritesheet_asset_id: str | None = Field(default=None, foreign_key="assets.id")
    # The still actually sent, when reelvault fitted the source to the size (--fit).
    input_asset_id: str | None = Field(default=None, foreign_key="assets.id")
    details: dict[str, Any] = _json(default_factory=dict)
    error_code: str | None = Field(default=None, max_length=200)
    error_message: str | None = None
    created_at: datetime = _time(default_factory=utcnow, index=True)
    updated_at: datetime = _time(default_factory=utcnow)
    completed_at: datetime | None = _time(default=None)
    # Queued work (``reelvault submit``): which worker holds the job, until when. A
    # lease that runs out means the worker died; another one takes the job over.
    lease_owner: str | None = Field(default=None, max_length=200)
    lease_expires_at: datetime | None = _time(default=None)
    attempts: int = 0
    # ``remote_job_id`` again, for a job of a backend that lists its jobs (one job per
    # create, which ``sync`` may import while ``send`` records it): unique, so such a job
    # is one clip. Jobs that identical requests share (the local backend's) leave it NULL.
    listed_job_id: str | None = Field(default=None, unique=True, index=True, max_length=200)


class PolicyDecisionRecord(SQLModel, table=True):
    """A policy plugin's verdict on one generation attempt."""

    __tablename__ = "policy_decisions"

    id: int | None = Field(default=None, primary_key=True)
    generation_id: str = Field(foreign_key="generations.id", index=True)
    plugin: str = Field(max_length=100)
    rule_id: str = Field(max_length=100)
    outcome: str = Field(max_length=10)  # allow | warn | deny
    reason: str
    created_at: datetime = _time(default_factory=utcnow)


class VerificationRecord(SQLModel, table=True):
    """One provenance check of one asset; a history builds up over time."""

    __tablename__ = "verifications"

    id: int | None = Field(default=None, primary_key=True)
    asset_id: str = Field(foreign_key="assets.id", index=True)
    verifier: str = Field(max_length=100)
    state: str = Field(max_length=20)
    codes: list[str] = _json(default_factory=list)
    details: dict[str, Any] = _json(default_factory=dict)
    checked_at: datetime = _time(default_factory=utcnow)


class ConsentRecord(SQLModel, table=True):
    """A person's consent to the use of their likeness in the images it lists.

    Never deleted or rewritten but for ``revoked_at``/``revoked_reason``: revoking stamps
    the row, and consenting again is a new row, so the catalog keeps who allowed what,
    and when, for every clip that relied on it.
    """

    __tablename__ = "consents"

    id: str = Field(primary_key=True, max_length=40)
    subject: str = Field(index=True, max_length=200)
    note: str | None = None
    granted_at: datetime = _time(default_factory=utcnow)
    expires_at: datetime | None = _time(default=None)
    revoked_at: datetime | None = _time(default=None)
    revoked_reason: str | None = None


class ConsentImage(SQLModel, table=True):
    """One image, by the SHA-256 of its bytes, that a consent covers."""

    __tablename__ = "consent_images"

    id: int | None = Field(default=None, primary_key=True)
    consent_id: str = Field(foreign_key="consents.id", index=True)
    image_sha256: str = Field(index=True, max_length=64)
    original_name: str | None = Field(default=None, max_length=500)


class Removal(SQLModel, table=True):
    """One clip or asset removed with ``reelvault rm``: who, when, and what it was.

    The row outlives what it describes, so ``audit`` can tell a file someone removed from
    one that was lost, and a removal can be accounted for later. ``sha256`` is the
    removed asset's file (a clip's video for a clip), ``summary`` what it looked like
    (prompt, status, original name) when it went.
    """

    __tablename__ = "removals"

    id: int | None = Field(default=None, primary_key=True)
    item_id: str = Field(index=True, max_length=80)
    item_kind: str = Field(max_length=20)  # clip | asset
    sha256: str | None = Field(default=None, index=True, max_length=64)
    removed_by: str = Field(max_length=200)
    removed_at: datetime = _time(default_factory=utcnow)
    summary: dict[str, Any] = _json(default_factory=dict)


class Tag(SQLModel, table=True):
    """One tag on one clip or one asset (exactly one of the two ids is set).

    Tags are stored normalised (:func:`catalog.organise.normalise_tag`), so ``Sci Fi`` and
    ``sci-fi`` are one tag. Deleting the clip or asset deletes its tags with it, whoever
    deletes it, because the database cascades.
    """

    __tablename__ = "tags"
    __table_args__ = (
        sa.UniqueConstraint("generation_id", "name"),
        sa.UniqueConstraint("asset_id", "name"),
    )

    id: int | None = Field(default=None, primary_key=True)
    generation_id: str | None = Field(
        default=None, foreign_key="generations.id", ondelete="CASCADE"
    )
    asset_id: str | None = Field(default=None, foreign_key="assets.id", ondelete="CASCADE")
    name: str = Field(index=True, max_length=64)
    created_at: datetime = _time(default_factory=utcnow)


class Annotation(SQLModel, table=True):
    """A person's title, note and rating (0-5) for one clip or one asset.

    ``title_folded`` and ``note_folded`` are :func:`fold_case` copies written with them:
    sorting by title and searching compare those, so both databases agree on the order
    and on what a search finds.
    """

    __tablename__ = "annotations"

    id: int | None = Field(default=None, primary_key=True)
    generation_id: str | None = Field(
        default=None, foreign_key="generations.id", ondelete="CASCADE", unique=True
    )
    asset_id: str | None = Field(
        default=None, foreign_key="assets.id", ondelete="CASCADE", unique=True
    )
    title: str | None = Field(default=None, max_length=200)
    title_folded: str | None = Field(default=None, index=True, max_length=200)
    note: str | None = None
    note_folded: str | None = None
    rating: int | None = Field(default=None, index=True)
    updated_at: datetime = _time(default_factory=utcnow)
