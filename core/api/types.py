"""Public types shared by the host and every plugin.

Plugins import from here and from :mod:`core.api.hookspecs` only. Everything is a plain,
frozen dataclass so a plugin can build one without knowing how the catalog stores it.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO, Protocol, runtime_checkable

from core.api.errors import RequestError

__all__ = [
    "FIT_MODES",
    "GENERATION_ASSERTION",
    "Backend",
    "ClipView",
    "ConsentGrant",
    "DerivedRequest",
    "GenerationRequest",
    "GenerationStatus",
    "ImageFacts",
    "JobState",
    "JobStatus",
    "ModelInfo",
    "Outcome",
    "PolicyContext",
    "PolicyDecision",
    "ProgressCallback",
    "Relation",
    "RemoteJob",
    "Size",
    "Variant",
    "VerificationResult",
    "VerificationState",
]


class GenerationStatus(enum.StrEnum):
    """Where a generation stands in the catalog: the values ``generations.status`` holds.

    A job's remote states (:class:`JobState`, as a backend reports them) are among these
    under the same values, so a reported state is recorded as it is.
    """

    PENDING = "pending"
    """Recorded by ``reelvault submit``, waiting for a worker."""
    CLAIMED = "claimed"
    """Leased by a worker and not sent to a backend yet: safe to submit if the worker dies."""
    SUBMITTING = "submitting"
    """Written just before the backend is called; the job id follows as soon as it is known."""
    QUEUED = "queued"
    IN_PROGRESS = "in_progress"
    FINISHING = "finishing"
    """Finished at the backend; one process holds the claim to download and catalog it."""
    REMOTE = "remote"
    """Imported by ``sync``: finished at the provider and not downloaded."""
    IMPORTED = "imported"
    """Rebuilt by ``import`` from a file's credentials rather than run here."""
    COMPLETED = "completed"
    FAILED = "failed"
    REJECTED = "rejected"


class JobState(enum.StrEnum):
    """Where a job stands at its backend. The states mirror the Videos API's ``status``;
    each one is also the :class:`GenerationStatus` of the same value (:attr:`status`)."""

    QUEUED = "queued"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"

    @property
    def is_terminal(self) -> bool:
        return self in (JobState.COMPLETED, JobState.FAILED)

    @property
    def status(self) -> GenerationStatus:
        """The catalog status a generation has while its job is in this state."""
        return GenerationStatus(self.value)


class Variant(enum.StrEnum):
    """Downloadable renditions of a finished job (the Videos API's ``variant`` values)."""

    VIDEO = "video"
    THUMBNAIL = "thumbnail"
    SPRITESHEET = "spritesheet"


class Relation(enum.StrEnum):
    """How a generation relates to its parent clip (``parent_id`` in the catalog)."""

    REMIX_OF = "remix_of"
    EDIT_OF = "edit_of"
    EXTENSION_OF = "extension_of"
    VARIANT_OF = "variant_of"  # the same shot by another model (``regenerate``): kin only

    @staticmethod
    def derives(relation: str | None) -> bool:
        """Whether a clip with this relation (as recorded; none is a remix) is made from
        its parent's video: a variant is not, so it is sent and signed as a new clip."""
        return relation != Relation.VARIANT_OF


@dataclass(frozen=True)
class Size:
    width: int
    height: int

    @classmethod
    def parse(cls, text: str) -> Size:
        """Parse ``"1280x720"``; a malformed size is the user's mistake, so say which."""
        try:
            w, h = text.lower().split("x")
            size = cls(int(w), int(h))
        except ValueError:
            raise RequestError(f"size {text!r} is not WIDTHxHEIGHT, e.g. 1280x720") from None
        if size.width <= 0 or size.height <= 0:
            raise RequestError(f"size {text!r} must have a positive width and height")
        return size

    def __str__(self) -> str:
        return f"{self.width}x{self.height}"


ProgressCallback = Callable[[str, int], None]
"""Called with (status, percent) while long work runs (a job, an import); the CLI draws
a progress bar with it."""

FIT_MODES = ("cover", "contain")
"""How a still of another size is made to fit: crop to fill, or pad."""


@dataclass(frozen=True)
class ModelInfo:
    """What a backend's model accepts.

    The host validates every request against this before anything is submitted, so a
    backend can trust that ``seconds`` and ``size`` are among the allowed values.
    ``status`` is a short lifecycle note (``"available"``, ``"retired at api.openai.com
    since 2026-09-24"``) shown by ``reelvault models``. Sizes are written ``WIDTHxHEIGHT``;
    the host normalises what a user types (``640X360``) to that form before validating.
    ``fits_input_image`` declares that the backend itself fits a still of any size to the
    requested size (as its description says); without it, a still must match the size
    or the request must ask for a fit (``parameters["fit"]``), so nothing is cropped
    that the user did not ask for. ``derive_keeps_seconds`` and ``derive_keeps_size``
    name the relations whose result always has the parent's duration or size (a service
    whose remix takes only a prompt): the host refuses a request for another one there,
    rather than record a value the clip does not have. ``derives_from_still`` declares
    that the backend derives a clip by animating a still (the parent's source, or its
    first frame) rather than by the provider's own copy of the parent, so it can derive
    from a clip it did not make, such as an imported one.
    """

    name: str
    seconds: tuple[int, ...]
    sizes: tuple[str, ...]
    default_seconds: int
    default_size: str
    accepts_input_image: bool = True
    requires_input_image: bool = False
    fits_input_image: bool = False
    supports_remix: bool = False
    supports_edit: bool = False
    supports_extension: bool = False
    variants: tuple[Variant, ...] = (Variant.VIDEO,)
    derive_keeps_seconds: tuple[Relation, ...] = ()
    derive_keeps_size: tuple[Relation, ...] = ()
    derives_from_still: bool = False
    status: str = "available"
    description: str = ""

    def __post_init__(self) -> None:
        # A malformed ModelInfo would make every request fail in a confusing way; fail
        # where the plugin author can see it instead.
        for size in self.sizes:
            if str(Size.parse(size)) != size:
                raise ValueError(f"{self.name}: size {size!r} must be written WIDTHxHEIGHT")
        if self.default_seconds not in self.seconds or self.default_size not in self.sizes:
            raise ValueError(f"{self.name}: the defaults must be among the allowed values")

    def still_fit(
        self, still: Size, size: str, fit: str | None, name: str = "the still"
    ) -> str | None:
        """How a still of size ``still`` reaches this model when ``size`` is requested.

        Returns ``None`` when it goes as it is (it matches, or the model fits stills
        itself) and the fit mode to apply otherwise. A mismatch nobody asked to fit is
        refused, so nothing is ever cropped that the user did not ask for.
        """
        if fit is not None and fit not in FIT_MODES:
            raise RequestError(f"fit must be one of {', '.join(FIT_MODES)}, not {fit!r}")
        wanted = Size.parse(size)
        if still == wanted or self.fits_input_image:
            return None
        if fit is None:
            raise RequestError(
                f"{name} is {still} but model {self.name} needs exactly {wanted}: "
                "pass --fit cover (crop to fill) or --fit contain (pad), or a still of that size"
            )
        return fit

    def supports(self, relation: Relation) -> bool:
        return {
            Relation.REMIX_OF: self.supports_remix,
            Relation.EDIT_OF: self.supports_edit,
            Relation.EXTENSION_OF: self.supports_extension,
        }[relation]

    def validate(self, seconds: int, size: str) -> str:
        """Refuse a duration or size the model does not allow, naming what it does allow.

        Returns the size in its normal ``WIDTHxHEIGHT`` form.
        """
        if seconds not in self.seconds:
            allowed = ", ".join(str(s) for s in self.seconds)
            raise RequestError(
                f"model {self.name} does not allow {seconds} seconds (allowed: {allowed})"
            )
        normal = str(Size.parse(size))
        if normal not in self.sizes:
            raise RequestError(
                f"model {self.name} does not allow size {size} (allowed: {', '.join(self.sizes)})"
            )
        return normal


@dataclass(frozen=True)
class GenerationRequest:
    """One request to turn a still (optional) and a prompt into a clip.

    ``input_image`` is a path the backend may read but must not modify or keep; the host
    owns the file. ``parameters`` carries anything backend-specific (seed, fit, ...)
    and is recorded in the catalog as given.
    """

    model: str
    prompt: str
    seconds: int
    size: str
    input_image: Path | None = None
    parameters: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DerivedRequest:
    """A request to derive a new clip from a finished one (remix, edit or extension).

    ``parent_job_id`` is the parent's remote job id on the same backend;
    ``parent_input_image`` is the parent's source still when there was one, for backends
    (like the local one) that re-render from the source instead of the parent video.
    """

    relation: Relation
    parent_job_id: str
    prompt: str
    model: str
    seconds: int
    size: str
    parent_input_image: Path | None = None
    parameters: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class JobStatus:
    """A snapshot of a job as the backend reports it.

    ``details`` is JSON the backend wants on record with the generation; a list of
    strings under ``details["explanation"]`` is printed by ``reelvault show`` as the
    backend's reading of the request (the local backend explains its motion plan).
    ``progress`` is a percentage, 0 to 100. ``poll_after`` is the backend's hint, in
    seconds, for the next poll; ``expires_at`` is when the outputs stop being
    downloadable, in Unix seconds. ``refused`` marks a ``FAILED`` job the service
    declined on policy grounds (a moderation refusal): the host records it also as a
    deny decision by the backend.
    """

    job_id: str
    state: JobState
    progress: int = 0
    error_code: str | None = None
    error_message: str | None = None
    poll_after: float | None = None
    expires_at: int | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
    refused: bool = False


@dataclass(frozen=True)
class RemoteJob:
    """One job as a backend's service lists it (``reelvault sync`` imports these).

    A backend that can list its account's jobs offers ``list_jobs(scope)`` returning
    these; ``parent_job_id`` is the job it was remixed from, when the service says so.
    """

    status: JobStatus
    model: str
    prompt: str
    seconds: int
    size: str
    created_at: int
    completed_at: int | None = None
    parent_job_id: str | None = None


@runtime_checkable
class Backend(Protocol):
    """A generator backend. Register instances through ``register_backends``.

    The lifecycle is the Videos API's: ``submit`` (or ``derive``) starts a job and
    returns at once; the host calls ``poll`` until the job is terminal, then ``download``
    for each variant the model offers. A backend must make ``poll`` and ``download``
    work in a fresh process for a job submitted by an earlier one, because the host
    resumes interrupted jobs instead of submitting them again.

    ``submit`` may return a finished status straight away; the host still polls once.
    Raise :class:`core.api.errors.BackendError` (with a ``code``) for an unknown job, a
    variant the job does not have, or a job that is not finished; the host records the
    message. ``download`` writes into ``dest`` and must not close it. ``derive`` is
    only called for relations the model ``supports``.

    A backend that holds resources (connection pools, files) may also define
    ``close() -> None``: it is optional, not part of this protocol's checks, and the host
    calls it when the application closes (:meth:`core.host.app.Reelvault.close`).

    One that polls many jobs in one request may define ``poll_many`` (:class:`PollsMany`).

    A backend that keeps working files per job (an input copy, a rendered video) may
    define ``release(job_id: str) -> None`` too, equally optional: the host calls it once
    the job's outputs are cataloged and no unfinished row uses that job any more, so a
    finished job leaves nothing behind in the work folder.
    """

    name: str
    description: str

    def models(self) -> Sequence[ModelInfo]: ...

    def submit(self, request: GenerationRequest) -> JobStatus: ...

    def poll(self, job_id: str) -> JobStatus: ...

    def download(self, job_id: str, variant: Variant, dest: BinaryIO) -> None: ...

    def derive(self, request: DerivedRequest) -> JobStatus: ...


class Outcome(enum.StrEnum):
    ALLOW = "allow"
    WARN = "warn"
    DENY = "deny"


@dataclass(frozen=True)
class PolicyDecision:
    """One rule's verdict on one request. ``plugin`` is filled in by the host."""

    outcome: Outcome
    rule_id: str
    reason: str
    plugin: str = ""


@dataclass(frozen=True)
class ImageFacts:
    """What the host found when it read a request's still, so rules need not re-probe it.

    ``path`` is read-only. ``problem`` says why the file is not an image reelvault can
    decode (then ``mime``, ``width`` and ``height`` are ``None``); only the ``reelvault
    policy check`` dry run gets that far, since ``generate`` refuses such a file first.
    """

    path: Path
    sha256: str
    bytes: int
    mime: str | None = None
    width: int | None = None
    height: int | None = None
    problem: str | None = None


@dataclass(frozen=True)
class ConsentGrant:
    """A person's recorded consent to the use of their likeness in particular images."""

    id: str
    subject: str
    granted_at: datetime
    expires_at: datetime | None = None


def _no_consent(image_sha256: str) -> ConsentGrant | None:
    return None


@dataclass(frozen=True)
class PolicyContext:
    """What a policy rule may know beyond the request itself, without opening the catalog.

    ``model`` is the requested model, or ``None`` when no loaded backend offers it (only
    the dry run gets that far). ``image`` describes the still the request uses: its
    ``input_image``, or a derived request's ``parent_input_image``. ``consent_for(sha256)``
    returns a consent that covers those bytes right now (granted, neither revoked nor
    expired), or ``None``.
    """

    model: ModelInfo | None
    image: ImageFacts | None = None
    consent_for: Callable[[str], ConsentGrant | None] = _no_consent


class VerificationState(enum.StrEnum):
    TRUSTED = "trusted"
    VALID = "valid"
    INVALID = "invalid"
    ABSENT = "absent"
    UNREADABLE = "unreadable"

    @property
    def summary(self) -> str:
        """What the state means, in the words every report and stored result uses."""
        return _VERIFICATION_SUMMARIES[self]


_VERIFICATION_SUMMARIES = {
    VerificationState.TRUSTED: "signed by a trusted signer; content matches",
    VerificationState.VALID: "signed, signer not trusted; content matches",
    VerificationState.INVALID: "credentials do not match this file",
    VerificationState.ABSENT: "no Content Credentials",
    VerificationState.UNREADABLE: "the file or its credentials could not be read",
}

GENERATION_ASSERTION = "org.reelvault.generation"
"""Label of the hash-bound C2PA assertion in which reelvault records how it made a clip."""


@dataclass(frozen=True)
class VerificationResult:
    """A verifier's finding about one file; ``details`` is kept as JSON.

    A verifier that reads embedded credentials puts the active manifest, normalised, under
    ``details["manifest"]``: ``label``, ``claim_generator``, ``signer``, ``issuer``,
    ``signed_at``, ``actions``, ``digital_source_type``, ``generation`` (the
    :data:`GENERATION_ASSERTION`'s data, if any) and ``ingredients``, each with ``title``,
    ``format``, ``relationship`` and its own normalised ``manifest`` (or ``None``). The
    catalog links files to their ingredients and rebuilds lineage from it. A manifest
    named again elsewhere in the tree is given in full once (at its shallowest place);
    its other places carry only what identifies it (label, title, signer, issuer, claim
    generator, ...) with ``"repeated": true``, and a tree past the verifier's limit ends in
    ``{"label": ..., "truncated": true}`` nodes, so a file cannot make it grow without
    bound.
    """

    state: VerificationState
    codes: tuple[str, ...] = ()
    details: Mapping[str, Any] = field(default_factory=dict)
    verifier: str = ""


@dataclass(frozen=True)
class ClipView:
    """A read-only summary of a cataloged generation, handed to ``clip_cataloged``."""

    id: str
    backend: str
    model: str
    prompt: str
    status: str
    parameters: Mapping[str, Any]
    source_asset_id: str | None
    parent_id: str | None
    relation: str | None
    video_path: Path | None
    thumbnail_path: Path | None
