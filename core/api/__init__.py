"""The public plugin API: the one package plugins (and the catalog) import.

``from core.api import hookimpl, Backend, ModelInfo, RequestError`` is all a backend
needs; the submodules say more:

- :mod:`core.api.hookspecs`: every hook, with its docstring as the reference;
- :mod:`core.api.types`: the dataclasses and protocols hooks take and return;
- :mod:`core.api.errors`: the whole exception tree;
- :mod:`core.api.settings`: the read side of a home's settings;
- :mod:`core.api.ids`: catalog identifiers as users type them;
- :mod:`core.api.providers`: provider profiles and keys, for remote backends;
- :mod:`core.api.times`: timestamps as people read them;
- :mod:`core.api.files`: :func:`write_atomic`, replacing a file whole (portable);
- :mod:`core.api.remote`: the HTTP client rules every remote backend shares (imported
  on its own: `from core.api.remote import RemoteService`, it imports httpx at first use);
- :mod:`core.api.http_backend`: :class:`HttpBackend`, the base of fal, Replicate and Veo
  (settings, one service per provider profile, ``models`` status, ``webhook_url``);
- :mod:`core.api.input_maps`: per-model input tables (:func:`mapped_models`);
- :mod:`core.api.deferred`: :func:`deferred_import`, a module imported at its first use,
  so that loading a plugin stays quick;

Everything else under ``core`` is the host's own business and may change without notice;
a test holds plugins and the catalog to this package.
"""

from __future__ import annotations

from core.api import providers
from core.api.capabilities import CancelsJobs, ListsJobs, PollsMany
from core.api.errors import (
    AmbiguousIdError,
    BackendError,
    CatalogError,
    JobInterrupted,
    JobStopped,
    MissingMediaError,
    NotFoundError,
    PluginError,
    PolicyDenied,
    ReelvaultError,
    RequestError,
    StorageError,
    WebhookRejected,
)
from core.api.files import DISK_ERRNOS, disk_error, write_atomic
from core.api.hookspecs import (
    PROJECT,
    hookimpl,
)
from core.api.ids import (
    ASSET_PREFIXES,
    CLIP_PREFIX,
    asset_id,
    short,
)
from core.api.processes import process_ended
from core.api.settings import (
    Settings,
    c2pa_settings,
    check_config_keys,
)
from core.api.times import timestamp_text
from core.api.types import (
    FIT_MODES,
    GENERATION_ASSERTION,
    Backend,
    ClipView,
    ConsentGrant,
    DerivedRequest,
    GenerationRequest,
    GenerationStatus,
    ImageFacts,
    JobState,
    JobStatus,
    ModelInfo,
    Outcome,
    PolicyContext,
    PolicyDecision,
    ProgressCallback,
    Relation,
    RemoteJob,
    Size,
    Variant,
    VerificationResult,
    VerificationState,
)

__all__ = [
    "ASSET_PREFIXES",
    "CLIP_PREFIX",
    "DISK_ERRNOS",
    "FIT_MODES",
    "GENERATION_ASSERTION",
    "PROJECT",
    "AmbiguousIdError",
    "Backend",
    "BackendError",
    "CancelsJobs",
    "CatalogError",
    "ClipView",
    "ConsentGrant",
    "DerivedRequest",
    "GenerationRequest",
    "GenerationStatus",
    "ImageFacts",
    "JobInterrupted",
    "JobState",
    "JobStatus",
    "JobStopped",
    "ListsJobs",
    "MissingMediaError",
    "ModelInfo",
    "NotFoundError",
    "Outcome",
    "PluginError",
    "PolicyContext",
    "PolicyDecision",
    "PolicyDenied",
    "PollsMany",
    "ProgressCallback",
    "ReelvaultError",
    "Relation",
    "RemoteJob",
    "RequestError",
    "Settings",
    "Size",
    "StorageError",
    "Variant",
    "VerificationResult",
    "VerificationState",
    "WebhookRejected",
    "asset_id",
    "c2pa_settings",
    "check_config_keys",
    "disk_error",
    "hookimpl",
    "process_ended",
    "providers",
    "short",
    "timestamp_text",
    "write_atomic",
]
