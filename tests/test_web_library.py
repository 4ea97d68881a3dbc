"""The web app's part of the library: the download button, named media responses, and
one line per verifier on a clip page."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from catalog.models import Asset
from core.library.files import slug
from core.web.app import create_app
from tests.web_support import Library, open_library


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Library]:
    with open_library(tmp_path_factory.mktemp("web-downloads")) as lib:
        yield lib


@pytest.fixture(scope="module")
def client(library: Library) -> Iterator[TestClient]:
    with TestClient(create_app(library.app), base_url="http://127.0.0.1") as test_client:
        yield test_client


def test_the_download_button_saves_the_stored_video_under_its_name(
    client: TestClient, library: Library
):
    first = library.first
    page = client.get(f"/clips/{first.id}").text
    match = re.search(r'<a id="download"[^>]* href="([^"]+)" download>', page)
    assert match, "no download button on the clip page"
    response = client.get(match.group(1))
    assert response.status_code == 200
    with library.app.session() as session:
        video = session.get(Asset, first.output_asset_id)
    assert video is not None and video.sha256 is not None
    assert response.content == library.app.store.local_path(video.sha256).read_bytes()
    expected = f"{first.id}-{slug(first.prompt)}.mp4"
    assert response.headers["content-disposition"] == f'attachment; filename="{expected}"'


def test_media_responses_are_named_inline(client: TestClient, library: Library):
    first = library.first
    thumb = client.get(f"/media/{first.thumbnail_asset_id}")
    assert thumb.headers["content-disposition"].startswith("inline; filename=")
    assert thumb.headers["content-disposition"].endswith('-thumbnail.jpg"')
    source = client.get(f"/media/{first.source_asset_id}")
    assert source.headers["content-disposition"].startswith(
        f'inline; filename="{first.source_asset_id}'
    )


def test_a_page_without_a_video_has_no_download_button(client: TestClient, library: Library):
    page = client.get(f"/clips/{library.rejected_id}").text
    assert 'id="download"' not in page


def test_clip_page_gives_the_latest_check_per_verifier(client: TestClient, library: Library):
    clip_id = library.grandchild.id
    twin = client.get(f"/clips/{clip_id}?format=json").json()
    history = twin["source"]["verifications"]
    verifiers = {v["verifier"] for v in history}
    page = client.get(f"/clips/{clip_id}").text
    table = page.split('class="verifications"', 1)[1].split("</table>", 1)[0]
    rows = re.findall(r"<tr>\s*<td>source</td>", table)
    assert len(rows) == len(verifiers)
    assert len(history) > len(verifiers), "the still is expected to be checked per clip"
    assert f"and {len(history) - 1} earlier check" in table
