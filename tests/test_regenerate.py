"""``reelvault regenerate``: one shot made again by another backend, kept as its variant.

Two real backends: the offline local one and fal, against its loopback queue, reached
through a provider profile as a user would add it.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pydot
import pytest
from click.testing import CliRunner, Result
from starlette.testclient import TestClient

from catalog.models import Generation
from core.api.errors import PolicyDenied, RequestError
from core.api.hookspecs import hookimpl
from core.api.settings import Settings
from core.api.types import Outcome, PolicyDecision
from core.cli import cli
from core.generation import regenerate, variants_of
from core.generation.remake import variant_parameters
from core.host.app import Reelvault
from core.provenance.audit import audit
from core.provenance.signing import init_signing
from core.testing.fal_api import FalQueueServer
from core.testing.gemini_api import GeminiAPIServer
from core.web.app import create_app
from tests import sora_support
from tests.provenance_support import manifest_json, quick_clip, stored_path
from tests.sora_support import write_config
from tests.test_imported_clips import plain_mp4

KEY = "fal-key-id-R3gn:8Vw2Qk5Tz1Lm7Hd4Ps9Xc6Bf"
WAN = "fal-ai/wan-i2v"
GEMINI_KEY = "AIzaSyRegen-Qm4v9Xc2Lp7Rt5Wn8Bk3Hd6Jf1"
TO_FAL = ("-m", WAN, "--backend", "fal", "--provider", "falqueue")
still_720p = sora_support.still_720p


@pytest.fixture
def api(home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FalQueueServer]:
    with FalQueueServer(api_key=KEY) as server:
        monkeypatch.setenv("LOCAL_FAL_KEY", KEY)
        write_config(
            home,
            f'[providers.falqueue]\nkind = "fal"\nbase_url = "{server.base_url}"\n'
            'key_env = "LOCAL_FAL_KEY"\n\n[plugins.fal]\nmax_retry_wait = 5\n',
        )
        yield server


def as_json(result: Result) -> dict:
    return json.loads(result.stdout)


def original(run, still: Path) -> dict:
    """A local clip of the shot every test remakes: 5 seconds at 1280x720 (fal's wan
    model makes exactly that, so the same shot fits both backends)."""
    args = ("generate", still, "-p", "a harbour at dawn", "--seconds", "5", "--size", "1280x720")
    return as_json(run(*args, "--json"))


def variant_ids(client: TestClient, clip_id: str) -> list[str]:
    return [v["id"] for v in client.get(f"/clips/{clip_id}?format=json").json()["variants"]]


def test_regenerate_across_two_backends_keeps_both_variants_in_lineage_and_on_the_page(
    run, app: Reelvault, api: FalQueueServer, still_720p: Path
):
    first = original(run, still_720p)
    on_fal = as_json(run("regenerate", first["id"][:10], *TO_FAL, "--json"))
    assert (on_fal["status"], on_fal["backend"], on_fal["model"]) == ("completed", "fal", WAN)
    assert (on_fal["parent_id"], on_fal["relation"]) == (first["id"], "variant_of")
    assert (on_fal["seconds"], on_fal["size"], on_fal["prompt"]) == (5, "1280x720", first["prompt"])
    assert on_fal["source"]["id"] == first["source"]["id"]  # the same still, not stored again
    assert on_fal["parameters"]["provider"] == "falqueue"
    ((model, body),) = api.submits
    assert model == WAN and body["prompt"] == "a harbour at dawn"
    assert base64.b64decode(body["image_url"].split(",", 1)[1]) == still_720p.read_bytes()
    assert on_fal["video"]["duration"] == pytest.approx(5, abs=0.3)

    # A variant of the variant, back on the local backend: fal's provider stays behind.
    back = as_json(run("regenerate", on_fal["id"], "-m", "local-motion", "--json"))
    assert (back["backend"], back["parent_id"], back["relation"]) == (
        "local",
        on_fal["id"],
        "variant_of",
    )
    assert "provider" not in back["parameters"] and len(api.submits) == 1
    # A remix is another shot: it is lineage, but no variant.
    remix = as_json(run("remix", first["id"], "-p", "zoom in", "--json"))

    # show lists the shot's variants from any of them, in text and JSON.
    shown = as_json(run("show", back["id"], "--json"))
    assert [(v["id"], v["backend"], v["this_clip"]) for v in shown["variants"]] == [
        (first["id"], "local", False), (on_fal["id"], "fal", False), (back["id"], "local", True),
    ]  # fmt: skip
    text = run("show", first["id"]).stdout
    assert f"fal/{WAN} via falqueue" in text and "(this clip)" in text
    assert remix["id"][:12] not in text.split("variants", 1)[1]
    assert as_json(run("show", remix["id"], "--json"))["variants"] == []

    family = as_json(run("lineage", first["id"], "--json"))
    (root,) = family["clips"]
    children = {c["id"]: c for c in root["children"]}
    assert set(children) == {on_fal["id"], remix["id"]}
    assert children[on_fal["id"]]["relation"] == "variant_of"
    assert children[on_fal["id"]]["backend"] == "fal"
    (grandchild,) = children[on_fal["id"]]["children"]
    assert (grandchild["id"], grandchild["relation"]) == (back["id"], "variant_of")

    tree = run("lineage", first["id"]).stdout
    assert f"{on_fal['id']}  variant_of  completed  fal/{WAN}" in tree
    assert f"{back['id']}  variant_of  completed  local/local-motion" in tree

    (graph,) = pydot.graph_from_dot_data(run("lineage", first["id"], "--format", "dot").stdout)
    edges = {(e.get_source(), e.get_destination()): e.get_label() for e in graph.get_edges()}
    assert edges[(first["id"], on_fal["id"])] == '"variant_of"'
    assert edges[(on_fal["id"], back["id"])] == '"variant_of"'
    assert f"fal/{WAN}" in graph.get_node(on_fal["id"])[0].get_label()
    mermaid = run("lineage", back["id"], "--format", "mermaid").stdout
    assert mermaid.count('-->|"variant_of"|') == 2 and f"fal/{WAN}" in mermaid

    prov = as_json(run("lineage", first["id"], "--format", "prov-json"))
    alternates = [
        (r["prov:alternate1"], r["prov:alternate2"]) for r in prov["alternateOf"].values()
    ]
    assert sorted(alternates) == sorted(
        [  # a variant's video is another take of its parent's, not made from it
            (f"rv:{on_fal['video']['id']}", f"rv:{first['video']['id']}"),
            (f"rv:{back['video']['id']}", f"rv:{on_fal['video']['id']}"),
        ]
    )
    used_parents = [key for key in prov["used"] if key.endswith(".used.parent")]
    assert used_parents == [f"rv:{remix['id']}.used.parent"]  # the remix's, no variant's

    shot = [first["id"], on_fal["id"], back["id"]]
    assert [g.id for g in variants_of(app, back["id"])] == shot
    with TestClient(create_app(app), base_url="http://127.0.0.1") as client:
        for clip_id in shot:  # the same variants, side by side, from any of them
            assert variant_ids(client, clip_id) == shot
        assert variant_ids(client, remix["id"]) == []  # a remix has none of its own
        cards = client.get(f"/clips/{on_fal['id']}?format=json").json()["variants"]
        assert [(c["backend"], c["provider"]) for c in cards] == [
            ("local", None),
            ("fal", "falqueue"),
            ("local", None),
        ]
        assert [c["this_clip"] for c in cards] == [False, True, False]
        assert all((c["seconds"], c["size"], c["status"]) == (5, "1280x720", "completed")
                   for c in cards)  # fmt: skip
        page = client.get(f"/clips/{on_fal['id']}").text
        section = page.split('<section class="variants">', 1)[1].split("</section>", 1)[0]
        assert section.count('<li class="card variant') == 3
        for card in cards:
            assert f'data-id="{card["id"]}"' in section and card["video"] in section
            assert client.get(card["video"]).status_code == 200
        assert f"fal / {WAN}" in section and "falqueue" in section
        assert 'class="variants"' not in client.get(f"/clips/{remix['id']}").text


def test_a_queued_variant_is_made_by_a_worker_as_a_new_clip(
    run, api: FalQueueServer, still_720p: Path
):
    first = original(run, still_720p)
    queued = run("regenerate", first["id"], *TO_FAL, "--no-wait").stdout.strip()
    (job,) = json.loads(run("jobs", "--json").stdout)
    assert (job["id"], job["status"], job["relation"]) == (queued, "pending", "variant_of")
    assert api.submits == []
    run("worker", "--until-idle", "-c", "1")
    shown = as_json(run("show", queued, "--json"))
    assert (shown["status"], shown["parent_id"]) == ("completed", first["id"])
    ((model, body),) = api.submits  # an image-to-video request, not a remix of a fal job
    assert model == WAN and body["image_url"].startswith("data:image/png;base64,")


def test_unknown_or_ambiguous_ids_and_a_retired_model_end_in_one_line(
    run, home: Path, api: FalQueueServer, still_720p: Path
):
    first = original(run, still_720p)
    second = original(run, still_720p)
    assert first["id"] != second["id"]

    def one_line(*args: str, expect: int) -> str:
        lines = run("regenerate", *args, expect=expect).output.strip().splitlines()
        assert len(lines) == 1, lines
        return lines[0]

    assert one_line("clip_zzzzzz", *TO_FAL, expect=1) == (
        "Error: no clip or asset matches 'clip_zzzzzz'"
    )
    assert "is ambiguous: it matches" in one_line("clip_", *TO_FAL, expect=1)
    assert "is an asset, not a clip" in one_line(first["source"]["id"], *TO_FAL, expect=1)
    assert "unknown model 'no-such-model'" in one_line(first["id"], "-m", "no-such-model",
                                                       expect=2)  # fmt: skip
    assert "does not allow 1 seconds (allowed: 5)" in one_line(
        first["id"], *TO_FAL, "--seconds", "1", expect=2
    )

    write_config(home, f'[lifecycle."fal:{WAN}"]\nstatus = "retired"\nsince = 2026-01-01\n')
    refused = one_line(first["id"], *TO_FAL, expect=2)
    assert refused.startswith(f"Error: model {WAN} (fal) is retired since 2026-01-01")
    assert api.submits == [] and api.count("POST", r".") == 0
    listed = json.loads(run("list", "--json").stdout)
    assert sorted(c["id"] for c in listed) == sorted([first["id"], second["id"]])


class DeniesFal:
    """A policy that will not send anything to fal."""

    @hookimpl
    def check_request(self, request, backend, settings, context):
        if backend == "fal":
            return PolicyDecision(Outcome.DENY, "no_fal", "fal is not allowed here")
        return None


def test_the_policy_checks_run_as_for_generate(
    home: Path, run, api: FalQueueServer, still_720p: Path
):
    first = original(run, still_720p)
    app = Reelvault(Settings.load(home=home))
    app.host.register(DeniesFal(), "denies_fal", "test")
    try:
        with pytest.raises(PolicyDenied) as denied:
            regenerate(app, first["id"], model=WAN, backend="fal", provider="falqueue")
        result = CliRunner().invoke(cli, ["regenerate", first["id"], *TO_FAL], obj=app)
    finally:
        app.close()
    assert result.exit_code == 1 and "denied by policy" in result.output
    assert api.submits == []
    rejected = as_json(run("show", denied.value.generation_id, "--json"))
    assert (rejected["status"], rejected["parent_id"]) == ("rejected", first["id"])
    assert rejected["relation"] == "variant_of"
    assert [(d["plugin"], d["outcome"]) for d in rejected["policy_decisions"]
            if d["plugin"] == "denies_fal"] == [("denies_fal", "deny")]  # fmt: skip


def test_a_remix_with_no_source_still(
    run,
    app: Reelvault,
    api: FalQueueServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
):
    """An imported clip has no still; its local remix sent the first frame and has none
    either. A model that needs a still says so in one line and nothing is recorded; one
    that makes clips from a prompt alone (veo, on its loopback Gemini API) remakes it."""
    [outcome] = json.loads(run("import", plain_mp4(tmp_path / "a.mp4"), "--json").stdout)["files"]
    remix = as_json(
        run("remix", outcome["generation_id"], "-p", "zoom in", "--seconds", "1", "--size",
            "640x360", "--json")
    )  # fmt: skip
    assert remix["source"] is None
    before = len(json.loads(run("list", "--json").stdout))
    line = run("regenerate", remix["id"], "-m", "local-motion", expect=2).output.strip()
    assert line == (
        f"Error: {remix['id']} has no source still (it was made from its prompt or its "
        "parent's video alone) and model local-motion needs one: choose a model that makes "
        "clips from a prompt, or `reelvault generate` from a still"
    )
    with pytest.raises(RequestError, match="has no source still"):
        regenerate(app, remix["id"], model="local-motion")
    assert len(json.loads(run("list", "--json").stdout)) == before
    assert api.submits == []

    with GeminiAPIServer(api_key=GEMINI_KEY, render_seconds=0.1) as gemini:
        monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", gemini.base_url)
        monkeypatch.setenv("GEMINI_API_KEY", GEMINI_KEY)
        veo = as_json(
            run("regenerate", remix["id"][:12], "-m", "veo-3.0-generate-001", "--seconds", "4",
                "--size", "1280x720", "--json")
        )  # fmt: skip
        ((instance,),) = [body["instances"] for body in gemini.creates]
    assert (veo["status"], veo["backend"], veo["source"]) == ("completed", "veo", None)
    assert (veo["parent_id"], veo["relation"], veo["prompt"]) == (
        remix["id"],
        "variant_of",
        "zoom in",
    )
    assert "image" not in instance and instance["prompt"] == "zoom in"


def test_a_signed_variant_names_its_still_not_its_parent_and_audits_clean(
    app: Reelvault, still: Path
):
    """A variant is kin: nothing of its parent's video went into it, so its credentials
    name only the still, and ``audit`` expects no parent ingredient of it."""
    init_signing(app.settings)
    clip = quick_clip(app, still)
    variant = regenerate(app, clip.id, model="local-motion", seconds=2).generation
    assert (variant.status, variant.parent_id, variant.relation) == (
        "completed",
        clip.id,
        "variant_of",
    )
    assert variant.output_asset_id
    manifest = manifest_json(stored_path(app, variant.output_asset_id).read_bytes())
    active = manifest["manifests"][manifest["active_manifest"]]
    assert [i["relationship"] for i in active["ingredients"]] == ["inputTo"]
    report = audit(app)
    assert report.clean and report.notes == [], report.findings


def test_only_the_options_that_make_sense_go_along():
    """``fit`` means the same to every backend; a provider or a backend's own knob only
    to the clip's own backend. What is given now wins; ``--fit none`` drops a fit."""
    made = Generation(
        id="clip_a", backend="fal", model=WAN, prompt="p", seconds=5, size="1280x720",
        status="completed",
        parameters={"seconds": 5, "size": "1280x720", "fit": "cover", "provider": "falqueue",
                    "seed": 7},
    )  # fmt: skip
    assert variant_parameters(made, "fal", None, None) == {
        "fit": "cover",
        "provider": "falqueue",
        "seed": 7,
    }
    assert variant_parameters(made, "local", None, None) == {"fit": "cover"}
    assert variant_parameters(made, "veo", "gemini", "contain") == {
        "fit": "contain",
        "provider": "gemini",
    }
    assert variant_parameters(made, "fal", "other", "none") == {"provider": "other", "seed": 7}
