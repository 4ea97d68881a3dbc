"""The conformance kit (core.testing.conformance), run by every new remote backend."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from core.testing import VideosAPIServer
from core.testing.conformance import BackendConformance
from core.testing.fal_api import FalQueueServer
from core.testing.gemini_api import GeminiAPIServer
from core.testing.replicate_api import ReplicateServer


class TestVeo(BackendConformance):
    backend = "veo"
    model = "veo-3.0-generate-001"
    seconds = 4
    key_env = "GEMINI_API_KEY"

    @pytest.fixture
    def stand_in(self, conformance_home: Path, monkeypatch) -> Iterator[GeminiAPIServer]:
        with GeminiAPIServer(api_key="AIzaConformance-Kit-0123456789ab", render_seconds=0.1) as s:
            monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", s.base_url)
            monkeypatch.setenv("GEMINI_API_KEY", s.api_key)
            yield s


class TestFal(BackendConformance):
    backend = "fal"
    model = "fal-ai/kling-video/v2.1/standard/image-to-video"
    key_env = "CONFORMANCE_FAL_KEY"
    supports_cancel = True  # generate --cancel-remote stops the job there
    extra_args = ("--provider", "falkit")

    @pytest.fixture
    def stand_in(self, conformance_home: Path, monkeypatch) -> Iterator[FalQueueServer]:
        with FalQueueServer(api_key="fal-conformance:0123456789abcdef") as server:
            monkeypatch.setenv(self.key_env, server.api_key)
            self.cli("providers", "add", "falkit", "--kind", "fal", "--base-url",
                     server.base_url, "--key-env", self.key_env)  # fmt: skip
            yield server


class TestReplicate(BackendConformance):
    backend = "replicate"
    model = "kwaivgi/kling-v2.1"
    key_env = "CONFORMANCE_REPLICATE_TOKEN"
    supports_cancel = True  # generate --cancel-remote stops the job there
    extra_args = ("--provider", "repkit")

    @pytest.fixture
    def stand_in(self, conformance_home: Path, monkeypatch) -> Iterator[ReplicateServer]:
        with ReplicateServer(api_key="r8_Conformance0123456789abcdef") as server:
            monkeypatch.setenv(self.key_env, server.api_key)
            self.cli("providers", "add", "repkit", "--kind", "replicate", "--base-url",
                     server.base_url, "--key-env", self.key_env)  # fmt: skip
            yield server


class TestSora(BackendConformance):
    backend = "sora"
    model = "sora-2"
    seconds = 4
    key_env = "CONFORMANCE_SORA_KEY"
    extra_args = ("--provider", "sorakit")

    @pytest.fixture
    def stand_in(self, conformance_home: Path, monkeypatch) -> Iterator[VideosAPIServer]:
        with VideosAPIServer(api_key="sk-conformance-0123456789abcdef", render_seconds=0.1,
                             poll_after_ms=10) as server:  # fmt: skip
            monkeypatch.setenv(self.key_env, server.api_key)
            monkeypatch.delenv("OPENAI_WEBHOOK_SECRET", raising=False)
            self.cli("providers", "add", "sorakit", "--base-url", server.base_url,
                     "--key-env", self.key_env)  # fmt: skip
            yield server
