"""Motion plans: the camera moves a prompt names, read into eased segments over time.

Kept apart from the renderer and the job files because it is pure text-and-arithmetic:
``reelvault show`` explains a plan and the tests check one without drawing a frame or
loading an imaging library.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

PAN_DISTANCE = 0.15
"""A normal pan or tilt moves the view by this fraction of its own width or height."""

ZOOM_FACTOR = 1.25
"""A normal push-in magnifies by this factor; a pull-out by its inverse."""

GENTLE = 0.5
STRONG = 2.0


class Move(enum.StrEnum):
    PAN_LEFT = "pan_left"
    PAN_RIGHT = "pan_right"
    TILT_UP = "tilt_up"
    TILT_DOWN = "tilt_down"
    PUSH_IN = "push_in"
    PULL_OUT = "pull_out"
    HOLD = "hold"


# (horizontal, vertical, zoom) direction of each move; y grows downwards as in images.
_MOVE_VECTORS: dict[Move, tuple[int, int, int]] = {
    Move.PAN_LEFT: (-1, 0, 0),
    Move.PAN_RIGHT: (1, 0, 0),
    Move.TILT_UP: (0, -1, 0),
    Move.TILT_DOWN: (0, 1, 0),
    Move.PUSH_IN: (0, 0, 1),
    Move.PULL_OUT: (0, 0, -1),
    Move.HOLD: (0, 0, 0),
}


@dataclass(frozen=True)
class Camera:
    """Where the camera looks, relative to the opening framing.

    ``x``/``y`` are the view centre in opening-view widths/heights (right and down are
    positive); ``zoom`` is the magnification relative to the opening view.
    """

    x: float = 0.0
    y: float = 0.0
    zoom: float = 1.0

    def moved(self, moves: Sequence[Move], intensity: float) -> Camera:
        """Pans are sized by the *current* view, so a pan after a push-in looks the same."""
        dx = sum(_MOVE_VECTORS[m][0] for m in moves) * PAN_DISTANCE * intensity
        dy = sum(_MOVE_VECTORS[m][1] for m in moves) * PAN_DISTANCE * intensity
        dz = sum(_MOVE_VECTORS[m][2] for m in moves) * intensity
        return Camera(
            x=self.x + dx / self.zoom,
            y=self.y + dy / self.zoom,
            zoom=self.zoom * ZOOM_FACTOR**dz,
        )

    def to_json(self) -> dict[str, float]:
        return {"x": round(self.x, 4), "y": round(self.y, 4), "zoom": round(self.zoom, 4)}


@dataclass(frozen=True)
class Segment:
    """One stretch of the clip: the camera eases from ``begin`` to ``finish``."""

    start: float
    end: float
    moves: tuple[Move, ...]
    begin: Camera
    finish: Camera
    clause: str = ""
    intensity: float = 1.0
    requested_seconds: float | None = None

    @property
    def is_hold(self) -> bool:
        return self.begin == self.finish

    def camera_at(self, t: float) -> Camera:
        """Zoom is interpolated geometrically so a push-in looks equally fast throughout."""
        if self.end <= self.start:
            return self.finish
        e = _ease(min(max((t - self.start) / (self.end - self.start), 0.0), 1.0))
        return Camera(
            x=self.begin.x + (self.finish.x - self.begin.x) * e,
            y=self.begin.y + (self.finish.y - self.begin.y) * e,
            zoom=self.begin.zoom * (self.finish.zoom / self.begin.zoom) ** e,
        )

    def describe(self) -> str:
        line = f"{self.start:.1f}–{self.end:.1f}s {self._what()}"
        if not self.is_hold:
            line += " (ease in-out)"
        return f'{line} — "{self.clause}"' if self.clause else line

    def _what(self) -> str:
        dx = (self.finish.x - self.begin.x) * self.begin.zoom
        dy = (self.finish.y - self.begin.y) * self.begin.zoom
        ratio = self.finish.zoom / self.begin.zoom
        parts = []
        if abs(dx) > 1e-9:
            parts.append(f"pan {'right' if dx > 0 else 'left'} {abs(dx):.0%} of frame")
        if abs(dy) > 1e-9:
            parts.append(f"tilt {'down' if dy > 0 else 'up'} {abs(dy):.0%} of frame")
        if abs(ratio - 1) > 1e-9:
            parts.append(f"{'push in' if ratio > 1 else 'pull out'} ×{ratio:.2f}")
        return " + ".join(parts) or "hold"

    def to_json(self) -> dict[str, Any]:
        return {
            "start": round(self.start, 4),
            "end": round(self.end, 4),
            "moves": [m.value for m in self.moves],
            "intensity": self.intensity,
            "easing": "none" if self.is_hold else "ease-in-out",
            "clause": self.clause,
            "requested_seconds": self.requested_seconds,
            "from": self.begin.to_json(),
            "to": self.finish.to_json(),
        }


@dataclass(frozen=True)
class MotionPlan:
    """The camera path for a whole clip: contiguous segments covering ``0..seconds``."""

    seconds: float
    segments: tuple[Segment, ...]
    notes: tuple[str, ...] = ()

    def camera_at(self, t: float) -> Camera:
        segment = next((s for s in self.segments if t <= s.end), self.segments[-1])
        return segment.camera_at(t)

    def cameras(self) -> Iterator[Camera]:
        """Every state the path passes through at a segment boundary.

        With linear pans and geometric zoom, the view's edges are extreme at segment
        boundaries, so these bound the whole path.
        """
        yield self.segments[0].begin
        for segment in self.segments:
            yield segment.finish

    def to_json(self) -> list[dict[str, Any]]:
        return [s.to_json() for s in self.segments]

    def explain(self) -> list[str]:
        return [s.describe() for s in self.segments] + list(self.notes)


def _ease(p: float) -> float:
    """Smoothstep: starts and stops at rest, like a camera operator would."""
    return p * p * (3 - 2 * p)


_PAN = r"\b(?:pan(?:s|ned|ning)?|truck(?:s|ed|ing)?)"
_VERTICAL = r"\b(?:tilt(?:s|ed|ing)?|crane(?:s|d|ing)?|boom(?:s|ed|ing)?|pedestal(?:s|ed|ing)?)"
_TOWARD = r"[\s-]+(?:to(?:wards?)?\s+(?:the\s+)?)?"

# Tried in order; each match is blanked out so that later, looser patterns cannot match
# the same words again ("pan left to right" must not also count as "pan left").
_MOVE_PATTERNS: tuple[tuple[str, Move, str | None], ...] = (
    (_PAN + r"\s+(?:from\s+)?(?:the\s+)?left\s+to\s+(?:the\s+)?right\b", Move.PAN_RIGHT, None),
    (_PAN + r"\s+(?:from\s+)?(?:the\s+)?right\s+to\s+(?:the\s+)?left\b", Move.PAN_LEFT, None),
    (_PAN + _TOWARD + r"left(?:wards?)?\b", Move.PAN_LEFT, None),
    (_PAN + _TOWARD + r"right(?:wards?)?\b", Move.PAN_RIGHT, None),
    (_VERTICAL + r"[\s-]+up(?:wards?)?\b", Move.TILT_UP, None),
    (_VERTICAL + r"[\s-]+down(?:wards?)?\b", Move.TILT_DOWN, None),
    (
        r"\b(?:push(?:es|ed|ing)?|dolly(?:ing|ied|ies)?|zoom(?:s|ed|ing)?)[\s-]+in(?:to|wards?)?\b",
        Move.PUSH_IN,
        None,
    ),
    (
        r"\b(?:pull(?:s|ed|ing)?|dolly(?:ing|ied|ies)?|zoom(?:s|ed|ing)?)[\s-]+(?:out|back)\b",
        Move.PULL_OUT,
        None,
    ),
    (r"\bzoom(?:s|ed|ing)?\b", Move.PUSH_IN, "names no zoom direction; zooming in"),
    (
        r"\bpan(?:s|ned|ning)?\s+(?:across|over|along|through)\b|\bpanning\b",
        Move.PAN_RIGHT,
        "names no pan direction; panning right",
    ),
    (
        r"\b(?:static|lock(?:s|ed)?[\s-]+off|holds?)\b"
        r"|\b(?:hold|stay|stays|keep|keeps|remain|remains|camera|camera\s+is)\s+still\b"
        r"|\bstill\s+(?:camera|shot)\b|^still\b",
        Move.HOLD,
        None,
    ),
)

_GENTLE_WORDS = r"\b(?:slow|slowly|gentle|gently|subtle|subtly|slight|slightly)\b"
_STRONG_WORDS = r"\b(?:fast|quick|quickly|dramatic|dramatically|rapid|rapidly)\b"
# One or two integer digits, so "a 1990s street" is not read as a 1990-second move.
_DURATION = r"(?<![\d.])(\d{1,2}(?:\.\d+)?)\s*-?\s*(?:s|secs?|seconds?)\b"
# A full stop between digits is a decimal point ("0.5s"), not the end of a sentence.
_CLAUSE_BREAK = r"[,;]|(?<!\d)\.|\.(?!\d)|\band\s+then\b|\bthen\b|\bfollowed\s+by\b"


@dataclass(frozen=True)
class _Clause:
    text: str
    moves: tuple[Move, ...]
    intensity: float
    seconds: float | None
    notes: tuple[str, ...] = ()


def parse_motion(prompt: str, seconds: float) -> MotionPlan:
    """Read the camera moves in ``prompt`` into a plan lasting exactly ``seconds``.

    Clauses without a camera verb are scene description and are ignored. If the prompt
    names no move at all, the plan is a gentle push-in, so a clip is never a frozen frame
    by accident.
    """
    if seconds <= 0:
        raise ValueError(f"a motion plan needs a positive length, not {seconds}")
    clauses = [c for c in map(_parse_clause, re.split(_CLAUSE_BREAK, prompt, flags=re.I)) if c]
    notes = [note for clause in clauses for note in clause.notes]
    if not clauses:
        clauses = [_Clause("", (Move.PUSH_IN,), GENTLE, None)]
        notes.append("no camera move in the prompt; using a gentle default push-in")
    lengths, timing_notes = _allocate([c.seconds for c in clauses], seconds)
    notes += timing_notes

    segments: list[Segment] = []
    start, camera = 0.0, Camera()
    for clause, length in zip(clauses, lengths, strict=True):
        finish = camera.moved(clause.moves, clause.intensity)
        segments.append(
            Segment(
                start=start,
                end=start + length,
                moves=clause.moves,
                begin=camera,
                finish=finish,
                clause=clause.text,
                intensity=clause.intensity,
                requested_seconds=clause.seconds,
            )
        )
        start, camera = start + length, finish
    if seconds - start > 1e-6:
        segments.append(Segment(start, seconds, (Move.HOLD,), camera, camera))
        notes.append(f"timed moves end at {start:g}s; holding the last framing to {seconds:g}s")
    else:  # absorb float rounding so the plan ends exactly on the clip's last frame
        segments[-1] = replace(segments[-1], end=float(seconds))
    return MotionPlan(float(seconds), tuple(segments), tuple(notes))


def _parse_clause(text: str) -> _Clause | None:
    text = text.strip()
    moves, notes = _find_moves(text)
    if not moves:
        return None
    intensity = 1.0
    if re.search(_GENTLE_WORDS, text, re.I):
        intensity *= GENTLE
    if re.search(_STRONG_WORDS, text, re.I):
        intensity *= STRONG
    duration = re.search(_DURATION, text, re.I)
    seconds = float(duration.group(1)) if duration else None
    return _Clause(text, moves, intensity, seconds if seconds else None, tuple(notes))


def _find_moves(text: str) -> tuple[tuple[Move, ...], list[str]]:
    """Camera moves in textual order; a hold next to a real move adds nothing, so drop it."""
    found: list[tuple[int, Move]] = []
    notes: list[str] = []
    remaining = text
    for pattern, move, note in _MOVE_PATTERNS:
        for match in re.finditer(pattern, remaining, re.I):
            found.append((match.start(), move))
            if note:
                notes.append(f'"{text}" {note}')
            blank = " " * (match.end() - match.start())
            remaining = remaining[: match.start()] + blank + remaining[match.end() :]
    moves = tuple(move for _, move in sorted(found, key=lambda item: item[0]))
    if any(m != Move.HOLD for m in moves):
        moves = tuple(m for m in moves if m != Move.HOLD)
    return moves, notes


def _allocate(requested: Sequence[float | None], seconds: float) -> tuple[list[float], list[str]]:
    """Give untimed clauses equal shares of the time the timed ones leave.

    When the timed clauses leave no room, untimed ones are given the average timed length
    and everything is scaled down to fit, so no clause the user wrote silently vanishes.
    A plan that ends early is padded with a hold by the caller.
    """
    timed = [d for d in requested if d is not None]
    untimed = len(requested) - len(timed)
    total = sum(timed)
    if untimed and total < seconds:
        share = (seconds - total) / untimed
        return [share if d is None else d for d in requested], []
    if not untimed and total <= seconds:
        return timed, []
    nominal = total / len(timed)
    lengths = [nominal if d is None else d for d in requested]
    scale = seconds / sum(lengths)
    if untimed:
        note = (
            f"timed moves take {total:g}s of the {seconds:g}s clip, leaving none for the "
            f"others; gave those {nominal:g}s each and scaled all by ×{scale:.2f}"
        )
    else:
        note = f"timed moves add up to {total:g}s, more than the {seconds:g}s clip; "
        note += f"scaled by ×{scale:.2f}"
    return [length * scale for length in lengths], [note]
