"""Webhooks: Standard Webhooks signatures, and one receiver that finishes jobs for every kind.

The receiver serves one provider profile; the Videos API (sora), Replicate and fal each
announce finished jobs their own way (:mod:`core.remote.deliveries` reads each; fal signs
with Ed25519). The Videos API announces ``video.completed`` and ``video.failed`` with only
the video's id, and Replicate sends the finished Prediction; both sign the Standard
Webhooks way: HMAC-SHA256 over ``"{webhook-id}.{timestamp}.{body}"`` with the ``whsec_``
secret, base64, in a ``webhook-signature`` list of ``v1,<sig>`` entries. Signatures are
made and checked by the specification's reference library, ``standardwebhooks``, not by
code of our own. A delivery is trusted only if a signature matches, its timestamp is
within five minutes, and its delivery id has not been seen before (a replay: the library
does not track ids, :class:`ReplayGuard` does).

A trusted event finishes its job through :func:`core.generation.run_job`, the same path
polling and ``resume`` take, so a job announced by a webhook while a ``generate`` is still
polling it is finished once: whoever gets there second finds it completed.

The receiver answers at once and does the work (poll, download, catalog) on a worker
thread, because senders time out and retry slow endpoints. It speaks plain HTTP: put it
behind a TLS-terminating proxy when the service must reach it over the internet.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import errno
import json
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from core.api.errors import ReelvaultError, WebhookRejected
from core.api.providers import (
    ProviderProfile,
    Secret,
    get_profile,
    key_source,
    load_profiles,
    webhook_secret,
)
from core.host.app import Reelvault
from core.remote.deliveries import (
    FAL_JWKS_URL,
    TOLERANCE_SECONDS,
    Announced,
    FalKeys,
    fal_delivery,
    finish_announced,
    replicate_prediction,
    replicate_secret,
    video_event,
)

MAX_BODY_BYTES = 1 << 20
READ_TIMEOUT_SECONDS = 10.0
"""How long a connection may take to send its request line, headers and body: a client
that announces a body and sends nothing frees its thread after this."""
MAX_CONNECTIONS = 32
"""Connections served at once; one more is answered 503 at once rather than given a
thread (a provider retries a delivery that was not accepted)."""
TIMESTAMP_DIGITS = 12
"""A Unix time in seconds has 10 digits until the year 2286; more is not a timestamp."""
DELIVERIES_KEPT = 1000
"""How many recent deliveries a receiver remembers (for tests and diagnostics)."""


# --- signatures --------------------------------------------------------------------------


def secret_bytes(secret: str) -> bytes:
    """The HMAC key: a ``whsec_`` secret is base64 after its prefix, anything else raw UTF-8.

    The reference library decodes every string secret as base64 and forgives bad padding;
    decoding here instead refuses a mangled ``whsec_`` secret at startup, with a message,
    and keeps raw (unprefixed) secrets working as the service's SDKs read them.
    """
    if secret.startswith("whsec_"):
        try:
            key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
        except binascii.Error:
            raise WebhookRejected("the webhook secret is not valid whsec_ base64") from None
    else:
        key = secret.encode()
    if not key:
        raise WebhookRejected("the webhook secret is empty")
    return key


def _webhook(secret: str) -> Webhook:
    """The reference implementation, keyed with the secret's bytes (used as they are)."""
    return Webhook(secret_bytes(secret))


def sign(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    """The ``v1,<base64>`` signature of one delivery, by the reference library.

    The library signs text: ``body`` must be UTF-8, as a JSON event always is.
    """
    when = datetime.fromtimestamp(timestamp, tz=UTC)
    return _webhook(secret).sign(webhook_id, when, body.decode())


def _well_formed(signatures: str) -> str:
    """The ``v1,<base64>`` entries of a ``webhook-signature`` list, the others dropped.

    The library splits each entry on its comma and decodes it, raising on anything odd;
    a malformed entry must only fail to match, never hide a good entry beside it.
    """
    kept = []
    for entry in signatures.split():
        version, comma, signature = entry.partition(",")
        if not comma or "," in signature or not entry.isascii() or not version:
            continue
        try:
            base64.b64decode(signature, validate=True)
        except binascii.Error:
            continue
        kept.append(entry)
    return " ".join(kept)


def verify(secret: str, body: bytes, headers: Mapping[str, str]) -> dict[str, Any]:
    """Check one Videos API delivery and return its event; raise :class:`WebhookRejected`
    otherwise (see :func:`check_signature`)."""
    check_signature(secret, body, headers)
    try:
        event = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise WebhookRejected("the body is not JSON") from None
    if not isinstance(event, dict) or not isinstance(event.get("type"), str):
        raise WebhookRejected("the body is not an event")
    return event


def check_signature(secret: str, body: bytes, headers: Mapping[str, str]) -> str:
    """Check one Standard Webhooks delivery's signature and time; its ``webhook-id``.

    The signature and the five-minute window are checked by the reference
    ``standardwebhooks`` library; the headers are read here first so that each refusal
    says exactly what was wrong (the library has one message for every header problem).
    """
    lower = {k.lower(): v for k, v in headers.items()}
    missing = [
        h for h in ("webhook-id", "webhook-timestamp", "webhook-signature") if not lower.get(h)
    ]
    if missing:
        raise WebhookRejected(f"missing header {', '.join(missing)}")
    stamp = lower["webhook-timestamp"].strip()
    if not (stamp.isascii() and stamp.isdigit() and len(stamp) <= TIMESTAMP_DIGITS):
        raise MalformedDelivery("webhook-timestamp is not a number of seconds")
    timestamp = int(stamp)
    current = time.time()
    if current - timestamp > TOLERANCE_SECONDS:
        raise WebhookRejected(f"the delivery is older than {TOLERANCE_SECONDS} s")
    if timestamp - current > TOLERANCE_SECONDS:
        raise WebhookRejected("the delivery is timestamped in the future")
    signatures = _well_formed(lower["webhook-signature"])
    if not signatures:
        raise WebhookRejected("no signature matches")
    checked = {**lower, "webhook-signature": signatures}
    try:
        _webhook(secret).verify(body, checked, json_parse=False)
    except UnicodeDecodeError:  # the library verifies text; a JSON body is UTF-8
        raise WebhookRejected("the body is not JSON") from None
    except WebhookVerificationError as exc:
        timing = "timestamp" in str(exc).lower()  # the clock moved on since the check above
        reason = f"the delivery's timestamp: {exc}" if timing else "no signature matches"
        raise WebhookRejected(reason) from None
    return lower["webhook-id"]


class MalformedDelivery(WebhookRejected):
    """A delivery whose headers are not what the standard says (answered 400, not 401:
    the sender's request is wrong, not its credentials)."""


class ReplayGuard:
    """Remembers delivery ids for as long as their timestamps would still be accepted."""

    def __init__(self, window: float = 2 * TOLERANCE_SECONDS) -> None:
        self._window = window
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()

    def first_time(self, webhook_id: str, now: float | None = None) -> bool:
        current = time.time() if now is None else now
        with self._lock:
            self._seen = {k: t for k, t in self._seen.items() if current - t < self._window}
            if webhook_id in self._seen:
                return False
            self._seen[webhook_id] = current
            return True


# --- finishing jobs ----------------------------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    """What the receiver made of one request, for the log and for tests."""

    status: int
    message: str


class WebhookReceiver:
    """An HTTP endpoint for one provider profile's webhook deliveries."""

    def __init__(
        self,
        app: Reelvault,
        provider: str | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        on_message: Callable[[str], None] | None = None,
    ) -> None:
        self.app = app
        self.profile = _profile(app, provider)
        self._secret: Secret | None = None
        self._fal_keys: FalKeys | None = None
        if self.profile.kind not in ("sora", "replicate", "fal"):
            raise ReelvaultError(
                f"provider {self.profile.name} is a {self.profile.kind} provider, which sends "
                "no webhooks: its jobs are finished by polling (`reelvault resume`)"
            )
        if self.profile.kind == "fal":
            jwks = app.settings.section("fal").get("webhook_jwks_url") or FAL_JWKS_URL
            self._fal_keys = FalKeys(str(jwks))
        else:
            self._secret = _signing_secret(app, self.profile)
        self._guard = ReplayGuard()
        self._events: queue.Queue[Announced | None] = queue.Queue()
        self._say = on_message or (lambda _line: None)
        self.deliveries: deque[Delivery] = deque(maxlen=DELIVERIES_KEPT)
        try:
            self._server = _BoundedServer((host, port), self._handler_class())
        except OSError as exc:
            raise ReelvaultError(
                f"cannot listen on {host}:{port}: {exc.strerror or exc}"
                + (" (another program uses that port)" if exc.errno == errno.EADDRINUSE else "")
            ) from None
        self._server.daemon_threads = True
        self._threads: list[threading.Thread] = []

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/"

    def start(self) -> WebhookReceiver:
        self._threads = [
            threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True),
            threading.Thread(target=self._work, daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        return self

    def serve_forever(self) -> None:
        """Run until interrupted (Ctrl-C), finishing what was already accepted first."""
        self.start()
        try:
            while True:
                time.sleep(3600)
        finally:
            self.stop()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._events.put(None)
        for thread in self._threads:
            thread.join(timeout=30)

    def wait_idle(self, timeout: float = 30.0) -> None:
        """Block until every accepted event has been handled (tests use this)."""
        deadline = time.monotonic() + timeout
        while self._events.unfinished_tasks:
            if time.monotonic() > deadline:
                raise TimeoutError("webhook events still being handled")
            time.sleep(0.01)

    def __enter__(self) -> WebhookReceiver:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def receive(
        self, body: bytes, headers: Mapping[str, str], query: Mapping[str, str] | None = None
    ) -> Delivery:
        """Judge one delivery; a trusted one is queued for the worker. ``query`` is the
        request URL's query (fal's webhook URL names the app there)."""
        try:
            announced = self._judge(body, headers, query or {})
        except MalformedDelivery as exc:
            delivery = Delivery(HTTPStatus.BAD_REQUEST, f"refused a malformed delivery: {exc}")
        except WebhookRejected as exc:
            delivery = Delivery(HTTPStatus.UNAUTHORIZED, f"refused a delivery: {exc}")
        else:
            delivery_id = announced.delivery_id
            if not self._guard.first_time(f"{self.profile.kind}:{delivery_id}"):
                delivery = Delivery(
                    HTTPStatus.CONFLICT, f"refused a replayed delivery {delivery_id}"
                )
            else:
                self._events.put(announced)
                delivery = Delivery(HTTPStatus.OK, f"accepted {announced.what} ({delivery_id})")
        self.deliveries.append(delivery)
        self._say(delivery.message)
        return delivery

    def _judge(
        self, body: bytes, headers: Mapping[str, str], query: Mapping[str, str]
    ) -> Announced:
        """A delivery checked the way its provider signs it, read the way it writes it."""
        provider = self.profile.name
        if self._fal_keys is not None:
            return fal_delivery(self._fal_keys, body, headers, query, provider)
        assert self._secret is not None
        if self.profile.kind == "replicate":
            webhook_id = check_signature(self._secret.reveal(), body, headers)
            return replicate_prediction(body, webhook_id, provider)
        event = verify(self._secret.reveal(), body, headers)
        webhook_id = {k.lower(): v for k, v in headers.items()}["webhook-id"]
        return video_event(event, webhook_id, provider)

    def _work(self) -> None:
        while (announced := self._events.get()) is not None:
            try:
                self._say(finish_announced(self.app, announced))
            except Exception as exc:  # a bug must not stop the receiver; it is reported
                self._say(f"error handling {announced.what}: {type(exc).__name__}: {exc}")
            finally:
                self._events.task_done()
        self._events.task_done()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body are two writes: no ACK wait
            timeout = READ_TIMEOUT_SECONDS  # a socket timeout on every read of the request

            def do_POST(self) -> None:
                text = (self.headers.get("Content-Length") or "0").strip()
                if not (text.isascii() and text.isdigit()):
                    self.close_connection = True  # the body's end is unknown: no keep-alive
                    self._answer(Delivery(HTTPStatus.BAD_REQUEST, "bad Content-Length"))
                    return
                length = int(text)
                if length > MAX_BODY_BYTES:
                    self.close_connection = True  # the unread body must not be parsed
                    self._answer(Delivery(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "too large"))
                    return
                try:
                    body = self.rfile.read(length)
                except TimeoutError:
                    self.close_connection = True
                    self._answer(Delivery(HTTPStatus.REQUEST_TIMEOUT, "the body never came"))
                    return
                if len(body) < length:  # the client hung up halfway
                    self.close_connection = True
                    return
                query = {k: v[-1] for k, v in parse_qs(urlsplit(self.path).query).items()}
                self._answer(receiver.receive(body, dict(self.headers.items()), query))

            def _answer(self, delivery: Delivery) -> None:
                payload = json.dumps({"message": delivery.message}).encode()
                self.send_response(delivery.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                if self.close_connection:
                    self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # deliveries are reported through on_message

        return Handler


def _profile(app: Reelvault, provider: str | None) -> ProviderProfile:
    """The named profile, of whatever kind; without a name, the default Videos API one."""
    if provider is not None:
        found = load_profiles(app.settings).get(provider)
        if found is not None:
            return found
    return get_profile(app.settings, provider)


def _signing_secret(app: Reelvault, profile: ProviderProfile) -> Secret:
    """The profile's ``whsec_`` secret, checked at start-up rather than at the first delivery."""
    secret = webhook_secret(app.settings, profile)
    where = key_source(app.settings, profile, "webhook_secret")
    if secret is None and profile.kind == "replicate":  # the account's, from the API
        secret = replicate_secret(app.settings, profile)
        where = f"GET /webhooks/default/secret at {profile.name}"
    if secret is None:
        raise ReelvaultError(f"no webhook secret for provider {profile.name}: {where}")
    try:
        secret_bytes(secret.reveal())
    except WebhookRejected:
        raise ReelvaultError(
            f"the webhook secret for provider {profile.name} ({where}) is not valid: "
            "a whsec_ secret is base64 after its prefix; copy it again from the provider"
        ) from None
    return secret


class _BoundedServer(ThreadingHTTPServer):
    """A threading server that serves at most :data:`MAX_CONNECTIONS` connections at once.

    Each connection holds a thread for as long as it is open; without a bound, clients that
    connect and send nothing would take a thread each until the process runs out.
    """

    daemon_threads = True
    request_queue_size = 64
    _BUSY_BODY = b'{"message": "too many connections; retry later"}'
    _BUSY = (
        b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
        b"Retry-After: 1\r\nConnection: close\r\n"
        + f"Content-Length: {len(_BUSY_BODY)}\r\n\r\n".encode()
        + _BUSY_BODY
    )

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(address, handler)
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            with contextlib.suppress(OSError):
                request.settimeout(1.0)
                request.sendall(self._BUSY)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()
