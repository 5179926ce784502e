"""The PPCS through the real app: consent, versions, actions that create tasks, review reminder, PDF
(rendered to an image), FHIR CarePlan, audit and outbox."""

from __future__ import annotations

import asyncio
import io
import logging
import uuid
from datetime import datetime
from typing import Any

import httpx
import pypdfium2
import pytest
from fhir.resources.R4B.careplan import CarePlan
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from coordination.outbox.models import OutboxEvent
from tests.coordination.agenda.support import book, local, make_agenda
from tests.coordination.patients.support import add_circle_member, audit_actions, create_patient
from tests.support.service import FakeTokens, Pro, add_professional

CONSENT = {"given": True, "mode": "oral"}


@pytest.fixture
async def team(client: httpx.AsyncClient, db: AsyncSession, tokens: FakeTokens) -> tuple[Pro, Pro, str]:
    """A coordinator, a nurse of the circle, and a consenting patient."""
    coordinator = await add_professional(db, tokens, localpart="coord", national_id="810000000401")
    nurse = await add_professional(
        db,
        tokens,
        localpart="ide",
        national_id="810000000402",
        family_name="ROUX",
        given_name="Léa",
        profession_code="60",
    )
    pid = (await create_patient(client, coordinator, consent=CONSENT))["id"]
    await add_circle_member(
        client,
        coordinator,
        pid,
        kind="professional",
        national_id=nurse.national_id,
        role="infirmière",
        habilite=True,
    )
    return coordinator, nurse, pid


def plan_body(nurse: Pro, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "version": 0,
        "situation": "Mme D., 87 ans, vit seule ; chutes répétées ; fille aidante épuisée.",
        "patient_wishes": "Rester à domicile le plus longtemps possible.",
        "problems": [{"id": "chutes", "title": "Chutes répétées à domicile"}],
        "objectives": [{"id": "securite", "problem_id": "chutes", "title": "Sécuriser le domicile"}],
        "actions": [
            {
                "id": "ergo",
                "objective_id": "securite",
                "title": "Visite d'évaluation du logement (ergothérapeute)",
                "responsible_national_id": nurse.national_id,
                "deadline": "2030-01-15",
                "create_task": True,
            },
            {
                "objective_id": "securite",
                "title": "Installer une téléassistance",
                "responsible_other": "Mme D., fille (aidante)",
                "status": "en_cours",
            },
        ],
        "next_review_date": "2030-03-01",
    }
    body.update(overrides)
    return body


async def test_a_plan_without_recorded_consent_is_refused(
    client: httpx.AsyncClient, team: tuple[Pro, Pro, str]
) -> None:
    coordinator, nurse, _ = team
    pid = (await create_patient(client, coordinator, birth_name="SANSACCORD"))["id"]
    resp = await client.put(
        f"/api/v1/patients/{pid}/plan", json=plan_body(nurse), headers=coordinator.headers
    )
    assert resp.status_code == 409 and resp.json()["errcode"] == "AZ_NO_CONSENT", resp.text
    assert "consentement" in resp.json()["error"]
    refused = await create_patient(
        client, coordinator, birth_name="REFUS", consent={"given": False, "mode": "ecrit"}
    )
    resp = await client.put(
        f"/api/v1/patients/{refused['id']}/plan", json=plan_body(nurse), headers=coordinator.headers
    )
    assert resp.status_code == 409 and resp.json()["errcode"] == "AZ_NO_CONSENT"
    empty = await client.get(f"/api/v1/patients/{pid}/plan", headers=coordinator.headers)
    assert empty.status_code == 200 and empty.json()["version"] == 0 and empty.json()["actions"] == []


async def test_actions_create_their_tasks_and_the_review_a_reminder(
    client: httpx.AsyncClient, db: AsyncSession, team: tuple[Pro, Pro, str]
) -> None:
    coordinator, nurse, pid = team
    url = f"/api/v1/patients/{pid}/plan"
    saved = await client.put(url, json=plan_body(nurse), headers=coordinator.headers)
    assert saved.status_code == 200, saved.text
    plan = saved.json()
    assert plan["version"] == 1
    ergo, tele = plan["actions"]
    assert (
        ergo["task_id"] is not None
        and ergo["task_status"] == "a_faire"
        and ergo["responsible_label"] == "Léa ROUX"
    )
    assert tele["task_id"] is None and tele["responsible_label"] == "Mme D., fille (aidante)"
    assert len(tele["id"]) == 12  # a new action got its id

    task = (await client.get(f"/api/v1/tasks/{ergo['task_id']}", headers=nurse.headers)).json()
    assert task["title"] == "Visite d'évaluation du logement (ergothérapeute)"
    assert task["due_date"] == "2030-01-15" and [a["national_id"] for a in task["assignees"]] == [
        nurse.national_id
    ]
    review = (await client.get(f"/api/v1/tasks/{plan['review_task_id']}", headers=coordinator.headers)).json()
    assert review["due_date"] == "2030-03-01" and review["type"] == "concertation_pluriprofessionnelle"
    assert [a["national_id"] for a in review["assignees"]] == [coordinator.national_id]

    # Saving again keeps the links: no second task, the same review reminder.
    again = await client.put(
        url,
        json=plan_body(nurse, version=1, actions=[{**plan_body(nurse)["actions"][0], "status": "realisee"}]),
        headers=coordinator.headers,
    )
    assert again.status_code == 200, again.text
    assert again.json()["actions"][0]["task_id"] == ergo["task_id"]
    assert again.json()["review_task_id"] == plan["review_task_id"]
    moved = await client.put(
        url, json=plan_body(nurse, version=2, next_review_date="2030-04-01"), headers=coordinator.headers
    )
    assert moved.json()["review_task_id"] != plan["review_task_id"]
    patient_tasks = (await client.get(f"/api/v1/tasks?patient_id={pid}", headers=coordinator.headers)).json()[
        "items"
    ]
    assert len(patient_tasks) == 3  # ergo (kept by its id in every version), first review, moved review

    versions = (await client.get(f"{url}/versions", headers=coordinator.headers)).json()["items"]
    assert [(v["version"], v["open_actions"]) for v in versions] == [(3, 2), (2, 0), (1, 2)]
    actions = [a for a, _ in await audit_actions(db, pid)]
    assert actions.count("plan.update") == 3 and "plan.history" in actions
    events = (await db.scalars(select(OutboxEvent).where(OutboxEvent.kind == "plan.updated"))).all()
    assert len(events) == 3 and "téléassistance" not in str(events[0].payload)


async def test_a_stale_version_is_refused(client: httpx.AsyncClient, team: tuple[Pro, Pro, str]) -> None:
    coordinator, nurse, pid = team
    url = f"/api/v1/patients/{pid}/plan"
    body = plan_body(nurse, actions=[], next_review_date=None)
    answers = await asyncio.gather(
        client.put(url, json=body, headers=coordinator.headers),
        client.put(url, json=body, headers=nurse.headers),
    )
    assert sorted(a.status_code for a in answers) == [200, 409], [a.text for a in answers]
    late = await client.put(url, json=body, headers=nurse.headers)
    assert late.status_code == 409 and late.json()["errcode"] == "AZ_STALE_VERSION"


async def test_a_responsible_outside_the_circle_is_refused(
    client: httpx.AsyncClient, db: AsyncSession, tokens: FakeTokens, team: tuple[Pro, Pro, str]
) -> None:
    coordinator, nurse, pid = team
    outsider = await add_professional(db, tokens, localpart="dehors", national_id="810000000409")
    body = plan_body(nurse)
    body["actions"][0]["responsible_national_id"] = outsider.national_id
    resp = await client.put(f"/api/v1/patients/{pid}/plan", json=body, headers=coordinator.headers)
    assert resp.status_code == 422 and outsider.national_id in resp.json()["error"]
    dangling = plan_body(
        nurse, objectives=[{"id": "x", "problem_id": "absent", "title": "Objectif"}], actions=[]
    )
    resp = await client.put(f"/api/v1/patients/{pid}/plan", json=dangling, headers=coordinator.headers)
    assert resp.status_code == 422 and "problème absent" in resp.json()["error"]
    tasks = (await client.get(f"/api/v1/tasks?patient_id={pid}", headers=coordinator.headers)).json()["items"]
    assert tasks == []  # refused before any task was created


def _page_text_and_ink(pdf: bytes) -> tuple[str, float]:
    """Render the first page to an image; return its text and the share of non-white pixels."""
    document = pypdfium2.PdfDocument(io.BytesIO(pdf))
    page = document[0]
    text = page.get_textpage().get_text_range()
    image = page.render(scale=1).to_pil().convert("L")
    histogram = image.histogram()
    dark = sum(histogram[:200])
    return text, dark / (image.width * image.height)


async def test_the_pdf_renders_in_the_has_layout(
    client: httpx.AsyncClient, db: AsyncSession, team: tuple[Pro, Pro, str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    coordinator, nurse, pid = team
    none_yet = await client.get(f"/api/v1/patients/{pid}/plan/pdf", headers=coordinator.headers)
    assert none_yet.status_code == 422 and "pas encore de plan" in none_yet.json()["error"]
    await client.put(f"/api/v1/patients/{pid}/plan", json=plan_body(nurse), headers=coordinator.headers)
    resp = await client.get(f"/api/v1/patients/{pid}/plan/pdf", headers=coordinator.headers)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "application/pdf" and resp.content.startswith(b"%PDF")
    text, ink = _page_text_and_ink(resp.content)
    assert 0.01 < ink < 0.5  # a page with text on it: neither blank nor a black box
    for expected in (
        "Plan personnalisé de coordination en santé",
        "DUPONT Marie",
        "12/05/1969",
        "Léa ROUX",
        "Chutes répétées à domicile",
        "Sécuriser le domicile",
        "Installer une téléassistance",
        "15/01/2030",
        "Prochaine révision",
        "consentement oral",
    ):
        assert expected in " ".join(text.split()), expected
    assert "plan.pdf" in [a for a, _ in await audit_actions(db, pid)]
    # The logs name ids, never the patient nor what the plan says.
    assert "DUPONT" not in caplog.text and "téléassistance" not in caplog.text


async def test_the_fhir_care_plan_validates(client: httpx.AsyncClient, team: tuple[Pro, Pro, str]) -> None:
    coordinator, nurse, pid = team
    saved = (
        await client.put(f"/api/v1/patients/{pid}/plan", json=plan_body(nurse), headers=coordinator.headers)
    ).json()
    resp = await client.get(f"/api/v1/patients/{pid}/plan/fhir", headers=coordinator.headers)
    assert resp.status_code == 200, resp.text
    care_plan = CarePlan.model_validate(resp.json())
    assert (care_plan.status, care_plan.intent, care_plan.subject.reference) == (
        "active",
        "plan",
        f"Patient/{pid}",
    )
    kinds = sorted(r.get_resource_type() for r in care_plan.contained)
    assert kinds == ["Condition", "Goal"]
    ergo = care_plan.activity[0]
    assert ergo.detail.status == "not-started" and ergo.detail.goal[0].reference == "#obj-securite"
    assert ergo.outcomeReference[0].reference == f"Task/{saved['actions'][0]['task_id']}"
    assert ergo.detail.performer[0].identifier.value == nurse.national_id
    assert care_plan.activity[1].detail.status == "in-progress"


async def test_an_action_links_an_appointment_of_the_patient_shown_in_the_api_pdf_and_fhir(
    client: httpx.AsyncClient, db: AsyncSession, team: tuple[Pro, Pro, str]
) -> None:
    coordinator, nurse, pid = team
    other = (await create_patient(client, coordinator, birth_name="AUTRE", consent=CONSENT))["id"]
    await add_circle_member(
        client,
        coordinator,
        other,
        kind="professional",
        national_id=nurse.national_id,
        role="IDE",
        habilite=True,
    )
    setup = await make_agenda(client, nurse, name="Tournée infirmière")
    start = local(setup.monday, "09:30")
    mine = await book(client, nurse, setup, start, patient_id=pid)
    elsewhere = await book(client, nurse, setup, local(setup.monday, "10:00"), patient_id=other)
    nobody = await book(client, nurse, setup, local(setup.monday, "10:30"))
    for resp in (mine, elsewhere, nobody):
        assert resp.status_code == 201, resp.text
    url = f"/api/v1/patients/{pid}/plan"

    def body(appointment_id: object, **extra: Any) -> dict[str, Any]:
        plan = plan_body(nurse, **extra)
        plan["actions"][0]["appointment_id"] = str(appointment_id)
        return plan

    # Another patient's appointment, one naming no patient, or none at all: refused, nothing saved.
    for wrong in (elsewhere.json()["id"], nobody.json()["id"], uuid.uuid4()):
        refused = await client.put(url, json=body(wrong), headers=coordinator.headers)
        assert refused.status_code == 422, refused.text
        assert "rendez-vous lié est introuvable ou ne concerne pas ce patient" in refused.json()["error"]
    assert (await client.get(url, headers=coordinator.headers)).json()["version"] == 0

    # The coordinator neither booked it nor manages the agenda: a member of the circle links it.
    saved = await client.put(url, json=body(mine.json()["id"]), headers=coordinator.headers)
    assert saved.status_code == 200, saved.text
    ergo = saved.json()["actions"][0]
    assert ergo["appointment_id"] == mine.json()["id"]
    assert ergo["appointment_status"] == "reserve" and ergo["appointment_status_label"] == "Réservé"
    assert ergo["appointment_label"] == "Consultation (Tournée infirmière)"
    assert datetime.fromisoformat(ergo["appointment_start"]) == start
    assert saved.json()["actions"][1]["appointment_id"] is None

    # Its status follows the agenda; the link carries over a save that keeps it.
    cancel = await client.patch(
        f"/api/v1/appointments/{mine.json()['id']}",
        json={"version": 1, "status": "annule"},
        headers=nurse.headers,
    )
    assert cancel.status_code == 200, cancel.text
    again = body(mine.json()["id"], version=1)
    again["actions"][0]["id"] = ergo["id"]
    kept = await client.put(url, json=again, headers=coordinator.headers)
    assert kept.status_code == 200, kept.text
    assert kept.json()["actions"][0]["appointment_status_label"] == "Annulé"

    pdf = await client.get(f"{url}/pdf", headers=coordinator.headers)
    text, _ = _page_text_and_ink(pdf.content)
    assert f"Rendez-vous : {setup.monday:%d/%m/%Y} à 09:30" in " ".join(text.split())
    care_plan = CarePlan.model_validate((await client.get(f"{url}/fhir", headers=coordinator.headers)).json())
    outcomes = [r.reference for r in care_plan.activity[0].outcomeReference]
    assert outcomes == [f"Task/{ergo['task_id']}", f"Appointment/{mine.json()['id']}"]
    assert "plan.update" in [a for a, _ in await audit_actions(db, pid)]
