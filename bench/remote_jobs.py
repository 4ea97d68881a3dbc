"""Many concurrent remote jobs against the loopback Videos API server.

    python bench/remote_jobs.py [--jobs 500] [--render-seconds 3]

The server runs in its own process, so only the client side's CPU is measured here.
Figures, each against a baseline from the same run:

- wall time for all jobs created and polled to completion at once, vs one job's own
  length on the server (the floor: perfectly concurrent polling would take no longer);
- client CPU per job for reelvault's sora backend (create + poll), vs the official
  ``openai`` SDK's ``videos.create_and_poll`` on the same server (both threaded, both
  honouring the server's poll hint).

reelvault's jobs wait as the host's own polling loop does: through the process's shared
poller (:mod:`core.generation.poller`), which answers the jobs due together from pages
of ``GET /videos``. A create whose answer was lost on the wire is not sent again: the
job is found in the list by its prompt, as ``reelvault resume`` adopts it, and counted.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._common import ratio_line  # noqa: E402
from core.api.errors import BackendError  # noqa: E402
from core.api.settings import Settings  # noqa: E402
from core.api.types import GenerationRequest  # noqa: E402
from core.generation.poller import shared_poller  # noqa: E402
from plugins.sora_backend import SoraBackend  # noqa: E402

KEY = "sk-bench-remote-jobs"
SERVER = """
import sys
from core.testing import VideosAPIServer
server = VideosAPIServer(api_key=sys.argv[1], render_seconds=float(sys.argv[2]),
                         poll_after_ms=int(sys.argv[3])).start()
print(server.base_url, flush=True)
sys.stdin.read()
server.stop()
"""


def start_server(render_seconds: float, poll_after_ms: int) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER, KEY, str(render_seconds), str(poll_after_ms)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT,
    )  # fmt: skip
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


LOST_CREATES: list[str] = []
POLL_PHASES: list[float] = []
"""Per job, from its create's answer to its completion seen: what polling adds to a job
(the rest of the wall time is the burst of creates, bound by CPU on both sides)."""
CREATES_DONE: list[float] = []


def reelvault_job(backend: SoraBackend, i: int) -> float:
    start = time.monotonic()
    prompt = f"bench {i}"
    try:
        status = backend.submit(
            GenerationRequest(model="sora-2", prompt=prompt, seconds=4, size="1280x720")
        )
    except BackendError as exc:
        if "not sent again" not in str(exc):
            raise
        LOST_CREATES.append(prompt)
        status = next(j.status for j in backend.list_jobs() if j.prompt == prompt)
    created = time.monotonic()
    CREATES_DONE.append(created)
    poller = shared_poller(backend)
    due = created  # the host polls once at once, then as the hint says
    while not status.state.is_terminal:
        status = poller.status(status.job_id, due)
        due = time.monotonic() + (status.poll_after or 1.0)
    assert status.state == "completed", status
    POLL_PHASES.append(time.monotonic() - created)
    return time.monotonic() - start


def sdk_job(client: object, i: int) -> float:
    start = time.monotonic()
    video = client.videos.create_and_poll(  # type: ignore[attr-defined]
        prompt=f"bench {i}", model="sora-2", seconds="4", size="1280x720"
    )
    assert video.status == "completed", video
    return time.monotonic() - start


def run(jobs: int, job: object, target: object) -> tuple[float, float, list[float]]:
    cpu0, wall0 = time.process_time(), time.monotonic()
    with ThreadPoolExecutor(jobs) as pool:
        durations = list(pool.map(lambda i: job(target, i), range(jobs)))  # type: ignore[operator]
    return time.monotonic() - wall0, time.process_time() - cpu0, durations


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument("--render-seconds", type=float, default=3.0)
    parser.add_argument("--poll-after-ms", type=int, default=250)
    args = parser.parse_args()
    from openai import OpenAI

    warnings.filterwarnings("ignore", category=DeprecationWarning, module=__name__)

    server, base_url = start_server(args.render_seconds, args.poll_after_ms)
    try:
        os.environ.update(OPENAI_BASE_URL=base_url, OPENAI_API_KEY=KEY)
        with tempfile.TemporaryDirectory() as home:
            backend = SoraBackend(Settings.load(home=home, db_url="sqlite://"))
            started = time.monotonic()
            wall, cpu, durations = run(args.jobs, reelvault_job, backend)
        client = OpenAI(base_url=base_url, api_key=KEY, max_retries=5)
        sdk_wall, sdk_cpu, sdk_durations = run(args.jobs, sdk_job, client)
    finally:
        server.communicate("", timeout=30)
    print(f"{args.jobs} concurrent remote jobs, {args.render_seconds:g} s each on the server")
    print(ratio_line("  reelvault sora backend: wall time", wall, args.render_seconds,
                     "one job's length on the server"))  # fmt: skip
    print(f"  (longest job seen by the client: {max(durations):.2f} s; last create answered "
          f"after {max(CREATES_DONE) - started:.2f} s; creates whose answer was lost, found "
          f"in the list: {len(LOST_CREATES)})")  # fmt: skip
    print(ratio_line("  longest poll phase (create answered to completion seen)",
                     max(POLL_PHASES), args.render_seconds,
                     "one job's length on the server"))  # fmt: skip
    print(ratio_line("  client CPU per job", cpu / args.jobs * 1000, sdk_cpu / args.jobs * 1000,
                     "openai SDK create_and_poll", unit="ms"))  # fmt: skip
    print(f"  (openai SDK: wall {sdk_wall:.2f} s, longest job {max(sdk_durations):.2f} s)")


if __name__ == "__main__":
    main()
