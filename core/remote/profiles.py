"""Writing provider profiles and keys: ``reelvault providers`` and ``reelvault keys``.

The read side (what a backend needs to reach a provider) is public in
:mod:`core.api.providers`; changing a user's config.toml or keys file is the CLI's business,
so it lives here, outside the plugin API.
"""

from __future__ import annotations

from pathlib import Path

import tomlkit

from core.api.errors import RequestError
from core.api.files import write_atomic
from core.api.providers import (
    API_KEY,
    BUILTIN_NAMES,
    ENV_PATTERN,
    KINDS,
    OPENAI,
    SORA,
    ProviderProfile,
    check_name,
    check_url,
    get_profile,
    keys_path,
    load_document,
    read_keys,
)
from core.api.settings import Settings


def add_profile(settings: Settings, profile: ProviderProfile, *, make_default: bool) -> None:
    """Add or replace a profile in config.toml, keeping the rest of the file as it was."""
    check_name(profile.name)
    if profile.name == OPENAI:
        raise RequestError(
            "the openai profile is built in: configure it with OPENAI_BASE_URL and "
            "OPENAI_API_KEY, or add a profile under another name"
        )
    if profile.name in BUILTIN_NAMES:
        raise RequestError(
            f"the {profile.name} profile is built in; add a profile under another name"
        )
    if profile.kind not in KINDS:
        raise RequestError(f"--kind must be one of {', '.join(KINDS)}, not {profile.kind!r}")
    if profile.kind != SORA and (profile.azure or profile.api_version):
        raise RequestError("--azure and --api-version apply to sora profiles only")
    check_url(profile.base_url)
    for env in (profile.key_env, profile.webhook_secret_env):
        if env is not None and not ENV_PATTERN.match(env):
            raise RequestError(f"{env!r} is not an environment variable name")
    if profile.api_version is not None and not profile.azure:
        raise RequestError("--api-version applies to Azure OpenAI profiles (--azure) only")
    doc = load_document(settings.config_path)
    providers = doc.setdefault("providers", tomlkit.table(is_super_table=True))
    entry = tomlkit.table()
    if profile.kind != SORA:
        entry["kind"] = profile.kind
    entry["base_url"] = profile.base_url
    for key in ("key_env", "api_version", "webhook_secret_env"):
        if (value := getattr(profile, key)) is not None:
            entry[key] = value
    if profile.azure:
        entry["azure"] = True
    providers[profile.name] = entry
    if make_default:
        doc["default_provider"] = profile.name
    write_atomic(settings.config_path, tomlkit.dumps(doc))


def remove_profile(settings: Settings, name: str) -> None:
    if name in BUILTIN_NAMES:
        raise RequestError(f"the {name} profile is built in and cannot be removed")
    doc = load_document(settings.config_path)
    providers = doc.get("providers", {})
    if name not in providers:
        raise RequestError(f"no provider profile named {name!r}")
    del providers[name]
    if doc.get("default_provider") == name:
        del doc["default_provider"]
    write_atomic(settings.config_path, tomlkit.dumps(doc))


def set_default(settings: Settings, name: str) -> None:
    get_profile(settings, name)  # refuses an unknown name
    doc = load_document(settings.config_path)
    doc["default_provider"] = name
    write_atomic(settings.config_path, tomlkit.dumps(doc))


def set_key(settings: Settings, name: str, value: str, kind: str = API_KEY) -> None:
    """Store a key in the keys file (mode 0600), replacing any earlier one."""
    check_name(name)
    value = value.strip()
    if not value:
        raise RequestError("the key is empty")
    if any(c.isspace() for c in value) or not value.isprintable():
        raise RequestError("the key contains spaces or control characters; paste it alone")
    path = keys_path(settings)
    read_keys(settings)  # refuses a keys file others can read before adding to it
    doc = load_document(path)
    table = doc.setdefault(name, tomlkit.table())
    table[kind] = value
    write_atomic(path, tomlkit.dumps(doc), mode=0o600)


def remove_key(settings: Settings, name: str, kind: str = API_KEY) -> None:
    path = keys_path(settings)
    if kind not in read_keys(settings).get(name, {}):
        raise RequestError(f"the keys file holds no {kind.replace('_', ' ')} for {name!r}")
    doc = load_document(path)
    del doc[name][kind]
    if not doc[name]:
        del doc[name]
    write_atomic(path, tomlkit.dumps(doc), mode=0o600)


def write_config(path: Path, text: str) -> None:
    """Replace config.toml whole and atomically, keeping its mode (for other writers of
    the user's configuration, such as ``reelvault media migrate``)."""
    write_atomic(path, text)
