"""Provider profiles and API keys for the remote services backends talk to.

A *provider profile* says where a service is served, which API it speaks (its ``kind``:
``sora`` for the OpenAI Videos API, ``veo`` for Google's Gemini API, ``fal`` for fal's
queue, ``replicate`` for Replicate's predictions) and how to authenticate there.
OpenAI announced that its own endpoint for the sora models shuts down on 2026-09-24, while
compatible providers keep serving the same routes; so every remote job names the
profile it runs under and the backend never assumes one host.

- The built-in profile ``openai`` reads ``OPENAI_BASE_URL``, ``OPENAI_API_KEY`` and
  ``OPENAI_WEBHOOK_SECRET`` exactly as the OpenAI SDK does; ``gemini`` reads
  ``GOOGLE_GEMINI_BASE_URL`` and ``GEMINI_API_KEY``; ``fal`` reads ``FAL_KEY`` and
  ``replicate`` reads ``REPLICATE_API_TOKEN``, as their SDKs do.
- Other profiles live in the home's ``config.toml`` under ``[providers.NAME]``
  (``kind``, ``base_url``, ``key_env``, ``azure``, ``api_version``, ``webhook_secret_env``);
  ``default_provider = "NAME"`` picks the one used when a request names none (for its
  kind; other kinds use their built-in profile).
- Keys given with ``reelvault keys set NAME`` live in ``keys.toml`` in the home, mode
  0600, never in the catalog. An environment variable named by the profile wins over it.

This module is public: plugins may import it (it touches neither the catalog nor the
network). Keys are handed out as :class:`Secret` so that a stray ``repr`` or f-string in
a log line or traceback shows stars, not the key.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from core.api.deferred import deferred_import
from core.api.errors import ReelvaultError, RequestError
from core.api.settings import Settings

if TYPE_CHECKING:
    import tomlkit
else:  # only for editing the keys and profiles files: every command would pay for it
    tomlkit = deferred_import("tomlkit")

__all__ = [
    "API_KEY",
    "AZURE_API_ROOT",
    "BUILTIN_NAMES",
    "DEFAULT_AZURE_API_VERSION",
    "ENV_PATTERN",
    "KEYS_FILE",
    "KINDS",
    "KNOWN_PROVIDERS",
    "NAME_PATTERN",
    "OPENAI",
    "OPENAI_BASE_URL",
    "RETIREMENTS",
    "SORA",
    "WEBHOOK_SECRET",
    "ProviderProfile",
    "Secret",
    "api_key",
    "builtin_profiles",
    "check_name",
    "check_url",
    "default_provider",
    "describe_profiles",
    "get_profile",
    "job_id",
    "key_source",
    "keys_path",
    "load_document",
    "load_profiles",
    "openai_profile",
    "read_keys",
    "split_job_id",
    "stored_key_names",
    "webhook_secret",
]

OPENAI = "openai"
OPENAI_BASE_URL = "https://api.openai.com/v1"
SORA = "sora"
KINDS = (SORA, "veo", "fal", "replicate")
"""The APIs a profile can speak; each is served by the backend of the same name."""
_BUILTINS: Mapping[str, tuple[str, str, str, str | None]] = {
    # kind: (profile name, default base URL, key variable, base URL variable)
    "veo": ("gemini", "https://generativelanguage.googleapis.com", "GEMINI_API_KEY",
            "GOOGLE_GEMINI_BASE_URL"),
    "fal": ("fal", "https://queue.fal.run", "FAL_KEY", None),
    "replicate": ("replicate", "https://api.replicate.com/v1", "REPLICATE_API_TOKEN", None),
}  # fmt: skip
BUILTIN_NAMES = (OPENAI, *(entry[0] for entry in _BUILTINS.values()))
KEYS_FILE = "keys.toml"
API_KEY = "api_key"
WEBHOOK_SECRET = "webhook_secret"
AZURE_API_ROOT = "/openai/v1"
DEFAULT_AZURE_API_VERSION = "preview"

RETIREMENTS: Mapping[str, date] = {"api.openai.com": date(2026, 9, 24)}
"""Hosts that stopped serving the Videos API, and since when (OpenAI's announcement)."""

KNOWN_PROVIDERS: Mapping[str, str] = {
    "cometapi": "reelvault providers add cometapi --base-url https://api.cometapi.com/v1 "
    "--key-env COMETAPI_KEY",
    "azure": "reelvault providers add azure --base-url https://RESOURCE.openai.azure.com "
    "--azure --key-env AZURE_OPENAI_API_KEY",
}
"""Compatible providers known to serve the same routes, as the command that adds each."""

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")
ENV_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_VIDEO_ID = re.compile(r"^[A-Za-z0-9_-]{1,150}$")


class Secret:
    """A key or webhook secret that does not show itself by accident."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret itself: only for the one header or HMAC that needs it."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class ProviderProfile:
    """Where a service is served, which API it speaks, how reelvault authenticates there."""

    name: str
    base_url: str
    key_env: str | None = None
    azure: bool = False
    api_version: str | None = None
    webhook_secret_env: str | None = None
    builtin: bool = False
    kind: str = SORA  # last, so positional construction stays as it was

    @property
    def host(self) -> str:
        return urlsplit(self.base_url).hostname or self.base_url

    @property
    def api_root(self) -> str:
        """The URL the API's paths (``/videos``...) are appended to.

        Azure OpenAI serves the same routes under ``/openai/v1`` of the resource's URL.
        """
        root = self.base_url.rstrip("/")
        if self.azure and not root.endswith(AZURE_API_ROOT):
            root += AZURE_API_ROOT
        if self.kind == "veo" and not re.search(r"/v1(beta|alpha)?$", root):
            root += "/v1beta"  # the Gemini API's version, as its SDK adds it
        return root

    @property
    def query(self) -> dict[str, str]:
        """Query parameters every request carries (Azure's ``api-version``)."""
        if not self.azure:
            return {}
        return {"api-version": self.api_version or DEFAULT_AZURE_API_VERSION}

    def auth_headers(self, key: Secret) -> dict[str, str]:
        if self.azure:
            return {"api-key": key.reveal()}
        if self.kind == "veo":
            return {"x-goog-api-key": key.reveal()}
        if self.kind == "fal":
            return {"Authorization": f"Key {key.reveal()}"}
        return {"Authorization": f"Bearer {key.reveal()}"}

    def retired_since(self, today: date) -> date | None:
        """The day this profile's host stopped serving the API, if it has."""
        if self.kind != SORA:
            return None
        when = RETIREMENTS.get(self.host)
        return when if when is not None and today >= when else None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "base_url": self.base_url,
            "api_root": self.api_root,
            "key_env": self.key_env,
            "azure": self.azure,
            "api_version": self.query.get("api-version"),
            "webhook_secret_env": self.webhook_secret_env,
            "builtin": self.builtin,
        }


# --- reading -----------------------------------------------------------------------------


def openai_profile() -> ProviderProfile:
    """The built-in profile, configured from the environment like the OpenAI SDK."""
    return ProviderProfile(
        name=OPENAI,
        base_url=os.environ.get("OPENAI_BASE_URL") or OPENAI_BASE_URL,
        key_env="OPENAI_API_KEY",
        webhook_secret_env="OPENAI_WEBHOOK_SECRET",
        builtin=True,
    )


def builtin_profiles() -> dict[str, ProviderProfile]:
    """One profile per kind, configured from the environment like each provider's SDK."""
    profiles = {OPENAI: openai_profile()}
    for kind, (name, base_url, key_env, base_env) in _BUILTINS.items():
        url = (os.environ.get(base_env) if base_env else None) or base_url
        profiles[name] = ProviderProfile(
            name=name, base_url=url, kind=kind, key_env=key_env, builtin=True
        )
    return profiles


def load_profiles(settings: Settings, kind: str | None = None) -> dict[str, ProviderProfile]:
    """Every profile (of ``kind``): the built-in ones first, then config.toml's, by name."""
    profiles = builtin_profiles()
    table = settings.config.get("providers", {})
    if not isinstance(table, Mapping):
        raise ReelvaultError(f"{settings.config_path}: [providers] must be a table")
    for name, entry in sorted(table.items()):
        profiles[name] = _profile_from_config(settings, name, entry)
    return {n: p for n, p in profiles.items() if kind is None or p.kind == kind}


def _profile_from_config(settings: Settings, name: str, entry: object) -> ProviderProfile:
    where = f"{settings.config_path}: [providers.{name}]"
    if not isinstance(entry, Mapping) or not isinstance(entry.get("base_url"), str):
        raise ReelvaultError(f"{where} needs a base_url")
    if name in BUILTIN_NAMES:
        raise ReelvaultError(f"{where}: {name} is built in; add a profile under another name")
    try:
        check_name(name)
        kind = entry.get("kind", SORA)
        if kind not in KINDS:
            raise RequestError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
        return ProviderProfile(
            name=name,
            base_url=check_url(entry["base_url"]),
            kind=kind,
            key_env=_optional_str(entry, "key_env"),
            azure=bool(entry.get("azure", False)),
            api_version=_optional_str(entry, "api_version"),
            webhook_secret_env=_optional_str(entry, "webhook_secret_env"),
        )
    except RequestError as exc:
        raise ReelvaultError(f"{where}: {exc}") from None


def _optional_str(entry: Mapping[str, Any], key: str) -> str | None:
    value = entry.get(key)
    if value is not None and not isinstance(value, str):
        raise RequestError(f"{key} must be a string")
    return value or None


def default_provider(settings: Settings) -> str:
    value = settings.config.get("default_provider", OPENAI)
    return value if isinstance(value, str) and value else OPENAI


def get_profile(settings: Settings, name: str | None = None, kind: str = SORA) -> ProviderProfile:
    """The named profile of ``kind`` (or that kind's default); an unknown name lists the
    known ones of the kind."""
    profiles = load_profiles(settings, kind)
    wanted = name or default_provider(settings)
    if name is None and wanted not in profiles:  # the default is another kind's
        wanted = next(p.name for p in builtin_profiles().values() if p.kind == kind)
    if wanted not in profiles:
        known = ", ".join(profiles)
        other = load_profiles(settings).get(wanted)
        what = (
            f"provider {wanted!r} is a {other.kind} provider, not {kind}"
            if other
            else f"no provider profile named {wanted!r}"
        )
        raise RequestError(
            f"{what} (known: {known}); add one with `reelvault providers add`"
            + (f" --kind {kind}" if kind != SORA else "")
        )
    return profiles[wanted]


def api_key(settings: Settings, profile: ProviderProfile) -> Secret | None:
    """The profile's key: its environment variable first, then the keys file."""
    return _secret(settings, profile, profile.key_env, API_KEY)


def webhook_secret(settings: Settings, profile: ProviderProfile) -> Secret | None:
    """The secret that signs this profile's webhook deliveries (``whsec_...``)."""
    return _secret(settings, profile, profile.webhook_secret_env, WEBHOOK_SECRET)


def key_source(settings: Settings, profile: ProviderProfile, kind: str = API_KEY) -> str:
    """Where the key would come from, for messages: names a place, never shows the key."""
    env = profile.key_env if kind == API_KEY else profile.webhook_secret_env
    if env and os.environ.get(env):
        return f"${env}"
    if read_keys(settings).get(profile.name, {}).get(kind):
        return f"{settings.home / KEYS_FILE} [{profile.name}]"
    where = f"${env} or " if env else ""
    option = " --webhook-secret" if kind == WEBHOOK_SECRET else ""
    return f"missing (set {where}`reelvault keys set {profile.name}{option}`)"


def _secret(
    settings: Settings, profile: ProviderProfile, env: str | None, kind: str
) -> Secret | None:
    if env and (value := os.environ.get(env, "").strip()):
        return Secret(value)
    stored = read_keys(settings).get(profile.name, {}).get(kind)
    return Secret(stored) if isinstance(stored, str) and stored else None


def keys_path(settings: Settings) -> Path:
    return settings.home / KEYS_FILE


def read_keys(settings: Settings) -> dict[str, dict[str, str]]:
    path = keys_path(settings)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return {}
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ReelvaultError(
            f"{path} can be read by other users, so its keys are not used; run `chmod 600 {path}`"
        )
    data = load_document(path).unwrap()
    return {k: dict(v) for k, v in data.items() if isinstance(v, Mapping)}


def stored_key_names(settings: Settings) -> dict[str, list[str]]:
    """Which secrets the keys file holds, per profile: names only, never values."""
    return {name: sorted(kinds) for name, kinds in sorted(read_keys(settings).items())}


def describe_profiles(settings: Settings, today: date) -> list[dict[str, Any]]:
    """Every profile for ``reelvault providers list``: where keys come from, never keys."""
    default = default_provider(settings)
    rows = []
    for profile in load_profiles(settings).values():
        since = profile.retired_since(today)
        rows.append(
            {
                **profile.to_json(),
                "default": profile.name == default,
                "key": key_source(settings, profile),
                "webhook_secret": key_source(settings, profile, WEBHOOK_SECRET),
                "status": f"retired since {since}" if since else "available",
            }
        )
    return rows


# --- remote job ids ----------------------------------------------------------------------


def job_id(video_id: str, provider: str) -> str:
    """The id reelvault records for a remote video: the API's id plus the profile.

    A job must be finished by the same provider that started it, from any later
    process, so the profile travels with the id: ``video_123@cometapi``.
    """
    return f"{video_id}@{provider}"


def split_job_id(value: str) -> tuple[str, str]:
    """``(video_id, provider)`` from a recorded job id; refuses anything malformed.

    The id comes back from the catalog and ends up in URLs, so it is checked first.
    """
    video_id, sep, provider = value.rpartition("@")
    if not sep or not _VIDEO_ID.match(video_id) or not NAME_PATTERN.match(provider):
        raise RequestError(f"{value!r} is not a remote job id (VIDEO_ID@PROVIDER)")
    return video_id, provider


def check_name(name: str) -> str:
    if not NAME_PATTERN.match(name):
        raise RequestError(
            f"{name!r} is not a profile name: lowercase letters, digits, - and _, "
            "starting with a letter"
        )
    return name


def check_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RequestError(f"{url!r} is not an http(s) URL")
    if parts.username or parts.password:
        raise RequestError("put the key in --key-env or `reelvault keys set`, not in the URL")
    return url


def load_document(path: Path) -> tomlkit.TOMLDocument:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return tomlkit.document()
    try:
        return tomlkit.parse(text)
    except tomlkit.exceptions.ParseError as exc:
        raise ReelvaultError(f"{path}: not valid TOML: {exc}") from None
