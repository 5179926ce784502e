"""Which requests get the module's French answer instead of Synapse's English registration refusals."""

from __future__ import annotations

import json

import pytest
from twisted.web.server import Request
from twisted.web.test.requesthelper import DummyChannel

from synapse_module.french_refusals import (
    ACCOUNT_DEACTIVATED,
    ACCOUNT_EXPIRED,
    EXPIRED_TRANSLATIONS,
    GUEST_ACCESS_CLOSED,
    LOGIN_TRANSLATIONS,
    REGISTRATION_CLOSED,
    TOO_MANY_ATTEMPTS,
    WRONG_CREDENTIALS,
    is_login,
    refusal_in_french,
    registration_refusal,
    translate_refusals,
)


def refusal(
    method: bytes = b"POST",
    path: str = "v3/register",
    kind: bytes | None = None,
    *,
    authenticated: bool = False,
    registration: bool = False,
    guests: bool = False,
) -> str | None:
    return registration_refusal(
        method=method,
        client_path=[p.encode() for p in path.split("/")],
        kind=kind,
        authenticated=authenticated,
        registration_enabled=registration,
        guest_access_enabled=guests,
    )


@pytest.mark.parametrize("version", ["r0", "v3"])
def test_closed_registration_is_refused_in_french(version: str) -> None:
    assert refusal(path=f"{version}/register") == REGISTRATION_CLOSED
    assert refusal(path=f"{version}/register", kind=b"user") == REGISTRATION_CLOSED
    assert refusal(b"GET", f"{version}/register/available") == REGISTRATION_CLOSED


def test_guest_registration_is_refused_in_french() -> None:
    assert refusal(kind=b"guest") == GUEST_ACCESS_CLOSED
    assert refusal(kind=b"guest", registration=True) == GUEST_ACCESS_CLOSED


@pytest.mark.parametrize(
    "case",
    [
        {"registration": True},  # open registration: the module's registration check decides
        {"kind": b"guest", "guests": True},
        {"authenticated": True},  # application services register with their token
        {"path": "v3/login"},
        {"path": "v3/register/email/requestToken"},
        {"method": b"OPTIONS"},  # CORS preflight: Synapse answers
        {"kind": b"other"},  # Synapse's own 400
    ],
)
def test_everything_else_is_left_to_synapse(case: dict[str, object]) -> None:
    assert refusal(**case) is None  # type: ignore[arg-type]


def test_texts_are_french_and_say_what_to_do() -> None:
    for text in (REGISTRATION_CLOSED, GUEST_ACCESS_CLOSED):
        assert "Demandez" in text and "structure de coordination" in text


# --- Synapse's expired-account refusal, rewritten in French ------------------------------------------

ENGLISH_EXPIRED = b'{"errcode":"ORG_MATRIX_EXPIRED_ACCOUNT","error":"User account has expired"}'


def _answer(code: int, chunks: list[bytes], *, content_length: bool) -> bytes:
    """What a real Twisted request sends on the wire when Synapse writes ``chunks`` after the module
    installed its translation."""
    channel = DummyChannel()  # type: ignore[no-untyped-call]
    request = Request(channel, False)
    request.method, request.clientproto = b"GET", b"HTTP/1.1"
    translate_refusals(request, EXPIRED_TRANSLATIONS)
    request.setResponseCode(code)
    request.setHeader(b"Content-Type", b"application/json")
    if content_length:
        request.setHeader(b"Content-Length", b"%d" % sum(len(c) for c in chunks))
    for chunk in chunks:
        request.write(chunk)
    request.finish()
    return bytes(channel.transport.written.getvalue())


def _body(wire: bytes) -> bytes:
    head, body = wire.split(b"\r\n\r\n", 1)
    if b"Transfer-Encoding: chunked" not in head:
        return body
    data = b""
    while True:  # <hex size>\r\n<bytes>\r\n ... 0\r\n\r\n
        size_line, body = body.split(b"\r\n", 1)
        size = int(size_line, 16)
        if size == 0:
            return data
        data, body = data + body[:size], body[size + 2 :]


@pytest.mark.parametrize("content_length", [True, False])
def test_the_expired_refusal_is_sent_in_french(content_length: bool) -> None:
    wire = _answer(403, [ENGLISH_EXPIRED], content_length=content_length)
    body = _body(wire)
    assert json.loads(body) == {"errcode": "ORG_MATRIX_EXPIRED_ACCOUNT", "error": ACCOUNT_EXPIRED}
    if content_length:
        assert f"Content-Length: {len(body)}\r\n".encode() in wire


@pytest.mark.parametrize(
    ("code", "chunks"),
    [
        (200, [ENGLISH_EXPIRED]),  # only a 403 is a refusal
        (403, [b'{"errcode":"M_FORBIDDEN","error":"You are not in the room"}']),
        (403, [ENGLISH_EXPIRED[:20], ENGLISH_EXPIRED[20:]]),  # not in one piece: left as is
        (403, [b"<html>Forbidden</html>"]),
        (403, [b"\xff\xfe not utf-8"]),
        (200, [b'{"rooms":', b' {"join": {}}}']),  # an ordinary answer in several chunks
    ],
)
def test_every_other_answer_is_sent_as_synapse_wrote_it(code: int, chunks: list[bytes]) -> None:
    assert _body(_answer(code, chunks, content_length=True)) == b"".join(chunks)


def test_the_pure_rewrite_keeps_other_keys() -> None:
    body = b'{"errcode":"ORG_MATRIX_EXPIRED_ACCOUNT","error":"User account has expired","x":1}'
    french = refusal_in_french(403, body, EXPIRED_TRANSLATIONS)
    assert french is not None and json.loads(french) == {
        "errcode": "ORG_MATRIX_EXPIRED_ACCOUNT",
        "error": ACCOUNT_EXPIRED,
        "x": 1,
    }
    too_large = b" " * 5000 + ENGLISH_EXPIRED  # too large to be one
    assert refusal_in_french(403, too_large, EXPIRED_TRANSLATIONS) is None
    assert refusal_in_french(403, b"[1, 2]", EXPIRED_TRANSLATIONS) is None


# --- Synapse's failed-login refusals, rewritten in French --------------------------------------------


@pytest.mark.parametrize(
    ("code", "body", "french"),
    [
        (403, {"errcode": "M_FORBIDDEN", "error": "Invalid username or password"}, WRONG_CREDENTIALS),
        (403, {"errcode": "M_USER_DEACTIVATED", "error": "This account has been deactivated"},
         ACCOUNT_DEACTIVATED),
        (429, {"errcode": "M_LIMIT_EXCEEDED", "error": "Too Many Requests", "retry_after_ms": 4200},
         TOO_MANY_ATTEMPTS),
    ],
)  # fmt: skip
def test_failed_logins_are_answered_in_french(code: int, body: dict[str, object], french: str) -> None:
    answer = refusal_in_french(code, json.dumps(body).encode(), LOGIN_TRANSLATIONS)
    assert answer is not None and json.loads(answer) == body | {"error": french}


@pytest.mark.parametrize(
    ("code", "body"),
    [
        # M_FORBIDDEN says other things than a wrong password: only Synapse's own text is translated.
        (403, {"errcode": "M_FORBIDDEN", "error": "You are not allowed to log in here"}),
        (200, {"errcode": "M_FORBIDDEN", "error": "Invalid username or password"}),
        (400, {"errcode": "M_UNKNOWN", "error": "Unknown login type"}),
        (429, {"errcode": "M_FORBIDDEN", "error": "Too Many Requests"}),
    ],
)
def test_other_login_answers_are_left_as_synapse_wrote_them(code: int, body: dict[str, object]) -> None:
    assert refusal_in_french(code, json.dumps(body).encode(), LOGIN_TRANSLATIONS) is None


def test_only_logins_are_looked_at() -> None:
    assert is_login(b"POST", [b"v3", b"login"]) and is_login(b"POST", [b"r0", b"login"])
    assert not is_login(b"GET", [b"v3", b"login"])  # the login flows
    assert not is_login(b"POST", [b"v3", b"login", b"get_token"])
    assert not is_login(b"POST", [b"v3", b"register"])
