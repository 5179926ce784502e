"""The access matrix of the dashboard's pages (the API's is tests/coordination/test_access_matrix.py).

Every ``/app`` route that names a patient or an object tied to one (request, task, member, document),
and the task form whose body names a patient, is called with a valid session and anti-forgery token
by an outsider, a non-habilité member of the circle and a delisted professional. None may see the
patient's identity, and none may leave an entry in the patient's audit trail (every write and every
read of patient data is recorded, so "no entry" means nothing was read or changed). A new route fails
``test_every_page_route_is_in_the_matrix`` until it is added here.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from coordination.app import create_app
from coordination.audit.models import AuditEntry
from coordination.settings import Settings
from tests.coordination.agenda.support import book, local, make_agenda
from tests.coordination.patients.support import add_circle_member, create_patient, delist
from tests.coordination.web.support import FakeMatrixAuth, page_csrf, sign_in
from tests.support.service import FakeTokens, Pro, add_professional, add_structure, running_app

DAC = "finess:060000099"
PASSWORD = "mot-de-passe-de-test-123"
# Routes that hold no patient data without their own proof of identity (the widget's shell is a
# script that asks Element for an OpenID token; its POST checks that token: test_dashboard.py).
NO_DATA = {("GET", "/app/widget/patients/{patient_id}"), ("POST", "/app/widget/patients/{patient_id}")}
BODY_NAMES_PATIENT = {("POST", "/app/taches")}


def _forms(values: dict[str, str]) -> dict[tuple[str, str], dict[str, str]]:
    p = "/app/patients/{patient_id}"
    return {
        ("POST", "/app/demandes/{request_id}/prendre"): {"version": "2"},
        ("POST", "/app/demandes/{request_id}/repondre"): {
            "version": "2",
            "decision": "acceptee",
            "inclure": "true",
        },
        ("POST", f"{p}/sortie"): {"version": "1", "reason": "demenagement"},
        ("POST", f"{p}/reactiver"): {"version": "1"},
        ("POST", f"{p}/synthese"): {"version": "0", "text": "Synthèse écrite par un intrus."},
        ("POST", f"{p}/cercle"): {"kind": "relative", "nom": "Paul", "lien": "fils"},
        ("POST", f"{p}/cercle/{{member_id}}/retirer"): {},
        ("POST", f"{p}/cercle/{{member_id}}/habilitation"): {"habilite": "oui"},
        ("POST", f"{p}/documents"): {"title": "Intrus", "category": "autre"},
        ("POST", "/app/taches/{task_id}/assigner"): {"version": "1", "assignee_national_ids": "810000000041"},
        ("POST", "/app/taches/{task_id}/cloturer"): {"version": "1"},
        ("POST", "/app/taches"): {"title": "Passage", "type": "visite", "patient_id": values["patient_id"]},
        ("POST", f"{p}/evaluations"): {"form_id": "aggir"},
        ("POST", f"{p}/evaluations/{{evaluation_id}}/brouillon"): {"version": "1", "q-coherence": "C"},
        ("POST", f"{p}/evaluations/{{evaluation_id}}"): {
            "version": "1",
            "action": "signer",
            "q-coherence": "C",
        },
        ("POST", f"{p}/plan"): {
            "version": "0",
            "situation": "Plan écrit par un intrus.",
            "problems-0-title": "X",
        },
        ("POST", f"{p}/chronologie/evenements"): {
            "kind": "chute",
            "occurred_on": "2026-01-02",
            "title": "Intrus",
        },
        ("POST", f"{p}/chronologie/situation"): {"flagged": "oui", "reason": "Signalé par un intrus"},
        # Booking names the patient in its body; the slot is free and the agenda open to everyone.
        ("POST", "/app/agendas/{agenda_id}/reserver"): {
            "event_type_id": values.get("event_type_id", ""),
            "start": values.get("slot", ""),
            "patient_id": values["patient_id"],
        },
        ("POST", "/app/rendez-vous/{appointment_id}/annuler"): {
            "version": "1",
            "retour": values["patient_id"],
        },
        ("POST", "/app/rendez-vous/{appointment_id}/confirmer"): {
            "version": "1",
            "retour": values["patient_id"],
        },
    }


def _all_routes(app: FastAPI) -> list[tuple[str, APIRoute]]:
    """(full path, route) through included routers (FastAPI >= 0.16x includes them lazily)."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:
        return [(r.path, r) for r in app.routes if isinstance(r, APIRoute)]
    return [
        (c.path, c.original_route)
        for c in iter_route_contexts(app.routes)
        if isinstance(c.original_route, APIRoute) and c.path is not None
    ]


def _page_routes() -> list[tuple[str, str]]:
    app = create_app(
        Settings(
            database_url="sqlite+aiosqlite:///unused.db",
            synapse_url="http://127.0.0.1:9",
            server_name="azurezo.test",
            internal_api_secret="t" * 48,
            documents_dir="unused-documents",  # type: ignore[arg-type]
        )
    )
    found = []
    for path, route in _all_routes(app):
        if path.startswith(NOT_PATIENT_PAGES):
            continue
        if path.startswith("/app"):
            for method in sorted(route.methods or ()):
                if (method, path) in NOT_PATIENT_ROUTES:
                    continue
                if re.search(r"\{\w+\}", path) or (method, path) in BODY_NAMES_PATIENT:
                    found.append((method, path))
    return found


# Pages with a path parameter that is not patient data (tested in test_signup_pages.py): the public
# activation link, and the administrators' sign-up list (refused to anyone who is not an administrator).
NOT_PATIENT_PAGES = ("/app/activation/", "/app/admin/inscriptions/")
# An agenda's week, its booking form (the patient, if any, comes from the query and is only put in the
# form) and its opening hours hold no patient data: tested in test_agenda_pages.py.
NOT_PATIENT_ROUTES = {
    ("GET", "/app/agendas/{agenda_id}"),
    ("GET", "/app/agendas/{agenda_id}/reserver"),
    ("POST", "/app/agendas/{agenda_id}/disponibilites"),
}

ROUTES = _page_routes()


def test_every_page_route_is_in_the_matrix() -> None:
    forms = _forms({"patient_id": "x"})
    known = {
        "patient_id",
        "request_id",
        "task_id",
        "member_id",
        "doc_id",
        "evaluation_id",
        "agenda_id",
        "appointment_id",
    }
    for method, path in ROUTES:
        assert not set(re.findall(r"\{(\w+)\}", path)) - known, path
        if method == "POST" and (method, path) not in NO_DATA:
            assert (method, path) in forms, f"{method} {path}: no form in the page access matrix"
    assert len(ROUTES) >= 15


@pytest.fixture
async def world(
    client: httpx.AsyncClient, db: AsyncSession, tokens: FakeTokens, matrix: FakeMatrixAuth
) -> dict[str, Any]:
    await add_structure(db, DAC, "DAC Alpes-Maritimes", is_dac=True)
    alice = await add_professional(db, tokens, localpart="alice", national_id="810000000041")
    coord = await add_professional(
        db, tokens, localpart="coord", national_id="810000000042", structure_ids=(DAC,)
    )
    people = {
        name: await add_professional(
            db,
            tokens,
            localpart=name.replace("_", ""),
            national_id=f"8100000000{50 + i}",
            family_name="INTRUS",
        )
        for i, name in enumerate(("outsider", "not_habilite", "delisted"))
    }
    for pro in people.values():
        matrix.passwords[pro.user_id] = PASSWORD
    patient = await create_patient(client, alice)
    pid = patient["id"]
    await add_circle_member(
        client,
        alice,
        pid,
        kind="professional",
        national_id=people["not_habilite"].national_id,
        role="infirmier",
        habilite=False,
    )
    await add_circle_member(
        client,
        alice,
        pid,
        kind="professional",
        national_id=people["delisted"].national_id,
        role="infirmier",
        habilite=True,
    )
    member = await add_circle_member(client, alice, pid, kind="relative", name="Paul", relationship="fils")
    api = "/api/v1"
    doc = await client.post(
        f"{api}/patients/{pid}/documents",
        data={"title": "Ordonnance", "category": "ordonnance"},
        files={
            "file": (
                "o.pdf",
                (
                    __import__("pathlib").Path(__file__).resolve().parents[3]
                    / "config"
                    / "demo"
                    / "ordonnance.pdf"
                ).read_bytes(),
                "application/pdf",
            )
        },
        headers=alice.headers,
    )
    assert doc.status_code == 201, doc.text
    task = await client.post(
        f"{api}/tasks", json={"title": "Visite", "type": "visite", "patient_id": pid}, headers=alice.headers
    )
    assert task.status_code == 201, task.text
    req = await client.post(
        f"{api}/requests",
        json={"dac_structure_id": DAC, "reason": "Situation", "patient_id": pid},
        headers=alice.headers,
    )
    sent = await client.post(
        f"{api}/requests/{req.json()['id']}/send", json={"version": 1}, headers=alice.headers
    )
    assert sent.status_code == 200, sent.text
    evaluation = await client.post(
        f"{api}/patients/{pid}/evaluations", json={"form_id": "aggir"}, headers=alice.headers
    )
    assert evaluation.status_code == 201, evaluation.text
    agenda = await make_agenda(client, alice, name="Cabinet Alice")
    appointment = await book(client, alice, agenda, local(agenda.monday, "09:00"), patient_id=pid)
    assert appointment.status_code == 201, appointment.text
    return {
        "alice": alice,
        "coord": coord,
        "people": people,
        "values": {
            "patient_id": pid,
            "member_id": member["id"],
            "doc_id": doc.json()["id"],
            "task_id": task.json()["id"],
            "request_id": req.json()["id"],
            "evaluation_id": evaluation.json()["id"],
            "agenda_id": agenda.id,
            "event_type_id": agenda.consultation,
            "slot": local(agenda.monday, "10:00").isoformat(),
            "appointment_id": appointment.json()["id"],
        },
    }


async def _trail_of(db: AsyncSession, patient_id: str, national_id: str) -> int:
    import uuid

    count = await db.scalar(
        select(func.count())
        .select_from(AuditEntry)
        .where(AuditEntry.patient_id == uuid.UUID(patient_id), AuditEntry.actor_national_id == national_id)
    )
    await db.rollback()
    return int(count or 0)


@pytest.mark.parametrize("persona", ["outsider", "not_habilite", "delisted"])
async def test_pages_refuse_everyone_outside_the_authorised_circle(
    persona: str,
    world: dict[str, Any],
    settings: Settings,
    tokens: FakeTokens,
    matrix: FakeMatrixAuth,
    db: AsyncSession,
) -> None:
    pro: Pro = world["people"][persona]
    values: dict[str, str] = world["values"]
    forms = _forms(values)
    app = create_app(settings, token_verifier=tokens, matrix_auth=matrix)
    async with running_app(app) as browser:
        assert (await sign_in(browser, pro.user_id, PASSWORD)).status_code == 303
        csrf = await page_csrf(browser, "/app/taches")
        if persona == "delisted":
            await delist(db, pro.national_id)
        for method, template in ROUTES:
            if (method, template) in NO_DATA:
                continue
            path = re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], template)
            if method == "GET":
                resp = await browser.get(path)
            elif template.endswith("/documents"):
                resp = await browser.post(
                    path,
                    data={**forms[(method, template)], "csrf_token": csrf},
                    files={"file": ("x.pdf", b"%PDF-1.4\n%%EOF\n", "application/pdf")},
                )
            else:
                resp = await browser.post(path, data={**forms[(method, template)], "csrf_token": csrf})
            allowed = (403, 404, 303)
            assert resp.status_code in allowed, f"{persona} {method} {path}: {resp.status_code}"
            assert "DUPONT" not in resp.text.upper() or resp.status_code == 303, f"{persona} saw {path}"
            if resp.status_code == 303 and persona != "delisted":
                # A refused form goes back to where it came from, with the French reason queued.
                assert not resp.headers["location"].startswith("/app/connexion"), (persona, path)
        assert await _trail_of(db, values["patient_id"], pro.national_id) == 0, f"{persona} left a trace"


async def test_the_authorised_member_reaches_the_same_pages_and_is_traced(
    world: dict[str, Any], settings: Settings, tokens: FakeTokens, matrix: FakeMatrixAuth, db: AsyncSession
) -> None:
    """The control of the matrix above: the same calls by the authorised GP read and leave a trace."""
    alice: Pro = world["alice"]
    matrix.passwords[alice.user_id] = PASSWORD
    pid = world["values"]["patient_id"]
    before = await _trail_of(db, pid, alice.national_id)
    app = create_app(settings, token_verifier=tokens, matrix_auth=matrix)
    async with running_app(app) as browser:
        await sign_in(browser, alice.user_id, PASSWORD)
        page = await browser.get(f"/app/patients/{pid}")
        assert page.status_code == 200 and "DUPONT" in page.text
    assert await _trail_of(db, pid, alice.national_id) > before
