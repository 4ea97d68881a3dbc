"""A loopback HTTP server that speaks the OpenAI Videos API, for tests.

reelvault's own suite runs its sora backend against this, and plugin authors can run
theirs against it too: it is a real HTTP server on 127.0.0.1 with the API's routes,
multipart parsing, JSON shapes and error bodies, so the code under test does exactly
what it would do against a provider, minus the network and the bill::

    from core.testing import VideosAPIServer

    with VideosAPIServer(api_key="sk-test") as server:
        client = OpenAI(api_key="sk-test", base_url=server.base_url)
        video = client.videos.create_and_poll(prompt="a harbour at dawn", seconds="4")

What it does, per the API's reference (``shared/reference/openai-videos-api.md``):

- ``POST /videos`` (multipart, urlencoded or JSON) validates ``prompt``, ``model``,
  ``seconds`` (strings ``"4"``, ``"8"``, ``"12"``; an integer is a 400), ``size`` per
  model, and ``input_reference`` (JPEG, PNG or WebP of exactly ``size``).
- Jobs move ``queued`` → ``in_progress`` → ``completed`` over ``render_seconds`` with a
  rising ``progress``; ``GET /videos/{id}`` answers with an ``openai-poll-after-ms`` hint.
- ``GET /videos/{id}/content?variant=video|thumbnail|spritesheet`` serves a real H.264 MP4
  of the job's size and length (its first frame is the input still), a WebP thumbnail
  and a JPEG spritesheet; optionally through a redirect, as the service may.
- Remix, edits and extensions (stitched ``seconds``), ``GET /videos`` with cursor
  pagination, ``DELETE``, characters, and Azure's ``/openai/v1`` path with ``api-version``.
- Outputs expire ``ttl_seconds`` after completion (``expire()`` forces it).
- Webhooks: ``video.completed`` / ``video.failed`` delivered to ``webhook_url``, signed the
  Standard Webhooks way with ``webhook_secret``; ``deliver()`` sends hand-made (forged,
  stale, replayed) deliveries.

Faults are scripted: ``inject()`` answers a route with an error (429 with
``Retry-After``, 5xx, before or after doing the work) or cuts a download short;
``fail_next()`` makes the next job fail (a moderation refusal, say); ``hold`` keeps jobs
running until ``release()``; ``max_running`` answers creates with 429 "Too many running
tasks" like Azure; ``retired`` answers every route like a shut-down endpoint. Every
request is recorded in ``requests`` (never its credentials).

The package is split by concern: :mod:`.state` (constants, jobs, faults, records),
:mod:`.forms` (parsing and checking requests), :mod:`.routes` (what each endpoint does),
:mod:`.content` (the rendered outputs) and :mod:`.server` (lifecycle, scripting,
webhooks, HTTP).
"""

from __future__ import annotations

from core.testing.videos_api.server import VideosAPIServer, new_webhook_secret
from core.testing.videos_api.state import ApiError, Fault, RecordedRequest, WebhookDelivery

__all__ = [
    "ApiError",
    "Fault",
    "RecordedRequest",
    "VideosAPIServer",
    "WebhookDelivery",
    "new_webhook_secret",
]
