"""reelvault's conformance kit, run against the Kite stand-in: the whole contract a
remote backend owes, in a dozen lines."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from kite_api import KiteServer

from core.testing.conformance import BackendConformance


class TestKite(BackendConformance):
    backend = "kite"
    model = "kite-1"
    seconds = 4
    key_env = "KITE_API_KEY"

    @pytest.fixture
    def stand_in(
        self, conformance_home: Path, monkeypatch: pytest.MonkeyPatch
    ) -> Iterator[KiteServer]:
        with KiteServer(api_key="key-kite-0123456789abcdef", render_seconds=0.1) as server:
            monkeypatch.setenv("KITE_API_KEY", server.api_key)
            monkeypatch.setenv("KITE_BASE_URL", server.base_url)
            yield server
