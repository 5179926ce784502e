"""The access matrix, built from ``app.routes`` (issue 6 item 1, issue 7 "Tests").

Every route whose path names a patient (``{patient_id}``) or an object tied to a patient (a circle
member, a document, a task, a request to a DAC, a room), and every route whose body names a patient,
is called by each of five people who must not reach that patient's data:

- an outsider (active professional, never in the circle);
- a removed member (was an authorised member, removed from the circle);
- a non-habilité member (a professional member without ``habilite``);
- a relative (a person listed in the circle as a relative: relatives never read the dossier);
- a delisted professional (an authorised member the directory import marked inactive).

Each call must be refused (403, or 404 where the rules hide the object's existence), leave nothing in
the patient's audit trail under their name, and the delisted one always gets ``AZ_INACTIVE``. A new
route cannot be forgotten: the test fails when a route has a path parameter this file does not know
how to fill, or a body it does not know how to write, until it is added here (or listed among the
routes that hold no patient data, with the reason).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from coordination.app import create_app
from coordination.audit.models import AuditEntry
from coordination.settings import Settings
from tests.coordination.agenda.support import local, make_agenda
from tests.coordination.patients.support import add_circle_member, create_patient, delist
from tests.filetyping import samples
from tests.support.service import FakeTokens, Pro, add_professional, add_structure

DAC = "finess:060000099"
PERSONAS = ("outsider", "removed", "not_habilite", "relative", "delisted")

# Routes with a path parameter that hold no patient data, and why (the directory is public to every
# active professional; the internal route is for the Synapse module, with its own secret).
_SIGNUP = "inscriptions : administrateurs seulement (tests/coordination/signup)"
NOT_PATIENT_DATA = {
    "/api/v1/directory/persons/{national_id}": "annuaire national, public pour les professionnels",
    "/api/v1/directory/structures/{structure_id}": "annuaire national",
    "/api/v1/directory/structures/{structure_id}/members": "annuaire national",
    "/internal/v1/directory/matrix-users/{user_id}": "route interne du module Synapse (secret partagé)",
    "/api/v1/evaluation-forms/{form_id}": "définition d'un formulaire d'évaluation, sans donnée patient",
    "/activation/{token}": "lien d'activation d'un compte (vers /app/activation ; tests/coordination/web)",
    "/api/v1/signup-requests/{request_id}/approve": _SIGNUP,
    "/api/v1/signup-requests/{request_id}/refuse": _SIGNUP,
    "/api/v1/signup-requests/{request_id}/resend": _SIGNUP,
    "/ics/v1/{token}.ics": "flux ICS à adresse secrète : ni patient ni note (types et horaires seulement)",
    "/internal/v1/rooms/{room_id}/access/{user_id}": "route interne du module Synapse (secret partagé)",
    "/api/v1/dacs/{structure_id}/room": "salon d'un DAC, pour ses coordinateurs ; sans donnée patient "
    "(tests/coordination/dac_requests)",
}

# Routes without a patient in the path whose body names one.
BODY_NAMES_PATIENT = {
    ("POST", "/api/v1/tasks"),
    ("POST", "/api/v1/requests"),
    ("POST", "/api/v1/appointments"),
}


@dataclass
class World:
    alice: Pro  # the patient's authorised GP
    people: dict[str, Pro]
    values: dict[str, str]  # path parameter -> value


def _bodies(w: World) -> dict[tuple[str, str], dict[str, Any]]:
    """A valid JSON body for every route that takes one (so a refusal is never a 422)."""
    p = "/api/v1/patients/{patient_id}"
    return {
        ("PATCH", p): {"version": 1, "phone": "0600000000"},
        ("POST", f"{p}/discharge"): {"version": 1, "reason": "demenagement"},
        ("POST", f"{p}/reactivate"): {"version": 1},
        ("POST", f"{p}/circle"): {"kind": "relative", "name": "Paul", "relationship": "fils"},
        ("PATCH", f"{p}/circle/{{member_id}}"): {"role": "aidant principal"},
        ("POST", f"{p}/rooms"): {"room_id": "!nouveau:azurezo.test"},
        ("PUT", f"{p}/documents/{{doc_id}}/visibility"): {"version": 1, "visibility": "cercle"},
        ("PUT", f"{p}/synthesis"): {"version": 0, "text": "Synthèse écrite par un intrus."},
        ("PATCH", f"{p}/documents/{{doc_id}}"): {"version": 1, "title": "Renommé par un intrus"},
        ("PATCH", "/api/v1/tasks/{task_id}"): {"version": 1, "title": "Autre titre"},
        ("POST", f"{p}/evaluations"): {"form_id": "aggir", "answers": {"coherence": "A"}},
        ("PATCH", f"{p}/evaluations/{{evaluation_id}}"): {"version": 1, "answers": {"coherence": "C"}},
        ("PUT", f"{p}/plan"): {"version": 0, "situation": "Plan écrit par un intrus."},
        ("POST", f"{p}/timeline/events"): {"kind": "chute", "occurred_on": "2026-01-02", "title": "Intrus"},
        ("PUT", f"{p}/complex-situation"): {"flagged": True, "reason": "Signalé par un intrus"},
        ("POST", "/api/v1/tasks"): {
            "title": "Passage",
            "type": "visite",
            "patient_id": w.values["patient_id"],
        },
        ("POST", "/api/v1/requests"): {
            "dac_structure_id": DAC,
            "reason": "Situation complexe",
            "patient_id": w.values["patient_id"],
        },
        ("PATCH", "/api/v1/requests/{request_id}"): {"version": 2, "reason": "x"},
        # The agenda: alice's agenda is open to nobody else; the appointment names the patient.
        ("POST", "/api/v1/appointments"): {
            "agenda_id": w.values["agenda_id"],
            "event_type_id": w.values.get("event_type_id", "x"),
            "start": w.values.get("slot_start", "x"),
            "patient_id": w.values["patient_id"],
        },
        ("PATCH", "/api/v1/appointments/{appointment_id}"): {"version": 1, "status": "annule"},
        ("PATCH", "/api/v1/agendas/{agenda_id}"): {"version": 1, "name": "Pris"},
        ("POST", "/api/v1/agendas/{agenda_id}/event-types"): {
            "name": "Intrus",
            "category": "consultation",
            "duration_minutes": 30,
        },
        ("POST", "/api/v1/agendas/{agenda_id}/availabilities"): {
            "start_local": "2030-01-07T09:00",
            "duration_minutes": 60,
        },
        ("POST", "/api/v1/agendas/{agenda_id}/availabilities/{availability_id}/exceptions"): {
            "exdates": ["2030-01-07T09:00"]
        },
        ("POST", "/api/v1/agendas/{agenda_id}/unavailabilities"): {
            "start": "2030-01-07T09:00:00+01:00",
            "end": "2030-01-07T10:00:00+01:00",
        },
        ("POST", "/api/v1/requests/{request_id}/send"): {"version": 2},
        ("POST", "/api/v1/requests/{request_id}/cancel"): {"version": 2},
        ("POST", "/api/v1/requests/{request_id}/take"): {"version": 2},
        ("POST", "/api/v1/requests/{request_id}/answer"): {
            "version": 2,
            "decision": "acceptee",
            "include_patient": True,
        },
    }


# Routes that read a multipart form rather than JSON.
MULTIPART = {("POST", "/api/v1/patients/{patient_id}/documents")}


# A value for every required query parameter of a scoped route.
QUERY = {"version": "1"}


def _routes(app: FastAPI) -> list[tuple[str, str, bool]]:
    """(method, path template, takes a JSON body) of every API route of the app."""
    found = []
    for path, route in _api_routes(app):
        for method in sorted(route.methods or ()):
            found.append((method, path, route.body_field is not None))
            REQUIRED_QUERY[(method, path)] = [
                q.alias for q in route.dependant.query_params if q.field_info.is_required()
            ]
    return found


def _api_routes(app: FastAPI) -> list[tuple[str, APIRoute]]:
    """(full path, route) of every APIRoute, through included routers (FastAPI >= 0.16x includes them
    lazily, so ``app.routes`` holds the routers; ``iter_route_contexts`` walks them)."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # older FastAPI: included routes are copied into app.routes
        return [(r.path, r) for r in app.routes if isinstance(r, APIRoute) and not r.path.startswith("/app")]
    return [
        (c.path, c.original_route)
        for c in iter_route_contexts(app.routes)
        # The dashboard's pages (/app) sign in with a session cookie, not a bearer token: their own
        # matrix is tests/coordination/web/test_page_access.py (same services, same refusals).
        if isinstance(c.original_route, APIRoute) and c.path is not None and not c.path.startswith("/app")
    ]


REQUIRED_QUERY: dict[tuple[str, str], list[str]] = {}


def _scoped_routes(app: FastAPI) -> list[tuple[str, str, bool]]:
    return [
        (m, path, body)
        for m, path, body in _routes(app)
        if (re.search(r"\{\w+\}", path) and path not in NOT_PATIENT_DATA) or (m, path) in BODY_NAMES_PATIENT
    ]


def _app() -> FastAPI:
    return create_app(
        Settings(
            database_url="sqlite+aiosqlite:///unused.db",
            synapse_url="http://127.0.0.1:9",
            server_name="azurezo.test",
            internal_api_secret="t" * 48,
            documents_dir=Path("unused-documents"),
        )
    )


ROUTES = _scoped_routes(_app())


def test_the_matrix_covers_every_patient_route() -> None:
    """Fails when a route appears that this file cannot build (add its parameter or body here)."""
    known_params = {
        "evaluation_id",
        "patient_id",
        "member_id",
        "doc_id",
        "task_id",
        "request_id",
        "room_id",
        "agenda_id",
        "availability_id",
        "unavailability_id",
        "appointment_id",
    }
    dummy = World(alice=None, people={}, values=dict.fromkeys(known_params, "x"))  # type: ignore[arg-type]
    bodies = _bodies(dummy)
    for method, path, takes_body in ROUTES:
        unknown = set(re.findall(r"\{(\w+)\}", path)) - known_params
        assert not unknown, f"{method} {path}: no way to build {unknown} in the access matrix"
        if takes_body and (method, path) not in MULTIPART:
            assert (method, path) in bodies, f"{method} {path}: no body in the access matrix"
        missing = set(REQUIRED_QUERY[(method, path)]) - set(QUERY)
        assert not missing, f"{method} {path}: no value for the query parameters {missing}"
    assert len(ROUTES) >= 30  # the matrix is really built (a refactor of the routing must not empty it)


@pytest.fixture
async def world(client: httpx.AsyncClient, db: AsyncSession, tokens: FakeTokens) -> World:
    await add_structure(db, DAC, "DAC Alpes-Maritimes", is_dac=True)
    alice = await add_professional(db, tokens, localpart="alice", national_id="810000000001")
    people = {
        name: await add_professional(
            db, tokens, localpart=name.replace("_", ""), national_id=f"81000000001{n}", given_name=name
        )
        for n, name in enumerate(PERSONAS)
    }
    pid = (await create_patient(client, alice))["id"]
    url = f"/api/v1/patients/{pid}"
    removed = await add_circle_member(
        client,
        alice,
        pid,
        kind="professional",
        national_id=people["removed"].national_id,
        role="x",
        habilite=True,
    )
    await add_circle_member(
        client, alice, pid, kind="professional", national_id=people["not_habilite"].national_id, role="x"
    )
    await add_circle_member(
        client,
        alice,
        pid,
        kind="professional",
        national_id=people["delisted"].national_id,
        role="x",
        habilite=True,
    )
    # The relative has an account of their own (here, a professional) but is in the circle as a relative.
    relative = await add_circle_member(
        client, alice, pid, kind="relative", name=f"{people['relative'].user_id}", relationship="fille"
    )
    room = await client.post(f"{url}/rooms", json={"room_id": "!salon:azurezo.test"}, headers=alice.headers)
    doc = await client.post(
        f"{url}/documents",
        data={"title": "Compte rendu", "category": "compte_rendu"},
        files={"file": ("cr.pdf", samples.pdf(), "application/pdf")},
        headers=alice.headers,
    )
    task = await client.post(
        "/api/v1/tasks", json={"title": "Passage", "type": "visite", "patient_id": pid}, headers=alice.headers
    )
    req = await client.post(
        "/api/v1/requests",
        json={"dac_structure_id": DAC, "reason": "Situation", "patient_id": pid},
        headers=alice.headers,
    )
    sent = await client.post(
        f"/api/v1/requests/{req.json()['id']}/send", json={"version": 1}, headers=alice.headers
    )
    evaluation = await client.post(
        f"{url}/evaluations", json={"form_id": "aggir", "answers": {"coherence": "B"}}, headers=alice.headers
    )
    agenda = await _agenda_with_patient_appointment(client, alice, pid)
    for resp in (room, doc, task, req, sent, evaluation):
        assert resp.status_code in (200, 201), resp.text
    gone = await client.delete(f"{url}/circle/{removed['id']}", headers=alice.headers)
    assert gone.status_code == 204, gone.text
    await delist(db, people["delisted"].national_id)
    values = {
        "patient_id": pid,
        "member_id": relative["id"],
        "doc_id": doc.json()["id"],
        "task_id": task.json()["id"],
        "request_id": req.json()["id"],
        "room_id": "!salon:azurezo.test",
        "evaluation_id": evaluation.json()["id"],
        **agenda,
    }
    return World(alice=alice, people=people, values=values)


async def _agenda_with_patient_appointment(client: httpx.AsyncClient, alice: Pro, pid: str) -> dict[str, str]:
    """Alice's agenda, open to nobody else, with an appointment for the patient booked by her."""
    setup = await make_agenda(client, alice, visibility="personne", booking="personne")
    start = local(setup.monday, "09:00").isoformat()
    appt = await client.post(
        "/api/v1/appointments",
        json={"agenda_id": setup.id, "event_type_id": setup.consultation, "start": start, "patient_id": pid},
        headers=alice.headers,
    )
    assert appt.status_code == 201, appt.text
    avs = await client.get(f"/api/v1/agendas/{setup.id}/availabilities", headers=alice.headers)
    closed = await client.post(
        f"/api/v1/agendas/{setup.id}/unavailabilities",
        json={
            "start": local(setup.monday, "11:00").isoformat(),
            "end": local(setup.monday, "12:00").isoformat(),
        },
        headers=alice.headers,
    )
    return {
        "agenda_id": setup.id,
        "event_type_id": setup.consultation,
        "slot_start": local(setup.monday, "09:30").isoformat(),
        "availability_id": avs.json()["items"][0]["id"],
        "unavailability_id": closed.json()["id"],
        "appointment_id": appt.json()["id"],
    }


async def _trail_names(db: AsyncSession, patient_id: str) -> set[str]:
    rows = await db.scalars(
        select(AuditEntry.actor_national_id).where(AuditEntry.patient_id == uuid.UUID(patient_id))
    )
    names = set(rows.all())
    await db.rollback()
    return names


@pytest.mark.parametrize(("method", "path", "takes_body"), ROUTES, ids=[f"{m} {p}" for m, p, _ in ROUTES])
async def test_route_refuses_everyone_outside_the_circle(
    client: httpx.AsyncClient,
    db: AsyncSession,
    world: World,
    method: str,
    path: str,
    takes_body: bool,
) -> None:
    url = path.format(**{k: v for k, v in world.values.items() if f"{{{k}}}" in path})
    for persona in PERSONAS:
        who = world.people[persona]
        kwargs: dict[str, Any] = {
            "headers": who.headers,
            "params": {q: QUERY[q] for q in REQUIRED_QUERY[(method, path)]},
        }
        if (method, path) in MULTIPART:
            kwargs["data"] = {"title": "Intrus", "category": "autre"}
            kwargs["files"] = {"file": ("x.pdf", samples.pdf(), "application/pdf")}
        elif takes_body:
            kwargs["json"] = _bodies(world)[(method, path)]
        resp = await client.request(method, url, **kwargs)
        assert resp.status_code in (403, 404), f"{persona} {method} {url}: {resp.status_code} {resp.text}"
        if persona == "delisted":
            assert resp.json()["errcode"] == "AZ_INACTIVE", resp.text
        elif "{patient_id}" in path:
            # The patient exists: the refusal says why and whom to ask, without telling more.
            assert resp.status_code == 403 and resp.json()["errcode"] == "AZ_NOT_IN_CIRCLE", resp.text
        assert who.national_id not in await _trail_names(db, world.values["patient_id"]), persona
    # The authorised GP still reads the dossier: nothing the refused calls did changed it.
    pid = world.values["patient_id"]
    assert (await client.get(f"/api/v1/patients/{pid}", headers=world.alice.headers)).status_code == 200
