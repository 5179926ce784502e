"""Expired sessions in a real Synapse: a delisted professional reads why in French (issue 6, item 14).

Synapse writes "User account has expired" (``ORG_MATRIX_EXPIRED_ACCOUNT``) itself; the module's
``/_matrix`` resource gives the same refusal with the French text (``french_refusals``).
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from synapse_module.french_refusals import ACCOUNT_EXPIRED
from tests.support.polling import eventually
from tests.support.stack import Stack
from tests.synapse_module.matrix import client_api, new_professional

pytestmark = pytest.mark.synapse

TTL = 1.0  # the test profile's cache_ttl_seconds
BOUND = 2 * TTL + 2 + 1.5  # freshness bound + directory timeout + polling margin


def _is_french_expiry(resp: httpx.Response) -> bool:
    return resp.status_code == 403 and resp.json() == {
        "errcode": "ORG_MATRIX_EXPIRED_ACCOUNT",
        "error": ACCOUNT_EXPIRED,
    }


async def test_a_delisted_professional_is_told_in_french_on_every_api(stack: Stack) -> None:
    user_id, password, national_id = await new_professional(stack, "expired")
    token = await stack.login(user_id, password)
    # A large ordinary answer goes through untouched (the first chunk is looked at, then let go).
    room = await client_api(stack, "POST", "/_matrix/client/v3/createRoom", token, json={"name": "Salon"})
    assert room.status_code == 200, room.text
    synced = await client_api(stack, "GET", "/_matrix/client/v3/sync", token)
    assert synced.status_code == 200 and room.json()["room_id"] in synced.json()["rooms"]["join"]

    await stack.set_active(national_id, False)

    async def cut_in_french() -> bool:
        return _is_french_expiry(await client_api(stack, "GET", "/_matrix/client/v3/account/whoami", token))

    await eventually(cut_in_french, within=BOUND)
    # Every authenticated API answers the same French refusal: client, media, with a body or not.
    # With workers each process keeps its own directory cache: each is cut within the same bound.
    for method, path, kwargs in (
        ("GET", "/_matrix/client/v3/sync", {}),
        ("POST", "/_matrix/client/v3/createRoom", {"json": {}}),
        ("GET", "/_matrix/client/v1/media/config", {}),
        ("GET", "/_matrix/media/v3/config", {}),
    ):
        answers: list[httpx.Response] = []

        async def refused_in_french(
            method: str = method,
            path: str = path,
            kwargs: dict[str, Any] = kwargs,
            answers: list[httpx.Response] = answers,
        ) -> bool:
            answers.append(await client_api(stack, method, path, token, **kwargs))
            return _is_french_expiry(answers[-1])

        try:
            await eventually(refused_in_french, within=BOUND)
        except AssertionError:
            raise AssertionError((path, answers[-1].status_code, answers[-1].text[:300])) from None
        resp = answers[-1]
        # The body is exactly what the headers announce (Content-Length or chunked).
        assert resp.headers.get("content-length") in (None, str(len(resp.content)))
        assert "expired" not in resp.text

    # Logging out stays possible for an expired account (Synapse allows it), and is not rewritten.
    logout = await client_api(stack, "POST", "/_matrix/client/v3/logout", token, json={})
    assert logout.status_code == 200, logout.text


async def test_other_refusals_with_a_token_stay_as_synapse_wrote_them(stack: Stack) -> None:
    user_id, password, _ = await new_professional(stack, "notexpired")
    token = await stack.login(user_id, password)
    unknown = await client_api(stack, "GET", "/_matrix/client/v3/rooms/!nope:azurezo.invalid/state", token)
    assert unknown.status_code == 403
    assert unknown.json()["errcode"] == "M_FORBIDDEN" and unknown.json()["error"] != ACCOUNT_EXPIRED
    bad_token = await client_api(stack, "GET", "/_matrix/client/v3/account/whoami", "syt_not_a_token")
    assert bad_token.status_code == 401 and bad_token.json()["errcode"] == "M_UNKNOWN_TOKEN"
