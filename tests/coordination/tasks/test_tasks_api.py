"""Tasks through the real app: access, assignment rules, filters, pagination, concurrency, events."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from coordination.audit.models import AuditEntry
from coordination.outbox.models import OutboxEvent
from tests.coordination.tasks.factories import add_member, add_patient
from tests.support.service import FakeTokens, Pro, add_professional, add_structure

CABINET = "finess:060000001"
SSIAD = "finess:060000002"


@dataclass
class World:
    alice: Pro  # creator, works at CABINET
    bob: Pro  # assignee
    carol: Pro  # works at SSIAD
    dave: Pro  # outsider
    eve: Pro  # delisted (inactive in the directory)
    patient: uuid.UUID


@pytest.fixture
async def world(db: AsyncSession, tokens: FakeTokens) -> World:
    await add_structure(db, CABINET, "Cabinet médical du Port")
    await add_structure(db, SSIAD, "SSIAD de Nice")
    alice = await add_professional(
        db, tokens, localpart="alice", national_id="810000000001", structure_ids=(CABINET,)
    )
    bob = await add_professional(db, tokens, localpart="bob", national_id="810000000002")
    carol = await add_professional(
        db, tokens, localpart="carol", national_id="810000000003", structure_ids=(SSIAD,)
    )
    dave = await add_professional(db, tokens, localpart="dave", national_id="810000000004")
    eve = await add_professional(db, tokens, localpart="eve", national_id="810000000005", active=False)
    patient = await add_patient(db)
    await add_member(db, patient, national_id=alice.national_id)
    await add_member(db, patient, national_id=bob.national_id)
    await add_member(db, patient, structure_id=SSIAD, role="structure de soins")
    return World(alice, bob, carol, dave, eve, patient)


async def _create(client: httpx.AsyncClient, who: Pro, **body: Any) -> httpx.Response:
    payload: dict[str, Any] = {"title": "Passage infirmier", "type": "visite"} | body
    return await client.post("/api/v1/tasks", json=payload, headers=who.headers)


async def _events(db: AsyncSession, kind: str) -> list[OutboxEvent]:
    db.expire_all()
    return list((await db.scalars(select(OutboxEvent).where(OutboxEvent.kind == kind))).all())


async def test_create_assign_and_notify(client: httpx.AsyncClient, world: World, db: AsyncSession) -> None:
    resp = await _create(
        client,
        world.alice,
        assignee_national_ids=[world.bob.national_id],
        assignee_structure_ids=[SSIAD],
        due_date="2030-01-15",
        priority="haute",
    )
    assert resp.status_code == 201, resp.text
    task = resp.json()
    assert task["status"] == "a_faire" and task["status_label"] == "À faire"
    assert task["type_label"] == "Visite"
    assert {a["label"] for a in task["assignees"]} == {"Jeanne MARTIN", "SSIAD de Nice"}
    (event,) = await _events(db, "task.assigned")
    # Bob directly, Carol through the SSIAD; never the author herself.
    assert event.recipients == sorted([world.bob.user_id, world.carol.user_id])
    assert event.payload["task_id"] == task["id"]

    for who in (world.alice, world.bob, world.carol):
        got = await client.get(f"/api/v1/tasks/{task['id']}", headers=who.headers)
        assert got.status_code == 200, who.user_id
    outsider = await client.get(f"/api/v1/tasks/{task['id']}", headers=world.dave.headers)
    assert outsider.status_code == 404
    assert "introuvable" in outsider.json()["error"]


async def test_unknown_assignee_refused_and_nothing_emitted(
    client: httpx.AsyncClient, world: World, db: AsyncSession
) -> None:
    resp = await _create(client, world.alice, assignee_national_ids=["819999999999"])
    assert resp.status_code == 422
    assert "annuaire" in resp.json()["error"]
    delisted = await _create(client, world.alice, assignee_national_ids=[world.eve.national_id])
    assert delisted.status_code == 422
    assert await _events(db, "task.assigned") == []


async def test_patient_task_rules(client: httpx.AsyncClient, world: World, db: AsyncSession) -> None:
    pid = str(world.patient)
    # Dave is not in the circle: he can neither create nor be assigned.
    refused = await _create(client, world.dave, patient_id=pid)
    assert refused.status_code == 403
    outside = await _create(
        client, world.alice, patient_id=pid, assignee_national_ids=[world.dave.national_id]
    )
    assert outside.status_code == 422
    assert "cercle de soins" in outside.json()["error"]
    ok = await _create(
        client,
        world.alice,
        patient_id=pid,
        type="concertation_pluriprofessionnelle",
        assignee_national_ids=[world.bob.national_id],
        assignee_structure_ids=[SSIAD],
    )
    assert ok.status_code == 201, ok.text
    task_id = ok.json()["id"]

    assert (await client.get(f"/api/v1/tasks/{task_id}", headers=world.dave.headers)).status_code == 404
    listed = await client.get("/api/v1/tasks", params={"patient_id": pid}, headers=world.dave.headers)
    assert listed.status_code == 403
    mine = await client.get("/api/v1/tasks", params={"patient_id": pid}, headers=world.carol.headers)
    assert [t["id"] for t in mine.json()["items"]] == [task_id]

    db.expire_all()
    actions = (
        await db.scalars(select(AuditEntry.action).where(AuditEntry.patient_id == world.patient))
    ).all()
    assert {"task.created", "task.list"} <= set(actions)


async def test_habilitation_needed_for_patient_assignees(
    client: httpx.AsyncClient, world: World, db: AsyncSession
) -> None:
    await add_member(db, world.patient, national_id=world.dave.national_id, habilite=False)
    resp = await _create(
        client,
        world.alice,
        patient_id=str(world.patient),
        assignee_national_ids=[world.dave.national_id],
    )
    assert resp.status_code == 422


async def test_filters_scopes_and_pagination(client: httpx.AsyncClient, world: World) -> None:
    a = world.alice
    made: dict[str, str] = {}
    specs = [
        ("t1", {"type": "appel", "due_date": "2030-01-03", "assignee_national_ids": [world.bob.national_id]}),
        ("t2", {"type": "visite", "due_date": "2030-01-01", "assignee_structure_ids": [SSIAD]}),
        ("t3", {"type": "visite", "assignee_structure_ids": [CABINET]}),
        ("t4", {"type": "appel", "due_date": "2030-01-02", "status": "terminée"}),
        (
            "t5",
            {
                "type": "evaluation",
                "due_date": "2030-01-05",
                "patient_id": str(world.patient),
                "assignee_national_ids": [world.bob.national_id],
            },
        ),
    ]
    for name, spec in specs:
        resp = await _create(client, a, title=name, **spec)
        assert resp.status_code == 201, resp.text
        made[resp.json()["id"]] = name
    # Bob creates one himself, assigned to nobody.
    resp = await _create(client, world.bob, title="b1", type="administratif", due_date="2030-01-04")
    made[resp.json()["id"]] = "b1"

    async def names(who: Pro, **params: Any) -> list[str]:
        resp = await client.get("/api/v1/tasks", params=params, headers=who.headers)
        assert resp.status_code == 200, resp.text
        return [made[t["id"]] for t in resp.json()["items"]]

    # "Mine" = created by me or assigned to me, by due date, undated last.
    assert await names(a) == ["t2", "t4", "t1", "t5", "t3"]
    assert await names(world.bob) == ["t1", "b1", "t5"]
    assert await names(world.bob, scope="assigned") == ["t1", "t5"]
    assert await names(world.bob, scope="created") == ["b1"]
    assert await names(a, status="terminée") == ["t4"]
    assert await names(a, status=["à_faire", "terminee"], type="appel") == ["t4", "t1"]
    assert await names(a, type="visite") == ["t2", "t3"]
    assert await names(a, assignee_national_id=world.bob.national_id) == ["t1", "t5"]
    # My structure's tasks: Carol works at the SSIAD, Alice at the cabinet.
    assert await names(world.carol, scope="structure") == ["t2"]
    assert await names(a, scope="structure") == ["t3"]
    assert await names(a, structure_id=CABINET) == ["t3"]
    refused = await client.get("/api/v1/tasks", params={"structure_id": SSIAD}, headers=a.headers)
    assert refused.status_code == 403
    # A patient's tasks, with an assignee filter.
    assert await names(world.carol, patient_id=str(world.patient)) == ["t5"]
    assert await names(a, patient_id=str(world.patient), assignee_structure_id=SSIAD) == []

    # Keyset pagination walks the same order without loss or repeat.
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        resp = await client.get("/api/v1/tasks", params=params, headers=a.headers)
        body = resp.json()
        seen += [made[t["id"]] for t in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == ["t2", "t4", "t1", "t5", "t3"]

    bad = await client.get("/api/v1/tasks", params={"cursor": "!!nope"}, headers=a.headers)
    assert bad.status_code == 422
    assert "Curseur" in bad.json()["error"]
    bad_status = await client.get("/api/v1/tasks", params={"status": "fini"}, headers=a.headers)
    assert bad_status.status_code == 422


async def test_update_concurrency_and_new_assignee_notified(
    client: httpx.AsyncClient, world: World, db: AsyncSession
) -> None:
    created = (await _create(client, world.alice, assignee_national_ids=[world.bob.national_id])).json()
    url = f"/api/v1/tasks/{created['id']}"
    # Bob (assignee) moves it forward.
    moved = await client.patch(
        url, json={"version": created["version"], "status": "en_cours"}, headers=world.bob.headers
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["version"] == created["version"] + 1
    # Alice still holds the old version: 409, and her change is not applied.
    stale = await client.patch(
        url,
        json={"version": created["version"], "title": "Autre", "assignee_structure_ids": [SSIAD]},
        headers=world.alice.headers,
    )
    assert stale.status_code == 409
    assert "rechargez" in stale.json()["error"]
    assert len(await _events(db, "task.assigned")) == 1  # only the creation's

    fresh = await client.patch(
        url,
        json={"version": moved.json()["version"], "assignee_structure_ids": [SSIAD], "status": "terminée"},
        headers=world.alice.headers,
    )
    assert fresh.status_code == 200, fresh.text
    body = fresh.json()
    assert body["version"] == moved.json()["version"] + 1  # one write, one version
    assert body["completed_at"] is not None
    assert {a.get("structure_id") or a.get("national_id") for a in body["assignees"]} == {
        SSIAD,
        world.bob.national_id,
    }
    notified = await _events(db, "task.assigned")
    assert len(notified) == 2 and notified[1].recipients == [world.carol.user_id]
    # Bob's "done" list now has it, his open list not (the denormalised status followed).
    done = await client.get("/api/v1/tasks", params={"status": "terminée"}, headers=world.bob.headers)
    assert [t["id"] for t in done.json()["items"]] == [created["id"]]
    # Dave may not touch it.
    other = await client.patch(
        url, json={"version": body["version"], "title": "x"}, headers=world.dave.headers
    )
    assert other.status_code == 404


async def test_patient_member_may_read_but_not_edit(
    client: httpx.AsyncClient, world: World, db: AsyncSession
) -> None:
    await add_member(db, world.patient, national_id=world.dave.national_id)
    created = (await _create(client, world.alice, patient_id=str(world.patient))).json()
    url = f"/api/v1/tasks/{created['id']}"
    assert (await client.get(url, headers=world.dave.headers)).status_code == 200
    edit = await client.patch(url, json={"version": 1, "title": "x"}, headers=world.dave.headers)
    assert edit.status_code == 403
    assert "auteur" in edit.json()["error"]


@pytest.mark.parametrize("who", ["dave", "eve"])
async def test_vocabulary_is_for_any_active_professional(
    client: httpx.AsyncClient, world: World, who: str
) -> None:
    """Patient-scoped task routes are refused to outsiders and the delisted by the access matrix
    (tests/coordination/test_access_matrix.py, built from app.routes); the vocabulary is not
    patient data: any active professional reads it, a delisted one does not."""
    vocab = await client.get("/api/v1/tasks/vocabulary", headers=getattr(world, who).headers)
    assert vocab.status_code == (200 if who == "dave" else 403)
    if who == "eve":
        assert vocab.json()["errcode"] == "AZ_INACTIVE"


async def test_vocabulary_lists_french_labels(client: httpx.AsyncClient, world: World) -> None:
    resp = await client.get("/api/v1/tasks/vocabulary", headers=world.alice.headers)
    types = {e["code"]: e["label"] for e in resp.json()["types"]}
    assert types["concertation_pluriprofessionnelle"] == "Concertation pluriprofessionnelle"
    assert [e["code"] for e in resp.json()["statuses"]] == ["a_faire", "en_cours", "terminee", "annulee"]


async def test_patch_sends_only_what_changes_and_null_clears(
    client: httpx.AsyncClient, world: World, db: AsyncSession
) -> None:
    """The one PATCH convention: absent fields are kept, ``null`` clears an optional field (the due
    date: no more ``clear_due_date``), a field a task cannot do without refuses ``null`` in French."""
    bob = [world.bob.national_id]
    dated = (
        await _create(
            client,
            world.alice,
            title="Daté",
            due_date="2030-01-01",
            priority="haute",
            assignee_national_ids=bob,
        )
    ).json()
    await _create(client, world.alice, title="Plus tard", due_date="2031-01-01", assignee_national_ids=bob)

    async def bobs_list() -> list[str]:
        listed = await client.get("/api/v1/tasks", params={"scope": "assigned"}, headers=world.bob.headers)
        return [t["title"] for t in listed.json()["items"]]

    assert await bobs_list() == ["Daté", "Plus tard"]
    url = f"/api/v1/tasks/{dated['id']}"
    cleared = await client.patch(
        url,
        json={"version": dated["version"], "due_date": None, "priority": None},
        headers=world.alice.headers,
    )
    assert cleared.status_code == 200, cleared.text
    body = cleared.json()
    assert body["due_date"] is None and body["priority"] is None
    assert body["title"] == "Daté" and body["type"] == "visite" and body["description"] == ""
    # Undated now, it sorts last, in the assignee's list too (the denormalised sort key followed).
    assert await bobs_list() == ["Plus tard", "Daté"]

    for field in ("title", "type", "status"):
        refused = await client.patch(
            url, json={"version": body["version"], field: None}, headers=world.alice.headers
        )
        assert refused.status_code == 422, refused.text
        assert refused.json()["fields"][0]["field"] == field and "toujours" in refused.json()["error"]
    old_flag = await client.patch(
        url, json={"version": body["version"], "clear_due_date": True}, headers=world.alice.headers
    )
    assert old_flag.status_code == 422
    # ``null`` for assignees means "nobody".
    nobody = await client.patch(
        url,
        json={"version": body["version"], "assignee_national_ids": [world.carol.national_id]},
        headers=world.alice.headers,
    )
    assert [a["national_id"] for a in nobody.json()["assignees"]] == [world.carol.national_id]
    emptied = await client.patch(
        url,
        json={"version": nobody.json()["version"], "assignee_national_ids": None},
        headers=world.alice.headers,
    )
    assert emptied.status_code == 200 and emptied.json()["assignees"] == []


@pytest.mark.parametrize(
    "body",
    [
        {"title": "Appel\x00urgent"},
        {"title": "Appel\x07"},
        {"title": "Deux\nlignes"},
        {"description": "Rappeler\x00"},
        {"description": "x\x1b[31m"},
    ],
)
async def test_control_characters_are_refused_with_422(
    client: httpx.AsyncClient, world: World, body: dict[str, str]
) -> None:
    """NUL was stored on SQLite and a 500 on PostgreSQL (issue 6, item 5): now a French 422 on both,
    at creation and at change."""
    created = await _create(client, world.alice, **body)
    assert created.status_code == 422, created.text
    field = next(iter(body))
    assert created.json()["fields"][0]["field"] == field
    ok = (await _create(client, world.alice)).json()
    changed = await client.patch(
        f"/api/v1/tasks/{ok['id']}", json={"version": ok["version"]} | body, headers=world.alice.headers
    )
    assert changed.status_code == 422, changed.text


async def test_text_is_nfc_and_line_breaks_stay_in_descriptions(
    client: httpx.AsyncClient, world: World
) -> None:
    created = await _create(
        client, world.alice, title="E\u0301valuation de Mme D.", description="Ligne 1\nLigne 2\tfin"
    )
    assert created.status_code == 201, created.text
    assert created.json()["title"] == "\u00c9valuation de Mme D."
    assert created.json()["description"] == "Ligne 1\nLigne 2\tfin"


async def test_short_numbers_per_patient_and_per_creator(client: httpx.AsyncClient, world: World) -> None:
    """« !fait 12 »: each patient's tasks are numbered 1, 2, …; a task with no patient is numbered among
    its creator's; concurrent creations never share a number; a refused creation uses none."""
    import asyncio

    first = await _create(client, world.alice, patient_id=str(world.patient))
    refused = await _create(client, world.alice, patient_id=str(world.patient), type="inconnu")
    burst = await asyncio.gather(
        *(_create(client, world.alice, patient_id=str(world.patient), title=f"t{i}") for i in range(6))
    )
    alone = await _create(client, world.bob)
    alone_again = await _create(client, world.bob)
    other_creator = await _create(client, world.alice)
    assert refused.status_code == 422
    assert first.json()["number"] == 1
    assert sorted(r.json()["number"] for r in burst) == [2, 3, 4, 5, 6, 7]
    assert (alone.json()["number"], alone_again.json()["number"], other_creator.json()["number"]) == (1, 2, 1)


async def test_many_tasks_by_ids_follow_the_read_rule_and_audit_once_per_patient(
    client: httpx.AsyncClient, world: World, db: AsyncSession
) -> None:
    """``GET /api/v1/tasks?ids=…`` (the bot labelling a page of notifications): the tasks the reader may
    see, in the order asked, the others left out; one audit entry per patient read."""
    patient_task = (
        await _create(
            client, world.alice, patient_id=str(world.patient), assignee_national_ids=[world.bob.national_id]
        )
    ).json()["id"]
    alice_own = (await _create(client, world.alice)).json()["id"]
    dave_own = (await _create(client, world.dave)).json()["id"]
    unknown = str(uuid.uuid4())
    ask = [dave_own, patient_task, alice_own, patient_task, unknown]

    async def read(who: Pro) -> list[str]:
        resp = await client.get("/api/v1/tasks", params=[("ids", i) for i in ask], headers=who.headers)
        assert resp.status_code == 200, resp.text
        assert resp.json()["next_cursor"] is None
        return [t["id"] for t in resp.json()["items"]]

    async def reads(who: Pro) -> list[AuditEntry]:
        db.expire_all()
        return list(
            (
                await db.scalars(
                    select(AuditEntry).where(
                        AuditEntry.actor_user_id == who.user_id, AuditEntry.action == "task.read"
                    )
                )
            ).all()
        )

    assert await read(world.alice) == [patient_task, alice_own]
    assert [(e.patient_id, e.object_type) for e in await reads(world.alice)] == [(world.patient, "task")]
    assert await read(world.bob) == [patient_task]  # its assignee, not Alice's own task
    assert await read(world.carol) == [patient_task]  # through the SSIAD, an authorised circle member
    assert await read(world.dave) == [dave_own]  # an outsider: their own task only, no patient read
    assert await reads(world.dave) == []
    delisted = await client.get("/api/v1/tasks", params={"ids": patient_task}, headers=world.eve.headers)
    assert delisted.status_code == 403

    mixed = await client.get(
        "/api/v1/tasks", params={"ids": patient_task, "status": "a_faire"}, headers=world.alice.headers
    )
    assert mixed.status_code == 422 and "ids" in mixed.json()["error"]
    too_many = await client.get(
        "/api/v1/tasks", params=[("ids", str(uuid.uuid4())) for _ in range(201)], headers=world.alice.headers
    )
    assert too_many.status_code == 422
