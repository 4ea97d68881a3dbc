"""The assets grid (``/assets``): every cataloged file, filtered and paged like the clips
grid, placeholders marked and never served, and a JSON twin of the same data."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from catalog.models import Asset
from core.api.ids import asset_id
from core.web.app import create_app
from tests.web_support import Library, open_library

PLACEHOLDER_ID = "img_" + "ab" * 32


@dataclass(frozen=True)
class Files:
    library: Library
    stills: list[str]  # the two source stills
    videos: list[str]  # the four clips' videos
    imported: str  # a video that is no clip's output
    placeholder: str  # known only from credentials

    @property
    def every_id(self) -> set[str]:
        return {*self.stills, *self.videos, self.imported, self.placeholder}


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Files]:
    folder = tmp_path_factory.mktemp("web-assets")
    with open_library(folder) as lib:
        app = lib.app
        clips = (lib.first, lib.remix, lib.grandchild, lib.other)
        videos = [c.output_asset_id for c in clips if c.output_asset_id]
        stills = sorted({c.source_asset_id for c in clips if c.source_asset_id})
        movie = Path(folder / "holiday.mp4")
        movie.write_bytes(b"\x00\x00\x00\x18ftypmp42 not really a movie")
        stored = app.store.put_file(movie)
        imported = asset_id("video", stored.sha256)
        with app.session() as session:
            session.add(
                Asset(
                    id=imported,
                    sha256=stored.sha256,
                    kind="video",
                    mime="video/mp4",
                    bytes=stored.size,
                    stored_path=stored.stored_path,
                    original_name="holiday <cut>.mp4",
                )
            )
            session.add(
                Asset(
                    id=PLACEHOLDER_ID,
                    sha256="ab" * 32,
                    kind="image",
                    mime="image/jpeg",
                    is_placeholder=True,
                    original_name="a claimed ingredient",
                    placeholder_info={"title": "a claimed ingredient"},
                )
            )
            session.commit()
        lib.cli("tag", stills[0], "Keeper")
        lib.cli("tag", imported, "keeper", "travel")
        lib.cli("annotate", stills[1], "--title", "Forest <b>floor</b>", "--rating", "4")
        yield Files(lib, stills, videos, imported, PLACEHOLDER_ID)


@pytest.fixture(scope="module")
def client(files: Files) -> Iterator[TestClient]:
    with TestClient(create_app(files.library.app), base_url="http://127.0.0.1") as test_client:
        yield test_client


def card_ids(page: str) -> list[str]:
    return re.findall(r'<li class="card asset [^"]*" data-id="(\w+)"', page)


def twin(client: TestClient, query: str = "") -> dict:
    response = client.get(f"/assets?format=json{query}")
    assert response.status_code == 200, response.text
    return response.json()


def test_the_grid_lists_every_file_and_the_twin_the_same(client: TestClient, files: Files):
    page = client.get("/assets")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    shown = card_ids(page.text)
    assert set(shown) == files.every_id  # thumbnails and fitted sizes are parts of clips
    data = twin(client)
    assert [a["id"] for a in data["assets"]] == shown
    assert data["facets"]["kind"] == ["image", "video"] and "keeper" in data["facets"]["tag"]
    assert data["filters"]["n"] == 48 and data["older"] is None and data["newer"] is None


def test_each_card_links_to_its_page_with_a_picture(client: TestClient, files: Files):
    cards = {a["id"]: a for a in twin(client)["assets"]}
    lib = files.library
    still = cards[lib.first.source_asset_id or ""]
    assert still["page"] == f"http://127.0.0.1/stills/{still['id']}"
    assert still["thumbnail"] == still["media"] == f"http://127.0.0.1/media/{still['id']}"
    video = cards[lib.first.output_asset_id or ""]
    assert video["page"] == f"http://127.0.0.1/clips/{lib.first.id}"
    assert video["thumbnail"] == f"http://127.0.0.1/media/{lib.first.thumbnail_asset_id}"
    assert video["clip"] == lib.first.id
    imported = cards[files.imported]
    assert imported["page"] == f"http://127.0.0.1/assets/{files.imported}"
    assert imported["thumbnail"] is None and imported["media"] is not None
    page = client.get("/assets").text
    card = page.split(f'data-id="{files.imported}"', 1)[1].split("</li>\n", 1)[0]
    assert "icon-video" in card and "holiday &lt;cut&gt;.mp4" in card
    for link in (still["page"], video["page"], imported["page"], still["thumbnail"]):
        assert client.get(link).status_code == 200, link


def test_an_imported_video_has_a_playable_asset_page(client: TestClient, files: Files):
    page = client.get(f"/assets/{files.imported}").text
    assert f'<video class="source" src="http://127.0.0.1/media/{files.imported}"' in page
    assert '<img class="source"' not in page
    stored = client.get(f"/media/{files.imported}")
    assert stored.status_code == 200 and stored.content.endswith(b"not really a movie")


def test_placeholders_are_marked_and_not_served(client: TestClient, files: Files):
    card = {a["id"]: a for a in twin(client)["assets"]}[files.placeholder]
    assert card["placeholder"] == {"title": "a claimed ingredient"}
    assert card["thumbnail"] is None and card["media"] is None
    page = client.get("/assets").text
    html = page.split(f'data-id="{files.placeholder}"', 1)[1].split("</li>\n", 1)[0]
    assert "placeholder: file not imported" in html and "<img" not in html
    assert 'class="card asset kind-image placeholder"' in page
    assert client.get(f"/media/{files.placeholder}").status_code == 404
    assert "has not been imported" in client.get(card["page"]).text


def test_each_filter_narrows_the_grid(client: TestClient, files: Files):
    videos = {a["id"] for a in twin(client, "&kind=video")["assets"]}
    assert videos == {*files.videos, files.imported}
    images = {a["id"] for a in twin(client, "&kind=image")["assets"]}
    assert images == {*files.stills, files.placeholder}
    tagged = card_ids(client.get("/assets?tag=KEEPER").text)
    assert tagged == [files.imported, files.stills[0]]  # newest first
    assert card_ids(client.get("/assets?tag=keeper&kind=image").text) == [files.stills[0]]
    assert card_ids(client.get("/assets?q=holiday").text) == [files.imported]
    assert card_ids(client.get("/assets?q=floor").text) == [files.stills[1]]
    assert card_ids(client.get("/assets?mime=image%2Fjpeg&kind=image").text) != []
    assert card_ids(client.get("/assets?mime=video%2Fwebm").text) == []
    trusted = {a["id"] for a in twin(client, "&provenance=trusted")["assets"]}
    assert trusted and trusted < set(files.videos)  # the signed clips' videos
    assert files.library.first.output_asset_id not in trusted
    chips = re.findall(r'<a class="chip" href="([^"]+)">travel</a>', client.get("/assets").text)
    assert chips == ["http://127.0.0.1/assets?tag=travel"]


def test_the_grid_pages_by_cursor_and_by_number(client: TestClient, files: Files):
    everything = [a["id"] for a in twin(client)["assets"]]
    first = twin(client, "&n=3")
    assert [a["id"] for a in first["assets"]] == everything[:3] and first["newer"] is None
    second = client.get(first["older"] + "&format=json").json()
    assert [a["id"] for a in second["assets"]] == everything[3:6]
    back = client.get(second["newer"] + "&format=json").json()
    assert [a["id"] for a in back["assets"]] == everything[:3]
    seen, link = [], "/assets?n=4&format=json"
    while link:
        page = client.get(link).json()
        seen += [a["id"] for a in page["assets"]]
        link = page["older"] and page["older"] + "&format=json"
    assert seen == everything
    by_rating = twin(client, "&sort=rating&n=1")
    assert [a["id"] for a in by_rating["assets"]] == [files.stills[1]]
    assert by_rating["older"].endswith("page=2")
    by_title = twin(client, "&sort=title&n=2&page=2")
    assert by_title["newer"].endswith("page=1") and len(by_title["assets"]) == 2


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("kind=thumbnail", "unknown kind 'thumbnail' (choose image, video)"),
        ("provenance=great", "unknown provenance state 'great'"),
        ("sort=size", "unknown sort 'size' (choose created, title, rating)"),
        ("n=0", "n must be a whole number from 1 to 200"),
        ("n=201", "n must be a whole number from 1 to 200"),
        ("page=x", "page must be a whole number from 1 to 10000"),
        ("before=img_a&after=img_b", "give either before or after, not both"),
        ("sort=title&before=img_a", "before and after page the created order"),
        ("mime=" + "x" * 101, "mime must be at most 100 characters"),
        ("q=" + "x" * 2000, "search"),
    ],
)
def test_bad_parameters_give_a_400_with_one_line(client: TestClient, query: str, message: str):
    as_json = client.get(f"/assets?{query}&format=json")
    assert as_json.status_code == 400
    error = as_json.json()["error"]
    assert message in error and "\n" not in error and "Traceback" not in error
    page = client.get(f"/assets?{query}")
    assert page.status_code == 400 and "<h1>400</h1>" in page.text


def test_an_unknown_cursor_is_a_404(client: TestClient):
    response = client.get("/assets?before=img_nothing&format=json")
    assert response.status_code == 404 and "img_nothing" in response.json()["error"]


def test_no_secret_or_path_leaks(client: TestClient, files: Files):
    home = str(files.library.home)
    for text in (client.get("/assets").text, client.get("/assets?format=json").text):
        assert home not in text and str(Path(home).parent) not in text
        assert '"path"' not in text and "stored_path" not in text
        for secret in files.library.secrets:
            assert secret not in text
    assert "Forest &lt;b&gt;floor&lt;/b&gt;" in client.get("/assets").text


def test_the_nav_links_the_two_grids(client: TestClient):
    for address in ("/", "/assets"):
        page = client.get(address).text
        assert '<a href="http://127.0.0.1/assets">Assets</a>' in page
        assert '<a href="http://127.0.0.1/">Clips</a>' in page


def test_the_grid_keeps_the_security_headers_and_loopback_hosts(client: TestClient):
    response = client.get("/assets")
    assert "script-src" not in response.headers["content-security-policy"]
    assert response.headers["content-security-policy"].startswith("default-src 'none'")
    assert response.headers["x-content-type-options"] == "nosniff"
    assert client.get("/assets", headers={"host": "evil.example"}).status_code == 400
