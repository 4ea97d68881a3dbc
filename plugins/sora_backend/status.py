"""Video objects as job statuses: the service's answer in the terms the host records.

Kept apart because it is pure mapping (no network, no profile lookup): every route's
answer and every listed video passes through it, and what it keeps on record must carry
no key the service echoed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from core.api import BackendError, JobState, JobStatus
from core.api.providers import ProviderProfile, job_id
from core.api.remote import redact
from core.api.times import timestamp_text

REFUSAL = re.compile(r"moderation|content[_ ]?policy|safety|refus|blocked", re.IGNORECASE)
"""Failure codes or messages that mean the service declined the content itself."""


def _video_status(
    profile: ProviderProfile, video: Mapping[str, Any], poll_after: float | None
) -> JobStatus:
    """A Video object as a JobStatus; the job id carries the profile."""
    try:
        state = JobState(video["status"])
        video_id = str(video["id"])
    except (KeyError, ValueError):
        raise BackendError(
            f"{profile.name} sent something that is not a Video object", code="bad_response"
        ) from None
    error = video.get("error") if isinstance(video.get("error"), Mapping) else None
    code = str(error.get("code") or "failed") if error else None
    message = redact(str(error.get("message") or "")) if error else None
    if error:  # what is kept on record must not carry a key the service echoed
        video = {**video, "error": {**error, "message": message}}
    expires_at = video.get("expires_at")
    return JobStatus(
        job_id=job_id(video_id, profile.name),
        state=state,
        progress=int(video.get("progress") or 0),
        error_code=code,
        error_message=message,
        poll_after=poll_after,
        expires_at=expires_at if isinstance(expires_at, int) else None,
        details=_details(profile, video),
        refused=bool(error) and bool(REFUSAL.search(f"{code} {message}")),
    )


def _details(profile: ProviderProfile, video: Mapping[str, Any]) -> dict[str, Any]:
    """The Video object as the service sent it, plus lines for ``reelvault show``."""
    lines = [f"{video.get('model')} at {profile.name} ({profile.host}) as {video.get('id')}"]
    if parent := video.get("remixed_from_video_id"):
        lines.append(f"remixed from {parent}")
    if video.get("seconds"):
        lines.append(f"{video.get('seconds')} s at {video.get('size')}")
    if isinstance(expires := video.get("expires_at"), int):
        when = f"{timestamp_text(expires)} UTC"
        lines.append(f"downloadable until {when}")
    return {"provider": profile.name, "video": dict(video), "explanation": lines}
