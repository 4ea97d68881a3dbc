"""The library page organised: tag chips, the tag filter, sorting, the search box's limit."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from catalog.search import MAX_SEARCH_TEXT
from core.web.app import create_app
from tests.web_support import Library, open_library


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Library]:
    with open_library(tmp_path_factory.mktemp("web-organise")) as lib:
        lib.cli("tag", lib.first.id, "Keeper", "harbour")
        lib.cli("tag", lib.other.id, "keeper")
        lib.cli("annotate", lib.other.id, "--title", "Alpha", "--rating", "3")
        lib.cli("annotate", lib.grandchild.id, "--title", "beta", "--rating", "5",
                "--note", "Use <this> one, backlit")  # fmt: skip
        yield lib


@pytest.fixture(scope="module")
def client(library: Library) -> Iterator[TestClient]:
    with TestClient(create_app(library.app), base_url="http://127.0.0.1") as test_client:
        yield test_client


def card_ids(page: str) -> list[str]:
    return re.findall(r'<li class="card status-\w+" data-id="(clip_\w+)"', page)


def test_cards_show_tags_as_chips_linking_to_the_tag_filter(client: TestClient, library):
    page = client.get("/").text
    cards = page.split('<li class="card')
    first_card = next(card for card in cards if f'data-id="{library.first.id}"' in card)
    chips = re.findall(r'<a class="chip" href="([^"]+)">([^<]+)</a>', first_card)
    assert [text for _, text in chips] == ["harbour", "keeper"]
    assert chips[1][0] == "http://127.0.0.1/?tag=keeper"
    assert '<option value="keeper">keeper</option>' in page  # the tag menu
    twin = {c["id"]: c for c in client.get("/?format=json").json()["clips"]}
    assert twin[library.first.id]["tags"] == ["harbour", "keeper"]
    assert twin[library.other.id]["title"] == "Alpha" and twin[library.other.id]["rating"] == 3


def test_the_tag_filter_narrows_the_grid(client: TestClient, library):
    tagged = card_ids(client.get("/?tag=keeper").text)
    assert tagged == [library.other.id, library.first.id]  # newest first
    assert card_ids(client.get("/?tag=KEEPER&q=zoom").text) == [library.other.id]
    assert card_ids(client.get("/?tag=nobody").text) == []


def test_sorting_by_title_and_rating_pages_by_number(client: TestClient, library):
    by_title = client.get("/?sort=title&format=json").json()
    assert [c["id"] for c in by_title["clips"][:2]] == [library.other.id, library.grandchild.id]
    by_rating = card_ids(client.get("/?sort=rating").text)
    assert by_rating[:2] == [library.grandchild.id, library.other.id]
    first_page = client.get("/?sort=rating&n=2&format=json").json()
    assert [c["id"] for c in first_page["clips"]] == by_rating[:2]
    assert first_page["older"].endswith("page=2") and first_page["newer"] is None
    second = client.get(first_page["older"] + "&format=json").json()
    assert [c["id"] for c in second["clips"]] == by_rating[2:4]
    assert second["newer"].endswith("page=1")
    assert client.get("/?sort=size").status_code == 400
    assert client.get("/?sort=title&before=" + library.first.id).status_code == 400


def test_the_clip_page_shows_title_note_rating_and_chips(client: TestClient, library):
    page = client.get(f"/clips/{library.grandchild.id}").text
    assert '<h1 class="title">beta</h1>' in page
    assert "Use &lt;this&gt; one" in page and "★★★★★" in page
    first = client.get(f"/clips/{library.first.id}").text
    assert re.findall(r'<a class="chip"[^>]*>([^<]+)</a>', first) == ["harbour", "keeper"]
    twin = client.get(f"/clips/{library.first.id}?format=json").json()
    assert twin["tags"] == ["harbour", "keeper"] and twin["rating"] is None


def test_search_finds_file_names_titles_tags_notes_prompts_and_refuses_long_text(client, library):
    harbor_clips = {library.first.id, library.remix.id, library.grandchild.id, library.rejected_id}
    assert set(card_ids(client.get("/?q=harbor.jpg").text)) == harbor_clips
    assert card_ids(client.get("/?q=alpha").text) == [library.other.id]
    assert card_ids(client.get("/?q=harbour").text) == [library.first.id]  # a tag
    assert card_ids(client.get("/?q=backlit").text) == [library.grandchild.id]  # a note
    assert card_ids(client.get("/?q=hold").text) == [library.other.id]  # a prompt
    too_long = client.get("/?q=" + "x" * (MAX_SEARCH_TEXT + 1))
    assert too_long.status_code == 400 and str(MAX_SEARCH_TEXT) in too_long.text
    assert f'maxlength="{MAX_SEARCH_TEXT}"' in client.get("/").text
