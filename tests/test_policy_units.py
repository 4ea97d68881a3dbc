"""The policy plugins' building blocks, below the CLI: matching, limits, faces, consents."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pluggy
import pytest
from PIL import Image

from core.api import hookspecs
from core.api.errors import PluginError, RequestError
from core.api.settings import Settings
from core.generation.consent import active_consent, add_consent, parse_expiry, revoke_consent
from core.host.app import Reelvault
from plugins import policy_likeness, policy_protected_names, policy_request_fit
from plugins.policy_likeness import Options, count_faces
from plugins.policy_protected_names import Lists, normalize
from plugins.policy_request_fit import Limits
from tests.conftest import REPO, textured_image


def test_the_plugins_match_their_hook_specs():
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    for module in (policy_likeness, policy_protected_names, policy_request_fit):
        pm.register(module)  # raises on an argument the hook does not have
        assert [c.name for c in pm.get_hookcallers(module) or []] == ["check_request"]


@pytest.mark.parametrize(
    ("text", "normal"),
    [("Beyoncé", "beyonce"), ("STRASSE", "strasse"), ("Straße", "strasse"), ("Ｐｉｋａ", "pika"),
     ("Zoë Saldaña", "zoe saldana"), ("ﬁlm", "film")],
)  # fmt: skip
def test_normalize_drops_case_accents_and_compatibility_forms(text: str, normal: str):
    assert normalize(text) == normal


@pytest.mark.parametrize(
    "spelling",
    [
        "Mic\u200bkey Mouse",  # zero-width space
        "Mic\u00adkey Mouse",  # soft hyphen
        "Mic\u200dkey\u2060 Mou\ufeffse",  # zero-width joiner, word joiner, BOM
        "Mi\u200ecke\u202ey Mouse",  # direction marks
        "Mic\ufe0fkey Mouse",  # a variation selector
        "Mic\u3164key Mouse",  # a Hangul filler
        "Мiсkеу Моusе",  # Cyrillic М, с, е, у, о, ѕ
        "МІСКЕУ МОUЅЕ",  # Cyrillic capitals only: a whole-script look-alike
        "ΜΙCΚΕΥ Μouse",  # Greek capitals Μ, Ι, Κ, Ε, Υ
        "Mıckey Mouse",  # dotless i
        "MickeyMouse",  # no separator at all
        "Mickey\u200bMouse",  # an invisible one
    ],
)
def test_invisible_characters_and_look_alike_letters_hide_no_name(spelling: str):
    assert lists(["Mickey Mouse"]).matches(f"{spelling} waves") == ["Mickey Mouse"]


def test_look_alikes_keep_matching_case_free_and_whole_words():
    assert lists(["Путин"]).matches("ПУТИН and Пyтин (with a Latin y)") == ["Путин"]
    assert lists(["Nike", "Vader"]).matches("ΝΙΚΕ shoes") == ["Nike"]  # Greek Nu as N
    assert lists(["Nike", "Vader"]).matches("darth νader") == ["Vader"]  # and as v
    assert lists(["Mickey Mouse"]).matches("Mickeys Mouse, a mouse named Miсkey") == []


def lists(terms: list[str], allow: list[str] = ()) -> Lists:  # type: ignore[assignment]
    settings = Settings(home=Path("/nonexistent"), db_url="sqlite://", config={
        "plugins": {"protected_names": {"terms": terms, "allow": list(allow)}}
    })  # fmt: skip
    return Lists.load(settings)


def test_matching_is_by_whole_words_in_any_spacing_and_reports_each_term_once():
    found = lists(["R2-D2", "Mickey Mouse", "Pikachu"]).matches(
        "r2 d2 and mickey\n  mouse meet MICKEY_MOUSE; pikachus and Pikachu's cousin"
    )
    assert found == ["R2-D2", "Mickey Mouse", "Pikachu"]
    assert lists(["Jordan"], ["Jordan River"]).matches("the jordan-river at dawn") == []
    assert lists(["Jordan"], ["Jordan River"]).matches("Jordan by the Jordan River") == ["Jordan"]
    assert lists(["  ", "!!"]).terms == ()  # nothing to match: ignored, not a match-all


def test_a_names_file_adds_to_the_inline_terms(tmp_path: Path):
    (tmp_path / "names.toml").write_text('terms = ["Darth Vader"]\nallow = []\n')
    settings = Settings(home=tmp_path, db_url="sqlite://", config={
        "plugins": {"protected_names": {"terms": ["Pikachu"], "file": "names.toml"}}
    })  # fmt: skip
    assert Lists.load(settings).matches("pikachu meets darth vader") == ["Pikachu", "Darth Vader"]
    (tmp_path / "names.toml").write_text("terms = 'Darth Vader'\n")
    with pytest.raises(PluginError, match="terms must be a list of strings"):
        Lists.load(settings)


def test_the_shipped_example_list_is_valid():
    settings = Settings(home=REPO, db_url="sqlite://", config={
        "plugins": {"protected_names": {"file": "examples/protected-names.example.toml"}}
    })  # fmt: skip
    loaded = Lists.load(settings)
    assert len(loaded.terms) >= 5 and loaded.allow
    assert loaded.matches("a POKEMON battle") == ["Pokémon"]


def test_limits_are_read_from_config_and_bad_values_refused():
    assert Limits.from_config({}) == Limits()
    limits = Limits.from_config({"prompt_max_chars": 10, "image_types": ["IMAGE/PNG"]})
    assert (limits.prompt_max_chars, limits.image_types) == (10, ("image/png",))
    for bad in ({"max_image_bytes": -1}, {"max_image_pixels": True}, {"image_types": "png"},
                {"prompt_max": 5}):  # fmt: skip
        with pytest.raises(PluginError, match=r"\[plugins.request_fit\]"):
            Limits.from_config(bad)


def test_face_options_are_checked():
    assert Options.from_config({}) == Options()
    for bad in ({"max_side": 10}, {"profile": "yes"}, {"min_neighbours": 3}):
        with pytest.raises(PluginError, match=r"\[plugins.likeness\]"):
            Options.from_config(bad)


def test_faces_are_found_frontal_and_in_profile_but_not_in_texture(tmp_path: Path):
    from skimage import data

    def saved(name: str, pixels: np.ndarray) -> Path:
        path = tmp_path / f"{name}.png"
        Image.fromarray(pixels).save(path)
        return path

    astronaut = saved("astronaut", data.astronaut())
    assert count_faces(astronaut, Options()) >= 1
    cameraman = saved("camera", data.camera())  # a man seen from the side
    assert count_faces(cameraman, Options(profile=False)) == 0
    assert count_faces(cameraman, Options()) >= 1
    mirrored = saved("mirrored", data.camera()[:, ::-1].copy())
    assert count_faces(mirrored, Options()) >= 1  # profiles facing either way
    for path in (textured_image(tmp_path / "t.jpg"), REPO / "examples" / "harbor.jpg"):
        assert count_faces(path, Options()) == 0
    assert count_faces(astronaut, Options()) == count_faces(astronaut, Options())


def test_consent_validity_over_time(app: Reelvault, tmp_path: Path):
    photo = textured_image(tmp_path / "p.png", 64, 64)
    expires = datetime.now(UTC) + timedelta(days=30)
    record = add_consent(app, "  Ada   Lovelace ", [photo], expires=expires, note="form 12")
    assert record["subject"] == "Ada Lovelace"
    sha = record["images"][0]["sha256"]
    now = datetime.now(UTC)
    with app.session() as session:
        grant = active_consent(session, sha, now)
        assert grant is not None and grant.id == record["id"]
        assert active_consent(session, sha, expires + timedelta(seconds=1)) is None
        assert active_consent(session, "0" * 64, now) is None
    revoke_consent(app, record["id"])
    with app.session() as session:
        assert active_consent(session, sha, now + timedelta(seconds=1)) is None


def test_expiry_dates():
    now = datetime(2026, 11, 25, 12, tzinfo=UTC)
    assert parse_expiry("2027-06-30", now) == datetime(2027, 6, 30, tzinfo=UTC)
    assert parse_expiry("2027-06-30T18:00+02:00", now) == datetime(2027, 6, 30, 16, tzinfo=UTC)
    with pytest.raises(RequestError, match="not in the future"):
        parse_expiry("2026-11-25", now)
    with pytest.raises(RequestError, match="not a date"):
        parse_expiry("soon", now)


def test_a_plugin_table_with_a_key_the_plugin_does_not_read_is_refused(tmp_path: Path):
    settings = Settings(home=tmp_path, db_url="sqlite://", config={
        "plugins": {"acme": {"speed": 2, "sped": 3}}
    })  # fmt: skip
    assert settings.section("acme") == {"speed": 2, "sped": 3}  # no keys named: no check
    assert settings.section("acme", known=("speed", "sped")) == {"speed": 2, "sped": 3}
    with pytest.raises(PluginError, match=r"^\[plugins.acme\] has unknown keys: sped$"):
        settings.section("acme", known=("speed",))
    assert settings.section("absent", known=()) == {}


def test_the_built_in_plugins_check_their_keys_in_the_one_place():
    """Each plugin spelling its own "unknown keys" check drifts (wording, sorting)."""
    spelled = [p.name for p in (REPO / "plugins").rglob("*.py") if "unknown keys" in p.read_text()]
    assert spelled == []
