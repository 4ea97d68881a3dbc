"""core.api.remote: the retry, redirect and error rules every remote backend shares."""

from __future__ import annotations

import io

import httpx
import pytest

from core.api.errors import BackendError
from core.api.providers import Secret
from core.api.remote import RemoteService, redact

KEY = Secret("r8_Tz3kQ9wLm2Vx7Pc5Rb8Nd4Hf")


def service(handler, sleeps: list[float] | None = None) -> RemoteService:
    return RemoteService(
        "acme",
        "https://api.acme.test/v1",
        KEY,
        {"Authorization": f"Bearer {KEY.reveal()}"},
        key_source="$ACME_KEY",
        key_fix="reelvault keys set acme",
        transport=httpx.MockTransport(handler),
        sleep=(sleeps if sleeps is not None else []).append,
    )


def test_busy_answers_are_retried_honouring_retry_after():
    answers = iter([
        httpx.Response(429, headers={"Retry-After": "2"}, json={"error": {"message": "slow"}}),
        httpx.Response(503, text="down"),
        httpx.Response(200, json={"ok": True}),
    ])  # fmt: skip
    sleeps: list[float] = []
    response = service(lambda request: next(answers), sleeps).call("GET", "jobs/1")
    assert response.json() == {"ok": True}
    assert sleeps[0] == 2.0 and len(sleeps) == 2


def test_a_create_is_not_repeated_after_a_server_error():
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(500, json={"error": {"message": "boom"}})

    with pytest.raises(BackendError) as failed:
        service(handler).call("POST", "jobs", create=True, json={})
    assert len(calls) == 1 and not failed.value.transient
    assert "may or may not have been created, so it was not sent again" in str(failed.value)


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (401, {"detail": "Invalid token " + KEY.reveal()},
         "provider acme did not accept the API key from $ACME_KEY (HTTP 401); "
         "set a valid one with `reelvault keys set acme`"),
        (422, {"error": {"message": "bad seconds", "param": "seconds"}},
         "acme refused the request: bad seconds (field seconds)"),
        (403, {"detail": "no access"}, "provider acme refused access (HTTP 403): no access"),
    ],
)  # fmt: skip
def test_error_answers_are_one_clear_line(status: int, body: dict, expected: str):
    with pytest.raises(BackendError) as failed:
        service(lambda request: httpx.Response(status, json=body)).call("GET", "jobs")
    assert str(failed.value).startswith(expected)
    assert KEY.reveal() not in str(failed.value)


def test_a_redirect_elsewhere_never_carries_the_key():
    seen: dict[str, str | None] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        seen[request.url.host] = request.headers.get("authorization")
        if request.url.host == "api.acme.test":
            return httpx.Response(302, headers={"location": "https://cdn.other.test/v.mp4"})
        return httpx.Response(200, content=b"video")

    out = io.BytesIO()
    service(handler).download("files/1", out, job="job1", authenticated=True)
    assert out.getvalue() == b"video"
    assert seen == {"api.acme.test": f"Bearer {KEY.reveal()}", "cdn.other.test": None}
    seen.clear()
    service(handler).download("https://cdn.other.test/x.mp4", out, job="j", authenticated=True)
    assert seen == {"cdn.other.test": None}  # an absolute URL elsewhere gets no key either


def test_redact_takes_out_keys_even_unknown_ones():
    text = "key AIzaSyA1b2C3d4E5f6G7h8I9j0KlMnOpQrStU and r8_abcdefgh and mine " + KEY.reveal()
    assert redact(text, KEY) == "key [redacted] and [redacted] and mine [key]"
