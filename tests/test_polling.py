"""Polling many remote jobs: shared rounds of the job list, fallbacks, and poll timeouts.

The counts are of requests reaching the loopback Videos API, never of timings.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from core.api.capabilities import PollsMany
from core.api.errors import BackendError, JobStopped
from core.api.settings import Settings
from core.api.types import GenerationRequest, JobState, JobStatus
from core.generation.poller import SharedPoller, shared_poller
from core.testing import VideosAPIServer
from plugins.sora_backend import SoraBackend
from tests import sora_support
from tests.sora_support import write_config

api = sora_support.api


def sora_at(home: Path, sleeps: list[float] | None = None) -> SoraBackend:
    """A sora backend as a fresh process would have it (it knows no job yet)."""
    sleep = sleeps.append if sleeps is not None else time.sleep
    return SoraBackend(Settings.load(home=home), sleep=sleep)


def create(sora: SoraBackend, prompt: str) -> JobStatus:
    return sora.submit(GenerationRequest(model="sora-2", prompt=prompt, seconds=4, size="1280x720"))


def poll_to_the_end(poller: SharedPoller, job_id: str, reads: list[str]) -> JobStatus:
    """What the host does for each job: ask the shared poller when the hint says."""
    due = time.monotonic()
    while True:
        status = poller.status(job_id, due)
        reads.append(job_id)
        if status.state.is_terminal:
            return status
        due = time.monotonic() + (status.poll_after or 0.05)


def test_concurrent_jobs_are_answered_by_rounds_of_the_job_list(home: Path, api: VideosAPIServer):
    api.render_seconds, api.poll_after_ms = 1.0, 50
    sora = sora_at(home)
    jobs = [create(sora, f"harbour {i}").job_id for i in range(12)]
    poller, reads = SharedPoller(sora), []
    with ThreadPoolExecutor(len(jobs)) as pool:
        ends = list(pool.map(lambda job: poll_to_the_end(poller, job, reads), jobs))
    assert {s.state for s in ends} == {JobState.COMPLETED}
    assert [s.job_id for s in ends] == jobs
    lists, singles = api.count("GET", "/videos"), api.count("GET", "/videos/{id}")
    assert len(reads) >= 5 * len(jobs)  # each job was read many times over its run...
    assert (lists + singles) * 4 <= len(reads)  # ...from far fewer requests
    # a GET of its own only for a job alone in a round (the first, or the last to end)
    assert singles < len(jobs)


def test_a_job_the_list_does_not_answer_gets_a_get_of_its_own(home: Path, api: VideosAPIServer):
    api.hold = True
    write_config(home, "[plugins.sora]\npage_size = 1\n")
    unknown = create(sora_at(home), "made by another process").job_id
    time.sleep(1.1)  # creation times are whole seconds
    made_here = sora_at(home)
    known = create(made_here, "made here").job_id
    # the newest page holds the one job whose age bounds the search; the other one's
    # age is not known here, so the list is not read further to look for it
    assert set(made_here.poll_many([known, unknown])) == {known}
    lists = api.count("GET", "/videos")
    assert api.count("GET", "/videos/{id}") == 0 and lists == 1

    poller, reads = SharedPoller(made_here), []
    due = time.monotonic() + 0.3  # both wait for the same round
    with ThreadPoolExecutor(2) as pool:
        statuses = list(pool.map(lambda job: poller.status(job, due), [known, unknown]))
    reads.extend(s.job_id for s in statuses)
    assert sorted(reads) == sorted([known, unknown])
    got_alone = [r.path.rsplit("/", 1)[-1] for r in api.requests if r.route == "/videos/{id}"]
    assert known.split("@")[0] not in got_alone  # the round answered it
    assert got_alone == [unknown.split("@")[0]]  # and the other one was polled alone
    # once seen, the other process's job is found in the list like any other
    assert set(made_here.poll_many([known, unknown])) == {known, unknown}


def test_a_failed_list_leaves_every_job_to_its_own_poll(home: Path, api: VideosAPIServer):
    api.hold = True
    sora = sora_at(home, sleeps=[])
    jobs = [create(sora, f"harbour {i}").job_id for i in range(3)]
    api.inject("GET", "/videos", 500, headers={"x-should-retry": "false"})
    assert sora.poll_many(jobs) == {}
    poller = SharedPoller(sora)
    with ThreadPoolExecutor(3) as pool:
        api.inject("GET", "/videos", 500, headers={"x-should-retry": "false"})
        statuses = list(pool.map(lambda job: poller.status(job, time.monotonic()), jobs))
    assert [s.job_id for s in statuses] == jobs
    assert api.count("GET", "/videos/{id}") >= 1


def test_the_list_is_read_only_back_to_the_oldest_job_wanted(home: Path, api: VideosAPIServer):
    api.hold = True
    write_config(home, "[plugins.sora]\npage_size = 2\n")
    sora = sora_at(home)
    for i in range(6):
        create(sora, f"older {i}")
    time.sleep(1.1)  # creation times are whole seconds
    recent = [create(sora, f"recent {i}").job_id for i in range(3)]
    assert set(sora.poll_many(recent)) == set(recent)
    assert api.count("GET", "/videos") == 2  # newest first, until all three were seen
    # a job made as recently that the list lacks: reading stops at the first older video
    provider = recent[0].split("@")[1]
    missing = f"video_missing@{provider}"
    sora._created_at[missing] = sora._created_at[recent[0]]
    assert set(sora.poll_many([*recent, missing])) == set(recent)
    assert api.count("GET", "/videos") == 4  # 2 pages again, not all 5


def test_a_poll_that_hangs_is_given_up_after_the_poll_timeout_and_retried(
    home: Path, api: VideosAPIServer
):
    api.hold = True
    write_config(home, "[plugins.sora]\npoll_request_timeout = 0.5\n")
    sleeps: list[float] = []
    sora = sora_at(home, sleeps)
    api.inject("POST", "/videos", delay=1.0)  # a create may take longer than a poll
    job = create(sora, "slow to answer").job_id
    api.inject("GET", "/videos/{id}", delay=30)
    started = time.monotonic()
    status = sora.poll(job)
    assert status.job_id == job
    assert time.monotonic() - started < 15  # the 30 s hang was not waited out
    assert api.count("GET", "/videos/{id}") == 2 and len(sleeps) == 1
    api.inject("GET", "/videos", delay=30)
    assert set(sora.poll_many([job])) == {job}  # list pages are polls too
    assert api.count("GET", "/videos") == 2


def test_the_services_poll_hint_paces_listed_jobs(home: Path, api: VideosAPIServer):
    api.hold, api.poll_after_ms = True, 700
    sora = sora_at(home)
    job = create(sora, "paced").job_id
    assert sora.poll(job).poll_after == 0.7
    (listed,) = sora.poll_many([job]).values()
    assert listed.poll_after == 0.7  # the list carries no hint; the provider's last one holds


class Batched:
    """A backend double that answers rounds and single polls, counting both."""

    name = "batched"
    description = "counts polls"

    def __init__(self, answer: bool = True, fail: bool = False) -> None:
        self.rounds: list[list[str]] = []
        self.singles: list[str] = []
        self.answer, self.fail = answer, fail
        self.lock = threading.Lock()

    def models(self) -> list[object]:
        return []

    def submit(self, request: object) -> JobStatus:
        raise NotImplementedError

    def derive(self, request: object) -> JobStatus:
        raise NotImplementedError

    def download(self, job_id: str, variant: object, dest: object) -> None:
        raise NotImplementedError

    def poll(self, job_id: str) -> JobStatus:
        with self.lock:
            self.singles.append(job_id)
        if job_id == "broken":
            raise BackendError("broken is not known", code="unknown_job")
        return JobStatus(job_id, JobState.IN_PROGRESS)

    def poll_many(self, job_ids: Sequence[str]) -> Mapping[str, JobStatus]:
        with self.lock:
            self.rounds.append(list(job_ids))
        time.sleep(0.05)  # a request's worth of time, while others come due
        if self.fail:
            raise RuntimeError("a bug in the plugin")
        if not self.answer:
            return {}
        return {j: JobStatus(j, JobState.IN_PROGRESS, progress=50) for j in job_ids}


def test_jobs_due_together_share_rounds_and_errors_stay_each_jobs_own():
    backend = Batched()
    assert isinstance(backend, PollsMany)
    poller = SharedPoller(backend)
    jobs = [f"job{i}" for i in range(40)]
    now = time.monotonic() + 0.2
    with ThreadPoolExecutor(len(jobs)) as pool:
        statuses = list(pool.map(lambda job: poller.status(job, now), jobs))
    assert [s.job_id for s in statuses] == jobs
    # the first job due may find itself alone (a plain poll); the rest share a few rounds
    assert len(backend.rounds) < 10 and len(backend.singles) <= 1
    assert sorted([*backend.singles, *(j for r in backend.rounds for j in r)]) == sorted(jobs)

    buggy = Batched(fail=True)
    failing, due = SharedPoller(buggy), time.monotonic() + 0.2
    with ThreadPoolExecutor(3) as pool:
        futures = [pool.submit(failing.status, job, due) for job in ("a", "b", "broken")]
        assert [f.result().job_id for f in futures[:2]] == ["a", "b"]  # polled alone
        with pytest.raises(BackendError, match="broken is not known"):
            futures[2].result()
    assert len(buggy.rounds) == 1 and sorted(buggy.rounds[0]) == ["a", "b", "broken"]
    assert sorted(buggy.singles) == ["a", "b", "broken"]


def test_a_lone_job_is_polled_plainly_and_a_stop_ends_the_wait():
    backend = Batched()
    poller = SharedPoller(backend)
    assert poller.status("alone", time.monotonic()).job_id == "alone"
    assert backend.rounds == [] and backend.singles == ["alone"]
    stop = threading.Event()
    threading.Timer(0.1, stop.set).start()
    started = time.monotonic()
    with pytest.raises(JobStopped, match="gen_1"):
        poller.status("later", time.monotonic() + 60, stop=stop, name="gen_1")
    assert time.monotonic() - started < 5


def test_one_poller_per_backend_in_the_process(home: Path, api: VideosAPIServer):
    sora = sora_at(home)
    assert shared_poller(sora) is shared_poller(sora)
    assert shared_poller(sora) is not shared_poller(sora_at(home))


def test_a_multipart_create_goes_out_from_one_buffer():
    """A multipart body streams a chunk per part (~18 sends for a create); joined, the
    create is two sends (headers, body), whatever the load on the machine."""
    import httpx

    from core.api.remote import send_keeping_key

    chunks: list[list[bytes]] = []

    class Wire(httpx.BaseTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            chunks.append(list(request.stream))  # what the connection would send, in order
            return httpx.Response(200, json={})

    fields = {"prompt": (None, "a harbour"), "input_reference": ("a.png", b"png", "image/png")}
    with httpx.Client(transport=Wire(), base_url="http://svc/") as client:
        client.send(client.build_request("POST", "videos", files=fields))
        send_keeping_key(client, client.build_request("POST", "videos", files=fields), False, {})
    as_built, as_sent = chunks
    assert len(as_built) > 5  # part by part, as httpx builds it
    assert as_sent == [b"".join(as_built).replace(*_boundaries(as_built, as_sent))]


def _boundaries(built: list[bytes], sent: list[bytes]) -> tuple[bytes, bytes]:
    """Each request has a boundary of its own: the first line of each body."""
    return built[0].split(b"\r\n")[0], sent[0].split(b"\r\n")[0]


def test_a_rate_limited_list_waits_as_the_service_asks(home: Path, api: VideosAPIServer):
    api.hold = True
    sleeps: list[float] = []
    sora = sora_at(home, sleeps)
    jobs = [create(sora, f"harbour {i}").job_id for i in range(2)]
    api.inject("GET", "/videos", 429, times=2, headers={"retry-after": "3"})
    assert set(sora.poll_many(jobs)) == set(jobs)
    assert sleeps == [3.0, 3.0] and api.count("GET", "/videos") == 3
