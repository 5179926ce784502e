"""The type filter of task lists reads the type copied on assignee rows: it must follow the task's."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from coordination.tasks.models import TaskAssignee
from tests.support.service import FakeTokens, Pro, add_professional, add_structure

SSIAD = "finess:060000002"


async def _titles(client: httpx.AsyncClient, who: Pro, **params: Any) -> list[str]:
    resp = await client.get("/api/v1/tasks", params=params, headers=who.headers)
    assert resp.status_code == 200, resp.text
    return [t["title"] for t in resp.json()["items"]]


async def test_type_filter_follows_a_changed_type(
    client: httpx.AsyncClient, db: AsyncSession, tokens: FakeTokens
) -> None:
    await add_structure(db, SSIAD, "SSIAD de Nice")
    alice = await add_professional(db, tokens, localpart="alice", national_id="810000000001")
    bob = await add_professional(
        db, tokens, localpart="bob", national_id="810000000002", structure_ids=(SSIAD,)
    )
    made = await client.post(
        "/api/v1/tasks",
        json={
            "title": "Rappeler la famille",
            "type": "appel",
            "assignee_national_ids": [bob.national_id],
            "assignee_structure_ids": [SSIAD],
        },
        headers=alice.headers,
    )
    assert made.status_code == 201, made.text
    task = made.json()

    assert await _titles(client, bob, scope="assigned", type="appel") == ["Rappeler la famille"]
    assert await _titles(client, bob, scope="structure", type="appel") == ["Rappeler la famille"]
    assert await _titles(client, bob, scope="assigned", type="visite") == []

    changed = await client.patch(
        f"/api/v1/tasks/{task['id']}",
        json={"version": task["version"], "type": "visite"},
        headers=alice.headers,
    )
    assert changed.status_code == 200, changed.text

    assert await _titles(client, bob, scope="assigned", type="visite") == ["Rappeler la famille"]
    assert await _titles(client, bob, scope="structure", type="visite") == ["Rappeler la famille"]
    assert await _titles(client, bob, scope="assigned", type="appel") == []
    assert await _titles(client, bob, scope="structure", type="appel") == []
    db.expire_all()
    copies = (await db.scalars(select(TaskAssignee.type))).all()
    assert copies == ["visite", "visite"]
