"""Hostile input ends in one clear line and nothing half done (issue 10, cases 5 to 9):
control characters, an enormous search text, a missing source file, a webhooks client
that misbehaves, forged lineage claims."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from core.api.settings import Settings
from core.host.app import Reelvault
from tests import sora_support, test_webhooks
from tests.conftest import on_postgresql
from tests.fault_support import make_clip, one_line_exit_2

api = sora_support.api
announced = test_webhooks.announced
hooked_app = test_webhooks.hooked_app


# -- (5) control characters in what people typed or files carry -----------------------

HOSTILE = "\x1b]0;owned\x07pan \x1b[2J right\rOVERWRITE\nforged line\x9b31m"


def _assert_escaped(output: str) -> None:
    for raw in ("\x1b", "\x07", "\r", "\x9b"):
        assert raw not in output, repr(output)
    lines = output.splitlines()
    assert not any(line.lstrip().startswith("forged") for line in lines), output


def test_control_characters_are_escaped_for_people_and_exact_in_json(
    home: Path, run, still: Path, tmp_path: Path
):
    hostile_still = tmp_path / "still\x1b[2J\nforged.jpg"
    hostile_still.write_bytes(still.read_bytes())
    run("signing", "init")  # the clip's credentials carry the prompt and the file name
    data = json.loads(run("generate", hostile_still, "-p", HOSTILE, "--json").stdout)
    assert data["prompt"] == HOSTILE  # JSON keeps the exact string
    clip = data["id"]

    shown = run("show", clip).output
    _assert_escaped(shown)
    assert "\\x1b]0;owned\\x07" in shown and "\\n" in shown
    assert json.loads(run("show", clip, "--json").stdout)["prompt"] == HOSTILE

    for args in (["list"], ["list", "--text", "forged"], ["lineage", clip], ["verify", clip]):
        _assert_escaped(run(*args).output)
    assert json.loads(run("list", "--json").stdout)[0]["prompt"] == HOSTILE

    imported = run("import", hostile_still).output
    _assert_escaped(imported)
    assert "\\x1b[2J\\nforged.jpg" in imported
    _assert_escaped(run("verify", hostile_still, expect=1).output)


def test_control_characters_from_an_imported_files_manifest_are_escaped(
    home: Path, run, still: Path, tmp_path: Path, app: Reelvault, monkeypatch
):
    """The prompt and names a signed clip carries, read back from its credentials by
    ``import`` into another library: escaped by import, show, list, lineage and verify."""
    run("signing", "init")
    data = json.loads(run("generate", still, "-p", HOSTILE, "--json").stdout)
    signed = tmp_path / "clip\x1b]0;x\x07.mp4"
    signed.write_bytes(app.store.local_path(data["video"]["sha256"]).read_bytes())

    monkeypatch.setenv("REELVAULT_HOME", str(tmp_path / "other-home"))
    if on_postgresql():
        monkeypatch.delenv("REELVAULT_DB")  # a library of its own, on SQLite
    _assert_escaped(run("import", signed).output)
    (row,) = json.loads(run("list", "--json").stdout)
    assert row["prompt"] == HOSTILE  # read from the manifest, exact in JSON
    for args in (["show", row["id"]], ["list"], ["lineage", row["id"]], ["verify", signed]):
        output = run(*args).output
        _assert_escaped(output)
    assert "\\x1b]0;owned\\x07" in run("show", row["id"]).output


def test_errors_naming_hostile_files_are_escaped(home: Path, run, tmp_path: Path):
    missing = tmp_path / "gone\x1b]0;x\x07\n.jpg"
    result = run("generate", missing, "-p", "pan", expect=2)
    _assert_escaped(result.output)


# -- (8) an enormous search text -------------------------------------------------------


def test_oversized_search_text_is_one_line_on_the_cli(home: Path, run, still: Path):
    from catalog.search import MAX_SEARCH_TEXT

    make_clip(run, still)
    line = one_line_exit_2(run, "list", "--text", "a" * 60_000)
    assert "60,000 characters" in line and f"{MAX_SEARCH_TEXT:,}" in line
    assert run("list", "--text", "x" * MAX_SEARCH_TEXT).exit_code == 0  # the limit is allowed
    one_line_exit_2(run, "export", "--text", "a" * 60_000)


def test_oversized_search_text_is_a_400_on_the_web(app: Reelvault):
    from starlette.testclient import TestClient

    from core.web.app import create_app

    with TestClient(create_app(app), base_url="http://127.0.0.1") as client:
        answer = client.get("/", params={"q": "a" * 60_000})
        assert answer.status_code == 400
        assert "characters" in answer.text
        assert client.get("/", params={"q": "a" * 60_000, "format": "json"}).status_code == 400
        assert client.get("/", params={"q": "pan"}).status_code == 200


# -- (9) a derived clip whose source still's file is gone ------------------------------


def _remove_stored(app: Reelvault, sha256: str) -> None:
    path = app.store.path_for(sha256)
    path.parent.chmod(0o755)
    path.unlink()


def test_remix_of_a_clip_whose_still_is_gone_says_so_and_adds_no_row(
    home: Path, run, still: Path, app: Reelvault
):
    clip = make_clip(run, still)
    shown = json.loads(run("show", clip, "--json").stdout)
    _remove_stored(app, shown["source"]["sha256"])
    result = run("remix", clip, "-p", "zoom in", expect=1)
    assert result.output.strip() == (
        "Error: the source still's file is missing from the store; run `reelvault audit`"
    )
    assert [row["id"] for row in json.loads(run("list", "--json").stdout)] == [clip]


# -- (7) the webhooks receiver under hostile clients -------------------------------------


@pytest.fixture
def webhook_receiver(hooked_app, api, monkeypatch):
    from core.remote import webhooks

    monkeypatch.setattr(webhooks, "READ_TIMEOUT_SECONDS", 2.0, raising=False)
    monkeypatch.setattr(webhooks, "MAX_CONNECTIONS", 8, raising=False)
    with webhooks.WebhookReceiver(hooked_app) as running:
        yield running


def test_a_400_digit_webhook_timestamp_is_a_400(webhook_receiver):
    import http.client

    host, port = webhook_receiver.url.removeprefix("http://").rstrip("/").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    headers = {"webhook-id": "wh_1", "webhook-timestamp": "9" * 400, "webhook-signature": "v1,A"}
    conn.request("POST", "/", b'{"type": "video.completed"}', headers)
    answer = conn.getresponse()
    assert answer.status == 400
    assert "webhook-timestamp" in json.loads(answer.read())["message"]
    conn.close()


def test_a_silent_client_times_out_and_connections_are_bounded(webhook_receiver):
    import socket
    import threading

    from core.remote import webhooks

    host, port = webhook_receiver.url.removeprefix("http://").rstrip("/").split(":")
    before = threading.active_count()
    silent = []
    for _ in range(webhooks.MAX_CONNECTIONS + 20):
        conn = socket.create_connection((host, int(port)), timeout=5)
        conn.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n")
        silent.append(conn)
    time.sleep(0.3)
    assert threading.active_count() - before <= webhooks.MAX_CONNECTIONS
    refused = silent[-1].recv(4096)
    assert refused.startswith(b"HTTP/1.1 503"), refused
    for conn in silent:
        conn.close()
    # A closed client frees its thread (and its slot) as soon as its handler reads the
    # end of the stream; wait for that rather than racing the handlers.
    freed_by = time.monotonic() + 5
    while threading.active_count() > before and time.monotonic() < freed_by:
        time.sleep(0.05)
    assert threading.active_count() <= before, "closed connections kept their threads"
    started = time.monotonic()
    slow = socket.create_connection((host, int(port)), timeout=30)
    slow.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n")
    answer = slow.recv(4096)
    assert answer.startswith(b"HTTP/1.1 408") or answer == b"", answer
    assert time.monotonic() - started < webhooks.READ_TIMEOUT_SECONDS + 5
    slow.close()


# -- (6) forged lineage claims ------------------------------------------------------------


def test_a_forged_parent_claim_and_a_forged_id_are_not_adopted(home, run, still: Path, app):
    from catalog.models import Asset
    from core.provenance.credentials import compare_lineage, ingredient_is
    from core.provenance.importer import link_lineage

    run("signing", "init")
    genuine = json.loads(run("generate", still, "-p", "pan right", "--json").stdout)
    parent_sha = genuine["video"]["sha256"]
    unborn_id = "clip_zzzzzzzzzzzz"
    forged = {
        "label": "urn:c2pa:forged",
        "signer": "Mallory",
        "issuer": "Mallory CA",
        "generation": {
            "generation_id": unborn_id,
            "prompt": "a remix, supposedly",
            "relation": "remix_of",
            "parent": {"sha256": parent_sha},
        },
        "ingredients": [{"title": "cat.jpg", "format": "image/jpeg", "relationship": "parentOf"}],
    }
    with app.session() as session:
        fake = Asset(id="vid_forged", sha256="f" * 64, kind="video", mime="video/mp4")
        session.add(fake)
        session.flush()
        made = link_lineage(session, fake, forged)  # valid credentials, not trusted
        assert made is not None
        assert made.parent_id is None  # the claim is not linked...
        assert made.details["claims_not_supported"] == {"parent": parent_sha}  # ...but kept
        assert made.id != unborn_id  # an untrusted signer's id is not adopted
        made_id = made.id
        video = session.get(Asset, genuine["video"]["id"])
        assert ingredient_is(forged["ingredients"][0], video, parent_sha) is False
        # audit compares the file's ingredients with the catalog's (unlinked) lineage
        problems = compare_lineage(forged, source=None, parent=None, derived=False)
        assert [p.kind for p in problems] == ["lineage_contradiction"]
    shown = run("show", made_id).output
    assert f"claimed   parent {parent_sha} (claimed, not supported by ingredients)" in shown


def test_forged_files_imported_through_the_cli_claim_nothing_they_cannot_show(
    home: Path, run, still: Path, app: Reelvault, tmp_path: Path, monkeypatch
):
    """The same forgeries as above, as files a user imports: signed (validly) by a CA
    nobody trusts, with a reelvault generation assertion that claims a trusted clip as
    parent and the clip's id, while the real ``parentOf`` ingredient is another image."""
    from core.api import GENERATION_ASSERTION
    from core.provenance.trust import add_anchors
    from tests.conftest import textured_image
    from tests.provenance_support import other_signer, remux, sign_image

    run("signing", "init")
    genuine = json.loads(run("generate", still, "-p", "pan right", "--json").stdout)
    genuine_file = app.store.local_path(genuine["video"]["sha256"])
    unrelated = textured_image(tmp_path / "cat.png", 320, 180, seed=4)
    plain = tmp_path / "plain.mp4"
    plain.write_bytes(remux(genuine_file.read_bytes()))
    claim = {
        "generation_id": genuine["id"],
        "prompt": "a remix, supposedly",
        "relation": "remix_of",
        "parent": {"sha256": genuine["video"]["sha256"]},
    }
    forged = sign_image(
        app.settings, plain, tmp_path / "forged.mp4", "video/mp4",
        signer=other_signer(tmp_path / "mallory"),
        ingredients=[(unrelated, "image/png", "parentOf")],
        assertions=[{"label": GENERATION_ASSERTION, "data": claim}],
    )  # fmt: skip

    bare = sign_image(  # the same claim with no ingredient at all
        app.settings, plain, tmp_path / "bare.mp4", "video/mp4",
        signer=other_signer(tmp_path / "mallory"),
        assertions=[{"label": GENERATION_ASSERTION, "data": claim}],
    )  # fmt: skip

    # In the genuine clip's library: the parent claims are kept, not linked, and audited.
    run("import", forged, bare)
    forged_ids = [
        row["id"] for row in json.loads(run("list", "-n", "0", "--json").stdout)
        if row["id"] != genuine["id"]
    ]  # fmt: skip
    assert len(forged_ids) == 2
    audited = run("audit", expect=1).output
    for forged_id in forged_ids:
        shown = json.loads(run("show", forged_id, "--json").stdout)
        assert shown["parent_id"] is None and shown["relation"] is None, shown
        claimed = shown["details"]["claims_not_supported"]
        assert claimed == {"parent": genuine["video"]["sha256"]}
        assert "(claimed, not supported by ingredients)" in run("show", forged_id).output
        assert f"({forged_id}): its credentials claim parent {genuine['video']['sha256']}" in (
            audited
        )

    # In a new library, the forgery imported first does not take the genuine clip's id.
    other_home = tmp_path / "other-home"
    monkeypatch.setenv("REELVAULT_HOME", str(other_home))
    if on_postgresql():
        monkeypatch.delenv("REELVAULT_DB")  # a library of its own, on SQLite
    run("import", forged)
    (first,) = json.loads(run("list", "-n", "0", "--json").stdout)
    assert first["id"] != genuine["id"]  # an untrusted signer's id is not adopted
    add_anchors(Settings.load(home=other_home), app.settings.signing_paths()[0])
    run("import", genuine_file)
    videos = {
        row["id"]: json.loads(run("show", row["id"], "--json").stdout)["video"]["sha256"]
        for row in json.loads(run("list", "-n", "0", "--json").stdout)
    }
    assert videos[genuine["id"]] == genuine["video"]["sha256"]  # the genuine clip's own id
