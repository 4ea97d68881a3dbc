"""Provider profiles, keys and remote job ids (core.api.providers, public to plugins)."""

from __future__ import annotations

import stat
from datetime import date
from pathlib import Path

import pytest

from core.api.errors import ReelvaultError, RequestError
from core.api.providers import (
    ProviderProfile,
    Secret,
    api_key,
    describe_profiles,
    get_profile,
    job_id,
    key_source,
    load_profiles,
    split_job_id,
    webhook_secret,
)
from core.api.settings import Settings
from core.remote.profiles import add_profile, set_key
from tests.sora_support import write_config


def test_the_openai_profile_reads_the_environment_like_the_sdk(
    home: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    monkeypatch.setenv("OPENAI_WEBHOOK_SECRET", "whsec_abc")
    settings = Settings.load(home=home)
    profile = get_profile(settings)
    assert (profile.name, profile.api_root, profile.host) == (
        "openai",
        profile.base_url,
        "127.0.0.1",
    )
    assert api_key(settings, profile) == Secret("sk-env")
    assert webhook_secret(settings, profile) == Secret("whsec_abc")
    assert key_source(settings, profile) == "$OPENAI_API_KEY"
    monkeypatch.delenv("OPENAI_BASE_URL")
    assert get_profile(Settings.load(home=home)).retired_since(date(2026, 9, 24)) is not None


def test_added_profiles_keep_the_rest_of_the_config(home: Path):
    write_config(home, "# my library\npoll_timeout = 60\n")
    settings = Settings.load(home=home)
    azure = ProviderProfile("azure", "https://res.openai.azure.com", "AZ_KEY", azure=True)
    add_profile(settings, azure, make_default=True)
    text = (home / "config.toml").read_text()
    assert text.startswith("# my library\npoll_timeout = 60\n")
    reloaded = Settings.load(home=home)
    profile = get_profile(reloaded)  # the new default
    assert profile.api_root == "https://res.openai.azure.com/openai/v1"
    assert profile.query == {"api-version": "preview"}
    assert profile.auth_headers(Secret("k")) == {"api-key": "k"}
    rows = {r["name"]: r for r in describe_profiles(reloaded, date(2026, 11, 25))}
    assert rows["azure"]["default"] and rows["openai"]["status"] == "retired since 2026-09-24"
    assert rows["azure"]["key"].startswith("missing (set $AZ_KEY or `reelvault keys set azure`")


@pytest.mark.parametrize(
    ("profile", "message"),
    [
        (ProviderProfile("Bad Name", "https://x.test/v1"), "is not a profile name"),
        (ProviderProfile("openai", "https://x.test/v1"), "built in"),
        (ProviderProfile("x", "ftp://x.test"), "is not an http"),
        (ProviderProfile("x", "https://user:pw@x.test/v1"), "not in the URL"),
        (ProviderProfile("x", "https://x.test/v1", key_env="NOT-A-VAR"), "environment variable"),
        (ProviderProfile("x", "https://x.test/v1", api_version="preview"), "--azure"),
    ],
)
def test_bad_profiles_are_refused(home: Path, profile: ProviderProfile, message: str):
    with pytest.raises(RequestError, match=message):
        add_profile(Settings.load(home=home), profile, make_default=False)
    assert not (home / "config.toml").exists()


def test_hand_edited_profiles_are_checked_when_read(home: Path):
    write_config(home, '[providers.openai]\nbase_url = "https://elsewhere.test/v1"\n')
    with pytest.raises(ReelvaultError, match="openai is built in"):
        load_profiles(Settings.load(home=home))
    (home / "config.toml").write_text('[providers.Comet]\nbase_url = "https://c.test/v1"\n')
    with pytest.raises(ReelvaultError, match="not a profile name"):
        load_profiles(Settings.load(home=home))


def test_stored_keys_are_private_and_the_environment_wins(
    home: Path, monkeypatch: pytest.MonkeyPatch
):
    settings = Settings.load(home=home)
    set_key(settings, "openai", "  sk-stored  \n")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    profile = get_profile(settings, "openai")
    assert api_key(settings, profile) == Secret("sk-stored")
    assert stat.S_IMODE((home / "keys.toml").stat().st_mode) == 0o600
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    assert api_key(settings, profile) == Secret("sk-env")
    with pytest.raises(RequestError, match="spaces"):
        set_key(settings, "openai", "sk two parts")
    assert repr(api_key(settings, profile)) == "Secret('********')"
    assert "sk-env" not in f"{api_key(settings, profile)}"


def test_job_ids_carry_their_provider_and_are_checked():
    assert split_job_id(job_id("video_abc123", "cometapi")) == ("video_abc123", "cometapi")
    for bad in ("video_abc", "../etc@openai", "video_1@Bad Name", "video 1@openai"):
        with pytest.raises(RequestError, match="not a remote job id"):
            split_job_id(bad)
