"""A thin typed HTTP client of the coordination service, acting on behalf of a room member.

Every ``/api/v1`` call carries the bot's Matrix access token and ``X-Azurezo-On-Behalf-Of: <sender>``
(docs/ARCHITECTURE.md "Service authentication"): the service checks the sender, not the bot. Every
write carries ``Idempotency-Key: <Matrix event id of the command>`` (coordination_bot/SERVICE_NEEDS.md).

The response models are the bot's own and tolerant (unknown fields ignored, most fields optional), so
the service's schemas can move without breaking the bot; list answers are read whether they come as
a bare list, ``results``, or a ``Page`` (``items`` + ``next_cursor``).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError

from coordination_bot.ids import EventId, RoomId, UserId

logger = logging.getLogger(__name__)

ON_BEHALF_HEADER = "X-Azurezo-On-Behalf-Of"
IDEMPOTENCY_HEADER = "Idempotency-Key"
OPEN_TASK_STATUSES = ("a_faire", "en_cours")  # ASCII codes: the service folds accents


class ServiceError(Exception):
    """The service refused or failed; ``message`` is French and fit to show the sender."""

    def __init__(self, status: int, errcode: str, message: str) -> None:
        self.status = status
        self.errcode = errcode
        self.message = message
        super().__init__(f"{status} {errcode}")


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class PatientSummary(_Model):
    id: uuid.UUID
    birth_name: str = ""
    first_birth_first_name: str = ""
    used_name: str | None = None
    used_first_name: str | None = None
    birth_date: date | None = None
    sex: str | None = None
    identity_status: str = "provisoire"
    status: str = "active"
    is_member: bool = False


class Patient(PatientSummary):
    version: int = 1
    identity_status_forced_by: list[str] = []
    discharge: dict[str, Any] | None = None


class RoomInfo(_Model):
    room_id: str
    kind: str
    patient_id: uuid.UUID | None = None
    theme: dict[str, Any] | None = None


class Assignee(_Model):
    kind: str = "professionnel"
    national_id: str | None = None
    structure_id: str | None = None
    label: str = ""


class Task(_Model):
    id: uuid.UUID
    version: int = 1
    number: int | None = None  # SERVICE_NEEDS: a short number per task
    patient_id: uuid.UUID | None = None
    theme_id: uuid.UUID | None = None  # SERVICE_NEEDS 6: a task of a thematic room
    title: str = ""
    status: str = ""
    status_label: str = ""
    due_date: date | None = None
    assignees: list[Assignee] = []
    creator_user_id: str | None = None

    @property
    def short_ref(self) -> str:
        """What the bot shows and ``!fait`` accepts: the service's number, else the id's first 8."""
        return str(self.number) if self.number is not None else self.id.hex[:8]


class Member(_Model):
    id: uuid.UUID
    kind: str = "professional"
    national_id: str | None = None
    structure_id: str | None = None
    display_name: str = ""
    role: str = ""
    habilite: bool = False
    user_id: str | None = None


class DacRequest(_Model):
    id: uuid.UUID
    version: int = 1
    number: int | None = None
    patient_id: uuid.UUID | None = None
    dac_structure_id: str = ""
    dac_name: str = ""
    status: str = ""
    status_label: str = ""
    urgency: str = "normale"
    urgency_label: str = ""
    reason: str = ""


class Document(_Model):
    id: uuid.UUID
    title: str = ""
    category_label: str = ""
    visibility: str = "cercle"
    created_at: datetime | None = None


class Binding(_Model):
    user_id: str
    national_id: str
    active: bool
    display_name: str = ""


class Structure(_Model):
    structure_id: str
    name: str = ""
    is_dac: bool = False


class DacRoom(_Model):
    """The DAC's own room (``room_id`` None: a direct message to each coordinator)."""

    structure_id: str
    dac_name: str | None = None
    room_id: str | None = None


class Synthesis(_Model):
    text: str = ""
    version: int = 0
    author_display_name: str | None = None  # who saved this version
    created_at: datetime | None = None  # when


class PlanAction(_Model):
    title: str
    status: str = ""
    status_label: str = ""
    responsible_label: str | None = None
    deadline: date | None = None
    task_number: int | None = None
    appointment_start: datetime | None = None
    appointment_status_label: str | None = None


class Plan(_Model):
    version: int = 0
    next_review_date: date | None = None
    actions: list[PlanAction] = []


class ScorePoint(_Model):
    form_id: str
    form_title: str = ""
    signed_at: datetime
    score: float
    score_label: str = ""
    change: float | None = None


class TimelineItem(_Model):
    at: datetime
    kind_label: str = ""
    title: str = ""
    detail: str | None = None


class Slot(_Model):
    """A free slot of a shared agenda (``GET /api/v1/slots``)."""

    agenda_id: uuid.UUID
    agenda_name: str = ""
    owner_label: str = ""
    city: str | None = None
    event_type_id: uuid.UUID
    event_type_name: str = ""
    start: datetime
    end: datetime | None = None
    start_local: str = ""
    distance_km: float | None = None


class Appointment(_Model):
    id: uuid.UUID
    agenda_name: str = ""
    event_type_name: str = ""
    start: datetime
    start_local: str = ""
    status: str = ""
    status_label: str | None = None
    patient_id: uuid.UUID | None = None


class OutboxEvent(_Model):
    """One event of the service's outbox (``GET /api/v1/events``): the typed event stays a dict, read
    by the handler of its ``kind``."""

    id: int
    recipients: list[str] = []
    event: dict[str, Any]

    @property
    def kind(self) -> str:
        return str(self.event.get("kind", ""))


class RoomMembers(_Model):
    """A patient room and who should be in it now (internal API)."""

    room_id: str
    patient_id: uuid.UUID
    members: list[str] = []


M = TypeVar("M", bound=_Model)


def _items(payload: Any) -> list[Any]:
    if isinstance(payload, list):
        return payload
    if isinstance(payload, dict):
        for key in ("items", "results", "members"):
            if isinstance(payload.get(key), list):
                return list(payload[key])
    raise ServiceError(502, "AZ_BAD_ANSWER", "Le service de coordination a répondu de façon inattendue.")


class ServiceClient:
    """The service's API, as the bot uses it. One instance per bot; ``httpx.AsyncClient`` inside."""

    def __init__(
        self,
        *,
        base_url: str,
        bot_token: str,
        internal_secret: str,
        client: httpx.AsyncClient | None = None,
        timeout: float = 10.0,
    ) -> None:
        self._base = base_url.rstrip("/")
        self._token = bot_token
        self._internal = internal_secret
        self._client = client or httpx.AsyncClient(timeout=timeout)
        self._owns_client = client is None
        # Directory bindings, briefly cached like the Synapse module does (30 s): the service still
        # checks the acting professional on every call, this only spares a lookup per command.
        self._bindings: dict[str, tuple[float, Binding | None]] = {}
        self.binding_ttl = 30.0

    def set_bot_token(self, token: str) -> None:
        self._token = token

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    # --- plumbing ------------------------------------------------------------------------------
    async def _request(
        self,
        method: str,
        path: str,
        *,
        sender: UserId,
        idempotency_key: EventId | None = None,
        params: Any = None,
        json: Any = None,
        raw: bool = False,
    ) -> Any:
        headers = {"Authorization": f"Bearer {self._token}", ON_BEHALF_HEADER: sender}
        if idempotency_key is not None:
            headers[IDEMPOTENCY_HEADER] = idempotency_key
        try:
            resp = await self._client.request(
                method, f"{self._base}{path}", headers=headers, params=params, json=json
            )
        except httpx.HTTPError as exc:
            logger.warning("service %s %s failed: %s", method, path.split("?")[0], type(exc).__name__)
            raise ServiceError(
                503,
                "AZ_UNAVAILABLE",
                "Le service de coordination ne répond pas ; réessayez dans quelques instants.",
            ) from exc
        if resp.status_code == 204:
            return None
        if resp.is_success:
            return resp.content if raw else resp.json()
        raise _error(resp)

    @staticmethod
    def _one(model: type[M], payload: Any) -> M:
        try:
            return model.model_validate(payload)
        except ValidationError as exc:
            raise ServiceError(
                502, "AZ_BAD_ANSWER", "Le service de coordination a répondu de façon inattendue."
            ) from exc

    def _many(self, model: type[M], payload: Any) -> list[M]:
        return [self._one(model, item) for item in _items(payload)]

    async def _as_bot(self, method: str, path: str, *, params: Any = None, json: Any = None) -> Any:
        """A call of the bot for itself (the outbox): its token, nobody on whose behalf."""
        try:
            resp = await self._client.request(
                method,
                f"{self._base}{path}",
                headers={"Authorization": f"Bearer {self._token}"},
                params=params,
                json=json,
            )
        except httpx.HTTPError as exc:
            raise ServiceError(503, "AZ_UNAVAILABLE", "Le service de coordination ne répond pas.") from exc
        if resp.is_success:
            return resp.json()
        raise _error(resp)

    async def _internal_get(self, path: str, *, params: Any = None) -> Any:
        """A read of the internal API (internal secret), as the Synapse module does."""
        try:
            resp = await self._client.get(
                f"{self._base}{path}", headers={"Authorization": f"Bearer {self._internal}"}, params=params
            )
        except httpx.HTTPError as exc:
            raise ServiceError(503, "AZ_UNAVAILABLE", "Le service de coordination ne répond pas.") from exc
        if resp.is_success:
            return resp.json()
        raise _error(resp)

    # --- outbox and patient rooms (the bot for itself) -----------------------------------------
    async def events(self, *, limit: int = 100) -> list[OutboxEvent]:
        """The events after the bot's acknowledged position, oldest first."""
        return self._many(OutboxEvent, await self._as_bot("GET", "/api/v1/events", params={"limit": limit}))

    async def ack(self, *, up_to: int) -> int:
        payload = await self._as_bot("POST", "/api/v1/events/ack", json={"up_to": up_to})
        return int(payload["cursor"])

    async def patient_rooms(
        self, *, patient_id: uuid.UUID | None = None, room_id: str | None = None
    ) -> list[RoomMembers]:
        """Patient rooms (all, a patient's, or one) with who should be in them now, every page."""
        params: dict[str, str] = {"limit": "200"}
        if patient_id is not None:
            params["patient_id"] = str(patient_id)
        if room_id is not None:
            params["room_id"] = room_id
        out: list[RoomMembers] = []
        while True:
            payload = await self._internal_get("/internal/v1/patient-rooms", params=params)
            out += self._many(RoomMembers, payload)
            cursor = payload.get("next_cursor") if isinstance(payload, dict) else None
            if not cursor:
                return out
            params["cursor"] = str(cursor)

    async def task(self, *, sender: UserId, task_id: uuid.UUID) -> Task:
        return self._one(Task, await self._request("GET", f"/api/v1/tasks/{task_id}", sender=sender))

    async def tasks_by_ids(self, *, sender: UserId, task_ids: Sequence[uuid.UUID]) -> list[Task]:
        """The tasks among ``task_ids`` that ``sender`` may see, in one audited read (at most 200)."""
        params = [("ids", str(i)) for i in task_ids]
        return self._many(Task, await self._request("GET", "/api/v1/tasks", sender=sender, params=params))

    async def request(self, *, sender: UserId, request_id: uuid.UUID) -> DacRequest:
        return self._one(
            DacRequest, await self._request("GET", f"/api/v1/requests/{request_id}", sender=sender)
        )

    async def document(self, *, sender: UserId, patient_id: uuid.UUID, document_id: uuid.UUID) -> Document:
        payload = await self._request(
            "GET", f"/api/v1/patients/{patient_id}/documents/{document_id}", sender=sender
        )
        return self._one(Document, payload)

    async def member(self, *, sender: UserId, patient_id: uuid.UUID, member_id: uuid.UUID) -> Member:
        payload = await self._request(
            "GET", f"/api/v1/patients/{patient_id}/circle/{member_id}", sender=sender
        )
        return self._one(Member, payload)

    # --- directory -----------------------------------------------------------------------------
    async def binding(self, user_id: UserId) -> Binding | None:
        """The directory identity bound to a Matrix account (internal API), None when unbound."""
        now = time.monotonic()
        hit = self._bindings.get(user_id)
        if hit is not None and hit[0] > now:
            return hit[1]
        found = await self._fetch_binding(user_id)
        if len(self._bindings) > 10_000:
            self._bindings.clear()
        self._bindings[user_id] = (now + self.binding_ttl, found)
        return found

    async def _fetch_binding(self, user_id: UserId) -> Binding | None:
        try:
            resp = await self._client.get(
                f"{self._base}/internal/v1/directory/matrix-users/{user_id}",
                headers={"Authorization": f"Bearer {self._internal}"},
            )
        except httpx.HTTPError as exc:
            raise ServiceError(
                503, "AZ_UNAVAILABLE", "Le service de coordination ne répond pas ; réessayez plus tard."
            ) from exc
        if resp.status_code == 404:
            return None
        if not resp.is_success:
            raise _error(resp)
        return self._one(Binding, resp.json())

    async def find_dacs(self, *, sender: UserId, text: str) -> list[Structure]:
        payload = await self._request(
            "GET", "/api/v1/directory/structures", sender=sender, params={"q": text, "dac": "true"}
        )
        return self._many(Structure, payload)

    async def structure(self, *, sender: UserId, structure_id: str) -> Structure:
        payload = await self._request("GET", f"/api/v1/directory/structures/{structure_id}", sender=sender)
        return self._one(Structure, payload)

    async def my_structures(self, *, sender: UserId) -> list[str]:
        """The structures ``sender`` works at (directory activities), from ``GET /api/v1/me``."""
        payload = await self._request("GET", "/api/v1/me", sender=sender)
        return [str(s) for s in payload.get("structure_ids", [])] if isinstance(payload, dict) else []

    async def set_dac_room(self, *, sender: UserId, structure_id: str, room_id: RoomId | None) -> DacRoom:
        """Make ``room_id`` the DAC's own room (None: back to a direct message each)."""
        path = f"/api/v1/dacs/{structure_id}/room"
        if room_id is None:
            return self._one(DacRoom, await self._request("DELETE", path, sender=sender))
        return self._one(DacRoom, await self._request("PUT", path, sender=sender, json={"room_id": room_id}))

    # --- patients and rooms ---------------------------------------------------------------------
    async def search_patients(self, *, sender: UserId, q: str) -> list[PatientSummary]:
        payload = await self._request("GET", "/api/v1/patients", sender=sender, params={"q": q, "limit": 10})
        return self._many(PatientSummary, payload)

    async def patient(self, *, sender: UserId, patient_id: uuid.UUID) -> Patient:
        return self._one(Patient, await self._request("GET", f"/api/v1/patients/{patient_id}", sender=sender))

    async def room(self, *, sender: UserId, room_id: RoomId) -> RoomInfo | None:
        """What the room is about; None when it is linked to nothing."""
        try:
            payload = await self._request("GET", f"/api/v1/rooms/{room_id}", sender=sender)
        except ServiceError as exc:
            if exc.status == 404 and exc.errcode == "AZ_UNKNOWN_ROOM":
                return None
            raise
        return self._one(RoomInfo, payload)

    async def link_room(
        self, *, sender: UserId, patient_id: uuid.UUID, room_id: RoomId, event_id: EventId
    ) -> None:
        await self._request(
            "POST",
            f"/api/v1/patients/{patient_id}/rooms",
            sender=sender,
            idempotency_key=event_id,
            json={"room_id": room_id},
        )

    async def request_room(self, *, sender: UserId, patient_id: uuid.UUID, event_id: EventId) -> None:
        """Ask the service for a new patient room (the bot itself creates it from the outbox)."""
        await self._request(
            "POST",
            f"/api/v1/patients/{patient_id}/rooms",
            sender=sender,
            idempotency_key=event_id,
            json={"create": True},
        )

    # --- tasks ----------------------------------------------------------------------------------
    async def tasks(
        self,
        *,
        sender: UserId,
        patient_id: uuid.UUID | None = None,
        mine: bool = False,
        theme_id: uuid.UUID | None = None,
    ) -> list[Task]:
        params: list[tuple[str, str]] = [("status", s) for s in OPEN_TASK_STATUSES]
        if patient_id is not None:
            params.append(("patient_id", str(patient_id)))
        if theme_id is not None:
            params.append(("theme_id", str(theme_id)))
        if mine:
            params.append(("scope", "mine"))  # assigned to me or created by me
        params.append(("limit", "50"))
        return self._many(Task, await self._request("GET", "/api/v1/tasks", sender=sender, params=params))

    async def create_task(
        self,
        *,
        sender: UserId,
        event_id: EventId,
        title: str,
        patient_id: uuid.UUID | None,
        assignee_national_ids: list[str],
        due: date | None,
        theme_id: uuid.UUID | None = None,
    ) -> Task:
        body: dict[str, Any] = {
            "title": title,
            "type": "autre",
            "patient_id": str(patient_id) if patient_id else None,
            "assignee_national_ids": assignee_national_ids,
        }
        if theme_id is not None:
            body["theme_id"] = str(theme_id)
        if due is not None:
            body["due_date"] = due.isoformat()
        payload = await self._request(
            "POST", "/api/v1/tasks", sender=sender, idempotency_key=event_id, json=body
        )
        return self._one(Task, payload)

    async def close_task(self, *, sender: UserId, event_id: EventId, task: Task) -> Task:
        payload = await self._request(
            "PATCH",
            f"/api/v1/tasks/{task.id}",
            sender=sender,
            idempotency_key=event_id,
            json={"version": task.version, "status": "terminee"},
        )
        return self._one(Task, payload)

    # --- circle ---------------------------------------------------------------------------------
    async def circle(self, *, sender: UserId, patient_id: uuid.UUID) -> list[Member]:
        payload = await self._request("GET", f"/api/v1/patients/{patient_id}/circle", sender=sender)
        return self._many(Member, payload)

    async def add_member(
        self, *, sender: UserId, event_id: EventId, patient_id: uuid.UUID, national_id: str, role: str
    ) -> Member:
        payload = await self._request(
            "POST",
            f"/api/v1/patients/{patient_id}/circle",
            sender=sender,
            idempotency_key=event_id,
            json={"kind": "professional", "national_id": national_id, "role": role, "habilite": True},
        )
        return self._one(Member, payload)

    async def remove_member(
        self, *, sender: UserId, event_id: EventId, patient_id: uuid.UUID, member_id: uuid.UUID
    ) -> None:
        await self._request(
            "DELETE",
            f"/api/v1/patients/{patient_id}/circle/{member_id}",
            sender=sender,
            idempotency_key=event_id,
        )

    # --- DAC requests ---------------------------------------------------------------------------
    async def create_and_send_request(
        self,
        *,
        sender: UserId,
        event_id: EventId,
        patient_id: uuid.UUID,
        dac_structure_id: str,
        reason: str,
        urgent: bool,
    ) -> DacRequest:
        draft = self._one(
            DacRequest,
            await self._request(
                "POST",
                "/api/v1/requests",
                sender=sender,
                idempotency_key=event_id,
                json={
                    "dac_structure_id": dac_structure_id,
                    "patient_id": str(patient_id),
                    "reason": reason,
                    "urgency": "urgente" if urgent else "normale",
                },
            ),
        )
        payload = await self._request(
            "POST",
            f"/api/v1/requests/{draft.id}/send",
            sender=sender,
            idempotency_key=EventId(f"{event_id}/send"),
            json={"version": draft.version},
        )
        return self._one(DacRequest, payload)

    async def requests(self, *, sender: UserId, patient_id: uuid.UUID) -> list[DacRequest]:
        payload = await self._request(
            "GET", "/api/v1/requests", sender=sender, params={"patient_id": str(patient_id)}
        )
        return self._many(DacRequest, payload)

    # --- documents and synthesis ----------------------------------------------------------------
    async def documents(self, *, sender: UserId, patient_id: uuid.UUID, limit: int = 5) -> list[Document]:
        payload = await self._request(
            "GET", f"/api/v1/patients/{patient_id}/documents", sender=sender, params={"limit": limit}
        )
        return self._many(Document, payload)

    async def synthesis(self, *, sender: UserId, patient_id: uuid.UUID) -> Synthesis | None:
        """The dossier's synthesis text; None while the service has no synthesis API (SERVICE_NEEDS)."""
        try:
            payload = await self._request("GET", f"/api/v1/patients/{patient_id}/synthesis", sender=sender)
        except ServiceError as exc:
            if exc.status in (404, 405) and exc.errcode in ("AZ_NOT_FOUND", "M_UNRECOGNIZED", "AZ_UNKNOWN"):
                return None
            raise
        return self._one(Synthesis, payload)

    async def update_synthesis(
        self, *, sender: UserId, event_id: EventId, patient_id: uuid.UUID, text: str, version: int
    ) -> Synthesis:
        payload = await self._request(
            "PUT",
            f"/api/v1/patients/{patient_id}/synthesis",
            sender=sender,
            idempotency_key=event_id,
            json={"text": text, "version": version},
        )
        return self._one(Synthesis, payload)

    # --- plan, evaluations, timeline (issue 14) --------------------------------------------------
    async def plan(self, *, sender: UserId, patient_id: uuid.UUID) -> Plan:
        payload = await self._request("GET", f"/api/v1/patients/{patient_id}/plan", sender=sender)
        return self._one(Plan, payload)

    async def plan_pdf(self, *, sender: UserId, patient_id: uuid.UUID) -> bytes:
        """The current plan as a PDF (HAS PPCS layout), to post in the patient's (encrypted) room."""
        pdf: bytes = await self._request(
            "GET", f"/api/v1/patients/{patient_id}/plan/pdf", sender=sender, raw=True
        )
        return pdf

    async def scores(self, *, sender: UserId, patient_id: uuid.UUID) -> list[ScorePoint]:
        """Every signed, scored evaluation of the patient, oldest first."""
        payload = await self._request(
            "GET", f"/api/v1/patients/{patient_id}/evaluations/scores", sender=sender
        )
        return self._many(ScorePoint, payload)

    async def timeline(
        self, *, sender: UserId, patient_id: uuid.UUID, limit: int = 8
    ) -> list[TimelineItem] | None:
        """The newest items of the patient's timeline; None while the service has no timeline API."""
        try:
            payload = await self._request(
                "GET", f"/api/v1/patients/{patient_id}/timeline", sender=sender, params={"limit": limit}
            )
        except ServiceError as exc:
            if exc.status in (404, 405) and exc.errcode in ("AZ_NOT_FOUND", "M_UNRECOGNIZED", "AZ_UNKNOWN"):
                return None
            raise
        return self._many(TimelineItem, payload)

    # --- agenda --------------------------------------------------------------------------------
    async def search_slots(
        self,
        *,
        sender: UserId,
        category: str | None = None,
        profession_code: str | None = None,
        department: str | None = None,
        postal_code: str | None = None,
        city: str | None = None,
        near: str | None = None,
        within_km: int | None = None,
        limit: int = 5,
    ) -> list[Slot]:
        """The next free slots the sender may book, earliest first (three per agenda at most);
        ``near``: within ``within_km`` (the service's default if None) of that commune."""
        criteria = {
            "category": category,
            "profession_code": profession_code,
            "department": department,
            "postal_code": postal_code,
            "city": city,
            "near": near,
            "within_km": str(within_km) if within_km is not None else None,
        }
        params = {k: v for k, v in criteria.items() if v} | {"limit": str(limit), "per_agenda": "3"}
        return self._many(Slot, await self._request("GET", "/api/v1/slots", sender=sender, params=params))

    async def book_slot(
        self, *, sender: UserId, event_id: EventId, slot: Slot, patient_id: uuid.UUID | None
    ) -> Appointment:
        body: dict[str, Any] = {
            "agenda_id": str(slot.agenda_id),
            "event_type_id": str(slot.event_type_id),
            "start": slot.start.isoformat(),
        }
        if patient_id is not None:
            body["patient_id"] = str(patient_id)
        payload = await self._request(
            "POST", "/api/v1/appointments", sender=sender, idempotency_key=event_id, json=body
        )
        return self._one(Appointment, payload)

    async def appointment(self, *, sender: UserId, appointment_id: uuid.UUID) -> Appointment:
        """One appointment, read on behalf of a manager, its booker or a participant."""
        return self._one(
            Appointment, await self._request("GET", f"/api/v1/appointments/{appointment_id}", sender=sender)
        )

    async def appointments(self, *, sender: UserId, start: datetime, end: datetime) -> list[Appointment]:
        """The sender's appointments (booked by them, or in agendas they manage) that overlap the range."""
        params = [("from", start.isoformat()), ("to", end.isoformat()), ("limit", "100")]
        params += [("status", s) for s in ("propose", "reserve", "effectue", "absent")]
        return self._many(
            Appointment, await self._request("GET", "/api/v1/appointments", sender=sender, params=params)
        )


def _error(resp: httpx.Response) -> ServiceError:
    errcode, message = "AZ_UNKNOWN", ""
    try:
        body = resp.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        errcode = str(body.get("errcode") or errcode)
        message = str(body.get("error") or body.get("detail") or "")
        if body.get("detail") == "Not Found":  # FastAPI's own 404: a route the service lacks
            errcode, message = "AZ_UNKNOWN", ""
    if not message:
        message = {
            401: "Le robot n'est pas reconnu par le service de coordination : prévenez l'administrateur.",
            403: "Vous n'êtes pas autorisé à faire cela.",
            404: "Introuvable.",
            409: "Quelqu'un l'a modifié entre-temps : réessayez.",
        }.get(resp.status_code, "Le service de coordination a rencontré une erreur ; réessayez plus tard.")
    return ServiceError(resp.status_code, errcode, message)
