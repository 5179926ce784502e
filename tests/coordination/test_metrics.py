"""GET /metrics (Prometheus): request latency by route template, outbox lag per consumer, the
directory importer's last run; no identifier and no patient data in any label."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from coordination.app import create_app
from coordination.metrics import write_import_metrics
from coordination.settings import Settings
from tests.coordination.patients.support import add_circle_member, create_patient
from tests.support.service import FakeTokens, add_professional, running_app

BOT = "@azurezo-bot:azurezo.test"


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample of the exposition text (labels in any order)."""
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no {name} {labels} in:\n{text}")


async def test_latency_by_route_template_and_outbox_lag(
    client: httpx.AsyncClient, db: AsyncSession, tokens: FakeTokens
) -> None:
    alice = await add_professional(db, tokens, localpart="alice", national_id="810000000001")
    bob = await add_professional(db, tokens, localpart="bob", national_id="810000000002")
    patient_id = (await create_patient(client, alice))["id"]
    await add_circle_member(
        client, alice, patient_id, kind="professional", national_id=bob.national_id, role="x", habilite=True
    )
    await add_circle_member(client, alice, patient_id, kind="relative", name="Paul", relationship="fils")
    read = await client.get(f"/api/v1/patients/{patient_id}", headers=alice.headers)
    assert read.status_code == 200
    bot = {"Authorization": f"Bearer {tokens.issue(BOT)}"}
    events = (await client.get("/api/v1/events", headers=bot)).json()["items"]
    ack = await client.post("/api/v1/events/ack", json={"up_to": events[0]["id"]}, headers=bot)
    assert ack.status_code == 200

    resp = await client.get("/metrics")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain")
    text = resp.text
    route = "/api/v1/patients/{patient_id}"
    assert sample(text, "azurezo_service_request_seconds_count", method="GET", route=route, status="200") >= 1
    assert sample(text, "azurezo_service_request_seconds_count", method="POST", route="/api/v1/patients") >= 1
    assert patient_id not in text and "alice" not in text  # templates only, never an identifier
    assert sample(text, "azurezo_outbox_lag_events", consumer="bot") == 1
    assert 0 <= sample(text, "azurezo_outbox_lag_seconds", consumer="bot") < 600

    # A probe of unknown paths makes no new series.
    await client.get("/nimporte/quoi/123")
    text = (await client.get("/metrics")).text
    assert "/nimporte" not in text
    assert sample(text, "azurezo_service_request_seconds_count", route="(unmatched)", status="404") >= 1


async def test_the_importers_last_run_is_served(
    settings: Settings, tokens: FakeTokens, tmp_path: Path
) -> None:
    metrics_dir = tmp_path / "metrics"
    write_import_metrics(metrics_dir, source="rpps", counts={"lines": 12, "added": 3, "rejected": 1}, ok=True)
    app = create_app(settings.model_copy(update={"metrics_dir": metrics_dir}), token_verifier=tokens)
    async with running_app(app) as client:
        text = (await client.get("/metrics")).text
    assert sample(text, "azurezo_import_last_run_records", source="rpps", outcome="added") == 3
    assert sample(text, "azurezo_import_last_run_success", source="rpps") == 1
    assert re.search(r'azurezo_import_last_run_timestamp_seconds\{source="rpps"\} \d+', text)
