"""The patient's timeline and the complex-situation flag through the real app."""

from __future__ import annotations

from datetime import datetime, timedelta

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from coordination.evaluations import aggir
from tests.coordination.agenda.support import AgendaSetup, book, local, make_agenda
from tests.coordination.patients.support import add_circle_member, audit_actions, create_patient
from tests.filetyping import samples
from tests.support.service import FakeTokens, Pro, add_professional, add_structure

DAC = "finess:060000099"


@pytest.fixture
async def gp(db: AsyncSession, tokens: FakeTokens) -> Pro:
    await add_structure(db, DAC, "DAC Alpes-Maritimes", is_dac=True)
    return await add_professional(db, tokens, localpart="gp", national_id="810000000501")


@pytest.fixture
async def coordinator(db: AsyncSession, tokens: FakeTokens, gp: Pro) -> Pro:
    return await add_professional(
        db, tokens, localpart="dac", national_id="810000000502", given_name="Paul", structure_ids=(DAC,)
    )


async def _fill(client: httpx.AsyncClient, gp: Pro, pid: str) -> dict[str, str]:
    """One thing of every source; returns the ids to look for."""
    url = f"/api/v1/patients/{pid}"
    event = await client.post(
        f"{url}/timeline/events",
        json={"kind": "hospitalisation", "occurred_on": "2026-01-10", "title": "Hospitalisation, CH de Nice"},
        headers=gp.headers,
    )
    assert event.status_code == 201, event.text
    back = await client.post(
        f"{url}/timeline/events",
        json={"kind": "Sortie d'hospitalisation", "occurred_on": "2026-01-20", "title": "Retour à domicile"},
        headers=gp.headers,
    )
    assert back.status_code == 201, back.text
    ev = await client.post(
        f"{url}/evaluations",
        json={"form_id": "aggir", "answers": dict.fromkeys(aggir.VARIABLES, "A"), "sign": True},
        headers=gp.headers,
    )
    plan = await client.put(f"{url}/plan", json={"version": 0, "situation": "Stable."}, headers=gp.headers)
    task = await client.post(
        "/api/v1/tasks",
        json={"title": "Appeler la fille", "type": "appel", "patient_id": pid},
        headers=gp.headers,
    )
    done = await client.patch(
        f"/api/v1/tasks/{task.json()['id']}", json={"version": 1, "status": "terminee"}, headers=gp.headers
    )
    doc = await client.post(
        f"{url}/documents",
        data={"title": "Compte rendu d'hospitalisation", "category": "compte_rendu"},
        files={"file": ("cr.pdf", samples.pdf(), "application/pdf")},
        headers=gp.headers,
    )
    req = await client.post(
        "/api/v1/requests",
        json={"dac_structure_id": DAC, "reason": "Retour à domicile difficile", "patient_id": pid},
        headers=gp.headers,
    )
    sent = await client.post(
        f"/api/v1/requests/{req.json()['id']}/send", json={"version": 1}, headers=gp.headers
    )
    for resp in (ev, plan, task, done, doc, req, sent):
        assert resp.status_code in (200, 201), resp.text
    return {
        "evaluation": ev.json()["id"],
        "task": task.json()["id"],
        "document": doc.json()["id"],
        "request": req.json()["id"],
    }


async def test_the_timeline_merges_every_source_newest_first(
    client: httpx.AsyncClient, db: AsyncSession, gp: Pro
) -> None:
    pid = (await create_patient(client, gp, consent={"given": True, "mode": "oral"}))["id"]
    ids = await _fill(client, gp, pid)
    resp = await client.get(f"/api/v1/patients/{pid}/timeline", headers=gp.headers)
    assert resp.status_code == 200, resp.text
    items = resp.json()["items"]
    kinds = [i["kind"] for i in items]
    assert sorted(kinds) == sorted(
        ["evenement", "evenement", "evaluation", "plan", "tache", "document", "demande"]
    )
    assert [i["at"] for i in items] == sorted((i["at"] for i in items), reverse=True)
    assert kinds[-2:] == ["evenement", "evenement"]  # entered in January, before everything done today
    by_kind = {i["kind"]: i for i in items}
    assert (
        by_kind["evaluation"]["object_id"] == ids["evaluation"] and by_kind["evaluation"]["detail"] == "GIR 6"
    )
    assert by_kind["tache"]["title"].endswith("réalisée : Appeler la fille")
    assert by_kind["document"]["object_id"] == ids["document"]
    assert by_kind["demande"]["title"] == "Demande au DAC envoyée : Retour à domicile difficile"
    assert items[-1]["title"] == "Hospitalisation : Hospitalisation, CH de Nice"

    only = await client.get(f"/api/v1/patients/{pid}/timeline?kind=evenement&kind=plan", headers=gp.headers)
    assert [i["kind"] for i in only.json()["items"]] == ["plan", "evenement", "evenement"]
    january = await client.get(
        f"/api/v1/patients/{pid}/timeline?since=2026-01-01&until=2026-01-10", headers=gp.headers
    )
    assert [i["title"] for i in january.json()["items"]] == ["Hospitalisation : Hospitalisation, CH de Nice"]

    seen, cursor = [], None
    while True:
        page = await client.get(
            f"/api/v1/patients/{pid}/timeline",
            params={"limit": 3, **({"cursor": cursor} if cursor else {})},
            headers=gp.headers,
        )
        seen += [i["key"] for i in page.json()["items"]]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    assert seen == [i["key"] for i in items]
    assert "timeline.read" in [a for a, _ in await audit_actions(db, pid)]


async def test_an_event_is_typed(client: httpx.AsyncClient, gp: Pro) -> None:
    pid = (await create_patient(client, gp))["id"]
    bad = await client.post(
        f"/api/v1/patients/{pid}/timeline/events",
        json={"kind": "pique-nique", "occurred_on": "2026-01-10", "title": "x"},
        headers=gp.headers,
    )
    assert bad.status_code == 422


async def test_a_dac_coordinator_flags_a_complex_situation_and_the_board_lists_it(
    client: httpx.AsyncClient, db: AsyncSession, gp: Pro, coordinator: Pro
) -> None:
    pid = (await create_patient(client, gp, consent={"given": True, "mode": "oral"}))["id"]
    other = (await create_patient(client, gp, birth_name="AUTRE"))["id"]
    url = f"/api/v1/patients/{pid}/complex-situation"
    flag = {"flagged": True, "reason": "Polypathologie, aidante épuisée"}
    by_gp = await client.put(url, json=flag, headers=gp.headers)
    assert by_gp.status_code == 403 and by_gp.json()["errcode"] == "AZ_NOT_DAC_COORDINATOR"
    outside = await client.put(url, json=flag, headers=coordinator.headers)
    assert outside.status_code == 403 and outside.json()["errcode"] == "AZ_NOT_IN_CIRCLE"

    for patient in (pid, other):
        await add_circle_member(
            client, gp, patient, kind="structure", structure_id=DAC, role="DAC", habilite=True
        )
    flagged = await client.put(url, json=flag, headers=coordinator.headers)
    assert flagged.status_code == 200, flagged.text
    assert flagged.json()["flagged"] and flagged.json()["flagged_by_name"] == "Paul MARTIN"
    await client.put(f"/api/v1/patients/{other}/complex-situation", json=flag, headers=coordinator.headers)
    await client.put(
        f"/api/v1/patients/{pid}/plan",
        json={"version": 0, "next_review_date": "2030-02-01"},
        headers=gp.headers,
    )

    board = await client.get("/api/v1/complex-situations", headers=coordinator.headers)
    assert board.status_code == 200, board.text
    entries = [(e["patient_id"], e["next_review_date"]) for e in board.json()["items"]]
    assert entries == [(pid, "2030-02-01"), (other, None)]  # next review first, undated last
    assert board.json()["items"][0]["reason"] == "Polypathologie, aidante épuisée"
    count = await client.get("/api/v1/complex-situations/count", headers=coordinator.headers)
    assert count.json() == 2
    # One of the coordinator's DACs: its patients; a DAC they do not work at: refused.
    of_dac = await client.get(f"/api/v1/complex-situations?dac_id={DAC}", headers=coordinator.headers)
    assert [e["patient_id"] for e in of_dac.json()["items"]] == [pid, other]
    not_mine = await client.get(
        "/api/v1/complex-situations/count?dac_id=finess:060000098", headers=coordinator.headers
    )
    assert not_mine.status_code == 403 and not_mine.json()["errcode"] == "AZ_NOT_DAC_COORDINATOR"
    assert (await client.get("/api/v1/complex-situations", headers=gp.headers)).status_code == 403

    cleared = await client.put(
        url, json={"flagged": False, "reason": "Situation stabilisée"}, headers=coordinator.headers
    )
    assert cleared.json()["flagged"] is False
    assert (await client.get("/api/v1/complex-situations/count", headers=coordinator.headers)).json() == 1
    timeline = (
        await client.get(f"/api/v1/patients/{pid}/timeline?kind=situation", headers=gp.headers)
    ).json()
    assert [i["title"] for i in timeline["items"]] == ["Situation complexe levée"]
    actions = [a for a, _ in await audit_actions(db, pid)]
    assert {"situation.flag", "situation.clear", "situation.board"} <= set(actions)


async def _appointment(
    client: httpx.AsyncClient,
    who: Pro,
    setup: AgendaSetup,
    start: datetime,
    pid: str | None,
    status: str | None,
) -> str:
    """An appointment ``who`` (the agenda's owner) books, then moves to ``status`` when given."""
    booked = await book(client, who, setup, start, **({"patient_id": pid} if pid else {}))
    assert booked.status_code == 201, booked.text
    if status is not None:
        moved = await client.patch(
            f"/api/v1/appointments/{booked.json()['id']}",
            json={"version": 1, "status": status},
            headers=who.headers,
        )
        assert moved.status_code == 200, moved.text
    return str(booked.json()["id"])


async def test_appointments_are_planned_then_cancelled_done_or_missed_on_the_timeline(
    client: httpx.AsyncClient, db: AsyncSession, gp: Pro, coordinator: Pro
) -> None:
    pid = (await create_patient(client, gp, consent={"given": True, "mode": "oral"}))["id"]
    other = (await create_patient(client, gp, birth_name="AUTRE"))["id"]
    setup = await make_agenda(client, gp, name="Cabinet du Dr Martin")
    before = setup.monday - timedelta(days=14)  # the owner books in the past: a consultation held
    done = await _appointment(client, gp, setup, local(before, "09:00"), pid, "effectue")
    missed = await _appointment(client, gp, setup, local(before, "10:00"), pid, "absent")
    cancelled = await _appointment(client, gp, setup, local(setup.monday, "09:00"), pid, "annule")
    coming = await _appointment(client, gp, setup, local(setup.monday, "09:30"), pid, None)
    await _appointment(client, gp, setup, local(setup.monday, "10:00"), None, None)  # no patient
    await _appointment(client, gp, setup, local(setup.monday, "10:30"), other, None)  # another patient

    resp = await client.get(f"/api/v1/patients/{pid}/timeline?kind=rendez_vous", headers=gp.headers)
    assert resp.status_code == 200, resp.text
    items = resp.json()["items"]
    assert {i["kind"] for i in items} == {"rendez_vous"} and {i["object_type"] for i in items} == {
        "appointment"
    }
    by_key = {i["key"]: i for i in items}
    assert set(by_key) == {
        *(f"rendez_vous:{a}:planifie" for a in (done, missed, cancelled, coming)),
        f"rendez_vous:{cancelled}:annule",
        f"rendez_vous:{done}:clos",
        f"rendez_vous:{missed}:clos",
    }
    day, when = f"{setup.monday:%d/%m/%Y}", f"{before:%d/%m/%Y}"
    assert by_key[f"rendez_vous:{coming}:planifie"]["title"] == (
        f"Rendez-vous planifié : Consultation le {day} à 09:30 (Cabinet du Dr Martin)"
    )
    assert by_key[f"rendez_vous:{coming}:planifie"]["detail"] == "Statut : Réservé"
    assert by_key[f"rendez_vous:{cancelled}:annule"]["title"].startswith(
        f"Rendez-vous annulé : Consultation le {day} à 09:00"
    )
    assert by_key[f"rendez_vous:{done}:clos"]["title"].startswith(
        f"Rendez-vous effectué : Consultation le {when} à 09:00"
    )
    assert by_key[f"rendez_vous:{missed}:clos"]["title"].startswith(
        "Rendez-vous non honoré (patient non venu)"
    )
    # Done and missed sit at their start, a fortnight ago: the oldest, newest first.
    assert [i["key"] for i in items[-2:]] == [f"rendez_vous:{missed}:clos", f"rendez_vous:{done}:clos"]
    assert [i["at"] for i in items] == sorted((i["at"] for i in items), reverse=True)
    assert not any(i["object_id"] not in (done, missed, cancelled, coming) for i in items)
    # The whole timeline holds them too, and the dates filter applies to them.
    fortnight = await client.get(
        f"/api/v1/patients/{pid}/timeline",
        params={"since": before.isoformat(), "until": before.isoformat()},
        headers=gp.headers,
    )
    assert [i["key"] for i in fortnight.json()["items"]] == [
        f"rendez_vous:{missed}:clos",
        f"rendez_vous:{done}:clos",
    ]
    # Only authorised members: the coordinator outside the circle is refused, and the read is audited.
    refused = await client.get(f"/api/v1/patients/{pid}/timeline", headers=coordinator.headers)
    assert refused.status_code == 403 and refused.json()["errcode"] == "AZ_NOT_IN_CIRCLE"
    assert "timeline.read" in [a for a, _ in await audit_actions(db, pid)]
