"""Issue 6, item 1: a member removed from the care circle must not get back in through a request to a
DAC drafted earlier. Access is re-checked at every step of a request (see dac_requests/rules.py)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from coordination.circle.models import CircleMember
from tests.coordination.patients.support import delist
from tests.coordination.tasks.factories import add_member, add_patient
from tests.support.service import FakeTokens, Pro, add_professional, add_structure

DAC = "finess:060000099"
CABINET = "finess:060000001"


@dataclass
class Setting:
    insider: Pro  # works at CABINET *and* coordinates the DAC; member of the circle, then removed
    colleague: Pro  # the GP who stays in the circle
    coord: Pro  # another coordinator of the DAC
    patient: uuid.UUID
    insider_member: uuid.UUID


@pytest.fixture
async def setting(db: AsyncSession, tokens: FakeTokens) -> Setting:
    await add_structure(db, DAC, "DAC Alpes-Maritimes", is_dac=True)
    await add_structure(db, CABINET, "Cabinet médical du Port")
    insider = await add_professional(
        db, tokens, localpart="insider", national_id="810000000021", structure_ids=(CABINET, DAC)
    )
    colleague = await add_professional(
        db, tokens, localpart="gp", national_id="810000000022", structure_ids=(CABINET,)
    )
    coord = await add_professional(
        db, tokens, localpart="coord", national_id="810000000023", structure_ids=(DAC,)
    )
    patient = await add_patient(db)
    member = await add_member(db, patient, national_id=insider.national_id)
    await add_member(db, patient, national_id=colleague.national_id)
    return Setting(insider, colleague, coord, patient, member)


async def _post(client: httpx.AsyncClient, who: Pro, path: str, **body: Any) -> httpx.Response:
    return await client.post(f"/api/v1/requests{path}", json=body, headers=who.headers)


async def _draft(client: httpx.AsyncClient, s: Setting) -> dict[str, Any]:
    resp = await _post(
        client, s.insider, "", dac_structure_id=DAC, reason="Situation complexe", patient_id=str(s.patient)
    )
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


async def _remove_insider(client: httpx.AsyncClient, s: Setting) -> None:
    resp = await client.delete(
        f"/api/v1/patients/{s.patient}/circle/{s.insider_member}", headers=s.colleague.headers
    )
    assert resp.status_code in (200, 204), resp.text
    assert (await client.get(f"/api/v1/patients/{s.patient}", headers=s.insider.headers)).status_code == 403


async def test_removed_coordinator_cannot_answer_own_request_back_into_the_circle(
    client: httpx.AsyncClient, setting: Setting, db: AsyncSession
) -> None:
    """The exact case of the issue: the requester also coordinates the receiving DAC, is removed from
    the circle after sending, and answers their own request with include_patient."""
    s = setting
    req = await _draft(client, s)
    sent = await _post(client, s.insider, f"/{req['id']}/send", version=req["version"])
    assert sent.status_code == 200, sent.text
    taken = await _post(client, s.coord, f"/{req['id']}/take", version=sent.json()["version"])
    assert taken.status_code == 200, taken.text
    await _remove_insider(client, s)

    own = await _post(
        client,
        s.insider,
        f"/{req['id']}/answer",
        version=taken.json()["version"],
        decision="acceptee",
        include_patient=True,
    )
    assert own.status_code == 403, own.text
    assert own.json()["errcode"] == "AZ_OWN_REQUEST"

    # Another coordinator may answer, but not include the patient on behalf of a removed author.
    other = await _post(
        client,
        s.coord,
        f"/{req['id']}/answer",
        version=taken.json()["version"],
        decision="acceptee",
        include_patient=True,
    )
    assert other.status_code == 403, other.text
    assert other.json()["errcode"] == "AZ_NOT_IN_CIRCLE"
    assert "auteur de la demande" in other.json()["error"]

    assert (await client.get(f"/api/v1/patients/{s.patient}", headers=s.insider.headers)).status_code == 403
    db.expire_all()
    dac_rows = (await db.scalars(select(CircleMember).where(CircleMember.structure_id == DAC))).all()
    assert dac_rows == []

    # Without inclusion the answer goes through (the DAC can still tell the requester).
    plain = await _post(
        client, s.coord, f"/{req['id']}/answer", version=taken.json()["version"], decision="information"
    )
    assert plain.status_code == 200, plain.text
    assert plain.json()["patient_included"] is False
    assert (await client.get(f"/api/v1/patients/{s.patient}", headers=s.insider.headers)).status_code == 403


async def test_coordinator_may_not_take_own_request(client: httpx.AsyncClient, setting: Setting) -> None:
    s = setting
    req = await _draft(client, s)
    sent = (await _post(client, s.insider, f"/{req['id']}/send", version=req["version"])).json()
    own = await _post(client, s.insider, f"/{req['id']}/take", version=sent["version"])
    assert own.status_code == 403 and own.json()["errcode"] == "AZ_OWN_REQUEST"
    taken = await _post(client, s.coord, f"/{req['id']}/take", version=sent["version"])
    assert taken.status_code == 200
    own_answer = await _post(
        client, s.insider, f"/{req['id']}/answer", version=taken.json()["version"], decision="information"
    )
    assert own_answer.status_code == 403 and own_answer.json()["errcode"] == "AZ_OWN_REQUEST"


async def test_removed_requester_can_no_longer_update_send_cancel_or_read(
    client: httpx.AsyncClient, setting: Setting
) -> None:
    s = setting
    req = await _draft(client, s)
    rid, version = req["id"], req["version"]
    await _remove_insider(client, s)
    h = s.insider.headers
    for resp in [
        await client.patch(f"/api/v1/requests/{rid}", json={"version": version, "reason": "x"}, headers=h),
        await _post(client, s.insider, f"/{rid}/send", version=version),
        await _post(client, s.insider, f"/{rid}/cancel", version=version),
    ]:
        assert resp.status_code == 403, resp.text
        assert resp.json()["errcode"] == "AZ_NOT_IN_CIRCLE"
    # The request stays where it was; the DAC never received it.
    coord_view = await client.get(f"/api/v1/requests/{rid}", headers=s.coord.headers)
    assert coord_view.status_code == 404
    # Its author no longer lists it (it names a patient they may not see) ... but the colleague does not
    # see it either: it is the author's.
    mine = await client.get("/api/v1/requests", params={"mine": True}, headers=h)
    assert mine.status_code == 200 and mine.json()["items"] == []


async def test_answer_with_inclusion_needs_author_still_active(
    client: httpx.AsyncClient, setting: Setting, db: AsyncSession
) -> None:
    """Delisted since sending: the author is no longer authorised, so the DAC is not included."""
    s = setting
    req = (
        await _post(
            client,
            s.colleague,
            "",
            dac_structure_id=DAC,
            reason="Situation complexe",
            patient_id=str(s.patient),
        )
    ).json()
    sent = (await _post(client, s.colleague, f"/{req['id']}/send", version=req["version"])).json()
    taken = (await _post(client, s.coord, f"/{req['id']}/take", version=sent["version"])).json()
    await delist(db, s.colleague.national_id)
    resp = await _post(
        client,
        s.coord,
        f"/{req['id']}/answer",
        version=taken["version"],
        decision="acceptee",
        include_patient=True,
    )
    assert resp.status_code == 403 and resp.json()["errcode"] == "AZ_NOT_IN_CIRCLE"
