"""Policy: a still showing a human face needs the recorded consent of the person in it.

Faces are found with OpenCV's Haar cascades (frontal, and profile facing either way),
which ship inside the ``opencv-python-headless`` wheel: nothing is fetched at run time,
and the same still always gives the same answer. Detection runs on a grayscale copy
scaled down to ``max_side`` pixels, which keeps it to a fraction of a second; faces
smaller than about a twentieth of the picture, strongly tilted or hidden are missed, so
this is a screen for the common case, not a guarantee.

A still with a face passes only while a consent covers its exact bytes (``reelvault
consent add --subject NAME --image FILE``): granted, not revoked, not expired. A still
that cannot be read is denied, since nobody can say who is in it.

Configuration, all optional::

    [plugins.likeness]
    max_side = 512        # detect on a copy at most this many pixels wide and high
    profile = true        # also look for faces in profile
    min_neighbors = 5     # higher: fewer false alarms, more missed faces
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.api import (
    ImageFacts,
    Outcome,
    PluginError,
    PolicyContext,
    PolicyDecision,
    Settings,
    check_config_keys,
    hookimpl,
    timestamp_text,
)

if TYPE_CHECKING:
    import cv2

NAME = "likeness"
RULE = "likeness.consent"
FRONTAL = "haarcascade_frontalface_default.xml"
PROFILE = "haarcascade_profileface.xml"
SCALE_FACTOR = 1.1
MIN_FACE = 24  # the cascades' own window size, in pixels of the scaled-down copy


@dataclass(frozen=True)
class Options:
    max_side: int = 512
    profile: bool = True
    min_neighbors: int = 5

    @classmethod
    def from_config(cls, section: Mapping[str, Any]) -> Options:
        check_config_keys(NAME, section, cls.__dataclass_fields__)
        options = cls(**section)
        if not isinstance(options.profile, bool):
            raise PluginError(f"[plugins.{NAME}] profile must be true or false")
        for key in ("max_side", "min_neighbors"):
            value = getattr(options, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise PluginError(f"[plugins.{NAME}] {key} must be a whole number >= 1")
        if options.max_side < 2 * MIN_FACE:
            raise PluginError(f"[plugins.{NAME}] max_side must be at least {2 * MIN_FACE}")
        return options


@cache
def _cascade(filename: str) -> cv2.CascadeClassifier:
    """Load a cascade once per process; cv2 itself is imported only when a still is checked."""
    import cv2
    import cv2.data  # the folder of trained cascades that ships with OpenCV

    classifier = cv2.CascadeClassifier(str(Path(cv2.data.haarcascades) / filename))
    if classifier.empty():
        raise PluginError(f"OpenCV could not load its face model {filename}")
    return classifier


def count_faces(path: Path, options: Options) -> int:
    """How many faces the cascades find in the still at ``path``."""
    import cv2  # the imaging libraries load when a still is checked, not at start-up
    import numpy as np
    from PIL import Image, ImageOps

    with Image.open(path) as im:
        gray = ImageOps.exif_transpose(im).convert("L")
    gray.thumbnail((options.max_side, options.max_side), Image.Resampling.LANCZOS)
    pixels = cv2.equalizeHist(np.asarray(gray))
    min_size = max(MIN_FACE, min(pixels.shape) // 20)
    views = [(FRONTAL, pixels)]
    if options.profile:  # the profile cascade knows one side: look at the mirror image too
        views += [(PROFILE, pixels), (PROFILE, np.ascontiguousarray(pixels[:, ::-1]))]
    return sum(
        len(
            _cascade(name).detectMultiScale(
                view,
                scaleFactor=SCALE_FACTOR,
                minNeighbors=options.min_neighbors,
                minSize=(min_size, min_size),
            )
        )
        for name, view in views
    )


@hookimpl
def check_request(settings: Settings, context: PolicyContext) -> PolicyDecision:
    image: ImageFacts | None = context.image
    if image is None:
        return PolicyDecision(Outcome.ALLOW, RULE, "no input image, so no likeness to check")
    if image.problem is not None:
        return PolicyDecision(
            Outcome.DENY, RULE, "the still cannot be read, so it cannot be checked for faces"
        )
    faces = count_faces(image.path, Options.from_config(settings.section(NAME)))
    if faces == 0:
        return PolicyDecision(Outcome.ALLOW, RULE, "no human face found in the still")
    found = f"{faces} face{'s' if faces > 1 else ''} found in the still"
    grant = context.consent_for(image.sha256)
    if grant is None:
        return PolicyDecision(
            Outcome.DENY,
            RULE,
            f"{found} and no consent covers it: record one with "
            "`reelvault consent add --subject NAME --image FILE`",
        )
    expires = timestamp_text(grant.expires_at, seconds=False)
    until = f", until {expires} UTC" if expires else ""
    return PolicyDecision(
        Outcome.ALLOW, RULE, f"{found}; covered by {grant.id} from {grant.subject!r}{until}"
    )
