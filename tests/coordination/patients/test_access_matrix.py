"""Every patient-scoped endpoint refuses a non-member (403, French) and a delisted professional (403),
even a delisted one who is still an authorised member of the circle. No answer hints at more."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from tests.coordination.patients.support import add_circle_member, audit_actions, create_patient, delist
from tests.support.service import FakeTokens, Pro, add_professional

# (method, path under /api/v1/patients/{pid}, body); {mid} is a circle member id.
ENDPOINTS: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", "", None),
    ("PATCH", "", {"version": 1, "phone": "0600000000"}),
    ("POST", "/discharge", {"version": 1, "reason": "déménagement"}),
    ("POST", "/reactivate", {"version": 1}),
    ("GET", "/circle", None),
    ("POST", "/circle", {"kind": "relative", "name": "Paul", "relationship": "fils"}),
    ("GET", "/circle/{mid}", None),
    ("PATCH", "/circle/{mid}", {"role": "aidant principal"}),
    ("DELETE", "/circle/{mid}", None),
    ("GET", "/audit", None),
    ("GET", "/rooms", None),
    ("POST", "/rooms", {"room_id": "!nouveau:azurezo.test"}),
    ("GET", "/fhir", None),
]


@pytest.fixture
async def setting(client: httpx.AsyncClient, db: AsyncSession, tokens: FakeTokens) -> dict[str, Any]:
    alice = await add_professional(db, tokens, localpart="alice", national_id="810000000001")
    outsider = await add_professional(db, tokens, localpart="out", national_id="810000000002")
    delisted = await add_professional(db, tokens, localpart="old", national_id="810000000003")
    pid = (await create_patient(client, alice))["id"]
    await add_circle_member(
        client, alice, pid, kind="professional", national_id=delisted.national_id, role="x", habilite=True
    )
    relative = await add_circle_member(client, alice, pid, kind="relative", name="Paul", relationship="fils")
    room = await client.post(
        f"/api/v1/patients/{pid}/rooms", json={"room_id": "!salon:azurezo.test"}, headers=alice.headers
    )
    assert room.status_code == 201
    await delist(db, delisted.national_id)
    return {"alice": alice, "outsider": outsider, "delisted": delisted, "pid": pid, "mid": relative["id"]}


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS)
async def test_non_member_and_delisted_are_refused(
    client: httpx.AsyncClient,
    db: AsyncSession,
    setting: dict[str, Any],
    method: str,
    path: str,
    body: dict[str, Any] | None,
) -> None:
    url = f"/api/v1/patients/{setting['pid']}" + path.format(mid=setting["mid"])
    outsider: Pro = setting["outsider"]
    delisted: Pro = setting["delisted"]

    refused = await client.request(method, url, json=body, headers=outsider.headers)
    assert refused.status_code == 403, refused.text
    assert refused.json()["errcode"] == "AZ_NOT_IN_CIRCLE"
    assert "demandez à un membre de vous y ajouter" in refused.json()["error"]

    gone = await client.request(method, url, json=body, headers=delisted.headers)
    assert gone.status_code == 403, gone.text
    assert gone.json()["errcode"] == "AZ_INACTIVE"

    no_token = await client.request(method, url, json=body)
    assert no_token.status_code == 401

    # Refusals leave the dossier untouched and the outsiders out of the trail.
    actions = await audit_actions(db, setting["pid"])
    assert not any(n in (outsider.national_id, delisted.national_id) for _, n in actions)


async def test_room_lookup_refuses_non_members(client: httpx.AsyncClient, setting: dict[str, Any]) -> None:
    url = "/api/v1/rooms/!salon:azurezo.test"
    assert (await client.get(url, headers=setting["alice"].headers)).json()["patient_id"] == setting["pid"]
    refused = await client.get(url, headers=setting["outsider"].headers)
    assert refused.status_code == 403 and refused.json()["errcode"] == "AZ_NOT_IN_CIRCLE"
    assert (await client.get(url, headers=setting["delisted"].headers)).status_code == 403


async def test_search_and_lists_refuse_the_delisted(
    client: httpx.AsyncClient, setting: dict[str, Any]
) -> None:
    delisted: Pro = setting["delisted"]
    for method, url, body in [
        ("GET", "/api/v1/patients?q=dupont", None),
        ("GET", "/api/v1/patients/mine", None),
        ("POST", "/api/v1/patients", {"birth_name": "X"}),
        ("POST", "/api/v1/themes", {"name": "vaccination covid", "room_id": "!covid:azurezo.test"}),
        ("GET", "/api/v1/themes", None),
    ]:
        resp = await client.request(method, url, json=body, headers=delisted.headers)
        assert resp.status_code == 403, (url, resp.text)
        assert resp.json()["errcode"] == "AZ_INACTIVE"
