"""A 10,000-deep remix chain through every lineage view: no recursion limit anywhere.

The chain is inserted straight into the catalog (making 10,000 real clips would take
hours); the views only read rows, so they cannot tell the difference.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result
from prov.model import ProvActivity, ProvDocument
from starlette.testclient import TestClient

from catalog.db import session_scope
from catalog.models import Asset, Generation, utcnow
from catalog.queries import get_generation
from core.api.settings import Settings
from core.cli import cli
from core.cli.library import tree_lines
from core.host.app import Reelvault
from core.views import json_text
from core.views.report import generation_summary, lineage_dict
from core.web.app import create_app
from tests.conftest import fresh_catalog_url

DEPTH = 10_000
STILL = "img_" + "ab" * 8


def clip_id(i: int) -> str:
    return f"clip_{i:06d}"


@dataclass(frozen=True)
class Chain:
    app: Reelvault
    home: Path
    db_url: str
    middle: str
    last: str

    def cli(self, *args: str) -> Result:
        argv = ["--home", str(self.home), "--db", self.db_url, *args]
        result = CliRunner().invoke(cli, argv, catch_exceptions=True)
        if result.exception and not isinstance(result.exception, SystemExit):
            raise result.exception
        assert result.exit_code == 0, (result.exit_code, result.output[-2000:])
        return result


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chain]:
    home = tmp_path_factory.mktemp("deep") / "home"
    with fresh_catalog_url(home) as url:
        app = Reelvault(Settings.load(home=home, db_url=url))
        now = utcnow()
        still = {
            "id": STILL,
            "sha256": "ab" * 32,
            "kind": "image",
            "mime": "image/png",
            "original_name": "still.png",
            "created_at": now,
            "is_placeholder": False,
        }
        rows = [
            {
                "id": clip_id(i),
                "backend": "local",
                "model": "local-motion",
                "prompt": f"step {i}",
                "seconds": 1,
                "size": "640x360",
                "parameters": {},
                "status": "completed",
                "details": {},
                "source_asset_id": STILL,
                "parent_id": clip_id(i - 1) if i else None,
                "relation": "remix_of" if i else None,
                "created_at": now + timedelta(seconds=i),
                "updated_at": now,
                "progress": 100,
                "attempts": 0,
            }
            for i in range(DEPTH)
        ]
        with app.engine.begin() as conn:
            conn.execute(sa.insert(Asset.__table__), [still])  # type: ignore[attr-defined]
            conn.execute(sa.insert(Generation.__table__), rows)  # type: ignore[attr-defined]
        try:
            yield Chain(app, home, url, clip_id(DEPTH // 2), clip_id(DEPTH - 1))
        finally:
            app.close()


@contextmanager
def deep_parsing() -> Iterator[None]:
    """Room for :func:`json.loads`, which recurses once per level, to read the chain back
    (two levels per clip). Only the test's reading needs it: reelvault writes without."""
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 3 * DEPTH + 1_000))
    try:
        yield
    finally:
        sys.setrecursionlimit(limit)


def chain_ids(clips: list[dict[str, Any]]) -> list[str]:
    """The ids down a nested chain, walked without recursion."""
    ids = []
    while clips:
        (clip,) = clips
        ids.append(clip["id"])
        clips = clip["children"]
    return ids


def test_lineage_json_of_a_deep_chain(chain: Chain) -> None:
    text = chain.cli("lineage", chain.middle, "--json").stdout
    with deep_parsing():
        data = json.loads(text)
    assert data["target"] == chain.middle and data["source"]["id"] == STILL
    assert chain_ids(data["clips"]) == [clip_id(i) for i in range(DEPTH)]


def test_each_lineage_entry_is_the_clips_summary(chain: Chain) -> None:
    """The nested entries are built from narrow rows: the same keys, in the same order,
    and the same values as the summary of the whole clip (what listings show)."""
    with session_scope(chain.app.engine) as session:
        data = lineage_dict(session, get_generation(session, chain.middle))
        entry, depth = data["clips"][0], -(DEPTH // 2)
        while entry["id"] != clip_id(DEPTH // 2 + 2):
            clip = session.get(Generation, entry["id"])
            assert clip is not None
            expected = {**generation_summary(clip), "depth": depth}
            assert list(entry) == [*expected, "children"]
            assert {k: v for k, v in entry.items() if k != "children"} == expected
            (entry,), depth = entry["children"], depth + 1


def test_lineage_tree_of_a_deep_chain(chain: Chain) -> None:
    lines = chain.cli("lineage", chain.last).stdout.splitlines()
    assert "still.png" in lines[0]
    shown = [m.group(0) for line in lines if (m := re.search(r"clip_\d{6}", line))]
    assert shown == [clip_id(i) for i in range(DEPTH)]
    assert "◀" in lines[-1]
    # a chain stays at one indent: the text grows with the clips, not with their square
    assert max(len(line) for line in lines) < 200


def test_lineage_formats_of_a_deep_chain(chain: Chain) -> None:
    dot = chain.cli("lineage", chain.middle, "--format", "dot").stdout
    assert dot.count("->") == DEPTH  # still -> first clip, then one edge per remix
    mermaid = chain.cli("lineage", chain.middle, "--format", "mermaid").stdout
    assert mermaid.count("-->") == DEPTH
    prov = chain.cli("lineage", chain.middle, "--format", "prov-json").stdout
    doc = ProvDocument.deserialize(content=prov, format="json")
    assert sum(1 for r in doc.get_records(ProvActivity)) == DEPTH


def test_web_pages_of_a_deep_chain(chain: Chain) -> None:
    with TestClient(create_app(chain.app), base_url="http://127.0.0.1") as client:
        page = client.get(f"/clips/{chain.middle}")
        assert page.status_code == 200, page.text[-500:]
        assert page.text.count('class="node') >= DEPTH
        twin = client.get(f"/clips/{chain.middle}?format=json")
        as_json = client.get(f"/lineage/{chain.last}?format=json")
        assert twin.status_code == 200 and as_json.status_code == 200
        with deep_parsing():
            twin_data, lineage_data = twin.json(), as_json.json()
        assert chain_ids(twin_data["lineage"]["clips"])[-1] == chain.last
        assert len(chain_ids(lineage_data["clips"])) == DEPTH
        still = client.get(f"/stills/{STILL}")
        assert still.status_code == 200


SAMPLES: list[Any] = [
    {"a": [1, 2.5, None, True, False, 'é\n"x', {}, []], "b": {"c": {"d": [[]]}}, "z": -0.0},
    {"big": 10**30, "nested": [{"x": [1, {"y": "ü"}]}], "": ""},
    [],
    {},
    "text",
    7,
]


@pytest.mark.parametrize("value", SAMPLES)
@pytest.mark.parametrize(
    "options",
    [
        {},
        {"indent": 2, "ensure_ascii": False},
        {"indent": 2, "sort_keys": True},
        {"separators": (",", ":"), "ensure_ascii": False, "allow_nan": False},
    ],
)
def test_deep_json_writes_what_json_dumps_writes(value: Any, options: dict[str, Any]) -> None:
    assert json_text.dumps(value, **options) == json.dumps(value, **options)


def test_deep_json_caps_indentation_and_refuses_what_json_refuses() -> None:
    nested: dict[str, Any] = {"children": []}
    for _ in range(3):
        nested = {"children": [nested]}
    capped = json_text.dumps(nested, indent=2, indent_levels=2)
    assert json.loads(capped) == nested
    assert max(len(line) - len(line.lstrip()) for line in capped.splitlines()) == 4
    with pytest.raises(TypeError):
        json_text.dumps({"when": object()})
    with pytest.raises(ValueError):
        json_text.dumps([float("nan")], allow_nan=False)
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(ValueError):
        json_text.dumps(loop)


def test_tree_branches_with_guides_and_keeps_a_chain_in_one_column() -> None:
    def clip(name: str, *children: dict[str, Any]) -> dict[str, Any]:
        return {"id": name, "relation": "remix_of", "status": "completed", "backend": "b",
                "model": "m", "prompt": "p", "children": list(children)}  # fmt: skip

    family = [clip("a", clip("b", clip("c"), clip("d", clip("e"))))]
    lines = [line.split("  remix_of")[0] for line in tree_lines(family, target="e")]
    assert lines == ["└── a", "    b", "    ├── c", "    └── d", "        e"]
