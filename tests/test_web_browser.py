"""End to end: ``reelvault serve`` in a real process, pages in headless Chromium.

Debian's Chromium (``/usr/bin/chromium``, installed by ``.ci/run``) is driven through
Playwright's Python package, which brings its own driver but is never asked to download
a browser. The checks are the ones a person makes by looking: the thumbnails show, the
lineage picture shows its nodes with their pictures, and the video plays and seeks (which
only works because the server answers Range requests with 206). Screenshots of both
pages are saved in the test's temporary folder.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import Page, Response, sync_playwright

from catalog.models import Asset
from core.library.files import slug
from tests.web_support import Library, open_library

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",  # without these, Chromium keeps dialling out
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
]
START_TIMEOUT = 60.0

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Library]:
    with open_library(tmp_path_factory.mktemp("browser")) as lib:
        yield lib


@pytest.fixture
def server(library: Library, tmp_path: Path) -> Iterator[str]:
    """``reelvault serve --port 0`` as a user would start it; yields its address."""
    log = (tmp_path / "server.log").open("w")
    command = [sys.executable, "-m", "core", "--home", str(library.home), "--db",
               library.db_url, "serve", "--port", "0"]  # fmt: skip
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=log, text=True, env={**os.environ}
    )
    try:
        first_line: list[str] = []
        reader = threading.Thread(
            target=lambda: first_line.append(process.stdout.readline()),  # type: ignore[union-attr]
            daemon=True,
        )
        reader.start()
        reader.join(START_TIMEOUT)
        assert first_line and first_line[0].startswith("serving http://127.0.0.1:"), (
            first_line,
            (tmp_path / "server.log").read_text(),
        )
        yield first_line[0].split()[1]
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@pytest.fixture
def page(tmp_path: Path) -> Iterator[Page]:
    assert CHROMIUM.is_file(), "Debian's chromium is missing: apt-get install chromium"
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),  # a fresh profile, removed with tmp_path
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport={"width": 1280, "height": 900},
        )
        try:
            yield context.new_page()
        finally:
            context.close()


def distinct_colours(png: bytes) -> int:
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).reshape(-1, 3)
    return len(np.unique(pixels, axis=0))


def test_library_and_clip_pages_render_play_and_seek(
    server: str, page: Page, library: Library, tmp_path: Path
):
    media: list[tuple[str, int, str | None]] = []

    def record(response: Response) -> None:
        if "/media/" in response.url:
            media.append((response.url, response.status, response.request.headers.get("range")))

    page.on("response", record)
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))

    # -- the library: every completed clip's thumbnail is decoded and drawn
    page.goto(server, wait_until="load")
    thumbs = page.eval_on_selector_all(
        "img.thumb",
        "imgs => imgs.map(i => ({src: i.src, done: i.complete, w: i.naturalWidth,"
        " shown: i.getBoundingClientRect().width}))",
    )
    assert len(thumbs) == 4, thumbs
    assert all(t["done"] and t["w"] == 640 and t["shown"] > 100 for t in thumbs), thumbs
    assert page.locator("li.card").count() == 5
    page.screenshot(path=str(tmp_path / "library.png"), full_page=True)

    # -- a clip page, reached by clicking its card
    remix = library.remix
    page.click(f'li.card[data-id="{remix.id}"] a')
    page.wait_for_url(f"**/clips/{remix.id}")
    page.wait_for_load_state("load")

    graph = page.locator("svg.lineage-graph")
    nodes = graph.locator("a.node")
    assert nodes.count() == 4  # still → first → remix → grandchild
    hrefs = {nodes.nth(i).get_attribute("data-id") for i in range(nodes.count())}
    assert hrefs == {remix.source_asset_id, library.first.id, remix.id, library.grandchild.id}
    sizes = page.evaluate(
        """async () => Promise.all(
            [...document.querySelectorAll('svg.lineage-graph image')].map(async node => {
                const img = new Image();
                img.src = node.href.baseVal;
                await img.decode();
                return img.naturalWidth;
            }))"""
    )
    assert sizes and all(w >= 640 for w in sizes), sizes
    # the picture itself: thumbnails of textured stills make a colourful image, not a blank box
    assert distinct_colours(graph.screenshot()) > 2000

    playback = page.evaluate(
        """async () => {
            const v = document.querySelector('video#player');
            v.muted = true;
            if (v.readyState < 1) {
                await new Promise(r => v.addEventListener('loadedmetadata', r, {once: true}));
            }
            await v.play();
            await new Promise(r => setTimeout(r, 400));
            const playedTo = v.currentTime;
            v.pause();
            const seeked = new Promise(r => v.addEventListener('seeked', r, {once: true}));
            v.currentTime = 0.5;
            await seeked;
            if (v.readyState < 2) {
                await new Promise(r => v.addEventListener('canplay', r, {once: true}));
            }
            return {duration: v.duration, playedTo, seekedTo: v.currentTime,
                    readyState: v.readyState, width: v.videoWidth, error: v.error && v.error.code};
        }"""
    )
    assert playback["error"] is None and playback["width"] == 640, playback
    assert playback["duration"] == pytest.approx(1.0, abs=0.05), playback
    assert playback["playedTo"] > 0.05, playback  # it played
    assert playback["seekedTo"] == pytest.approx(0.5, abs=0.05), playback  # and seeked
    assert playback["readyState"] >= 2, playback  # with the frame there to show

    video_url = f"/media/{remix.output_asset_id}"
    ranged = [(status, rng) for url, status, rng in media if url.endswith(video_url) and rng]
    assert ranged and all(status == 206 for status, _ in ranged), media

    page.screenshot(path=str(tmp_path / "clip.png"), full_page=True)
    for shot in ("library.png", "clip.png"):
        assert distinct_colours((tmp_path / shot).read_bytes()) > 2000
    assert not problems, problems


def test_the_download_button_saves_the_stored_video(server: str, page: Page, library: Library):
    """Clicking "Download video" on a clip page saves the stored bytes under the clip's name."""
    first = library.first
    page.goto(f"{server.rstrip('/')}/clips/{first.id}", wait_until="load")
    with page.expect_download() as download_info:
        page.click("a#download")
    download = download_info.value
    assert download.suggested_filename == f"{first.id}-{slug(first.prompt)}.mp4"
    with library.app.session() as session:
        video = session.get(Asset, first.output_asset_id)
    assert video is not None and video.sha256 is not None
    stored = library.app.store.local_path(video.sha256).read_bytes()
    assert Path(download.path()).read_bytes() == stored


def test_tag_chips_filter_the_grid_and_the_sort_menu_orders_it(
    server: str, page: Page, library: Library
):
    """What a person does with the menus and chips, with no script on the page: a chip is
    a link to the filtered grid, and the filter form submits the chosen order."""
    library.cli("tag", library.other.id, "keeper")
    library.cli("tag", library.first.id, "keeper", "dawn")
    library.cli("annotate", library.grandchild.id, "--rating", "5")
    library.cli("annotate", library.first.id, "--rating", "2")

    def cards() -> list[str | None]:
        found = page.locator("li.card")
        return [found.nth(i).get_attribute("data-id") for i in range(found.count())]

    page.goto(server, wait_until="load")
    page.click(f'li.card[data-id="{library.first.id}"] a.chip:text("keeper")')
    page.wait_for_url("**/?tag=keeper")
    assert cards() == [library.other.id, library.first.id]
    assert page.locator('select[name="tag"]').input_value() == "keeper"

    page.select_option('select[name="tag"]', "")
    page.select_option('select[name="sort"]', "rating")
    page.click('form.filters button[type="submit"]')
    page.wait_for_url("**sort=rating**")
    assert cards()[:2] == [library.grandchild.id, library.first.id]
    assert len(cards()) == 5


def test_the_assets_grid_is_one_click_away_and_shows_every_picture(
    server: str, page: Page, library: Library, tmp_path: Path
):
    """From the clips grid the nav link opens the assets grid, where every still and
    every clip's video (by its thumbnail) is drawn, and the kind menu narrows it."""
    page.goto(server, wait_until="load")
    page.click('nav.sections a:text("Assets")')
    page.wait_for_url("**/assets")
    clips = (library.first, library.remix, library.grandchild, library.other)
    videos = {c.output_asset_id for c in clips}
    stills = {c.source_asset_id for c in clips}
    shown = page.eval_on_selector_all(
        "li.card",
        "cards => cards.map(c => ({id: c.dataset.id, img: c.querySelector('img.thumb')}))"
        ".map(c => ({id: c.id, w: c.img ? c.img.naturalWidth : 0}))",
    )
    assert {c["id"] for c in shown} == videos | stills, shown
    assert all(c["w"] > 0 for c in shown), shown  # every picture decoded
    page.screenshot(path=str(tmp_path / "assets.png"), full_page=True)

    page.select_option('select[name="kind"]', "image")
    page.click('form.filters button[type="submit"]')
    page.wait_for_url("**kind=image**")
    found = page.locator("li.card")
    assert {found.nth(i).get_attribute("data-id") for i in range(found.count())} == stills
    page.click(f'li.card[data-id="{library.first.source_asset_id}"] > a')
    page.wait_for_url("**/stills/**")
    assert page.locator("img.source").evaluate("i => i.naturalWidth") > 0
