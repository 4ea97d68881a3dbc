"""Many jobs' statuses from a few pages of ``GET /videos`` instead of one GET per job.

Kept apart from the plugin module because it is its own bookkeeping: which creation
times and poll hints the backend has seen (a page of the list is read newest first, and
stops once it is older than the oldest job wanted), and the rule that whatever the list
does not answer is left to a poll of its own.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from core.api import BackendError, JobStatus, RequestError
from core.api.providers import ProviderProfile, split_job_id
from core.api.remote import json_object
from plugins.sora_backend.status import _video_status
from plugins.sora_backend.transport import VideosService, _Transport

if TYPE_CHECKING:  # annotations only: httpx is imported where a request is made
    import httpx

POLL_HINT = "openai-poll-after-ms"


class _BatchPoll(_Transport):
    """``poll_many`` for :class:`plugins.sora_backend.SoraBackend`, whose constructor
    sets the attributes declared here."""

    page_size: int
    _lock: threading.Lock
    _created_at: dict[str, int]
    _hints: dict[str, float]

    def poll_many(self, job_ids: Sequence[str]) -> Mapping[str, JobStatus]:
        """The statuses of many jobs, read from each provider's list of recent videos.

        Pages of ``GET /videos`` are read newest first until every wanted job was seen,
        the list ends, or a page reaches videos created before the oldest wanted one.
        Only jobs whose creation time this backend has seen (from their create or an
        earlier poll) are looked for that way; any job not found, and every job of a
        provider whose list failed, is left out, and the host polls those one by one
        (a poll of its own then reports that provider's trouble, job by job).
        """
        wanted: dict[str, dict[str, str]] = {}
        for job in job_ids:
            try:
                video_id, provider = split_job_id(job)
            except RequestError:
                continue  # a poll of its own says what is wrong with it
            wanted.setdefault(provider, {})[video_id] = job
        found: dict[str, JobStatus] = {}
        for provider, videos in wanted.items():
            try:
                found.update(self._from_list(provider, videos))
            except BackendError:
                continue
        return found

    def _from_list(self, provider: str, wanted: Mapping[str, str]) -> dict[str, JobStatus]:
        """``wanted`` maps video ids to job ids; the statuses of those the list holds."""
        known = {job: self._created_at.get(job) for job in wanted.values()}
        bounded = {job: created for job, created in known.items() if created is not None}
        if not bounded:
            return {}  # nothing bounds the search: polling them one by one is cheaper
        oldest = min(bounded.values())
        profile, service = self._connect(provider)
        found: dict[str, JobStatus] = {}
        for videos, headers in self._video_pages(profile, service, "desc"):
            hint = self._poll_hint(profile, headers)
            for video in videos:
                job = wanted.get(str(video.get("id"))) if isinstance(video, dict) else None
                if job is not None:
                    found[job] = self._remember(profile, video, hint)
            seen_all = all(job in found for job in bounded)
            last = videos[-1] if videos else {}
            last_created = last.get("created_at") if isinstance(last, dict) else None
            if seen_all or (isinstance(last_created, int) and last_created < oldest):
                break
        return found

    def _video_pages(
        self, profile: ProviderProfile, service: VideosService, order: str
    ) -> Iterator[tuple[list[Any], httpx.Headers]]:
        """The pages of ``GET /videos`` (``order`` ``asc`` or ``desc``), each as its
        videos and its answer's headers, until the service says there is no more; the
        caller stops early by leaving the loop."""
        after: str | None = None
        while True:
            params: dict[str, str | int] = {"limit": self.page_size, "order": order}
            if after:
                params["after"] = after
            response = self._call(
                profile, service, "GET", "videos", params=params, timeout=service.poll_timeout
            )
            page = json_object(response, profile.name)
            videos = page.get("data")
            if not isinstance(videos, list):
                raise BackendError(f"{profile.name} sent a list without data", code="bad_response")
            yield videos, response.headers
            if not videos or not page.get("has_more"):
                return
            last = videos[-1] if isinstance(videos[-1], dict) else {}
            after = page.get("last_id") or last.get("id")

    def _poll_hint(self, profile: ProviderProfile, headers: httpx.Headers) -> float | None:
        """The answer's ``openai-poll-after-ms``, else the last one this provider gave.

        A list answer may carry no hint of its own; the service's last word on how
        often to ask still holds for the jobs it lists.
        """
        value = headers.get(POLL_HINT)
        if value and value.isdigit():
            with self._lock:
                self._hints[profile.name] = int(value) / 1000
        return self._hints.get(profile.name)

    def _remember(
        self, profile: ProviderProfile, video: Mapping[str, Any], hint: float | None
    ) -> JobStatus:
        """A Video object as a status, noting when the job was made while it runs."""
        status = _video_status(profile, video, hint)
        created = video.get("created_at")
        with self._lock:
            if status.state.is_terminal:
                self._created_at.pop(status.job_id, None)  # nobody polls it any more
            elif isinstance(created, int):
                self._created_at[status.job_id] = created
        return status
