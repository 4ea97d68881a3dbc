"""The prompt-to-camera-path parser of the local backend (pure, no rendering)."""

from __future__ import annotations

import json

import pytest

from plugins.local_backend import (
    PAN_DISTANCE,
    ZOOM_FACTOR,
    Camera,
    MotionPlan,
    Move,
    parse_motion,
)


def moves(plan: MotionPlan) -> list[tuple[str, ...]]:
    return [tuple(m.value for m in s.moves) for s in plan.segments]


def spans(plan: MotionPlan) -> list[tuple[float, float]]:
    return [(round(s.start, 6), round(s.end, 6)) for s in plan.segments]


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("pan left", Move.PAN_LEFT),
        ("Camera pans to the right across the bay", Move.PAN_RIGHT),
        ("truck left", Move.PAN_LEFT),
        ("trucking right past the shelves", Move.PAN_RIGHT),
        ("pan from left to right", Move.PAN_RIGHT),
        ("pan right to left", Move.PAN_LEFT),
        ("tilt up to the sky", Move.TILT_UP),
        ("tilting down", Move.TILT_DOWN),
        ("crane up", Move.TILT_UP),
        ("push in", Move.PUSH_IN),
        ("a slow push-in on her face", Move.PUSH_IN),
        ("dolly in", Move.PUSH_IN),
        ("zoom into the window", Move.PUSH_IN),
        ("pull out", Move.PULL_OUT),
        ("pull back to reveal the valley", Move.PULL_OUT),
        ("dolly out", Move.PULL_OUT),
        ("zoom out", Move.PULL_OUT),
        ("static shot", Move.HOLD),
        ("hold", Move.HOLD),
        ("still", Move.HOLD),
        ("camera stays still", Move.HOLD),
        ("locked off", Move.HOLD),
        ("locked-off frame", Move.HOLD),
    ],
)
def test_each_camera_verb_and_synonym(prompt: str, expected: Move) -> None:
    plan = parse_motion(prompt, 4)
    assert moves(plan) == [(expected.value,)]
    assert spans(plan) == [(0.0, 4.0)]


def test_moves_change_the_camera_in_the_right_direction() -> None:
    right = parse_motion("pan right", 4).segments[0].finish
    up = parse_motion("tilt up", 4).segments[0].finish
    pushed = parse_motion("push in", 4).segments[0].finish
    pulled = parse_motion("pull out", 4).segments[0].finish
    assert right == Camera(x=PAN_DISTANCE)
    assert up == Camera(y=-PAN_DISTANCE)
    assert pushed == Camera(zoom=ZOOM_FACTOR)
    assert pulled.zoom == pytest.approx(1 / ZOOM_FACTOR)
    assert parse_motion("hold", 4).segments[0].finish == Camera()


@pytest.mark.parametrize(
    "prompt",
    [
        "A panorama of the harbour at dusk",
        "the expanded view of a pantry",
        "she is still smiling in this still photo",
        "a tilted horizon over the sea",
        "",
    ],
)
def test_words_containing_verbs_do_not_count_and_fall_back_to_a_gentle_push_in(
    prompt: str,
) -> None:
    plan = parse_motion(prompt, 4)
    assert moves(plan) == [("push_in",)]
    assert plan.segments[0].finish.zoom == pytest.approx(ZOOM_FACTOR**0.5)
    assert any("default push-in" in note for note in plan.notes)


def test_timings_in_all_phrasings_and_untimed_clause_gets_the_rest() -> None:
    plan = parse_motion("start static for 0.5s, then a 2s push-in, then pan right", 4)
    assert moves(plan) == [("hold",), ("push_in",), ("pan_right",)]
    assert spans(plan) == [(0.0, 0.5), (0.5, 2.5), (2.5, 4.0)]
    assert [s.requested_seconds for s in plan.segments] == [0.5, 2.0, None]
    assert plan.notes == ()


@pytest.mark.parametrize(
    "prompt",
    ["push in for 2 seconds", "over 2s push in", "2-second push in", "push in 2 sec"],
)
def test_duration_phrasings(prompt: str) -> None:
    plan = parse_motion(prompt, 4)
    assert spans(plan)[0] == (0.0, 2.0)


def test_clause_separators() -> None:
    prompt = "pan left; tilt up. push in and then pull out followed by hold, then pan right"
    plan = parse_motion(prompt, 12)
    assert moves(plan) == [
        ("pan_left",),
        ("tilt_up",),
        ("push_in",),
        ("pull_out",),
        ("hold",),
        ("pan_right",),
    ]
    assert spans(plan) == [(2.0 * i, 2.0 * (i + 1)) for i in range(6)]


def test_untimed_clauses_share_the_remaining_time_equally() -> None:
    plan = parse_motion("1s hold, pan left, tilt down", 5)
    assert spans(plan) == [(0.0, 1.0), (1.0, 3.0), (3.0, 5.0)]


def test_overlong_timings_are_scaled_to_fit_with_a_note() -> None:
    plan = parse_motion("3s pan left, then 5s push in", 4)
    assert spans(plan) == [(0.0, 1.5), (1.5, 4.0)]
    assert any("scaled by ×0.50" in note for note in plan.notes)


def test_untimed_clause_is_kept_when_timed_ones_fill_the_clip() -> None:
    plan = parse_motion("4s push in, then pan right", 4)
    assert spans(plan) == [(0.0, 2.0), (2.0, 4.0)]
    assert any("scaled all" in note for note in plan.notes)


def test_short_timings_hold_at_the_end_with_a_note() -> None:
    plan = parse_motion("1s pan right, then 1s tilt up", 4)
    assert moves(plan) == [("pan_right",), ("tilt_up",), ("hold",)]
    assert spans(plan)[-1] == (2.0, 4.0)
    assert plan.segments[-1].begin == plan.segments[-1].finish == plan.segments[1].finish
    assert any("holding" in note for note in plan.notes)


def test_camera_state_carries_across_segments() -> None:
    plan = parse_motion("push in, then pan right, then tilt down", 6)
    first, second, third = plan.segments
    assert second.begin == first.finish
    assert third.begin == second.finish
    # A pan after a push-in is measured in the (smaller) current view.
    assert second.finish.x == pytest.approx(PAN_DISTANCE / ZOOM_FACTOR)
    assert third.finish == Camera(
        x=pytest.approx(PAN_DISTANCE / ZOOM_FACTOR),
        y=pytest.approx(PAN_DISTANCE / ZOOM_FACTOR),
        zoom=pytest.approx(ZOOM_FACTOR),
    )


def test_modifiers_scale_the_move() -> None:
    normal = parse_motion("pan right", 4).segments[0].finish.x
    assert parse_motion("slowly pan right", 4).segments[0].finish.x == pytest.approx(normal / 2)
    assert parse_motion("subtle pan right", 4).segments[0].finish.x == pytest.approx(normal / 2)
    assert parse_motion("fast pan right", 4).segments[0].finish.x == pytest.approx(normal * 2)
    dramatic = parse_motion("dramatic push in", 4).segments[0].finish.zoom
    assert dramatic == pytest.approx(ZOOM_FACTOR**2)


def test_combined_moves_in_one_clause_and_hold_beside_a_move_is_ignored() -> None:
    plan = parse_motion("push in and pan left while the camera holds", 4)
    assert moves(plan) == [("push_in", "pan_left")]
    finish = plan.segments[0].finish
    assert finish.zoom == pytest.approx(ZOOM_FACTOR)
    assert finish.x == pytest.approx(-PAN_DISTANCE)


def test_directionless_pan_and_zoom_get_defaults_and_notes() -> None:
    plan = parse_motion("slow pan across the skyline, then zoom", 4)
    assert moves(plan) == [("pan_right",), ("push_in",)]
    assert len(plan.notes) == 2


def test_scene_description_clauses_and_decades_are_ignored() -> None:
    plan = parse_motion("A rainy 1990s street at night, neon signs. Pan left.", 4)
    assert moves(plan) == [("pan_left",)]
    assert spans(plan) == [(0.0, 4.0)]


def test_easing_starts_and_ends_at_rest() -> None:
    segment = parse_motion("pan right", 4).segments[0]
    xs = [segment.camera_at(t).x for t in (0.0, 0.1, 2.0, 3.9, 4.0)]
    assert xs[0] == 0.0 and xs[-1] == pytest.approx(PAN_DISTANCE)
    assert xs[2] == pytest.approx(PAN_DISTANCE / 2)
    # The first and last tenth of a second move much less than the middle tenth.
    middle = segment.camera_at(2.05).x - segment.camera_at(1.95).x
    assert xs[1] - xs[0] < middle / 5
    assert xs[4] - xs[3] < middle / 5


def test_zoom_is_interpolated_geometrically() -> None:
    plan = parse_motion("push in", 4)
    assert plan.camera_at(2.0).zoom == pytest.approx(ZOOM_FACTOR**0.5)


def test_plan_json_and_explanation() -> None:
    plan = parse_motion("2s push-in, then pan right", 4)
    data = json.loads(json.dumps(plan.to_json()))
    assert data[0] == {
        "start": 0.0,
        "end": 2.0,
        "moves": ["push_in"],
        "intensity": 1.0,
        "easing": "ease-in-out",
        "clause": "2s push-in",
        "requested_seconds": 2.0,
        "from": {"x": 0.0, "y": 0.0, "zoom": 1.0},
        "to": {"x": 0.0, "y": 0.0, "zoom": 1.25},
    }
    assert data[1]["to"] == {"x": 0.12, "y": 0.0, "zoom": 1.25}
    lines = plan.explain()
    assert lines[0].startswith("0.0–2.0s push in ×1.25 (ease in-out)")
    assert lines[1].startswith("2.0–4.0s pan right 15% of frame (ease in-out)")


def test_non_positive_length_is_rejected() -> None:
    with pytest.raises(ValueError):
        parse_motion("pan left", 0)
