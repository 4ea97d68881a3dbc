from __future__ import annotations

import io
from pathlib import Path

from PIL import Image, ImageDraw

from core.media.probe import ORIENTATION_TAG, fit_image, probe_image


def sideways_photo(path: Path) -> Path:
    """640x360 pixels on disk, tagged to be shown turned a quarter (360x640 upright), with
    a red mark in the stored top-left corner, which shows up top-right once upright."""
    image = Image.new("RGB", (640, 360), "navy")
    ImageDraw.Draw(image).rectangle((0, 0, 40, 40), fill="red")
    exif = Image.Exif()
    exif[ORIENTATION_TAG] = 6
    image.save(path, exif=exif)
    return path


def test_probe_reports_the_upright_size_of_a_rotated_photo(tmp_path: Path):
    info = probe_image(sideways_photo(tmp_path / "phone.png"))
    assert (info.width, info.height) == (360, 640)


def test_probe_and_fit_agree_on_which_way_is_up(tmp_path: Path):
    photo = sideways_photo(tmp_path / "phone.png")
    info = probe_image(photo)
    with Image.open(io.BytesIO(fit_image(photo, 360, 640, "cover"))) as fitted:
        assert fitted.size == (info.width, info.height)
        assert fitted.getpixel((350, 10)) == (255, 0, 0)  # the mark, now top-right
        assert fitted.getpixel((10, 10)) == (0, 0, 128)
