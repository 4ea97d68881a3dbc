"""``reelvault generate`` over many stills: folders, several stills, --from rows.csv."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import textured_image
from tests.test_terminal import ANSI, in_terminal

OPTIONS = ("--seconds", "1", "--size", "640x360")


def test_a_folder_makes_a_clip_per_still_and_a_bad_one_does_not_stop_the_rest(
    run, home: Path, tmp_path: Path
):
    folder = tmp_path / "stills"
    folder.mkdir()
    for seed, name in enumerate(("a.jpg", "b.png", "c.jpg"), start=1):
        textured_image(folder / name, 640, 360, seed=seed)
    (folder / "broken.jpg").write_bytes(b"not an image at all")
    (folder / "notes.txt").write_text("not a still: left alone")

    result = run("generate", folder, "-p", "pan right", *OPTIONS, expect=1)
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines[:4]] == [
        str(folder / n) for n in ("a.jpg", "b.png", "broken.jpg", "c.jpg")
    ]
    assert "failed:" in lines[2] and all("completed" in lines[i] for i in (0, 1, 3))
    assert lines[-1] == "made 3 of 4 clips; 1 failed"
    assert "1 of 4 stills failed" in result.output
    listed = json.loads(run("list", "--json").stdout)
    assert len(listed) == 3 and {c["prompt"] for c in listed} == {"pan right"}


def test_several_stills_with_a_policy_denial_report_json(run, home: Path, tmp_path: Path):
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text('[plugins.protected_names]\nterms = ["Mickey Mouse"]\n')
    one = textured_image(tmp_path / "one.jpg", 640, 360, seed=1)
    two = textured_image(tmp_path / "two.jpg", 640, 360, seed=2)
    ok = json.loads(run("generate", one, two, "-p", "tilt up", *OPTIONS, "--json").stdout)
    assert (ok["made"], ok["failed"]) == (2, 0)
    assert [c["still"] for c in ok["clips"]] == [str(one), str(two)]
    denied = run("generate", one, two, "-p", "Mickey Mouse waves", *OPTIONS, "--json", expect=1)
    report = json.loads(denied.stdout)
    assert (report["made"], report["failed"]) == (0, 2)
    assert all("denied by policy" in c["error"] for c in report["clips"])
    assert all(c["clip"].startswith("clip_") for c in report["clips"])  # kept as rejected


def test_rows_csv_give_each_clip_its_own_prompt_and_length(run, home: Path, tmp_path: Path):
    textured_image(tmp_path / "harbor.jpg", 640, 360, seed=4)
    textured_image(tmp_path / "field.jpg", 640, 360, seed=5)
    rows = tmp_path / "rows.csv"
    rows.write_text(
        "still,prompt,seconds,size,model\n"
        "harbor.jpg,zoom in on the boats,2,,\n"
        "field.jpg,,1,640x360,local-motion\n"
        "missing.jpg,pan left,,,\n"
    )
    result = run("generate", "--from", rows, "-p", "default prompt", "--size", "640x360",
                 "--seconds", "1", expect=1)  # fmt: skip
    assert result.stdout.splitlines()[-1] == "made 2 of 3 clips; 1 failed"
    made = {c["prompt"]: c for c in json.loads(run("list", "--json").stdout)}
    assert made["zoom in on the boats"]["seconds"] == 2
    assert made["default prompt"]["seconds"] == 1
    assert json.loads(run("list", "--text", "harbor", "--json").stdout)[0]["seconds"] == 2

    bad = tmp_path / "bad.csv"
    bad.write_text("image,prompt\nx.jpg,p\n")
    refused = run("generate", "--from", bad, expect=2)
    assert "include still" in refused.output and "unknown: image" in refused.output
    nothing = run("generate", "--from", bad, tmp_path / "harbor.jpg", "-p", "x", expect=2)
    assert "not both" in nothing.output


def test_an_empty_folder_and_no_prompt_are_refused_before_anything_runs(run, tmp_path: Path):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "holds no stills" in run("generate", empty, "-p", "x", expect=2).output
    assert "give --prompt" in run("generate", empty, expect=2).output
    assert "give a still" in run("generate", "-p", "x", expect=2).output


def test_one_progress_bar_for_the_batch_honours_quiet_and_no_color(home: Path, tmp_path: Path):
    """On a terminal a batch shows one bar counting its stills (not a bar per still);
    ``--quiet`` hides it and ``NO_COLOR`` takes its colours, as for a single clip."""
    folder = tmp_path / "stills"
    folder.mkdir()
    for seed, name in enumerate(("a.jpg", "b.jpg"), start=1):
        textured_image(folder / name, 640, 360, seed=seed)
    command = ("generate", str(folder), "-p", "pan right", *OPTIONS)

    shown = in_terminal(*command, columns=100)
    assert "generating 2 of 2" in shown and "generating (" not in shown
    assert ANSI.search(shown), "the bar is expected in colour on a terminal"
    assert shown.strip().endswith("made 2 of 2 clips; 0 failed")
    plain = in_terminal(*command, columns=100, env={"NO_COLOR": "1"})
    assert "generating 2 of 2" in plain and not ANSI.search(plain)
    hushed = in_terminal("--quiet", *command, columns=100)
    assert "generating" not in hushed and "\x1b[" not in hushed
    assert hushed.strip().splitlines()[-1] == "made 2 of 2 clips; 0 failed"
