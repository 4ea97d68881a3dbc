"""The web app in-process (Starlette's TestClient): pages, JSON twins, media, safety."""

from __future__ import annotations

import hashlib
import html
import re
import socket
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from prov.model import ProvActivity, ProvDocument
from starlette.testclient import TestClient

from catalog.models import Asset, Generation, VerificationRecord, utcnow
from catalog.readonly import CatalogReader
from core.api.errors import RequestError
from core.host.app import Reelvault
from core.web.app import create_app, is_loopback, serve
from tests.web_support import FIRST_PROMPT, Library, open_library

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Library]:
    with open_library(tmp_path_factory.mktemp("web")) as lib:
        yield lib


@pytest.fixture(scope="module")
def client(library: Library) -> Iterator[TestClient]:
    with TestClient(create_app(library.app), base_url="http://127.0.0.1") as test_client:
        yield test_client


def newest_first(library: Library) -> list[str]:
    with library.app.session() as session:
        rows = session.exec(
            sa.select(Generation.id).order_by(
                Generation.created_at.desc(),  # type: ignore[union-attr]
                Generation.id.desc(),  # type: ignore[union-attr]
            )
        ).all()
    return [r[0] for r in rows]


def lineage_svg(html: str) -> ET.Element:
    """The inline lineage picture of a page, parsed as XML (it must be well-formed SVG)."""
    match = re.search(r"<svg .*?</svg>", html, re.S)
    assert match, "no lineage picture on the page"
    return ET.fromstring(match.group(0))


# --- library page -------------------------------------------------------------------------


def test_library_shows_thumbnails_newest_first_with_a_json_twin(
    client: TestClient, library: Library
):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    cards = re.findall(r'<li class="card status-(\w+)" data-id="(clip_\w+)"', page.text)
    assert [clip_id for _, clip_id in cards] == newest_first(library)
    thumbs = re.findall(r'<img class="thumb" src="([^"]+)"', page.text)
    completed = (library.first, library.remix, library.grandchild, library.other)
    assert sorted(thumbs) == sorted(
        f"http://127.0.0.1/media/{c.thumbnail_asset_id}" for c in completed
    )
    assert dict((i, s) for s, i in cards)[library.rejected_id] == "rejected"
    assert '<link rel="alternate" type="application/json"' in page.text

    twin = client.get("/?format=json").json()
    assert [c["id"] for c in twin["clips"]] == newest_first(library)
    by_id = {c["id"]: c for c in twin["clips"]}
    assert by_id[library.first.id]["prompt"] == FIRST_PROMPT
    assert by_id[library.rejected_id]["thumbnail"] is None
    assert by_id[library.rejected_id]["provenance"] is None
    assert by_id[library.first.id]["provenance"] == "absent"  # checked, no credentials
    assert by_id[library.remix.id]["provenance"] == "trusted"  # signed after the first
    assert twin["facets"]["model"] == ["local-motion"]
    assert twin["older"] is None and twin["newer"] is None


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("q=TILT", {"remix"}),
        ("q=%22slowly%22", {"first"}),
        ("q=nothing+like+this", set()),
        ("status=rejected", {"rejected"}),
        ("model=local-motion&backend=local&status=completed",
         {"first", "remix", "grandchild", "other"}),
        ("provenance=trusted&q=zoom", {"other"}),
        ("provenance=absent", {"first"}),
        ("provenance=valid", set()),
        ("provenance=unchecked", {"rejected"}),
        ("provenance=trusted", {"remix", "grandchild", "other"}),
        ("backend=sora", set()),
    ],
)  # fmt: skip
def test_library_search_and_filters(client: TestClient, library: Library, query, expected):
    names = {
        library.first.id: "first",
        library.remix.id: "remix",
        library.grandchild.id: "grandchild",
        library.other.id: "other",
        library.rejected_id: "rejected",
    }
    clips = client.get(f"/?{query}&format=json").json()["clips"]
    assert {names[c["id"]] for c in clips} == expected
    page = client.get(f"/?{query}")
    assert page.status_code == 200
    assert ("No clips match." in page.text) == (not expected)


def test_library_pages_by_cursor_both_ways(client: TestClient, library: Library):
    seen, url, pages = [], "/?n=2&format=json", 0
    while url:
        data = client.get(url).json()
        assert 1 <= len(data["clips"]) <= 2
        seen += [c["id"] for c in data["clips"]]
        url, pages = data["older"], pages + 1
    assert seen == newest_first(library) and pages == 3
    assert "before=" in (data["newer"] or "") or "after=" in (data["newer"] or "")

    back, url = [], data["newer"]
    while url:
        data = client.get(url).json()
        back = [c["id"] for c in data["clips"]] + back
        url = data["newer"]
    assert back == seen[: len(back)] and back[0] == seen[0] and len(back) == 4

    html = client.get("/?n=2").text
    assert 'rel="next"' in html and 'rel="prev"' not in html


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("provenance=shiny", "unknown provenance state 'shiny'"),
        ("n=0", "n must be a whole number from 1 to 200"),
        ("n=many", "n must be a whole number from 1 to 200"),
        ("before=clip_nosuchclip", "no clip 'clip_nosuchclip' to continue the listing from"),
    ],
)
def test_library_refuses_bad_parameters_clearly(client: TestClient, query: str, message: str):
    page = client.get(f"/?{query}")
    assert page.status_code in (400, 404) and message in html.unescape(page.text)
    twin = client.get(f"/?{query}&format=json")
    assert twin.status_code == page.status_code and message in twin.json()["error"]


# --- clip page ------------------------------------------------------------------------------


def test_clip_page_plays_the_video_and_shows_everything_known(client: TestClient, library: Library):
    clip = library.grandchild
    page = client.get(f"/clips/{clip.id}")
    assert page.status_code == 200
    text = page.text
    video = f"http://127.0.0.1/media/{clip.output_asset_id}"
    assert f'<video id="player" controls preload="metadata" playsinline src="{video}"' in text
    assert f'poster="http://127.0.0.1/media/{clip.thumbnail_asset_id}"' in text
    assert f'<img class="source" src="http://127.0.0.1/media/{clip.source_asset_id}"' in text
    assert "push in" in text and "remix_of" in text
    assert "protected_names/names.protected" in text  # a policy decision row
    assert "Content Credentials (C2PA)" in text and "state-trusted" in text
    assert "signed by reelvault development signer" in text
    assert "Motion plan" in text  # the local backend explains its reading of the prompt
    assert "<script" not in text

    twin = client.get(f"/clips/{clip.id}?format=json").json()
    assert twin["id"] == clip.id and twin["parent_id"] == library.remix.id
    assert twin["urls"]["video"] == f"http://127.0.0.1/media/{clip.output_asset_id}"
    assert [c["id"] for c in twin["lineage"]["clips"]] == [library.first.id]
    assert {d["outcome"] for d in twin["policy_decisions"]} == {"allow"}
    assert twin["video"]["verifications"][0]["state"] == "trusted"


def test_clip_page_draws_the_lineage_with_thumbnails_that_link(
    client: TestClient, library: Library
):
    lib = library
    svg = lineage_svg(client.get(f"/clips/{lib.remix.id}").text)
    nodes = svg.findall(f"{SVG}a")
    links = {n.get("data-id"): n.get("href") for n in nodes}
    assert links == {
        lib.first.source_asset_id: f"http://127.0.0.1/stills/{lib.first.source_asset_id}",
        lib.first.id: f"http://127.0.0.1/clips/{lib.first.id}",
        lib.remix.id: f"http://127.0.0.1/clips/{lib.remix.id}",
        lib.grandchild.id: f"http://127.0.0.1/clips/{lib.grandchild.id}",
    }
    images = {n.get("data-id"): n.find(f"{SVG}image").get("href") for n in nodes}
    assert (
        images[lib.grandchild.id] == f"http://127.0.0.1/media/{lib.grandchild.thumbnail_asset_id}"
    )
    assert (
        images[lib.first.source_asset_id] == f"http://127.0.0.1/media/{lib.first.source_asset_id}"
    )
    targets = [n.get("data-id") for n in nodes if "target" in n.get("class", "")]
    assert targets == [lib.remix.id]
    assert len(svg.findall(f"{SVG}path")) == 3  # still→first→remix→grandchild
    for url in images.values():  # every node's picture is really there
        assert client.get(url).status_code == 200


def test_a_rejected_attempt_has_a_page_without_a_video(client: TestClient, library: Library):
    page = client.get(f"/clips/{library.rejected_id}")
    assert page.status_code == 200
    assert "<video" not in page.text and "this attempt is rejected" in page.text
    assert "deny" in page.text and "Mickey Mouse" in page.text


def test_still_page_shows_every_clip_made_from_it(client: TestClient, library: Library):
    still_id = library.first.source_asset_id
    svg = lineage_svg(client.get(f"/stills/{still_id}").text)
    shown = {n.get("data-id") for n in svg.findall(f"{SVG}a")}
    assert shown == {still_id} | library.all_ids - {library.other.id}
    twin = client.get(f"/stills/{still_id}?format=json").json()
    assert twin["asset"]["original_name"] == "harbor.jpg"


def test_lineage_in_every_format(client: TestClient, library: Library):
    target = library.grandchild.id
    svg = client.get(f"/lineage/{target}")
    assert svg.headers["content-type"] == "image/svg+xml"
    assert len(ET.fromstring(svg.text).findall(f"{SVG}a")) == 4
    assert client.get(f"/lineage/{target}?format=json").json()["target"] == target
    assert client.get(f"/lineage/{target}?format=dot").text.startswith("digraph lineage {")
    assert client.get(f"/lineage/{target}?format=mermaid").text.startswith("flowchart TD")
    doc = ProvDocument.deserialize(
        content=client.get(f"/lineage/{target}?format=prov-json").text, format="json"
    )
    assert len(list(doc.get_records(ProvActivity))) == 3
    bad = client.get(f"/lineage/{target}?format=png")
    assert bad.status_code == 400 and "unknown lineage format 'png'" in html.unescape(bad.text)


def test_unknown_and_ambiguous_ids_are_404_with_a_reason(client: TestClient):
    page = client.get("/clips/clip_nosuchclip")
    assert page.status_code == 404 and "no clip or asset matches" in page.text
    twin = client.get("/clips/clip_nosuchclip?format=json")
    assert twin.status_code == 404 and "no clip or asset matches" in twin.json()["error"]
    assert client.get("/no/such/page").status_code == 404


# --- media ------------------------------------------------------------------------------------


def test_media_is_served_whole_and_by_range(client: TestClient, library: Library):
    video_id = library.first.output_asset_id
    with library.app.session() as session:
        asset = session.get(Asset, video_id)
    data = library.app.store.path_for(asset.sha256).read_bytes()

    whole = client.get(f"/media/{video_id}")
    assert whole.status_code == 200 and hashlib.sha256(whole.content).hexdigest() == asset.sha256
    assert whole.headers["content-type"] == "video/mp4"
    assert whole.headers["accept-ranges"] == "bytes"

    part = client.get(f"/media/{video_id}", headers={"Range": "bytes=100-1099"})
    assert part.status_code == 206 and part.content == data[100:1100]
    assert part.headers["content-range"] == f"bytes 100-1099/{len(data)}"
    tail = client.get(f"/media/{video_id}", headers={"Range": "bytes=-64"})
    assert tail.status_code == 206 and tail.content == data[-64:]
    beyond = client.get(f"/media/{video_id}", headers={"Range": f"bytes={len(data) + 10}-"})
    assert beyond.status_code == 416

    head = client.head(f"/media/{video_id}")
    assert head.status_code == 200 and int(head.headers["content-length"]) == len(data)


@pytest.mark.parametrize(
    "path",
    [
        "/media/..%2F..%2Fcatalog.db",
        "/media/%2e%2e",
        "/media/../catalog.db",
        "/media/config.toml",
        "/media/img_",
        "/media/tmp",
        "/static/../templates/base.html",
        "/static/..%2F..%2Fweb.py",
    ],
)
def test_no_request_reads_outside_the_store(client: TestClient, library: Library, path: str):
    response = client.get(path)
    assert response.status_code == 404
    for secret in (b"plugins.protected_names", b"SQLite format", b"{% extends"):
        assert secret not in response.content


def test_placeholders_and_missing_files_are_not_served(client: TestClient, library: Library):
    sha = hashlib.sha256(b"never stored").hexdigest()
    with library.app.session() as session:
        session.add(Asset(id=f"img_{sha}", sha256=sha, kind="image", mime="image/jpeg"))
        session.add(
            Asset(id="img_placeholder", kind="image", mime="image/jpeg", is_placeholder=True)
        )
    missing = client.get(f"/media/img_{sha}?format=json")
    assert missing.status_code == 404 and "missing from the store" in missing.json()["error"]
    assert client.get("/media/img_placeholder").status_code == 404


# --- safety -----------------------------------------------------------------------------------


def test_the_app_is_read_only(client: TestClient, library: Library):
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        assert client.request(method, "/").status_code == 405
        assert client.request(method, f"/media/{library.first.output_asset_id}").status_code == 405
    reader = CatalogReader(library.app.engine)
    try:
        with reader.session() as session, pytest.raises(sa.exc.DBAPIError):
            session.execute(sa.text("UPDATE generations SET progress = 0"))
    finally:
        reader.close()


def test_reading_never_blocks_a_writer(library: Library):
    reader = CatalogReader(library.app.engine)
    done = threading.Event()
    try:
        with reader.session() as session:
            session.execute(sa.text("SELECT count(*) FROM generations")).one()  # snapshot open

            def write() -> None:
                with library.app.session() as writer:
                    writer.execute(sa.text("UPDATE generations SET progress = progress"))
                done.set()

            thread = threading.Thread(target=write)
            thread.start()
            assert done.wait(10), "a reader held a lock that kept the writer waiting"
            thread.join()
    finally:
        reader.close()


def test_pages_send_a_strict_content_security_policy(client: TestClient, library: Library):
    for url in ("/", f"/clips/{library.first.id}", f"/media/{library.first.output_asset_id}"):
        headers = client.get(url).headers
        assert "default-src 'none'" in headers["content-security-policy"]
        assert "script-src" not in headers["content-security-policy"]
        assert headers["x-content-type-options"] == "nosniff"


def test_only_loopback_names_are_answered_by_default(client: TestClient):
    assert client.get("/", headers={"host": "evil.example"}).status_code == 400
    assert client.get("/", headers={"host": "localhost:8000"}).status_code == 200
    assert client.get("/", headers={"host": "[::1]:8000"}).status_code == 200


def test_a_prompt_full_of_markup_is_shown_and_never_run(app: Reelvault, still: Path):
    from core.generation import generate

    prompt = '</title><script>alert("x")</script> & <b>bold</b> pan right'
    clip = generate(app, still, prompt, seconds=1, size="640x360").generation
    with TestClient(create_app(app), base_url="http://127.0.0.1") as client:
        picture = ET.fromstring(client.get(f"/lineage/{clip.id}").text)  # well-formed XML
        page = client.get(f"/clips/{clip.id}").text
    for svg in (picture, lineage_svg(page)):
        assert not list(svg.iter(f"{SVG}script"))
        assert prompt in [title.text for title in svg.iter(f"{SVG}title")]
    assert "<script" not in page and "&lt;script&gt;" in page


def test_json_twins_never_say_where_files_lie_on_this_machine(client: TestClient, library: Library):
    """A page is for whoever can reach the server: no path under the user's home."""
    still_id = library.first.source_asset_id
    for url in (
        f"/clips/{library.grandchild.id}?format=json",
        f"/stills/{still_id}?format=json",
        f"/lineage/{library.grandchild.id}?format=json",
        "/?format=json",
    ):
        text = client.get(url).text
        assert str(library.home) not in text and '"path"' not in text, url
    twin = client.get(f"/clips/{library.grandchild.id}?format=json").json()
    assert twin["video"]["sha256"] and twin["source"]["original_name"] == "harbor.jpg"
    assert library.cli("show", library.grandchild.id, "--json").stdout.count('"path"') >= 3


def test_no_secret_reaches_a_page(client: TestClient, library: Library):
    for url in (
        "/?format=json",
        f"/clips/{library.first.id}?format=json",
        f"/clips/{library.first.id}",
    ):
        text = client.get(url).text
        assert not [secret for secret in library.secrets if secret in text]


def test_loopback_detection_and_a_busy_port(library: Library):
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0")
    with pytest.raises(RequestError, match="cannot resolve host"):
        is_loopback("no-such-host.invalid")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(RequestError, match=f"cannot listen on 127.0.0.1 port {port}"):
            serve(library.app, "127.0.0.1", port, announce=lambda url: None)


# --- scale ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_the_library_stays_fast_with_100000_clips(app: Reelvault):
    """Keyset paging and indexed filters: every page costs about the same, however deep."""
    total, now = 100_000, utcnow()
    rows = [
        {
            "id": f"clip_{i:012d}",
            "backend": "local" if i % 3 else "sora",
            "model": "local-motion" if i % 3 else "sora-2",
            "prompt": f"shot {i} of the {'harbor' if i % 10 else 'forest'} at dusk",
            "seconds": 4,
            "size": "1280x720",
            "parameters": {},
            "status": "completed" if i % 7 else "failed",
            "details": {},
            "created_at": now - timedelta(seconds=total - i),
            "updated_at": now,
            "progress": 100,
            "attempts": 0,
            "output_asset_id": None,
        }
        for i in range(total)
    ]
    with app.engine.begin() as conn:
        conn.execute(sa.insert(Generation.__table__), rows)  # type: ignore[attr-defined]
        conn.execute(
            sa.insert(Asset.__table__),  # type: ignore[attr-defined]
            [{"id": "vid_x", "sha256": "a" * 64, "kind": "video", "mime": "video/mp4",
              "created_at": now, "is_placeholder": False}],
        )  # fmt: skip
        conn.execute(
            sa.update(Generation.__table__)  # type: ignore[attr-defined]
            .where(Generation.id == "clip_000000000500")
            .values(output_asset_id="vid_x")
        )
        conn.execute(
            sa.insert(VerificationRecord.__table__),  # type: ignore[attr-defined]
            [{"asset_id": "vid_x", "verifier": "t", "state": "trusted", "codes": [],
              "details": {}, "checked_at": now}],
        )  # fmt: skip
    rows.clear()

    with TestClient(create_app(app), base_url="http://127.0.0.1") as client:
        client.get("/?format=json")  # warm up: templates compiled, connections open

        def timed(url: str) -> tuple[float, Any]:
            start = time.perf_counter()
            response = client.get(url)
            assert response.status_code == 200, response.text
            cost = time.perf_counter() - start
            return cost, response.json() if "format=json" in url else response.text

        first_cost, first = timed("/?format=json")
        assert first["clips"][0]["id"] == "clip_000000099999" and len(first["clips"]) == 48
        deep_cost, deep = timed("/?format=json&before=clip_000000000100")
        assert [c["id"] for c in deep["clips"][:2]] == ["clip_000000000099", "clip_000000000098"]
        filtered_cost, filtered = timed("/?format=json&model=sora-2&status=failed&q=forest")
        assert all(c["model"] == "sora-2" and "forest" in c["prompt"] for c in filtered["clips"])
        trusted_cost, trusted = timed("/?format=json&provenance=trusted")
        assert [c["id"] for c in trusted["clips"]] == ["clip_000000000500"]
        html_cost, page = timed("/?q=harbor&before=clip_000000050000")
        assert page.count('class="card') == 48 and "clip_000000049999" in page
    costs = {
        "first page": first_cost,
        "deep page": deep_cost,
        "filtered": filtered_cost,
        "provenance": trusted_cost,  # checks each clip's latest verification, all 100,000
        "html": html_cost,
    }
    assert max(costs.values()) < 1.0, costs  # measured: 15-60 ms each on SQLite
