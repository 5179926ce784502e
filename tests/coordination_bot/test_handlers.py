"""Handlers against the real coordination app (in-process, fresh database) and a recording gateway.

The service is the real one (``create_app`` through ``httpx.ASGITransport``): the bot acts on behalf
of the sender with its own token, so these tests also check that the service, not the bot, decides.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from coordination_bot.gateway import Incoming, QuotedMessage, RecordingGateway
from coordination_bot.handlers import Handlers
from coordination_bot.ids import EventId, RoomId, UserId
from coordination_bot.marks import MarkStore
from coordination_bot.service_client import ServiceClient
from tests.coordination.patients.support import create_patient
from tests.support.service import FakeTokens, Pro, add_professional, add_structure

BOT = "@azurezo-bot:azurezo.test"
ROOM = RoomId("!patient:azurezo.test")
DAC = "finess:060000099"


@dataclass
class World:
    handlers: Handlers
    gateway: RecordingGateway
    marks: MarkStore
    alice: Pro
    paul: Pro
    stranger: Pro
    inactive: Pro
    events: list[int]

    async def say(self, sender: Pro | str, text: str, room: RoomId = ROOM, **kw: object) -> list[str]:
        self.events.append(1)
        user = sender.user_id if isinstance(sender, Pro) else sender
        incoming = Incoming(
            room_id=room,
            event_id=EventId(f"$cmd{len(self.events)}-{uuid.uuid4().hex[:6]}"),
            sender=UserId(user),
            text=text,
            **kw,  # type: ignore[arg-type]
        )
        handled = await self.handlers.handle(incoming)
        assert handled
        replies = self.gateway.responded(incoming)
        assert len(replies) == 1, replies  # exactly one reply per command
        return replies


@pytest.fixture
async def world(client: httpx.AsyncClient, tokens: FakeTokens, db: AsyncSession) -> World:
    await add_structure(db, DAC, "DAC Alpes-Maritimes", is_dac=True)
    alice = await add_professional(db, tokens, localpart="alice", national_id="810000000001")
    paul = await add_professional(
        db, tokens, localpart="paul", national_id="810000000002", family_name="DURAND", given_name="Paul"
    )
    stranger = await add_professional(
        db, tokens, localpart="eve", national_id="810000000003", family_name="EVE", given_name="Eve"
    )
    inactive = await add_professional(
        db, tokens, localpart="old", national_id="810000000004", family_name="OLD", active=False
    )
    service = ServiceClient(
        base_url="http://service", bot_token=tokens.issue(BOT), internal_secret="t" * 48, client=client
    )
    service.binding_ttl = 0.0  # tests flip directory state between commands
    gateway = RecordingGateway()
    marks = MarkStore(None)
    handlers = Handlers(service=service, gateway=gateway, marks=marks, today=lambda: date(2026, 11, 29))
    return World(handlers, gateway, marks, alice, paul, stranger, inactive, [])


async def linked(world: World, client: httpx.AsyncClient) -> str:
    patient = await create_patient(client, world.alice)
    [reply] = await world.say(world.alice, f"!patient lier {patient['id']}")
    assert "Ce salon est maintenant lié au dossier de DUPONT Marie" in reply
    assert "[identité provisoire]" in reply
    return str(patient["id"])


async def test_help_lists_every_command(world: World) -> None:
    [reply] = await world.say(world.alice, "!aide")
    for name in (
        "!patient",
        "!tache",
        "!taches moi",
        "!fait",
        "!cercle ajouter",
        "!demande",
        "!synthese modifier",
    ):
        assert name in reply
    html = world.gateway.sent[-1].content
    assert html["msgtype"] == "m.notice" and "<ul>" in html["formatted_body"]
    assert html["m.relates_to"]["m.in_reply_to"]["event_id"].startswith("$cmd")


async def test_not_a_directory_professional_is_refused(world: World) -> None:
    [reply] = await world.say("@nobody:azurezo.test", "!taches")
    assert "rattaché à aucun professionnel de l'annuaire" in reply
    [reply] = await world.say(world.inactive, "!aide")
    assert "plus inscrit comme actif" in reply


async def test_room_not_linked(world: World) -> None:
    [reply] = await world.say(world.alice, "!taches")
    assert "lié à aucun dossier patient" in reply and "!patient lier" in reply


async def test_search_link_and_header(world: World, client: httpx.AsyncClient) -> None:
    patient_id = await linked(world, client)
    [found] = await world.say(world.alice, "!patient dup")
    assert "DUPONT Marie, né(e) le 12/05/1969 [identité provisoire]" in found and patient_id in found
    [header] = await world.say(world.alice, "!patient")
    assert "Patient : DUPONT Marie" in header and "Statut : suivi actif" in header
    # Someone outside the circle: the service refuses, the bot says so in French.
    [refused] = await world.say(world.stranger, "!patient")
    assert "autoris" in refused.lower() or "cercle" in refused.lower()


async def test_link_refusals(world: World) -> None:
    [reply] = await world.say(world.alice, "!patient lier pas-un-id")
    assert "n'est pas un identifiant de dossier" in reply


async def test_tasks_create_list_mine_and_close(world: World, client: httpx.AsyncClient) -> None:
    await linked(world, client)
    [added] = await world.say(world.alice, f"!cercle ajouter {world.paul.user_id} infirmier")
    assert "DURAND" in added and "infirmier" in added
    [created] = await world.say(world.alice, f"!tache Passage infirmier {world.paul.user_id} pour le 12/12")
    assert created.startswith("Tâche n° ") and "Passage infirmier" in created and "12/12/2026" in created
    ref = created.removeprefix("Tâche n° ").split(" ")[0]
    [listed] = await world.say(world.alice, "!taches")
    assert "Tâches ouvertes du patient (1)" in listed and f"n° {ref}" in listed and "DURAND" in listed
    [mine] = await world.say(world.paul, "!taches moi")
    assert "Passage infirmier" in mine
    [done] = await world.say(world.paul, f"!fait {ref}")
    assert done == f"Tâche n° {ref} terminée : Passage infirmier."
    [empty] = await world.say(world.alice, "!taches")
    assert "aucune" in empty
    [unknown] = await world.say(world.alice, "!fait 999")
    assert "Aucune tâche ouverte n° 999" in unknown


async def test_circle_show_and_remove(world: World, client: httpx.AsyncClient) -> None:
    await linked(world, client)
    await world.say(world.alice, f"!cercle ajouter {world.paul.user_id}")
    [circle] = await world.say(world.alice, "!cercle")
    assert "Cercle de soins (2)" in circle and world.paul.user_id in circle
    [removed] = await world.say(world.alice, f"!cercle retirer {world.paul.user_id}")
    assert "retiré(e) du cercle" in removed
    [again] = await world.say(world.alice, f"!cercle retirer {world.paul.user_id}")
    assert "n'est pas dans le cercle" in again


async def test_requests(world: World, client: httpx.AsyncClient) -> None:
    await linked(world, client)
    [sent] = await world.say(world.alice, f"!demande {DAC} Situation complexe à domicile urgente")
    assert "Demande envoyée au DAC" in sent and "DAC Alpes-Maritimes" in sent and "URGENTE" in sent
    [listed] = await world.say(world.alice, "!demandes")
    assert "Demandes au DAC (1)" in listed and "Situation complexe à domicile" in listed
    [by_name] = await world.say(world.alice, "!demande Alpes Retour à domicile")
    assert "Demande envoyée" in by_name
    [unknown] = await world.say(world.alice, "!demande Bretagne Retour")
    assert "Aucun DAC ne correspond" in unknown


async def test_synthesis_quotes_marked_messages(world: World, client: httpx.AsyncClient) -> None:
    await linked(world, client)
    await world.say(world.alice, "!tache Bilan")
    target = EventId("$important")
    world.gateway.messages[(ROOM, target)] = QuotedMessage(
        target, UserId(world.paul.user_id), "Chute hier soir"
    )
    assert world.marks.add(
        room_id=ROOM, reaction=EventId("$r1"), target=target, key="❗️", sender=UserId(world.alice.user_id)
    )
    assert not world.marks.add(
        room_id=ROOM, reaction=EventId("$r2"), target=target, key="👍", sender=UserId(world.alice.user_id)
    )
    world.marks.add(
        room_id=ROOM,
        reaction=EventId("$r3"),
        target=EventId("$q"),
        key="❓",
        sender=UserId(world.alice.user_id),
    )
    [synthesis] = await world.say(world.alice, "!synthese")
    for part in (
        "Patient : DUPONT Marie",
        "Cercle de soins (1)",
        "Tâches ouvertes (1)",
        "Bilan",
        "Demandes au DAC (0)",
    ):
        assert part in synthesis
    assert f"{world.paul.user_id} : « Chute hier soir »" in synthesis
    assert f"https://matrix.to/#/{ROOM}/$important" in synthesis
    assert "Questions ❓ (1)" in synthesis and "(message illisible par le robot)" in synthesis
    [pdf] = world.gateway.files
    assert pdf.filename == "synthese.pdf" and pdf.mimetype == "application/pdf"
    assert pdf.data.startswith(b"%PDF-1.4") and b"DUPONT Marie" in pdf.data and b"Chute hier soir" in pdf.data
    world.marks.remove(reaction=EventId("$r1"))
    [after] = await world.say(world.alice, "!synthese")
    assert "Chute hier soir" not in after


async def test_unknown_command_is_answered_with_a_suggestion(world: World) -> None:
    [reply] = await world.say(world.alice, "!cercel")
    assert "Vouliez-vous dire « !cercle »" in reply


async def test_thread_replies_stay_in_the_thread(world: World) -> None:
    await world.say(world.alice, "!aide", thread_root=EventId("$root"))
    relates = world.gateway.sent[-1].content["m.relates_to"]
    assert relates["rel_type"] == "m.thread" and relates["event_id"] == "$root"


async def test_every_write_carries_the_idempotency_key(
    world: World, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    await linked(world, client)
    seen: list[tuple[str, str | None]] = []
    original = client.request

    async def spy(method: str, url: str, **kw: object) -> httpx.Response:
        headers = kw.get("headers") or {}
        assert isinstance(headers, dict)
        seen.append((method, headers.get("Idempotency-Key")))
        return await original(method, url, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(client, "request", spy)
    await world.say(world.alice, "!tache Bilan")
    writes = [key for method, key in seen if method != "GET"]
    assert writes and all(key and key.startswith("$cmd") for key in writes)


async def test_bindings_are_cached_briefly(
    world: World, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = world.handlers._service
    service.binding_ttl = 30.0
    lookups: list[str] = []
    original = client.get

    async def spy(url: str, **kw: object) -> httpx.Response:
        if "/internal/v1/directory/matrix-users/" in url:
            lookups.append(url)
        return await original(url, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(client, "get", spy)
    await world.say(world.alice, "!aide")
    await world.say(world.alice, "!aide")
    assert len(lookups) == 1


async def test_task_in_a_thematic_room(world: World, client: httpx.AsyncClient) -> None:
    theme_room = RoomId("!theme:azurezo.test")
    resp = await client.post(
        "/api/v1/themes",
        json={"name": "vaccination grippe", "room_id": theme_room},
        headers=world.alice.headers,
    )
    assert resp.status_code == 201, resp.text
    [created] = await world.say(world.alice, "!tache Commander les vaccins", room=theme_room)
    assert created.startswith("Tâche n° ") and "(thème « vaccination grippe »)" in created
    [mine] = await world.say(world.alice, "!taches moi", room=theme_room)
    assert "Commander les vaccins" in mine
    # SERVICE_NEEDS 6: the theme's tasks, for anyone in the (open) theme room, numbered per theme.
    [second] = await world.say(world.paul, "!tache Afficher les horaires", room=theme_room)
    assert second.startswith("Tâche n° 2 créée")
    [listed] = await world.say(world.stranger, "!taches", room=theme_room)
    assert "Tâches ouvertes du thème « vaccination grippe » (2)" in listed
    assert "Commander les vaccins" in listed and "Afficher les horaires" in listed
    [done] = await world.say(world.paul, "!fait 2", room=theme_room)
    assert done == "Tâche n° 2 terminée : Afficher les horaires."
    [left] = await world.say(world.alice, "!taches", room=theme_room)
    assert "(1)" in left and "Afficher les horaires" not in left


async def test_patient_room_request(world: World, client: httpx.AsyncClient, tokens: FakeTokens) -> None:
    """`!patient salon` asks the service, which tells the bot (its outbox consumer) to create the room."""
    patient_id = await linked(world, client)
    [reply] = await world.say(world.alice, "!patient salon")
    assert "Salon du patient demandé" in reply
    [elsewhere] = await world.say(
        world.alice, f"!patient salon {patient_id}", room=RoomId("!other:azurezo.test")
    )
    assert "Salon du patient demandé" in elsewhere
    [refused] = await world.say(
        world.stranger, f"!patient salon {patient_id}", room=RoomId("!x:azurezo.test")
    )
    assert "pas membre habilité du cercle de soins" in refused
    [bad] = await world.say(world.alice, "!patient salon pas-un-id", room=RoomId("!x:azurezo.test"))
    assert "n'est pas un identifiant de dossier" in bad
    events = await client.get("/api/v1/events", headers={"Authorization": f"Bearer {tokens.issue(BOT)}"})
    requested = [e["event"] for e in events.json()["items"] if e["event"]["kind"] == "room.requested"]
    assert [e["requested_by"] for e in requested] == [world.alice.user_id] * 2
    assert {e["patient_id"] for e in requested} == {patient_id}
