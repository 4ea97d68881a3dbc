"""The walking skeleton end to end, through the CLI a user types."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
import sqlalchemy as sa

from core.api.settings import Settings
from tests.conftest import REPO, textured_image


def generate(run, image: Path, *extra: str, prompt: str = "pan right") -> dict:
    args = ["generate", image, "--prompt", prompt, "--seconds", "1", "--size", "640x360"]
    return json.loads(run(*args, *extra, "--json").stdout)


def catalog_rows(home: Path, table: str) -> int:
    """Rows in a catalog table; a catalog never created holds none."""
    url = Settings.load(home=home).db_url
    if url.startswith("sqlite:") and not (home / "catalog.db").exists():
        return 0
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table(table):
                return 0
            return conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()
    finally:
        engine.dispose()


def stored_files(home: Path) -> list[Path]:
    media = home / "media"
    return sorted(p for p in media.rglob("*") if p.is_file()) if media.exists() else []


def test_generate_makes_a_playable_clip_of_the_requested_shape(run, home: Path, still: Path):
    clip = generate(run, still, prompt="slow push in for 0.5s, then pan right")

    assert clip["status"] == "completed"
    assert clip["id"].startswith("clip_")
    assert clip["backend"] == "local" and clip["model"] == "local-motion"
    video = Path(clip["video"]["path"])
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        frames = list(container.decode(stream))
        assert stream.codec_context.name == "h264"
        assert stream.average_rate == 24
    assert len(frames) == 24
    assert (frames[0].width, frames[0].height) == (640, 360)
    assert frames[0].format.name == "yuv420p"
    assert clip["video"]["frame_count"] == 24 and clip["video"]["fps"] == 24
    assert clip["video"]["sha256"] == video.name
    assert clip["thumbnail"]["mime"] == "image/jpeg"
    assert clip["source"]["original_name"] == "still.jpg"
    assert any("pan right" in line for line in clip["details"]["explanation"])


def test_show_prints_the_motion_plan_and_files(run, still: Path):
    clip = generate(run, still, prompt="tilt up")
    shown = run("show", clip["id"][:9]).stdout
    assert clip["id"] in shown
    assert "motion plan" in shown and "tilt up" in shown
    assert "video/mp4" in shown and "640x360" in shown
    created = json.loads(run("show", clip["id"], "--json").stdout)["created_at"]
    assert f"created   {created[:19].replace('T', ' ')}\n" in shown  # as the web page shows it


def test_remix_chain_shows_whole_lineage_in_both_directions(run, still: Path):
    first = generate(run, still, prompt="pan left")
    second = json.loads(run("remix", first["id"], "--prompt", "tilt up", "--json").stdout)
    third = json.loads(run("remix", second["id"], "--prompt", "zoom out", "--json").stdout)
    assert second["parent_id"] == first["id"] and second["relation"] == "remix_of"
    assert third["source_asset_id"] == first["source_asset_id"]
    assert third["seconds"] == 1 and third["size"] == "640x360"  # inherited from the parent

    tree = json.loads(run("lineage", second["id"], "--json").stdout)
    assert tree["source"]["id"] == first["source_asset_id"]
    (root,) = tree["clips"]
    assert root["id"] == first["id"]
    assert root["children"][0]["id"] == second["id"]
    assert root["children"][0]["children"][0]["id"] == third["id"]

    text = run("lineage", third["id"]).stdout
    lines = text.splitlines()
    assert "still.jpg" in lines[0]
    order = [
        next(i for i, line in enumerate(lines) if c["id"] in line) for c in (first, second, third)
    ]
    assert order == sorted(order)
    assert "◀" in lines[order[2]]

    from_image = json.loads(run("lineage", first["source_asset_id"][:10], "--json").stdout)
    assert from_image["clips"][0]["children"][0]["children"][0]["id"] == third["id"]


def test_generation_is_deterministic_across_runs(run, still: Path):
    a = generate(run, still, prompt="push in")
    b = generate(run, still, prompt="push in")
    assert a["id"] != b["id"]
    assert a["video"]["sha256"] == b["video"]["sha256"]


def test_list_filters_and_json(run, home: Path, still: Path, tmp_path: Path):
    other = textured_image(tmp_path / "other.png", 640, 360, seed=9)
    a = generate(run, still, prompt="pan right over the harbor")
    b = generate(run, other, prompt="tilt down")
    listed = json.loads(run("list", "--json").stdout)
    assert [c["id"] for c in listed] == [b["id"], a["id"]]
    assert [c["id"] for c in json.loads(run("list", "-t", "HARBOR", "--json").stdout)] == [a["id"]]
    by_path = json.loads(run("list", "--source", other, "--json").stdout)
    assert [c["id"] for c in by_path] == [b["id"]]
    by_id = json.loads(run("list", "--source", a["source_asset_id"][:12], "--json").stdout)
    assert [c["id"] for c in by_id] == [a["id"]]
    assert json.loads(run("list", "--since", "1h", "-n", "1", "--json").stdout)[0]["id"] == b["id"]
    assert json.loads(run("list", "--until", "2000-01-01", "--json").stdout) == []
    assert json.loads(run("list", "--status", "failed", "--json").stdout) == []
    for command in ("list", "rm"):  # a misspelt status is refused, not an empty answer
        refused = run(command, "--status", "complete", expect=2).output
        assert "'complete' is not one of 'pending'" in refused and "'completed'" in refused
    unsigned = json.loads(run("list", "--provenance", "absent", "--json").stdout)
    assert [c["id"] for c in unsigned] == [b["id"], a["id"]]  # no signing set up here
    assert json.loads(run("list", "--provenance", "trusted", "--json").stdout) == []
    table = run("list").stdout
    assert a["id"] in table and "pan right over the harbor" in table


def test_models_and_plugins_describe_what_is_loaded(run):
    models = json.loads(run("models", "--json").stdout)
    local = next(m for m in models if m["model"] == "local-motion")
    assert local["backend"] == "local" and local["default_size"] in local["sizes"]
    assert 4 in local["seconds"] and local["remix"] is True
    plugins = json.loads(run("plugins", "--json").stdout)
    local_plugin = next(p for p in plugins["plugins"] if p["name"] == "local")
    assert local_plugin["hooks"] == ["register_backends"]
    assert "entry point" in local_plugin["source"]
    assert "local-motion" in run("models").stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["generate", "missing.jpg", "-p", "pan"], "no such file"),
        (["generate", "{notimage}", "-p", "pan"], "not an image"),
        (["generate", "{still}", "-p", "pan", "--model", "nope"], "unknown model 'nope'"),
        (["generate", "{still}", "-p", "pan", "--backend", "nope"], "unknown backend 'nope'"),
        (["generate", "{still}", "-p", "pan", "--size", "100x100"], "does not allow size"),
        (["generate", "{still}", "-p", "pan", "--size", "big"], "not WIDTHxHEIGHT"),
        (["generate", "{still}", "-p", "pan", "--seconds", "99"], "does not allow 99 seconds"),
        (["generate", "{still}", "-p", "  "], "prompt is empty"),
        (["generate", "{truncated}", "-p", "pan"], "could not be decoded"),
    ],
)
def test_bad_input_is_one_clear_line_and_writes_nothing(
    run, home: Path, still: Path, tmp_path: Path, args: list[str], message: str
):
    notimage = tmp_path / "notes.jpg"
    notimage.write_text("not really a jpeg")
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(still.read_bytes()[: still.stat().st_size // 2])
    paths = {"{still}": still, "{notimage}": notimage, "{truncated}": truncated}
    result = run(*[str(paths.get(a, a)) for a in args], expect=2)
    assert message in result.stderr
    assert result.stderr.startswith("Error: ") and result.stderr.count("\n") == 1
    assert "Traceback" not in result.output
    assert stored_files(home) == []
    assert catalog_rows(home, "generations") == catalog_rows(home, "assets") == 0


def test_unknown_and_ambiguous_ids_are_clear_errors(run, home: Path, still: Path):
    generate(run, still)
    generate(run, still)
    assert "no clip or asset matches 'clip_zzzz'" in run("show", "clip_zzzz", expect=1).stderr
    assert "ambiguous" in run("show", "clip_", expect=1).stderr
    assert "ambiguous" in run("remix", "clip", "-p", "x", expect=1).stderr
    assert catalog_rows(home, "generations") == 2


@pytest.mark.slow
def test_two_generate_processes_share_one_catalog(home: Path, still: Path, tmp_path: Path):
    env = {**os.environ, "REELVAULT_HOME": str(home)}
    other = textured_image(tmp_path / "other.jpg", seed=5)
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "core",
                "generate",
                str(image),
                "-p",
                prompt,
                "--seconds",
                "2",
                "--size",
                "640x360",
                "--json",
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for image, prompt in ((still, "pan right"), (other, "push in"))
    ]
    outputs = [p.communicate(timeout=180) for p in procs]
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
        assert json.loads(out)["status"] == "completed"
    assert catalog_rows(home, "generations") == 2
    assert len({json.loads(out)["video"]["sha256"] for out, _ in outputs}) == 2


def test_pan_right_clip_really_moves_right(run, still: Path):
    clip = generate(run, still, prompt="pan right")
    with av.open(clip["video"]["path"]) as container:
        frames = [f.to_ndarray(format="gray").astype(float) for f in container.decode(video=0)]
    dx = horizontal_shift(frames[0], frames[-1])
    assert dx < -5, dx  # the camera moves right, so the picture slides left


def horizontal_shift(a: np.ndarray, b: np.ndarray) -> float:
    """Where ``a``'s content sits in ``b``, horizontally, by phase correlation."""
    fa, fb = np.fft.fft2(a - a.mean()), np.fft.fft2(b - b.mean())
    cross = fb * np.conj(fa)
    corr = np.fft.ifft2(cross / (np.abs(cross) + 1e-9)).real
    _, x = np.unravel_index(np.argmax(corr), corr.shape)
    return float(x if x <= a.shape[1] // 2 else x - a.shape[1])


class Interrupt(KeyboardInterrupt):
    pass


def test_an_interrupted_job_is_listed_and_resumed_without_resubmitting(run, app, still: Path):
    from core.generation import generate as generate_clip
    from plugins.local_backend import LocalBackend

    submits: list[str] = []
    original = LocalBackend.submit

    def counting_submit(self, request):
        submits.append(request.prompt)
        return original(self, request)

    def stop_at_first_poll(state: str, percent: int) -> None:
        raise Interrupt

    LocalBackend.submit = counting_submit  # type: ignore[method-assign]
    try:
        with pytest.raises(Interrupt):
            generate_clip(app, still, "pan left", seconds=1, size="640x360",
                          on_progress=stop_at_first_poll)  # fmt: skip
        jobs = json.loads(run("jobs", "--json").stdout)
        assert len(jobs) == 1 and jobs[0]["remote_job_id"].startswith("local_")
        assert jobs[0]["status"] in ("queued", "in_progress", "submitting")
        out = run("resume").stdout
        assert f"{jobs[0]['id']} completed" in out
    finally:
        LocalBackend.submit = original  # type: ignore[method-assign]
    assert submits == ["pan left"]
    assert json.loads(run("jobs", "--json").stdout) == []
    shown = json.loads(run("show", jobs[0]["id"], "--json").stdout)
    assert shown["status"] == "completed" and shown["video"]["frame_count"] == 24
    assert "nothing to resume" in run("resume").stderr


def test_text_that_looks_like_markup_prints_as_typed(run, still: Path, tmp_path: Path):
    """Prompts and file names are the user's words: rich must neither parse them as markup
    (an unmatched ``[/oops]`` used to crash ``list``) nor turn ``:smile:`` into an emoji."""
    odd = textured_image(tmp_path / "[bold]harbor.png", 640, 360)
    prompt = "pan right [/oops] [red]x :smile:"
    clip = generate(run, odd, prompt=prompt)
    assert prompt in run("list").stdout
    tree = run("lineage", clip["id"]).stdout
    assert repr(prompt) in tree and "[bold]harbor.png" in tree
    assert prompt in run("jobs", "--ended", "1").stdout


def test_text_filter_ignores_case_beyond_ascii_alike_on_every_database(run, app, home: Path):
    """SQLite's own lower() folds ASCII only; the filter must find what PostgreSQL finds."""
    from catalog.models import Generation

    prompts = {
        "clip_ecole": "ÉCOLE at dawn",
        "clip_odos": "ΟΔΟΣ by night",
        "clip_istanbul": "İSTANBUL skyline",
        "clip_plain": "harbor at 100% _x_",
    }
    with app.session() as session:
        for clip_id, prompt in prompts.items():
            session.add(
                Generation(id=clip_id, backend="local", model="local-motion", prompt=prompt,
                           seconds=1, size="640x360", status="completed")
            )  # fmt: skip

    def found(text: str) -> set[str]:
        return {c["id"] for c in json.loads(run("list", "-t", text, "--json").stdout)}

    assert found("école") == found("École") == found("ÉCOLE") == {"clip_ecole"}
    assert found("οδοσ") == found("ΟΔΟΣ") == {"clip_odos"}
    assert found("istanbul") == {"clip_istanbul"}
    assert found("100%") == found("_X_") == {"clip_plain"}
    assert found("0%_") == found("/") == set()  # LIKE's wildcards are matched as typed
    exported = run("export", "--format", "jsonl", "--text", "école").stdout  # a read-only engine
    assert [json.loads(line)["id"] for line in exported.splitlines()] == ["clip_ecole"]


def test_home_option_brings_that_homes_disabled_plugins(run, home: Path, still: Path, tmp_path):
    """``--home B`` with ``$REELVAULT_HOME`` = A: B's ``disabled_plugins`` apply, not A's."""
    names = '[plugins.protected_names]\nterms = ["Mickey Mouse"]\n'
    other = tmp_path / "other-home"
    for folder, disabled in ((home, "[]"), (other, '["protected_names"]')):
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "config.toml").write_text(f"disabled_plugins = {disabled}\n{names}")
    check = ("policy", "check", still, "-p", "Mickey Mouse waves", "--json")

    def plugins(result) -> set[str]:
        return {d["plugin"] for d in json.loads(result.stdout)["decisions"]}

    assert "protected_names" not in plugins(run("--home", other, *check))
    assert "protected_names" in plugins(run(*check, expect=1))  # A's own rules still apply
    (home / "config.toml").write_text(f'disabled_plugins = ["protected_names"]\n{names}')
    (other / "config.toml").write_text(names)
    assert "protected_names" in plugins(run("--home", other, *check, expect=1))


def test_disabled_plugins_are_read_one_way_and_a_bad_value_is_one_clear_error(
    run, home: Path, still: Path
):
    home.mkdir(parents=True, exist_ok=True)
    names = '[plugins.protected_names]\nterms = ["Mickey Mouse"]\n'
    check = ("policy", "check", still, "-p", "Mickey Mouse waves", "--json")
    (home / "config.toml").write_text(names)
    assert "protected_names" in json.dumps(json.loads(run(*check, expect=1).stdout)["decisions"])

    (home / "config.toml").write_text('disabled_plugins = "protected_names"\n' + names)
    assert Settings.load(home=home).disabled_plugins() == {"protected_names"}  # a list of one
    result = run(*check)
    assert "protected_names" not in {d["plugin"] for d in json.loads(result.stdout)["decisions"]}

    (home / "config.toml").write_text("disabled_plugins = [5]\n")
    result = run("list", expect=1)
    assert "disabled_plugins must be a list of plugin names, not [5]" in result.output
    assert "Traceback" not in result.output


def test_times_read_the_same_everywhere():
    from datetime import UTC, datetime

    from core.api import timestamp_text

    stored = "2026-11-25T14:03:07.512345+00:00"
    assert timestamp_text(stored) == "2026-11-25 14:03:07"
    assert timestamp_text(stored, seconds=False) == "2026-11-25 14:03"
    assert timestamp_text(datetime(2026, 11, 25, 14, 3, 7, 512345, UTC)) == "2026-11-25 14:03:07"
    assert timestamp_text(None) == timestamp_text("") == ""
    epoch = datetime(2026, 11, 25, 14, 3, 7, tzinfo=UTC).timestamp()  # a provider's expires_at
    assert timestamp_text(epoch) == timestamp_text(int(epoch)) == "2026-11-25 14:03:07"


MACHINE_TIMES = {"plugins/c2pa_signer.py"}
"""Modules writing a time for programs (a manifest's ``signed_at``), not for people."""


def test_no_module_formats_a_time_for_people_but_timestamp_text():
    """Cutting ``isoformat()`` at 16 or 19 characters, ``timespec=`` or ``strftime`` in a
    message each make a sixth way to show a time; ``core.api.times`` is the one."""
    found = []
    for path in sorted(
        p for pkg in ("core", "plugins", "catalog") for p in (REPO / pkg).rglob("*.py")
    ):
        module = path.relative_to(REPO).as_posix()
        if module == "core/api/times.py" or module in MACHINE_TIMES or "/migrations/" in module:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
                continue
            trimmed = node.func.attr == "isoformat" and any(
                k.arg == "timespec" for k in node.keywords
            )
            in_python = not ast.unparse(node.func.value).endswith("func")  # not SQL's strftime
            if trimmed or (node.func.attr == "strftime" and in_python):
                found.append(f"  {module}:{node.lineno}: {ast.unparse(node)}")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Subscript) and "isoformat()" in ast.unparse(node.value):
                found.append(f"  {module}:{node.lineno}: {ast.unparse(node)}")
    assert not found, "show times with core.api.timestamp_text:\n" + "\n".join(found)
