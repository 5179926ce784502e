"""DAC indicators through the real app, on a crafted set of requests and tasks with known figures.

The set (March 2026 in Paris, summer time from Sunday 29 March):

| req | requester       | structure | urgency      | sent (UTC)          | taken | answered | outcome     |
|-----|-----------------|-----------|--------------|---------------------|-------|----------|-------------|
| A   | gp (Médecin)    | cabinet L | normale      | 2026-02-28 23:00:00 | +1 h  | +3 h     | acceptee P1 |
| B   | gp              | cabinet L | urgente      | 2026-03-10 08:00:00 | +2 h  | +5 h     | reorientee  |
| C   | nurse (Infirm.) | hôpital S | tres_urgente | 2026-03-15 08:00:00 | +4 h  |          | en cours    |
| D   | nurse           | hôpital S | normale      | 2026-03-20 08:00:00 |       |          | en attente  |
| E   | gp              | (none)    | normale      | 2026-03-21 08:00:00 |       |          | annulée     |
| F   | other (no prof) | other DAC | urgente      | 2026-03-31 21:59:59 | +10 h | +30 h    | acceptee P2¹ |
| G   | gp              | cabinet L | normale      | 2026-03-25 08:00:00 | +6 h  | +8 h     | acceptee P1 |

¹ answered in April.

Left out: a request sent at 2026-02-28 22:59:59 UTC (23:59:59 in Paris, February; its answer on 1 March
includes P3, so P3 counts among the patients included), one at 2026-03-31 22:00:00 UTC (midnight of
1 April in Paris: a period end computed in winter time would take it), a draft, a request to another DAC.

Medians: take 1, 2, 4, 6, 10 h -> 4 h; answer 3, 5, 8, 30 h -> 6.5 h (even count: mean of the middle two).
"""

from __future__ import annotations

import csv
import io
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from jinja2 import ChoiceLoader, DictLoader, Environment, FileSystemLoader, select_autoescape
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from coordination.audit.models import AuditEntry
from coordination.dac_requests.models import DacRequest
from coordination.db import utcnow
from coordination.directory.models import Activity, Person
from coordination.ids import StructureId
from coordination.indicators import view
from coordination.indicators.schemas import DacOut, IndicatorsOut
from coordination.patients.models import Patient
from coordination.plans.models import CarePlan
from coordination.tasks.models import Task, TaskAssignee
from coordination.timeline.models import ComplexSituation
from tests.coordination.tasks.factories import add_member, add_patient
from tests.support.service import FakeTokens, Pro, add_professional, add_structure

DAC = "finess:060000099"
OTHER_DAC = "finess:060000098"
CABINET = "finess:060000001"
HOSPITAL = "finess:060000002"
MARCH = {"dac_id": DAC, "from": "2026-03-01", "to": "2026-04-01"}
SVG = "{http://www.w3.org/2000/svg}"
# The dashboard kernel's base.html contract: blocks ``title`` and ``content``.
BASE_HTML = (
    '<!doctype html><html lang="fr"><head><title>{% block title %}{% endblock %}</title></head>'
    "<body><main>{% block content %}{% endblock %}</main></body></html>"
)


@dataclass
class World:
    coord: Pro
    coord2: Pro
    other_coord: Pro
    gp: Pro
    nurse: Pro
    outsider: Pro
    delisted: Pro
    p1: uuid.UUID
    p2: uuid.UUID
    p3: uuid.UUID


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


async def _set_person(
    db: AsyncSession, national_id: str, *, profession: str | None, code: str | None
) -> None:
    await db.execute(
        update(Person)
        .where(Person.national_id == national_id)
        .values(profession=profession, profession_code=code)
    )
    await db.commit()


async def _set_mode(db: AsyncSession, national_id: str, structure_id: str, mode: str) -> None:
    await db.execute(
        update(Activity)
        .where(Activity.national_id == national_id, Activity.structure_id == structure_id)
        .values(mode=mode)
    )
    await db.commit()


async def _request(
    db: AsyncSession,
    requester: Pro,
    *,
    sent: datetime | None,
    urgency: str = "normale",
    structure: str | None = None,
    dac: str = DAC,
    taken_h: float | None = None,
    answered_h: float | None = None,
    decision: str | None = None,
    cancelled: bool = False,
    patient: uuid.UUID | None = None,
    included: bool = False,
) -> None:
    """A request row as the service leaves it after these steps (timestamps chosen by the test)."""
    created = (sent or utcnow()) - timedelta(hours=1)
    status = "brouillon" if sent is None else "envoyee"
    taken = sent + timedelta(hours=taken_h) if sent and taken_h is not None else None
    answered = sent + timedelta(hours=answered_h) if sent and answered_h is not None else None
    if taken:
        status = "en_cours"
    if answered:
        status = "refusee" if decision == "refusee" else "cloturee"
    if cancelled:
        status = "annulee"
    db.add(
        DacRequest(
            id=uuid.uuid4(),
            version=1,
            patient_id=patient,
            dac_structure_id=dac,
            status=status,
            reason="Maintien à domicile",
            description="",
            urgency=urgency,
            requester_user_id=requester.user_id,
            requester_national_id=requester.national_id,
            requester_structure_id=structure,
            actions=[],
            alerts=[],
            decision=decision,
            patient_included=included,
            created_at=created,
            updated_at=created,
            received_at=sent or created,
            sent_at=sent,
            taken_at=taken,
            answered_at=answered,
            cancelled_at=sent + timedelta(hours=2) if cancelled and sent else None,
        )
    )
    await db.commit()


async def _task(
    db: AsyncSession,
    *,
    age: timedelta,
    status: str = "a_faire",
    patient: uuid.UUID | None = None,
    assignees: tuple[str, ...] = (),
) -> None:
    task_id = uuid.uuid4()
    created = utcnow() - age
    due = date(9999, 12, 31)
    db.add(
        Task(
            id=task_id,
            version=1,
            patient_id=patient,
            number=abs(hash(task_id)) % 1_000_000,
            number_scope=f"test:{task_id}",
            title="Appeler l'aidant",
            description="",
            type="appel",
            status=status,
            sort_due=due,
            creator_user_id="@coord:azurezo.test",
            creator_national_id="810000000010",
            created_at=created,
            updated_at=created,
        )
    )
    await db.flush()
    for key in assignees:
        db.add(TaskAssignee(task_id=task_id, key=key, status=status, type="appel", sort_due=due))
    await db.commit()


async def _patient(db: AsyncSession, rank: int) -> uuid.UUID:
    """A fictitious patient; the same identity each time, so each gets its own homonym rank."""
    if rank == 0:
        return await add_patient(db)
    await db.execute(update(Patient).where(Patient.homonym_rank == 0).values(homonym_rank=-rank))
    await db.commit()
    return await add_patient(db)


@pytest.fixture
async def world(db: AsyncSession, tokens: FakeTokens) -> World:
    await add_structure(db, DAC, "DAC Alpes-Maritimes", is_dac=True)
    await add_structure(db, OTHER_DAC, "DAC Var", is_dac=True)
    await add_structure(db, CABINET, "Cabinet médical du Port")
    await add_structure(db, HOSPITAL, "Centre hospitalier des Collines")

    async def pro(localpart: str, nid: str, *structures: str, active: bool = True) -> Pro:
        return await add_professional(
            db, tokens, localpart=localpart, national_id=nid, structure_ids=structures, active=active
        )

    coord = await pro("coord", "810000000010", DAC)
    coord2 = await pro("coord2", "810000000011", DAC)
    other = await pro("var", "810000000012", OTHER_DAC)
    gp = await pro("gp", "810000000001", CABINET)
    nurse = await pro("ide", "810000000002", HOSPITAL)
    outsider = await pro("out", "810000000013", CABINET)
    delisted = await pro("gone", "810000000014", DAC, active=False)
    await _set_person(db, nurse.national_id, profession="Infirmier", code="60")
    await _set_person(db, other.national_id, profession=None, code=None)
    await _set_mode(db, gp.national_id, CABINET, "Libéral")
    await _set_mode(db, nurse.national_id, HOSPITAL, "Salarié")
    p1, p2, p3, p4, p9 = [await _patient(db, rank) for rank in range(5)]
    await add_member(db, p1, structure_id=DAC, role="coordinateur DAC")
    await add_member(db, p4, structure_id=DAC, role="coordinateur DAC", habilite=False)
    await add_member(db, p9, national_id=gp.national_id)

    # The requests of the docstring's table.
    await _request(db, gp, sent=_at("2026-02-28T23:00:00"), structure=CABINET, taken_h=1, answered_h=3,
                   decision="acceptee", patient=p1, included=True)  # fmt: skip
    await _request(db, gp, sent=_at("2026-03-10T08:00:00"), urgency="urgente", structure=CABINET,
                   taken_h=2, answered_h=5, decision="reorientee")  # fmt: skip
    await _request(db, nurse, sent=_at("2026-03-15T08:00:00"), urgency="tres_urgente", structure=HOSPITAL,
                   taken_h=4)  # fmt: skip
    await _request(db, nurse, sent=_at("2026-03-20T08:00:00"), structure=HOSPITAL)
    await _request(db, gp, sent=_at("2026-03-21T08:00:00"), cancelled=True)
    await _request(db, other, sent=_at("2026-03-31T21:59:59"), urgency="urgente", structure=OTHER_DAC,
                   taken_h=10, answered_h=30, decision="acceptee", patient=p2, included=True)  # fmt: skip
    await _request(db, gp, sent=_at("2026-03-25T08:00:00"), structure=CABINET, taken_h=6, answered_h=8,
                   decision="acceptee", patient=p1, included=True)  # fmt: skip
    # Left out of the requests (but P3's inclusion is answered on 1 March, in the period).
    await _request(db, gp, sent=_at("2026-02-28T22:59:59"), structure=CABINET, taken_h=0.5, answered_h=11,
                   decision="acceptee", patient=p3, included=True)  # fmt: skip
    await _request(db, gp, sent=_at("2026-03-31T22:00:00"), structure=CABINET, taken_h=1, answered_h=1)
    await _request(db, gp, sent=None, structure=CABINET)
    await _request(db, gp, sent=_at("2026-03-12T08:00:00"), dac=OTHER_DAC, structure=CABINET, taken_h=50)

    # Open tasks now: 1 under 7 days, 2 of 7-29 days, 1 of 30-89, 1 of 90 and more.
    st_dac, st_other = f"st:{DAC}", f"st:{OTHER_DAC}"
    await _task(db, age=timedelta(days=1), assignees=(st_dac,))
    await _task(db, age=timedelta(days=10), status="en_cours", patient=p1)
    await _task(db, age=timedelta(days=7, hours=1), patient=p1, assignees=(f"pp:{gp.national_id}",))
    await _task(db, age=timedelta(days=40), patient=p1)
    await _task(db, age=timedelta(days=100), patient=p1, assignees=(st_dac,))  # both ways: once
    # Not the DAC's open tasks.
    await _task(db, age=timedelta(days=2), status="terminee", patient=p1, assignees=(st_dac,))
    await _task(db, age=timedelta(days=2), status="annulee", patient=p1)
    await _task(db, age=timedelta(days=3), patient=p9, assignees=(f"pp:{coord.national_id}",))
    await _task(db, age=timedelta(days=3), assignees=(st_other,))
    await _task(db, age=timedelta(days=3), patient=p4)
    return World(coord, coord2, other, gp, nurse, outsider, delisted, p1, p2, p3)


def _counts(items: list[dict[str, Any]]) -> dict[str, int]:
    return {item["code"]: item["count"] for item in items}


async def test_figures_of_a_crafted_month(client: httpx.AsyncClient, world: World) -> None:
    resp = await client.get("/api/v1/indicators", params=MARCH, headers=world.coord.headers)
    assert resp.status_code == 200, resp.text
    ind = resp.json()
    assert ind["dac_name"] == "DAC Alpes-Maritimes"
    assert (ind["period_from"], ind["period_to"]) == ("2026-03-01", "2026-04-01")
    assert ind["requests_received"] == 7
    assert _counts(ind["by_urgency"]) == {"normale": 4, "urgente": 2, "tres_urgente": 1}
    assert [c["label"] for c in ind["by_urgency"]] == ["Normale", "Urgente", "Très urgente"]
    assert _counts(ind["by_outcome"]) == {
        "acceptee": 3,
        "reorientee": 1,
        "refusee": 0,
        "information": 0,
        "en_cours": 1,
        "en_attente": 1,
        "annulee": 1,
    }
    assert [(c["label"], c["count"]) for c in ind["by_profession"]] == [
        ("Médecin", 4),
        ("Infirmier", 2),
        ("Profession non renseignée", 1),
    ]
    assert _counts(ind["by_origin"]) == {
        "liberal": 3,
        "salarie": 2,
        "benevole": 0,
        "dac": 1,
        "sans_structure": 1,
        "non_renseigne": 0,
    }
    assert ind["take_delay"] == {"median_seconds": 4 * 3600, "median_label": "4 h", "measured": 5}
    assert ind["answer_delay"] == {"median_seconds": 23400, "median_label": "6 h 30 min", "measured": 4}
    assert ind["patients_included"] == 2  # P1 (twice, counted once) and P3; P2's answer is in April
    assert ind["open_tasks"] == 5
    assert _counts(ind["open_tasks_by_age"]) == {
        "moins_7_jours": 1,
        "7_29_jours": 2,
        "30_89_jours": 1,
        "90_jours_et_plus": 1,
    }


async def test_period_boundaries_follow_paris_time(client: httpx.AsyncClient, world: World) -> None:
    """A day is a Paris day: 1 March starts at 23:00 UTC (winter), 1 April at 22:00 UTC (summer)."""

    async def received(start: str, end: str) -> int:
        params = {"dac_id": DAC, "from": start, "to": end}
        resp = await client.get("/api/v1/indicators", params=params, headers=world.coord.headers)
        assert resp.status_code == 200, resp.text
        return int(resp.json()["requests_received"])

    assert await received("2026-02-28", "2026-03-01") == 1  # sent 22:59:59 UTC = 23:59:59 in Paris
    assert await received("2026-03-01", "2026-03-02") == 1  # A, sent at midnight in Paris
    assert await received("2026-03-31", "2026-04-01") == 1  # F, 23:59:59 summer time
    assert await received("2026-04-01", "2026-04-02") == 1  # midnight of 1 April in Paris
    assert await received("2026-03-29", "2026-03-30") == 0  # the 23-hour day of the change


async def test_only_the_dacs_coordinators(client: httpx.AsyncClient, world: World, db: AsyncSession) -> None:
    for who in (world.other_coord, world.gp, world.outsider):
        resp = await client.get("/api/v1/indicators", params=MARCH, headers=who.headers)
        assert resp.status_code == 403, resp.text
        assert resp.json()["errcode"] == "AZ_NOT_DAC_COORDINATOR"
        assert "coordinateurs de ce DAC" in resp.json()["error"]
        csv_resp = await client.get("/api/v1/indicators.csv", params=MARCH, headers=who.headers)
        assert csv_resp.status_code == 403
    # A structure that is not a DAC, even where the actor works.
    resp = await client.get(
        "/api/v1/indicators", params=MARCH | {"dac_id": CABINET}, headers=world.gp.headers
    )
    assert resp.status_code == 403 and resp.json()["errcode"] == "AZ_NOT_DAC_COORDINATOR"
    delisted = await client.get("/api/v1/indicators", params=MARCH, headers=world.delisted.headers)
    assert delisted.status_code == 403 and delisted.json()["errcode"] == "AZ_INACTIVE"
    assert (await client.get("/api/v1/indicators", params=MARCH)).status_code == 401

    # The other coordinator of the DAC may; each consultation is audited, with no patient.
    ok = await client.get("/api/v1/indicators", params=MARCH, headers=world.coord2.headers)
    assert ok.status_code == 200
    db.expire_all()
    entries = (await db.scalars(select(AuditEntry).where(AuditEntry.action == "indicators.read"))).all()
    assert [(e.actor_national_id, e.object_id, e.patient_id) for e in entries] == [
        (world.coord2.national_id, DAC, None)
    ]


async def test_default_dac_and_period(client: httpx.AsyncClient, world: World) -> None:
    resp = await client.get("/api/v1/indicators", headers=world.coord.headers)
    assert resp.status_code == 200, resp.text
    ind = resp.json()
    assert ind["dac_structure_id"] == DAC  # their only DAC
    start, end = date.fromisoformat(ind["period_from"]), date.fromisoformat(ind["period_to"])
    assert (end - start).days == 30
    assert ind["open_tasks"] == 5  # a snapshot, whatever the period
    dacs = await client.get("/api/v1/indicators/dacs", headers=world.coord.headers)
    assert dacs.json() == [{"structure_id": DAC, "name": "DAC Alpes-Maritimes"}]
    none = await client.get("/api/v1/indicators", headers=world.gp.headers)
    assert none.status_code == 403 and "aucun DAC" in none.json()["error"]


async def test_a_coordinator_of_two_dacs_chooses(
    client: httpx.AsyncClient, world: World, db: AsyncSession, tokens: FakeTokens
) -> None:
    both = await add_professional(
        db, tokens, localpart="both", national_id="810000000020", structure_ids=(DAC, OTHER_DAC)
    )
    resp = await client.get("/api/v1/indicators", headers=both.headers)
    assert resp.status_code == 422
    assert [f["field"] for f in resp.json()["fields"]] == ["dac_id"]
    assert "coordinateur de 2 DAC" in resp.json()["error"]
    dacs = await client.get("/api/v1/indicators/dacs", headers=both.headers)
    assert [d["name"] for d in dacs.json()] == ["DAC Alpes-Maritimes", "DAC Var"]
    other = await client.get("/api/v1/indicators", params=MARCH | {"dac_id": OTHER_DAC}, headers=both.headers)
    assert other.status_code == 200 and other.json()["requests_received"] == 1  # sent on 12 March


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "2026-04-01", "to": "2026-03-01"}, "to"),
        ({"from": "2026-03-01", "to": "2026-03-01"}, "to"),
        ({"from": "2019-01-01", "to": "2026-01-01"}, "from"),
        ({"from": "1999-12-31", "to": "2000-02-01"}, "from"),
        ({"from": "2026-13-01", "to": "2026-04-01"}, "from"),
    ],
)
async def test_bad_periods_are_refused_in_french(
    client: httpx.AsyncClient, world: World, params: dict[str, str], field: str
) -> None:
    resp = await client.get(
        "/api/v1/indicators", params={"dac_id": DAC} | params, headers=world.coord.headers
    )
    assert resp.status_code == 422, resp.text
    body = resp.json()
    assert body["errcode"] == "AZ_INVALID"
    assert [f["field"] for f in body["fields"]] == [field]
    assert " : " in body["error"] and "period" not in body["error"].lower()


async def test_csv_export_reads_back(client: httpx.AsyncClient, world: World) -> None:
    resp = await client.get("/api/v1/indicators.csv", params=MARCH, headers=world.coord.headers)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "text/csv; charset=utf-8"
    assert resp.headers["content-disposition"] == (
        'attachment; filename="indicateurs-finess-060000099-2026-03-01-2026-03-31.csv"'
    )
    raw = resp.content
    assert raw.startswith(b"\xef\xbb\xbf")  # the BOM Excel needs to read UTF-8
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"), newline=""), delimiter=";"))
    assert rows[0] == [
        "DAC",
        "Début de période",
        "Fin de période (incluse)",
        "Indicateur",
        "Catégorie",
        "Valeur",
    ]
    assert all(r[:3] == ["DAC Alpes-Maritimes", "01/03/2026", "31/03/2026"] for r in rows[1:])
    table = {(r[3], r[4]): r[5] for r in rows[1:]}
    assert table[("Demandes reçues", "Total")] == "7"
    assert table[("Demandes reçues par urgence", "Très urgente")] == "1"
    assert table[("Demandes reçues par issue", "Pas encore prise en charge")] == "1"
    assert table[("Demandes reçues par profession du demandeur", "Infirmier")] == "2"
    assert (
        table[("Demandes reçues par origine (mode d'exercice du demandeur)", "Ville (exercice libéral)")]
        == "3"
    )
    assert table[("Délai médian de prise en charge", "Heures")] == "4,0"
    assert table[("Délai médian de réponse", "Heures")] == "6,5"
    assert table[("Délai médian de réponse", "Demandes mesurées")] == "4"
    assert table[("Patients inclus", "Total")] == "2"
    assert table[("Tâches ouvertes par ancienneté", "7 à 29 jours")] == "2"
    assert b"\r\n" in raw


async def test_no_request_gives_zeros_and_no_median(client: httpx.AsyncClient, world: World) -> None:
    params = {"dac_id": DAC, "from": "2025-01-01", "to": "2025-02-01"}
    ind = (await client.get("/api/v1/indicators", params=params, headers=world.coord.headers)).json()
    assert ind["requests_received"] == 0 and ind["by_profession"] == []
    assert ind["take_delay"] == {"median_seconds": None, "median_label": "—", "measured": 0}
    assert ind["patients_included"] == 0


async def _flag(
    db: AsyncSession, patient: uuid.UUID, *, flagged: bool = True, review: date | None = None
) -> None:
    """The complex-situation flag of ``patient``, and a plan reviewed on ``review`` when given."""
    db.add(
        ComplexSituation(patient_id=patient, flagged=flagged, reason="Isolement", flagged_by="810000000010")
    )
    if review is not None:
        db.add(
            CarePlan(
                patient_id=patient,
                status="en_cours",
                content={"actions": []},
                next_review_date=review,
                created_by="810000000010",
                updated_by="810000000010",
            )
        )
    await db.commit()


async def test_complex_situations_followed_are_counted_by_review_and_name_no_one(
    client: httpx.AsyncClient, world: World, db: AsyncSession
) -> None:
    """Counted now: flagged patients whose circle has the DAC as a habilitée structure, by review date."""
    p2_dac, p3_dac, cleared = world.p2, world.p3, await _patient(db, 7)
    for patient in (p2_dac, p3_dac, cleared):
        await add_member(db, patient, structure_id=DAC, role="coordinateur DAC")
    await _flag(db, world.p1, review=date(2020, 1, 6))  # past: late
    await _flag(db, p2_dac)  # no plan: no review date
    await _flag(db, p3_dac, review=date(2099, 1, 5))  # planned
    await _flag(db, cleared, flagged=False, review=date(2020, 1, 6))  # cleared: not counted
    # Not the DAC's: in its circle without habilitation, or not in it at all.
    not_habilitee, elsewhere = await _patient(db, 8), await _patient(db, 9)
    await add_member(db, not_habilitee, structure_id=DAC, role="coordinateur DAC", habilite=False)
    await add_member(db, elsewhere, structure_id=OTHER_DAC, role="coordinateur DAC")
    await _flag(db, not_habilitee)
    await _flag(db, elsewhere, review=date(2020, 1, 6))

    resp = await client.get("/api/v1/indicators", params=MARCH, headers=world.coord.headers)
    assert resp.status_code == 200, resp.text
    ind = resp.json()
    assert ind["complex_situations"] == 3
    assert [(c["code"], c["label"], c["count"]) for c in ind["complex_situations_by_review"]] == [
        ("revision_depassee", "Révision du plan dépassée", 1),
        ("revision_prevue", "Révision du plan prévue", 1),
        ("sans_revision", "Sans date de révision (ou sans plan)", 1),
    ]
    assert not any(str(p) in resp.text for p in (world.p1, p2_dac, p3_dac))  # counts only
    other = await client.get(
        "/api/v1/indicators", params={**MARCH, "dac_id": OTHER_DAC}, headers=world.other_coord.headers
    )
    assert other.json()["complex_situations"] == 1
    assert _counts(other.json()["complex_situations_by_review"])["revision_depassee"] == 1

    exported = await client.get("/api/v1/indicators.csv", params=MARCH, headers=world.coord.headers)
    rows = list(csv.reader(io.StringIO(exported.content.decode("utf-8-sig"), newline=""), delimiter=";"))
    table = {(r[3], r[4]): r[5] for r in rows[1:]}
    assert table[("Situations complexes suivies (à ce jour)", "Total")] == "3"
    assert table[("Situations complexes par révision du plan", "Révision du plan dépassée")] == "1"


async def test_page_renders_figures_and_accessible_svg(client: httpx.AsyncClient, world: World) -> None:
    """The page template, rendered with the context ``view.page_context`` builds, inside a minimal
    base.html with the dashboard's two blocks."""
    ind = IndicatorsOut.model_validate(
        (await client.get("/api/v1/indicators", params=MARCH, headers=world.coord.headers)).json()
    )
    # A directory label that would break the markup if it were not escaped.
    ind.by_profession[0].label = 'Médecin <script>alert("x")</script> & co'
    templates = Path(view.__file__).parent / "templates"
    env = Environment(
        loader=ChoiceLoader(
            [
                DictLoader({"base.html": BASE_HTML}),
                FileSystemLoader(str(templates)),
            ]
        ),
        autoescape=select_autoescape(default=True),
    )
    dacs = [
        DacOut(structure_id=StructureId(DAC), name="DAC Alpes-Maritimes"),
        DacOut(structure_id=StructureId(OTHER_DAC), name="DAC Var"),
    ]
    html = env.get_template("indicators/page.html").render(view.page_context(ind=ind, dacs=dacs))
    assert "<script" not in html and "&lt;script&gt;" in html
    assert "Période du 01/03/2026 au 31/03/2026" in html
    generated = ind.generated_at.astimezone(ZoneInfo("Europe/Paris")).strftime("%d/%m/%Y à %H:%M")
    assert f">{generated}</time>" in html
    assert (
        'href="/app/indicateurs.csv?dac_id=finess%3A060000099&amp;from=2026-03-01&amp;to=2026-04-01"' in html
    )
    assert 'name="du" value="2026-03-01"' in html and 'name="au" value="2026-03-31"' in html
    assert '<option value="finess:060000099" selected>' in html
    # Every chart parses as XML, is an image with a title and a description naming the figures.
    svgs = [html[i : html.index("</svg>", i) + 6] for i in range(len(html)) if html.startswith("<svg", i)]
    assert len(svgs) == 6
    for svg in svgs:
        root = ET.fromstring(svg)
        assert root.tag == f"{SVG}svg" and root.get("role") == "img"
        title, desc = root.find(f"{SVG}title"), root.find(f"{SVG}desc")
        assert title is not None and desc is not None and title.text and desc.text
        assert root.get("aria-labelledby") == f"{title.get('id')} {desc.get('id')}"
        assert not any(a.startswith("on") for el in root.iter() for a in el.attrib)
    urgency = ET.fromstring(svgs[0])
    assert urgency.find(f"{SVG}desc").text == "Normale : 4 ; Urgente : 2 ; Très urgente : 1."  # type: ignore[union-attr]
    labels = [t.text for t in urgency.iter(f"{SVG}text")]
    assert labels == ["Normale", "4", "Urgente", "2", "Très urgente", "1"]
    # The form period (last day included) maps back to the API's [from, to).
    assert view.form_period(du=date(2026, 3, 1), au=date(2026, 3, 31)).end == date(2026, 4, 1)
