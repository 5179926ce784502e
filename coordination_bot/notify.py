"""Notifications from the outbox: tell people where they work.

- ``task.assigned``: in the patient's rooms, mentioning the assignees; a direct message each when the
  task has no patient or the patient has no room;
- ``task.done``: its creator, by direct message;
- ``request.received``: the DAC's own room when one is set (``!dac salon``), mentioning its
  coordinators there; a direct message to each coordinator not in it (to each, without a room);
- ``request.taken`` / ``request.answered``: the requester, by direct message;
- ``circle.member_added``: a message in the patient's rooms (and the rooms are reconciled: the new
  member is invited);
- ``document.shared``: its title and category in the patient's rooms (never the content);
- ``appointment.booked`` / ``appointment.cancelled``: the agenda's managers, the booker and the
  participants, by direct message (never the patient's name: the patient is in the dashboard).

Events carry ids; the labels (a task's title, a document's title) are read through the API on behalf
of a recipient, so the access rule applies to what the bot shows. Mentions use ``m.mentions`` so
clients notify; each message's transaction id derives from the event id (``outbox.tx_id``).
"""

from __future__ import annotations

import asyncio
import html
import logging
import time
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from coordination_bot.ids import UserId
from coordination_bot.messenger import Messenger
from coordination_bot.outbox import OutboxConsumer, tx_id
from coordination_bot.patient_rooms import PatientRooms
from coordination_bot.service_client import OutboxEvent, ServiceClient, ServiceError, Task

logger = logging.getLogger(__name__)

ROOMS_TTL = 10.0  # seconds a patient's rooms are remembered (a burst of writes asks once)


def message(plain: str, *, mentions: Sequence[str] = (), markup: str | None = None) -> dict[str, Any]:
    """An ``m.text`` notification (``m.notice`` would not notify on most clients) with mentions."""
    links = "".join(f' <a href="https://matrix.to/#/{html.escape(u)}">{html.escape(u)}</a>' for u in mentions)
    return {
        "msgtype": "m.text",
        "body": plain + ("".join(f" {u}" for u in mentions)),
        "format": "org.matrix.custom.html",
        "formatted_body": (markup or html.escape(plain)) + links,
        "m.mentions": {"user_ids": sorted(set(mentions))},
    }


def _paris(start_local: str) -> str:
    """« 02/03/2027 à 09:30 » from the service's Paris ISO time; empty when absent or unreadable."""
    try:
        return f"{datetime.fromisoformat(start_local):%d/%m/%Y à %H:%M}" if start_local else ""
    except ValueError:
        return ""


def _to_dac(name: str) -> str:
    """« au DAC Alpes-Maritimes » whether the directory's name starts with « DAC » or not."""
    return f"au {name}" if name.upper().startswith("DAC ") else f"au DAC {name}"


def _task_reader(event: OutboxEvent) -> str | None:
    """On whose behalf a task event's label is read: the assigner (``task.assigned``), the creator who
    is told (``task.done``)."""
    if event.kind == "task.assigned" and event.recipients and event.event.get("assigned_by"):
        return str(event.event["assigned_by"])
    if event.kind == "task.done" and event.recipients:
        return event.recipients[0]
    return None


class Notifier:
    """The notification handlers of the outbox consumer."""

    def __init__(self, *, service: ServiceClient, messenger: Messenger, rooms: PatientRooms) -> None:
        self._service = service
        self._matrix = messenger
        self._rooms = rooms
        self._room_cache: dict[str, tuple[float, list[str]]] = {}
        self._tasks: dict[tuple[str, uuid.UUID], Task] = {}  # the current page's tasks, by reader

    def register(self, consumer: OutboxConsumer) -> None:
        consumer.prefetch(self.prefetch)
        # Notifications need no order among themselves; a member's arrival reconciles the rooms first.
        consumer.register("task.assigned", self.task_assigned, ordered=False)
        consumer.register("task.done", self.task_done, ordered=False)
        consumer.register("request.received", self.request_received, ordered=False)
        consumer.register("request.taken", self.request_taken, ordered=False)
        consumer.register("request.answered", self.request_answered, ordered=False)
        consumer.register("circle.member_added", self.member_added)
        consumer.register("document.shared", self.document_shared, ordered=False)
        consumer.register("appointment.booked", self.appointment_booked, ordered=False)
        consumer.register("appointment.cancelled", self.appointment_cancelled, ordered=False)

    async def prefetch(self, events: list[OutboxEvent]) -> None:
        """Read a page's tasks at once, one audited read per reader (``GET /api/v1/tasks?ids=…``), and
        its patients' rooms, before the handlers run: under a burst of writes, one read per event was
        the bot's bottleneck (issue 9: p95 <= 2 s at 50 writes/s)."""
        wanted: dict[str, list[uuid.UUID]] = {}
        patients: set[str] = set()
        for event in events:
            reader = _task_reader(event)
            if reader is not None:
                wanted.setdefault(reader, []).append(uuid.UUID(str(event.event["task_id"])))
            if event.kind in ("task.assigned", "document.shared") and event.event.get("patient_id"):
                patients.add(str(event.event["patient_id"]))
        self._tasks = {}

        async def read(reader: str, ids: list[uuid.UUID]) -> None:
            for task in await self._service.tasks_by_ids(sender=UserId(reader), task_ids=ids):
                self._tasks[(reader, task.id)] = task

        await asyncio.gather(
            *(read(reader, ids) for reader, ids in wanted.items()),
            *(self._patient_rooms(p) for p in sorted(patients)),
        )

    async def _task(self, reader: str, task_id: uuid.UUID) -> Task:
        """The task as ``reader`` sees it: from the page's prefetch, else read alone."""
        task = self._tasks.get((reader, task_id))
        if task is None:
            task = await self._service.task(sender=UserId(reader), task_id=task_id)
        return task

    async def _patient_rooms(self, patient_id: object) -> list[str]:
        """The patient's rooms the bot is in."""
        if not patient_id:
            return []
        key = str(patient_id)
        cached = self._room_cache.get(key)
        if cached is not None and cached[0] > time.monotonic() and cached[1]:
            return [r for r in cached[1] if self._matrix.members(r) is not None]
        rooms = await self._service.patient_rooms(patient_id=uuid.UUID(key))
        found = [r.room_id for r in rooms if self._matrix.members(r.room_id) is not None]
        # Only a patient with rooms is remembered: a room being created shows up at the next event.
        now = time.monotonic()
        if len(self._room_cache) > 1000:  # forget the expired ones (bounded memory)
            self._room_cache = {k: v for k, v in self._room_cache.items() if v[0] > now}
        self._room_cache[key] = (now + ROOMS_TTL, found)
        return found

    async def _to_rooms_or_dm(
        self, event: OutboxEvent, plain: str, *, mention: Sequence[str], rooms: list[str]
    ) -> None:
        for room_id in rooms:
            await self._matrix.send_batched(
                room_id, message(plain, mentions=mention), tx_id=tx_id(event, room_id)
            )
        if not rooms:
            await self._direct(event, plain, mention)

    async def _direct(self, event: OutboxEvent, plain: str, recipients: Sequence[str]) -> None:
        for user_id in sorted(set(recipients)):
            room_id = await self._matrix.direct_room(user_id)
            await self._matrix.send_batched(room_id, message(plain), tx_id=tx_id(event, user_id))

    # --- tasks -----------------------------------------------------------------------------------
    async def task_assigned(self, event: OutboxEvent) -> None:
        if not event.recipients:
            return
        # The task's label and the patient's rooms (both usually read for the whole page already).
        task, rooms = await asyncio.gather(
            self._task(str(event.event["assigned_by"]), uuid.UUID(str(event.event["task_id"]))),
            self._patient_rooms(event.event.get("patient_id")),
        )
        plain = f"Nouvelle tâche n° {task.short_ref} pour vous : {task.title}"
        if task.due_date is not None:
            plain += f" (échéance {task.due_date:%d/%m/%Y})"
        await self._to_rooms_or_dm(event, plain + ".", mention=event.recipients, rooms=rooms)

    async def task_done(self, event: OutboxEvent) -> None:
        creator = event.recipients[0] if event.recipients else None
        if creator is None:
            return
        task = await self._task(creator, uuid.UUID(str(event.event["task_id"])))
        await self._direct(
            event,
            f"Tâche n° {task.short_ref} terminée par {event.event['done_by']} : {task.title}.",
            [creator],
        )

    # --- DAC requests ------------------------------------------------------------------------------
    async def _request_label(self, event: OutboxEvent, reader: str) -> str:
        try:
            req = await self._service.request(
                sender=UserId(reader), request_id=uuid.UUID(str(event.event["request_id"]))
            )
        except ServiceError:
            return f"au DAC {event.event.get('dac_structure_id', '')}"
        urgent = " — URGENTE" if req.urgency == "urgente" else ""
        return f"{_to_dac(req.dac_name or req.dac_structure_id)} : {req.reason}{urgent}"

    async def request_received(self, event: OutboxEvent) -> None:
        """In the DAC's own room when one is set (encrypted, the bot in it): once, mentioning the
        coordinators there; a direct message to each coordinator not in it (or to all without it)."""
        coordinators = list(event.recipients)
        room_id = str(event.event.get("dac_room_id") or "")
        members = self._matrix.members(room_id) if room_id else None
        if coordinators and room_id and members is not None and self._matrix.encrypted(room_id):
            label = await self._request_label(event, coordinators[0])
            there = [u for u in coordinators if u in members]
            await self._matrix.send_batched(
                room_id,
                message(
                    f"Nouvelle demande adressée {label}. À suivre dans le tableau de bord du DAC.",
                    mentions=there,
                ),
                tx_id=tx_id(event, room_id),
            )
            coordinators = [u for u in coordinators if u not in members]
        elif room_id:
            # Set through the API but the bot is not in it (or it is not encrypted): nobody is missed.
            logger.warning("dac room %s of event %s not usable: direct messages instead", room_id, event.id)
        for coordinator in coordinators:
            label = await self._request_label(event, coordinator)
            await self._direct(
                event,
                f"Nouvelle demande adressée {label}. « !demandes » dans le salon du patient pour la suivre.",
                [coordinator],
            )

    async def request_taken(self, event: OutboxEvent) -> None:
        for requester in event.recipients:
            label = await self._request_label(event, requester)
            await self._direct(event, f"Votre demande {label} est prise en charge par le DAC.", [requester])

    async def request_answered(self, event: OutboxEvent) -> None:
        decision = {
            "acceptee": "acceptée",
            "refusee": "refusée",
            "reorientee": "réorientée",
            "information": "information donnée",
        }.get(str(event.event.get("decision") or ""), "traitée")
        included = (
            " Le patient est inclus dans le suivi du DAC." if event.event.get("patient_included") else ""
        )
        for requester in event.recipients:
            label = await self._request_label(event, requester)
            await self._direct(
                event, f"Réponse du DAC à votre demande {label} : {decision}.{included}", [requester]
            )

    # --- circle and documents ------------------------------------------------------------------------
    async def member_added(self, event: OutboxEvent) -> None:
        patient_id = event.event.get("patient_id")
        if not patient_id:
            return
        await self._rooms.reconcile_patient(uuid.UUID(str(patient_id)))
        reader = next((r for r in event.recipients if r != self._matrix.user_id), None)
        if reader is None:
            return
        try:
            member = await self._service.member(
                sender=UserId(reader),
                patient_id=uuid.UUID(str(patient_id)),
                member_id=uuid.UUID(str(event.event["member_id"])),
            )
        except ServiceError as exc:
            if exc.status in (403, 404):  # removed again meanwhile
                return
            raise
        who = f"{member.display_name} ({member.user_id})" if member.user_id else member.display_name
        access = "habilité(e)" if member.habilite else "sans accès au dossier"
        plain = f"{who} rejoint le cercle de soins comme {member.role}, {access}."
        for room_id in await self._patient_rooms(patient_id):
            await self._matrix.send_batched(room_id, message(plain), tx_id=tx_id(event, room_id))

    async def document_shared(self, event: OutboxEvent) -> None:
        patient_id = event.event.get("patient_id")
        reader = next(iter(event.recipients), None)
        if not patient_id or reader is None:
            return
        try:
            document = await self._service.document(
                sender=UserId(reader),
                patient_id=uuid.UUID(str(patient_id)),
                document_id=uuid.UUID(str(event.event["document_id"])),
            )
        except ServiceError as exc:
            if exc.status in (403, 404):  # deleted or no longer visible
                return
            raise
        plain = f"Nouveau document partagé : « {document.title} » ({document.category_label})."
        if document.visibility == "restreinte":
            # Shared with chosen members only: even its title is for them, not the whole room.
            await self._direct(event, plain, event.recipients)
            return
        for room_id in await self._patient_rooms(patient_id):
            await self._matrix.send_batched(room_id, message(plain), tx_id=tx_id(event, room_id))

    # --- agenda --------------------------------------------------------------------------------------
    async def _appointment_label(self, event: OutboxEvent, reader: str) -> str:
        """« Consultation le 02/03/2027 à 09:30 (agenda Dr X) », read as the recipient; the event's
        own fields when the appointment is no longer visible to them."""
        try:
            appt = await self._service.appointment(
                sender=UserId(reader), appointment_id=uuid.UUID(str(event.event["appointment_id"]))
            )
        except ServiceError as exc:
            if exc.status not in (403, 404):
                raise
            return f"du {str(event.event.get('start', ''))[:16].replace('T', ' à ')} (UTC)"
        when = _paris(appt.start_local) or f"{appt.start:%d/%m/%Y à %H:%M} (UTC)"
        what = f"« {appt.event_type_name} » " if appt.event_type_name else ""
        where = f" — agenda {appt.agenda_name}" if appt.agenda_name else ""
        return f"{what}du {when}{where}"

    async def appointment_booked(self, event: OutboxEvent) -> None:
        requested = event.event.get("status") == "propose"
        for reader in event.recipients:
            label = await self._appointment_label(event, reader)
            plain = (
                f"Demande de rendez-vous {label}, à confirmer dans le tableau de bord."
                if requested
                else f"Rendez-vous pris : {label}."
            )
            await self._direct(event, plain, [reader])

    async def appointment_cancelled(self, event: OutboxEvent) -> None:
        for reader in event.recipients:
            label = await self._appointment_label(event, reader)
            await self._direct(event, f"Rendez-vous annulé : {label}.", [reader])
