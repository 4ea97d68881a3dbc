"""The models sora offers and where they are still served: profiles, sizes, retirements.

Kept apart from the HTTP calls because it is the part that changes with the calendar and
the provider list (a retired endpoint, a new profile), and because both ``reelvault
models`` and every request need it before anything is sent.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import date

from core.api import (
    BackendError,
    ModelInfo,
    ReelvaultError,
    Relation,
    RequestError,
    Settings,
    Variant,
)
from core.api.providers import (
    KNOWN_PROVIDERS,
    RETIREMENTS,
    ProviderProfile,
    get_profile,
    load_profiles,
)

NAME = "sora"
SECONDS = (4, 8, 12)
LANDSCAPE_PORTRAIT = ("720x1280", "1280x720")
ALL_SIZES = ("720x1280", "1280x720", "1024x1792", "1792x1024")
DEFAULT_SIZE = "720x1280"  # the API's own default
MODELS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("sora-2", LANDSCAPE_PORTRAIT, "Sora 2 (an alias: sora-2-2025-12-08 since 2026-01-13)"),
    ("sora-2-pro", ALL_SIZES, "Sora 2 Pro: higher fidelity, portrait and landscape up to 1792"),
    ("sora-2-2025-12-08", LANDSCAPE_PORTRAIT, "Sora 2, dated snapshot"),
    ("sora-2-2025-10-06", LANDSCAPE_PORTRAIT, "Sora 2, dated snapshot"),
    ("sora-2-pro-2025-10-06", ALL_SIZES, "Sora 2 Pro, dated snapshot"),
)
VARIANTS = (Variant.VIDEO, Variant.THUMBNAIL, Variant.SPRITESHEET)


class _Lifecycle:
    """Which models the backend offers and which provider profile may serve a request.

    A base of :class:`plugins.sora_backend.SoraBackend`, whose constructor sets the
    attributes declared here.
    """

    settings: Settings
    _today: Callable[[], date]

    def models(self) -> Sequence[ModelInfo]:
        status = self._lifecycle_status()
        return [
            ModelInfo(
                name=model,
                seconds=SECONDS,
                sizes=sizes,
                default_seconds=SECONDS[0],
                default_size=DEFAULT_SIZE,
                accepts_input_image=True,
                supports_remix=True,
                supports_edit=True,
                supports_extension=True,
                variants=VARIANTS,
                # A remix or edit takes a prompt only; an extension adds seconds at the
                # parent's size. Other values would be ignored by the service.
                derive_keeps_seconds=(Relation.REMIX_OF, Relation.EDIT_OF),
                derive_keeps_size=(Relation.REMIX_OF, Relation.EDIT_OF, Relation.EXTENSION_OF),
                status=status,
                description=description,
            )
            for model, sizes, description in MODELS
        ]

    def _lifecycle_status(self) -> str:
        """Where the models are served, for ``reelvault models``; never raises."""
        try:
            profiles = load_profiles(self.settings, NAME)
            default = get_profile(self.settings)
        except ReelvaultError as exc:
            return f"misconfigured: {exc}"
        today = self._today()
        alternatives = _serving(profiles, default, today)
        retired = default.retired_since(today)
        if retired is not None:
            text = f"retired at {default.host} since {retired}"
            if alternatives:
                return f"{text}; served by {', '.join(alternatives)} (--provider)"
            return f"{text}; add a provider (`reelvault providers add`)"
        notes = [f"available via {default.name} ({default.host})"]
        for host, when in RETIREMENTS.items():
            verb = "retired" if today >= when else "retiring"
            notes.append(f"{verb} at {host} {'since' if today >= when else 'on'} {when}")
        return "; ".join(dict.fromkeys(notes))

    def _retired_message(self, profile: ProviderProfile, since: date | None) -> str:
        today = self._today()
        try:
            profiles = load_profiles(self.settings, NAME)
        except ReelvaultError:
            profiles = {}
        others = _serving(profiles, profile, today)
        when = f" since {since}" if since else ""
        hints = []
        if others:
            hints.append("use another provider: " + ", ".join(f"--provider {o}" for o in others))
        addable = [cmd for name, cmd in KNOWN_PROVIDERS.items() if name not in profiles]
        if addable:
            hints.append("add one that serves it: " + " or ".join(f"`{c}`" for c in addable))
        hints.append(
            "or use another backend: --backend veo -m veo-3.0-generate-001 (Google), "
            "--backend fal or --backend replicate (`reelvault models` lists their models)"
        )
        hints.append("or make clips offline with --backend local")
        return (
            f"the Videos API is retired at {profile.host}{when} (provider {profile.name}); "
            + "; ".join(hints)
        )

    def _model_sizes(self, model: str) -> tuple[str, ...]:
        for name, sizes, _ in MODELS:
            if name == model:
                return sizes
        raise RequestError(f"sora has no model {model!r}")

    def _serving_profile(self, provider: str | None) -> ProviderProfile:
        """The profile a request runs at, refusing a retired endpoint before anything is
        sent (and before its key is looked for: a retired endpoint needs none)."""
        profile = get_profile(self.settings, provider)
        since = profile.retired_since(self._today())
        if since is not None:
            raise BackendError(self._retired_message(profile, since), code="retired")
        return profile


def _serving(
    profiles: Mapping[str, ProviderProfile], besides: ProviderProfile, today: date
) -> list[str]:
    """The other profiles whose endpoints still serve the API."""
    return [p.name for p in profiles.values() if p != besides and not p.retired_since(today)]
