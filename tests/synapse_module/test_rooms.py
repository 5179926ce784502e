"""The patient-room rule of the module, pure parts: reading the service's answer, the French reasons."""

from __future__ import annotations

import json

import pytest

from synapse_module.directory import Answer, DirectoryUnavailable
from synapse_module.rooms import (
    ALLOWED,
    NOT_IN_CIRCLE_INVITE,
    NOT_IN_CIRCLE_JOIN,
    REFUSED,
    cache_key,
    parse_access_response,
    room_reason,
    split_key,
)
from synapse_module.rules import Action

ROOM, USER = "!r:azurezo.test", "@u:azurezo.test"


def _body(**fields: object) -> bytes:
    return json.dumps({"room_id": ROOM, "user_id": USER, "patient_room": True, **fields}).encode()


def test_answers() -> None:
    assert parse_access_response(200, _body(authorised=True), room_id=ROOM, user_id=USER) is ALLOWED
    assert parse_access_response(200, _body(authorised=False), room_id=ROOM, user_id=USER) is REFUSED


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (401, b'{"errcode": "AZ_UNAUTHENTICATED"}'),
        (500, b""),
        (404, b'{"detail": "Not Found"}'),  # an older service without the route: fail closed
        (200, b"not json"),
        (200, json.dumps({"room_id": ROOM, "user_id": "@other:x", "authorised": True}).encode()),
        (200, json.dumps({"room_id": ROOM, "user_id": USER, "authorised": "yes"}).encode()),
    ],
)
def test_anything_else_is_an_outage(status: int, body: bytes) -> None:
    with pytest.raises(DirectoryUnavailable):
        parse_access_response(status, body, room_id=ROOM, user_id=USER)


def test_reasons() -> None:
    assert room_reason(Answer(ALLOWED, confirmed=True), action=Action.INVITE) is None
    assert room_reason(Answer(REFUSED, confirmed=True), action=Action.INVITE) == NOT_IN_CIRCLE_INVITE
    assert room_reason(Answer(REFUSED, confirmed=True), action=Action.JOIN) == NOT_IN_CIRCLE_JOIN
    # Fail closed: unknown, or only a last-known "allowed" during an outage.
    for answer in (Answer(None, confirmed=False), Answer(ALLOWED, confirmed=False)):
        reason = room_reason(answer, action=Action.JOIN)
        assert reason is not None and "injoignable" in reason


def test_cache_keys() -> None:
    assert split_key(cache_key(ROOM, USER)) == (ROOM, USER)
    assert cache_key(ROOM, USER) != cache_key(USER, ROOM)
