"""Patient rooms: created on request, named without identity, members kept in step with the care circle.

- ``room.requested`` (``POST /api/v1/patients/{id}/rooms`` with ``"create": true``, or ``!patient
  salon``): the bot creates an encrypted, invite-only, unpublished room (history for joined members
  only) named « Patient P-XXXXX-XXXXX », links it on behalf of the requester (the service checks the
  requester may), then invites the circle.
- Membership follows the circle: after ``room.linked``, ``circle.member_added / _removed / _updated``
  the patient's rooms are reconciled at once; every ``sweep_seconds`` all patient rooms are (a
  professional delisted by a directory import has no event: the sweep removes them). Reconciling =
  invite who should be there (``GET /internal/v1/patient-rooms``: habilité, bound, active; never a
  relative) and kick, with a French reason, who should not.
- Room state (name, topic) is not end-to-end encrypted, so it carries only the pseudonymous code;
  identity shows only in encrypted messages: the identity header, posted (encrypted) and pinned for
  each member when they join — history is visible from one's join only, so a header posted earlier
  could not be read by them; the pins keep the 20 most recent headers.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import logging
import uuid
from pathlib import Path

from coordination_bot.handlers import badge, patient_label
from coordination_bot.ids import EventId, RoomId, UserId
from coordination_bot.messenger import Messenger, read_map
from coordination_bot.outbox import OutboxConsumer
from coordination_bot.service_client import OutboxEvent, Patient, RoomMembers, ServiceClient, ServiceError
from coordination_bot.state import write_private

logger = logging.getLogger(__name__)

SWEEP_SECONDS = 5.0
KICK_REASON = (
    "Vous n'êtes plus membre habilité du cercle de soins de ce patient, ou plus inscrit comme "
    "professionnel actif dans l'annuaire : vous êtes retiré(e) de son salon. Si c'est une erreur, "
    "demandez à un membre du cercle de vous y ajouter."
)
_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base 32: no I, L, O, U


def pseudonym(patient_id: uuid.UUID) -> str:
    """« P-7F3KQ-9XM2A »: stable for a patient, not reversible, 50 bits (no collision in practice
    for a region's patients; a collision would only make two rooms look alike, never merge them)."""
    digest = hashlib.sha256(b"azurezo/patient-room/" + patient_id.bytes).digest()
    code = (
        base64.b32encode(digest)
        .decode()
        .translate(str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", _ALPHABET))[:10]
    )
    return f"P-{code[:5]}-{code[5:]}"


def room_name(patient_id: uuid.UUID) -> str:
    return f"Patient {pseudonym(patient_id)}"


ROOM_TOPIC = (
    "Salon de coordination d'un patient : chiffré, réservé aux membres habilités de son cercle de "
    "soins. L'identité du patient est dans le message épinglé, jamais dans le nom du salon."
)


def header_content(patient: Patient) -> dict[str, object]:
    """The identity header (encrypted message, pinned): the identity may show here only."""
    label = patient_label(patient)
    status = "suivi actif" if patient.status == "active" else "sorti(e) du parcours"
    plain = f"En-tête du dossier — Patient : {label}\nStatut : {status}\nDossier : {patient.id}"
    warning = "" if not badge(patient) else "\nIdentité à qualifier avant tout échange de données."
    return {
        "msgtype": "m.notice",
        "body": plain + warning,
        "format": "org.matrix.custom.html",
        "formatted_body": (
            f"<strong>En-tête du dossier — Patient : {_esc(label)}</strong><br>Statut : {status}"
            f"<br>Dossier : {patient.id}" + (f"<br>{_esc(warning.strip())}" if warning else "")
        ),
        "m.mentions": {},
    }


def _esc(text: str) -> str:
    import html

    return html.escape(text)


def plan(expected: set[str], current: set[str], *, bot: str) -> tuple[list[str], list[str]]:
    """Who to invite and who to kick so that ``current`` becomes ``expected`` (the bot stays)."""
    invite = sorted(expected - current - {bot})
    kick = sorted(current - expected - {bot})
    return invite, kick


class PatientRooms:
    """Creates patient rooms and keeps their members in step with the circle."""

    def __init__(
        self,
        *,
        service: ServiceClient,
        messenger: Messenger,
        created_file: Path,
        sweep_seconds: float = SWEEP_SECONDS,
    ) -> None:
        self._service = service
        self._matrix = messenger
        self._created_file = created_file
        self._created = read_map(created_file)  # room request id -> room id
        self._sweep = sweep_seconds
        self._patients: dict[str, uuid.UUID] = {}  # room id -> patient id, learnt while reconciling
        self._locks: dict[str, asyncio.Lock] = {}

    def register(self, consumer: OutboxConsumer) -> None:
        consumer.register("room.requested", self.on_requested)
        consumer.register("room.linked", self.on_patient_change)
        consumer.register("circle.member_removed", self.on_patient_change)
        consumer.register("circle.member_updated", self.on_patient_change)

    # --- creation --------------------------------------------------------------------------------
    async def on_requested(self, event: OutboxEvent) -> None:
        request_id = str(event.event["request_id"])
        patient_id = uuid.UUID(str(event.event["patient_id"]))
        requester = UserId(str(event.event["requested_by"]))
        room_id = RoomId(self._created[request_id]) if request_id in self._created else None
        if room_id is None:
            room_id = RoomId(
                await self._matrix.create_patient_room(name=room_name(patient_id), topic=ROOM_TOPIC)
            )
            # Remembered before anything else: a restart goes on with this room, never a second one.
            self._created[request_id] = room_id
            write_private(self._created_file, json.dumps(self._created))
            logger.info("patient room %s created for request %s", room_id, request_id)
        try:
            await self._service.link_room(
                sender=requester,
                patient_id=patient_id,
                room_id=room_id,
                event_id=EventId(f"room.requested/{request_id}"),
            )
        except ServiceError as exc:
            if exc.status in (403, 404):  # the requester lost access meanwhile: nobody is invited
                logger.warning("room request %s refused by the service: %s", request_id, exc.errcode)
                return
            raise
        self._patients[room_id] = patient_id
        logger.info("patient room %s linked for request %s", room_id, request_id)
        # No header now: nobody but the bot could ever read it (history from one's join only). Each
        # member gets one, pinned, when they join (``on_member_joined``).
        await self.reconcile_patient(patient_id)

    async def post_header(self, room_id: str, patient: Patient, *, tx: str) -> None:
        async with self._locks.setdefault(f"header:{room_id}", asyncio.Lock()):
            event_id = await self._matrix.send(room_id, header_content(patient), tx_id=tx)
            await self._matrix.pin(room_id, event_id)

    async def on_member_joined(self, room_id: str, user_id: str, join_event_id: str) -> None:
        """A member joined a patient room: post the header again for them (they read from their join)."""
        patient_id = self._patients.get(room_id)
        if patient_id is None or user_id == self._matrix.user_id:
            return
        try:
            patient = await self._service.patient(sender=UserId(user_id), patient_id=patient_id)
            await self.post_header(
                room_id, patient, tx=f"header-{hashlib.sha256(join_event_id.encode()).hexdigest()[:32]}"
            )
        except Exception:  # a courtesy: never fatal, « !patient » shows the header too
            logger.warning("header not posted in %s after a join", room_id, exc_info=True)

    # --- membership ------------------------------------------------------------------------------
    async def on_patient_change(self, event: OutboxEvent) -> None:
        patient_id = event.event.get("patient_id")
        if patient_id:
            await self.reconcile_patient(uuid.UUID(str(patient_id)))

    async def reconcile_patient(self, patient_id: uuid.UUID) -> None:
        for room in await self._service.patient_rooms(patient_id=patient_id):
            await self.reconcile(room)

    async def reconcile(self, room: RoomMembers) -> None:
        """Invite the missing authorised members, kick the others (one room at a time)."""
        self._patients[room.room_id] = room.patient_id
        lock = self._locks.setdefault(room.room_id, asyncio.Lock())
        async with lock:
            current = self._matrix.members(room.room_id)
            if current is None:
                return  # the bot is not in this room (not invited yet): nothing it can do
            invite, kick = plan(set(room.members), current, bot=self._matrix.user_id)
            for user_id in invite:
                await self._matrix.invite(room.room_id, user_id)
            if kick and self._matrix.power_level(room.room_id) < 50:
                logger.warning(
                    "room %s: %d member(s) should leave but the bot may not kick (power level)",
                    room.room_id,
                    len(kick),
                )
            for user_id in kick:
                await self._matrix.kick(room.room_id, user_id, KICK_REASON)
            if invite or kick:
                logger.info(
                    "room %s reconciled: %d invited, %d removed", room.room_id, len(invite), len(kick)
                )

    async def sweep(self) -> None:
        """Every patient room against the service (the safety net: directory delistings, lost events)."""
        for room in await self._service.patient_rooms():
            await self.reconcile(room)

    async def run_sweeps(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.sweep()
            except Exception:
                logger.warning("patient rooms sweep failed", exc_info=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self._sweep)
