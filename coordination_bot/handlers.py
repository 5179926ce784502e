"""Command handlers: each parses nothing (``commands`` did), calls the service on behalf of the sender
and formats one French ``m.notice`` reply. Refusals (not a directory professional, room not linked,
not authorised, unknown command) are replies too, never silence."""

from __future__ import annotations

import html
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from datetime import time as clock
from zoneinfo import ZoneInfo

from coordination_bot import commands as c
from coordination_bot.gateway import Attachment, Gateway, Incoming, Reply
from coordination_bot.ids import EventId, RoomId, UserId
from coordination_bot.marks import IMPORTANT, MarkStore
from coordination_bot.pdf import text_pdf
from coordination_bot.service_client import (
    Appointment,
    DacRequest,
    Member,
    Patient,
    PatientSummary,
    PlanAction,
    ScorePoint,
    ServiceClient,
    ServiceError,
    Slot,
    Task,
    TimelineItem,
)

logger = logging.getLogger(__name__)

_STRUCTURE_ID_PREFIXES = ("finess:", "siret:", "rpps-struct:", "fhir:")
PARIS = ZoneInfo("Europe/Paris")
_WEEKDAYS = ("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche")


def when(moment: datetime) -> str:
    """« mardi 03/03 à 09:30 », in Paris time whatever the server's zone."""
    local = moment.astimezone(PARIS)
    return f"{_WEEKDAYS[local.weekday()]} {local:%d/%m} à {local:%H:%M}"


def slot_line(n: int, s: Slot) -> str:
    where = f", {s.city}" if s.city else ""
    if s.distance_km is not None:
        where += f" ({s.distance_km:.0f} km)".replace(" (0 km)", " (moins d'1 km)")
    return f"n° {n} : {when(s.start)} — {s.event_type_name} — {s.owner_label or s.agenda_name}{where}"


def appointment_line(a: Appointment) -> str:
    local = a.start.astimezone(PARIS)
    return f"{local:%H:%M} {a.event_type_name} — {a.agenda_name} ({a.status_label or a.status})"


class Refused(Exception):
    """A handler's French refusal, replied as is."""

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


@dataclass
class _Out:
    """A reply built line by line, plain and HTML in step."""

    text: list[str]
    html: list[str]

    @classmethod
    def new(cls) -> _Out:
        return cls([], [])

    def line(self, plain: str, markup: str | None = None) -> _Out:
        self.text.append(plain)
        self.html.append(markup if markup is not None else html.escape(plain))
        return self

    def title(self, plain: str) -> _Out:
        return self.line(plain, f"<strong>{html.escape(plain)}</strong>")

    def items(self, lines: Sequence[str]) -> _Out:
        for item in lines:
            self.text.append(f"• {item}")
        if lines:
            self.html.append("<ul>" + "".join(f"<li>{html.escape(i)}</li>" for i in lines) + "</ul>")
        return self

    def reply(self) -> Reply:
        return Reply("\n".join(self.text), _join(self.html))


def _join(parts: list[str]) -> str:
    out: list[str] = []
    for part in parts:
        if out and not part.startswith("<ul>") and not out[-1].endswith("</ul>"):
            out.append("<br>")
        out.append(part)
    return "".join(out)


def _say(message: str) -> Reply:
    return _Out.new().line(message).reply()


def patient_label(p: PatientSummary) -> str:
    """« DUPONT (MARTIN) Jeanne, née le 01/02/1950 » with the identity badge; no more than the API gave."""
    name = p.birth_name
    if p.used_name and p.used_name != p.birth_name:
        name += f" ({p.used_name})"
    first = p.used_first_name or p.first_birth_first_name
    born = f", né(e) le {p.birth_date:%d/%m/%Y}" if p.birth_date else ""
    return f"{name} {first}{born}{badge(p)}"


def badge(p: PatientSummary) -> str:
    if p.identity_status == "qualifiée":
        return ""
    if p.identity_status == "provisoire":
        return " [identité provisoire]"
    return f" [identité provisoire — {p.identity_status}, non qualifiée]"


def _status(p: PatientSummary) -> str:
    return "suivi actif" if p.status == "active" else "sorti(e) du parcours"


def task_line(t: Task) -> str:
    due = f" — échéance {t.due_date:%d/%m/%Y}" if t.due_date else ""
    who = ", ".join(a.label for a in t.assignees if a.label)
    assigned = f" — pour {who}" if who else ""
    return f"n° {t.short_ref} : {t.title}{due}{assigned} ({t.status_label or t.status})"


def request_line(r: DacRequest) -> str:
    urgency = " — URGENTE" if r.urgency == "urgente" else ""
    return f"{r.dac_name or r.dac_structure_id} : {r.reason}{urgency} ({r.status_label or r.status})"


def member_line(m: Member) -> str:
    access = "habilité" if m.habilite else "non habilité"
    who = f" ({m.user_id})" if m.user_id else ""
    return f"{m.display_name}{who} — {m.role}, {access}"


async def _linked_patient(service: ServiceClient, m: Incoming) -> uuid.UUID | None:
    """The patient of the room, if it is linked to a dossier (a theme or no link: None)."""
    room = await service.room(sender=m.sender, room_id=m.room_id)
    return room.patient_id if room is not None and room.kind == "patient" else None


class AgendaHandlers:
    """« !rdv », « !rdv prendre », « !agenda » (``Handlers`` routes them here)."""

    def __init__(self, service: ServiceClient) -> None:
        self._service = service
        # The last « !rdv » list of each (room, sender), for « !rdv prendre <n°> » (memory only: after a
        # restart the bot asks for a new « !rdv »).
        self._offers: dict[tuple[RoomId, UserId], list[Slot]] = {}

    async def handle(self, m: Incoming, command: c.SlotSearch | c.SlotTake | c.AgendaDay) -> Reply:
        match command:
            case c.SlotSearch():
                return await self._slot_search(m, command)
            case c.SlotTake(number=number):
                return await self._slot_take(m, number)
            case c.AgendaDay(day=day):
                return await self._agenda_day(m, day)

    async def _slot_search(self, m: Incoming, command: c.SlotSearch) -> Reply:
        slots = await self._service.search_slots(
            sender=m.sender,
            category=command.category,
            profession_code=command.profession_code,
            department=command.department,
            postal_code=command.postal_code,
            city=command.city,
            near=command.near,
            within_km=command.within_km,
        )
        if command.near is not None:
            radius = f"{command.within_km} km" if command.within_km is not None else "20 km"
            return self._offer(
                m, slots, f"Prochains créneaux libres à moins de {radius} de {command.near}", wider=True
            )
        return self._offer(m, slots, "Prochains créneaux libres")

    def _offer(self, m: Incoming, slots: list[Slot], heading: str, *, wider: bool = False) -> Reply:
        self._offers[(m.room_id, m.sender)] = slots
        if not slots:
            how = (
                "un rayon plus grand, sans profession" if wider else "sans profession, un département voisin"
            )
            return _say(
                f"{heading} : aucun dans le mois qui vient pour ces critères. Élargissez la recherche "
                f"({how})."
            )
        lines = [slot_line(n, s) for n, s in enumerate(slots, start=1)]
        return (
            _Out.new()
            .title(f"{heading} ({len(slots)}) :")
            .items(lines)
            .line("Réservez avec « !rdv prendre <n°> » (pour le patient du salon s'il est lié à un dossier).")
            .reply()
        )

    async def _slot_take(self, m: Incoming, number: int) -> Reply:
        offers = self._offers.get((m.room_id, m.sender), [])
        if not 1 <= number <= len(offers):
            raise Refused(f"Pas de créneau n° {number} dans votre dernière liste : lancez d'abord « !rdv ».")
        slot = offers[number - 1]
        patient_id = await _linked_patient(self._service, m)
        try:
            appt = await self._service.book_slot(
                sender=m.sender, event_id=m.event_id, slot=slot, patient_id=patient_id
            )
        except ServiceError as exc:
            if exc.errcode != "AZ_SLOT_TAKEN":
                raise
            again = await self._service.search_slots(sender=m.sender, limit=5)
            return self._offer(m, again, exc.message + " Nouveaux créneaux")
        del self._offers[(m.room_id, m.sender)]
        who = " pour le patient du salon" if patient_id is not None else ""
        state = "demandé (à confirmer par l'agenda)" if appt.status == "propose" else "réservé"
        return _say(
            f"Rendez-vous {state}{who} : {when(appt.start)} — {appt.event_type_name} — {appt.agenda_name}."
        )

    async def _agenda_day(self, m: Incoming, day: date) -> Reply:
        start = datetime.combine(day, clock(0), tzinfo=PARIS)
        appts = await self._service.appointments(sender=m.sender, start=start, end=start + timedelta(days=1))
        heading = f"Votre agenda du {_WEEKDAYS[day.weekday()]} {day:%d/%m/%Y}"
        if not appts:
            return _say(f"{heading} : aucun rendez-vous.")
        return (
            _Out.new()
            .title(f"{heading} ({len(appts)}) :")
            .items([appointment_line(a) for a in appts])
            .reply()
        )


class Handlers:
    """Routes parsed commands to the service. One per bot; safe to run concurrently across rooms."""

    def __init__(
        self,
        *,
        service: ServiceClient,
        gateway: Gateway,
        marks: MarkStore,
        today: Callable[[], date] = date.today,
    ) -> None:
        self._service = service
        self._gateway = gateway
        self._marks = marks
        self._today = today
        self._agenda = AgendaHandlers(service)

    async def handle(self, incoming: Incoming) -> bool:
        """Handle one message; False when it was not a command. Every command gets exactly one reply."""
        command = c.parse(incoming.text, today=self._today(), mentions=incoming.mentions)
        if command is None:
            return False
        name = type(command).__name__
        started = time.monotonic()
        try:
            if isinstance(command, c.Refusal):
                reply = _say(command.message)
            else:
                await self._require_professional(incoming.sender)
                reply = await self._dispatch(incoming, command)
        except Refused as exc:
            reply = _say(exc.message)
        except ServiceError as exc:
            logger.info(
                "command %s in %s refused by the service: %s %s",
                name,
                incoming.room_id,
                exc.status,
                exc.errcode,
            )
            reply = _say(exc.message)
        await self._gateway.reply(incoming, reply)
        logger.info(
            "command %s (%s) in %s answered in %.0f ms",
            name,
            incoming.event_id,
            incoming.room_id,
            (time.monotonic() - started) * 1000,
        )
        return True

    async def _require_professional(self, sender: UserId) -> None:
        binding = await self._service.binding(sender)
        if binding is None:
            raise Refused(
                "Votre compte n'est rattaché à aucun professionnel de l'annuaire : le robot ne peut pas "
                "agir pour vous. Contactez l'administrateur régional."
            )
        if not binding.active:
            raise Refused(
                "Vous n'êtes plus inscrit comme actif dans l'annuaire national (RPPS/ROR) : le robot ne "
                "peut pas agir pour vous. Contactez votre ordre ou l'administrateur régional."
            )

    # One flat, exhaustive match over the command types: each case is one call, so the branch count
    # measures the number of commands, not complexity.
    async def _dispatch(self, m: Incoming, command: c.Command) -> Reply:  # noqa: C901, PLR0912
        match command:
            case c.Help():
                return help_reply()
            case c.PatientSearch(query=query):
                return await self._patient_search(m, query)
            case c.PatientLink(patient_ref=ref):
                return await self._patient_link(m, ref)
            case c.PatientShow():
                return await self._patient_show(m)
            case c.PatientRoomCreate(patient_ref=ref):
                return await self._patient_room_create(m, ref)
            case c.TaskCreate():
                return await self._task_create(m, command)
            case c.TaskList(mine=mine):
                return await self._task_list(m, mine=mine)
            case c.TaskDone(ref=ref):
                return await self._task_done(m, ref)
            case c.CircleShow():
                return await self._circle_show(m)
            case c.CircleAdd(user_id=user_id, role=role):
                return await self._circle_add(m, user_id, role)
            case c.CircleRemove(user_id=user_id):
                return await self._circle_remove(m, user_id)
            case c.RequestCreate():
                return await self._request_create(m, command)
            case c.RequestList():
                return await self._request_list(m)
            case c.DacRoomSet(dac=dac, clear=clear):
                return await self._dac_room(m, dac, clear=clear)
            case c.SynthesisShow():
                return await self._synthesis(m)
            case c.SynthesisEdit(text=text):
                return await self._synthesis_edit(m, text)
            case c.PlanShow(pdf=pdf):
                return await (self._plan_pdf(m) if pdf else self._plan(m))
            case c.EvaluationScores():
                return await self._scores(m)
            case c.SlotSearch() | c.SlotTake() | c.AgendaDay():
                return await self._agenda.handle(m, command)
        raise AssertionError(command)  # pragma: no cover (exhaustive match)

    # --- room context ----------------------------------------------------------------------------
    async def _room_patient(self, m: Incoming) -> uuid.UUID:
        room = await self._service.room(sender=m.sender, room_id=m.room_id)
        if room is None or room.kind != "patient" or room.patient_id is None:
            what = "à un thème, pas à un dossier patient" if room is not None else "à aucun dossier patient"
            raise Refused(
                f"Ce salon est lié {what} : liez-le d'abord avec « !patient lier <identifiant du dossier> »."
            )
        return room.patient_id

    async def _room_theme(self, m: Incoming) -> tuple[uuid.UUID, str] | None:
        """The theme of a thematic room (its id and name), or None for any other room."""
        room = await self._service.room(sender=m.sender, room_id=m.room_id)
        if room is None or room.kind != "theme" or not room.theme:
            return None
        try:
            return uuid.UUID(str(room.theme.get("id"))), str(room.theme.get("name", ""))
        except ValueError:
            return None

    async def _national_id(self, sender: UserId, user_id: UserId) -> str:
        binding = await self._service.binding(user_id)
        if binding is None:
            raise Refused(f"{user_id} n'est rattaché à aucun professionnel de l'annuaire.")
        return binding.national_id

    # --- patients --------------------------------------------------------------------------------
    async def _patient_search(self, m: Incoming, query: str) -> Reply:
        found = await self._service.search_patients(sender=m.sender, q=query)
        if not found:
            return _say(
                f"Aucun patient ne correspond à « {query} ». Vérifiez l'orthographe du nom de naissance."
            )
        out = _Out.new().title(f"{len(found)} patient(s) pour « {query} » :")
        out.items(
            [
                f"{patient_label(p)} — dossier {p.id}"
                + ("" if p.is_member else " (vous n'êtes pas dans son cercle)")
                for p in found
            ]
        )
        return out.line(
            "Pour lier ce salon à un dossier : « !patient lier <identifiant du dossier> »."
        ).reply()

    async def _patient_link(self, m: Incoming, ref: str) -> Reply:
        try:
            patient_id = uuid.UUID(ref)
        except ValueError:
            raise Refused(
                f"« {ref} » n'est pas un identifiant de dossier : copiez celui que donne « !patient <nom> »."
            ) from None
        patient = await self._service.patient(sender=m.sender, patient_id=patient_id)
        await self._service.link_room(
            sender=m.sender, patient_id=patient_id, room_id=m.room_id, event_id=m.event_id
        )
        return (
            _Out.new()
            .line(f"Ce salon est maintenant lié au dossier de {patient_label(patient)}.")
            .line("« !patient » affiche son en-tête, « !taches » ses tâches, « !synthese » sa synthèse.")
            .reply()
        )

    async def _patient_room_create(self, m: Incoming, ref: str | None) -> Reply:
        if ref is None:
            patient_id = await self._room_patient(m)
        else:
            try:
                patient_id = uuid.UUID(ref)
            except ValueError:
                raise Refused(
                    f"« {ref} » n'est pas un identifiant de dossier : "
                    "copiez celui que donne « !patient <nom> »."
                ) from None
        await self._service.request_room(sender=m.sender, patient_id=patient_id, event_id=m.event_id)
        return _say(
            "Salon du patient demandé : le robot le crée (chiffré, sur invitation, nommé par un code "
            "sans identité) et y invite les membres habilités du cercle de soins dans quelques secondes."
        )

    async def _patient_show(self, m: Incoming) -> Reply:
        patient = await self._service.patient(sender=m.sender, patient_id=await self._room_patient(m))
        return _header(patient).reply()

    # --- tasks -----------------------------------------------------------------------------------
    async def _task_create(self, m: Incoming, command: c.TaskCreate) -> Reply:
        theme = await self._room_theme(m)
        # In a thematic room the task is about the theme, not a patient (SERVICE_NEEDS 6: theme_id).
        patient_id = None if theme else await self._room_patient(m)
        national_ids = [await self._national_id(m.sender, u) for u in command.assignees]
        task = await self._service.create_task(
            sender=m.sender,
            event_id=m.event_id,
            title=command.title,
            patient_id=patient_id,
            assignee_national_ids=national_ids,
            due=command.due,
            theme_id=theme[0] if theme else None,
        )
        about = f" (thème « {theme[1]} »)" if theme else ""
        return _say(f"Tâche n° {task.short_ref} créée{about} : {task_line(task).split(' : ', 1)[1]}")

    async def _task_list(self, m: Incoming, *, mine: bool) -> Reply:
        if mine:
            tasks = await self._service.tasks(sender=m.sender, mine=True)
            heading = "Vos tâches ouvertes"
        elif (theme := await self._room_theme(m)) is not None:
            tasks = await self._service.tasks(sender=m.sender, theme_id=theme[0])
            heading = f"Tâches ouvertes du thème « {theme[1]} »"
        else:
            tasks = await self._service.tasks(sender=m.sender, patient_id=await self._room_patient(m))
            heading = "Tâches ouvertes du patient"
        if not tasks:
            return _say(f"{heading} : aucune.")
        return _Out.new().title(f"{heading} ({len(tasks)}) :").items([task_line(t) for t in tasks]).reply()

    async def _task_done(self, m: Incoming, ref: str) -> Reply:
        room = await self._service.room(sender=m.sender, room_id=m.room_id)
        patient_id = room.patient_id if room is not None else None
        theme = await self._room_theme(m)
        if theme is not None:  # the theme's numbers first: « !fait 2 » is the theme's task n° 2
            candidates = await self._service.tasks(sender=m.sender, theme_id=theme[0])
        else:
            candidates = await self._service.tasks(sender=m.sender, patient_id=patient_id)
        if patient_id is not None:
            candidates += await self._service.tasks(sender=m.sender, mine=True)
        ref_folded = ref.lower()
        matches = {t.id: t for t in candidates if t.short_ref == ref_folded or str(t.id) == ref_folded}
        if not matches:
            raise Refused(f"Aucune tâche ouverte n° {ref} ici : « !taches » donne les numéros.")
        task = next(iter(matches.values()))
        closed = await self._service.close_task(sender=m.sender, event_id=m.event_id, task=task)
        return _say(f"Tâche n° {closed.short_ref} terminée : {closed.title}.")

    # --- circle ----------------------------------------------------------------------------------
    async def _circle_show(self, m: Incoming) -> Reply:
        members = await self._service.circle(sender=m.sender, patient_id=await self._room_patient(m))
        return (
            _Out.new()
            .title(f"Cercle de soins ({len(members)}) :")
            .items([member_line(x) for x in members])
            .reply()
        )

    async def _circle_add(self, m: Incoming, user_id: UserId, role: str | None) -> Reply:
        patient_id = await self._room_patient(m)
        national_id = await self._national_id(m.sender, user_id)
        member = await self._service.add_member(
            sender=m.sender,
            event_id=m.event_id,
            patient_id=patient_id,
            national_id=national_id,
            role=role or "professionnel de santé",
        )
        return _say(
            f"{member.display_name} ({user_id}) ajouté(e) au cercle de soins "
            f"comme {member.role}, habilité(e)."
        )

    async def _circle_remove(self, m: Incoming, user_id: UserId) -> Reply:
        patient_id = await self._room_patient(m)
        national_id = await self._national_id(m.sender, user_id)
        members = await self._service.circle(sender=m.sender, patient_id=patient_id)
        member = next((x for x in members if x.national_id == national_id), None)
        if member is None:
            raise Refused(f"{user_id} n'est pas dans le cercle de soins de ce patient.")
        await self._service.remove_member(
            sender=m.sender, event_id=m.event_id, patient_id=patient_id, member_id=member.id
        )
        return _say(f"{member.display_name} ({user_id}) retiré(e) du cercle de soins.")

    # --- DAC requests ----------------------------------------------------------------------------
    async def _dac_room(self, m: Incoming, dac: str | None, *, clear: bool) -> Reply:
        """``!dac salon``: this room becomes the DAC's own (the service checks the sender coordinates
        it and that the room is not a patient's or a theme's)."""
        if dac is None:
            mine = [
                s
                for s in await self._service.my_structures(sender=m.sender)
                if (await self._service.structure(sender=m.sender, structure_id=s)).is_dac
            ]
            if not mine:
                raise Refused(
                    "Vous ne coordonnez aucun DAC selon l'annuaire : seuls ses coordinateurs choisissent "
                    "le salon d'un DAC."
                )
            if len(mine) > 1:
                raise Refused(
                    f"Vous coordonnez plusieurs DAC ({', '.join(mine)}) : précisez lequel, par exemple "
                    f"« !dac salon {mine[0]} »."
                )
            dac = mine[0]
        room = await self._service.set_dac_room(
            sender=m.sender, structure_id=dac, room_id=None if clear else m.room_id
        )
        name = room.dac_name or room.structure_id
        if clear:
            return _say(
                f"« {name} » n'a plus de salon : chaque coordinateur reçoit les nouvelles demandes en "
                "message direct du robot."
            )
        return _say(
            f"Ce salon est désormais celui de « {name} » : les nouvelles demandes y seront annoncées, en "
            "mentionnant ses coordinateurs (ceux qui ne sont pas dans ce salon les reçoivent en message "
            "direct). Gardez-le chiffré et réservé aux coordinateurs ; « !dac salon retirer » pour revenir "
            "aux messages directs."
        )

    async def _request_create(self, m: Incoming, command: c.RequestCreate) -> Reply:
        patient_id = await self._room_patient(m)
        dac = command.dac
        if dac.startswith(_STRUCTURE_ID_PREFIXES):
            structure_id = dac
        else:
            found = [s for s in await self._service.find_dacs(sender=m.sender, text=dac) if s.is_dac]
            if not found:
                raise Refused(
                    f"Aucun DAC ne correspond à « {dac} » : donnez son nom ou son identifiant (finess:…)."
                )
            if len(found) > 1:
                names = ", ".join(f"{s.name} ({s.structure_id})" for s in found[:5])
                raise Refused(f"Plusieurs DAC correspondent à « {dac} » : {names}. Donnez son identifiant.")
            structure_id = found[0].structure_id
        request = await self._service.create_and_send_request(
            sender=m.sender,
            event_id=m.event_id,
            patient_id=patient_id,
            dac_structure_id=structure_id,
            reason=command.reason,
            urgent=command.urgent,
        )
        return _say(f"Demande envoyée au DAC — {request_line(request)}.")

    async def _request_list(self, m: Incoming) -> Reply:
        requests = await self._service.requests(sender=m.sender, patient_id=await self._room_patient(m))
        if not requests:
            return _say("Aucune demande au DAC pour ce patient.")
        return (
            _Out.new()
            .title(f"Demandes au DAC ({len(requests)}) :")
            .items([request_line(r) for r in requests])
            .reply()
        )

    # --- synthesis -------------------------------------------------------------------------------
    async def _synthesis(self, m: Incoming) -> Reply:
        patient_id = await self._room_patient(m)
        patient = await self._service.patient(sender=m.sender, patient_id=patient_id)
        members = await self._service.circle(sender=m.sender, patient_id=patient_id)
        tasks = await self._service.tasks(sender=m.sender, patient_id=patient_id)
        requests = await self._service.requests(sender=m.sender, patient_id=patient_id)
        documents = await self._service.documents(sender=m.sender, patient_id=patient_id)
        synthesis = await self._service.synthesis(sender=m.sender, patient_id=patient_id)
        out = _header(patient)
        out.title(f"Cercle de soins ({len(members)}) :").items([member_line(x) for x in members])
        out.title(f"Tâches ouvertes ({len(tasks)}) :").items([task_line(t) for t in tasks] or ["aucune"])
        out.title(f"Demandes au DAC ({len(requests)}) :").items(
            [request_line(r) for r in requests] or ["aucune"]
        )
        out.title("Documents récents :").items(
            [
                f"{d.title} ({d.category_label})" + (f", {d.created_at:%d/%m/%Y}" if d.created_at else "")
                for d in documents
            ]
            or ["aucun"]
        )
        timeline = await self._service.timeline(sender=m.sender, patient_id=patient_id)
        if timeline is not None:
            out.title("Évolution récente :").items([timeline_line(i) for i in timeline] or ["rien de noté"])
        out.title("Synthèse :")
        if synthesis is None:
            out.line("(le service ne gère pas encore le texte de synthèse)")
        elif synthesis.text:
            out.line(synthesis.text)
            author = f", par {synthesis.author_display_name}" if synthesis.author_display_name else ""
            out.line(f"(version {synthesis.version}{author})")
        else:
            out.line("(aucun texte : « !synthese modifier <texte> » pour l'écrire)")
        await self._marked(m.room_id, out)
        reply = out.reply()
        pdf = text_pdf(f"Synthèse - {patient_label(patient)}", reply.text.splitlines())
        # The file name says nothing of the patient: it shows in notifications and file lists.
        return Reply(reply.text, reply.html, Attachment("synthese.pdf", pdf, "application/pdf"))

    async def _marked(self, room_id: RoomId, out: _Out) -> None:
        marks = self._marks.for_room(room_id)
        for kind, heading in ((IMPORTANT, "Messages importants ❗"), ("question", "Questions ❓")):
            lines: list[tuple[str, str]] = []
            for mark in (x for x in marks if x.kind == kind):
                quoted = await self._gateway.fetch_message(room_id, mark.target)
                link = f"https://matrix.to/#/{room_id}/{mark.target}"
                if quoted is None:
                    lines.append(("(message illisible par le robot)", link))
                else:
                    lines.append((f"{quoted.sender} : « {quoted.text} »", link))
            if lines:
                out.title(f"{heading} ({len(lines)}) :")
                for plain, link in lines:
                    out.text.append(f"• {plain} — {link}")
                out.html.append(
                    "<ul>"
                    + "".join(
                        f'<li>{html.escape(p)} — <a href="{html.escape(u)}">voir</a></li>' for p, u in lines
                    )
                    + "</ul>"
                )

    async def _synthesis_edit(self, m: Incoming, text: str) -> Reply:
        patient_id = await self._room_patient(m)
        current = await self._service.synthesis(sender=m.sender, patient_id=patient_id)
        if current is None:
            raise Refused(
                "Le service de coordination ne gère pas encore le texte de synthèse : "
                "réessayez après sa mise à jour."
            )
        saved = await self._service.update_synthesis(
            sender=m.sender, event_id=m.event_id, patient_id=patient_id, text=text, version=current.version
        )
        return _say(f"Synthèse enregistrée (version {saved.version}).")

    # --- plan and evaluations (issue 14) ---------------------------------------------------------
    async def _plan(self, m: Incoming) -> Reply:
        plan = await self._service.plan(sender=m.sender, patient_id=await self._room_patient(m))
        if plan.version == 0:
            return _say("Ce patient n'a pas encore de plan personnalisé de coordination (PPCS).")
        actions = [a for a in plan.actions if a.status in OPEN_PLAN_ACTIONS]
        review = f", révision le {plan.next_review_date:%d/%m/%Y}" if plan.next_review_date else ""
        return (
            _Out.new()
            .title(
                f"Plan personnalisé (version {plan.version}{review}) — actions ouvertes ({len(actions)}) :"
            )
            .items([plan_action_line(a) for a in actions] or ["aucune"])
            .reply()
        )

    async def _plan_pdf(self, m: Incoming) -> Reply:
        data = await self._service.plan_pdf(sender=m.sender, patient_id=await self._room_patient(m))
        reply = _say("Plan personnalisé de coordination en santé (PPCS) en pièce jointe.")
        # The file name says nothing of the patient: it shows in notifications and file lists.
        return Reply(reply.text, reply.html, Attachment("ppcs.pdf", data, "application/pdf"))

    async def _scores(self, m: Incoming) -> Reply:
        points = await self._service.scores(sender=m.sender, patient_id=await self._room_patient(m))
        if not points:
            return _say("Aucune évaluation signée pour ce patient.")
        latest: dict[str, ScorePoint] = {}
        for point in points:  # oldest first: the last one of each form wins
            latest[point.form_id] = point
        ordered = sorted(latest.values(), key=lambda p: p.signed_at, reverse=True)
        return _Out.new().title("Dernières évaluations :").items([score_line(p) for p in ordered]).reply()


OPEN_PLAN_ACTIONS = ("a_faire", "en_cours")


def plan_action_line(a: PlanAction) -> str:
    parts = [a.title]
    if a.responsible_label:
        parts.append(a.responsible_label)
    if a.deadline:
        parts.append(f"avant le {a.deadline:%d/%m/%Y}")
    parts.append(a.status_label or a.status)
    if a.task_number is not None:
        parts.append(f"tâche n° {a.task_number}")
    if a.appointment_start is not None:
        status = f" ({a.appointment_status_label})" if a.appointment_status_label else ""
        parts.append(f"rendez-vous {when(a.appointment_start)}{status}")
    return " — ".join(parts)


def score_line(p: ScorePoint) -> str:
    change = ""
    if p.change:
        change = f" (évolution : {p.change:+g})"
    return (
        f"{p.form_title or p.form_id} : {p.score_label or f'{p.score:g}'}{change}, le {p.signed_at:%d/%m/%Y}"
    )


def timeline_line(i: TimelineItem) -> str:
    detail = f" ({i.detail})" if i.detail else ""
    return f"{i.at:%d/%m/%Y} — {i.title}{detail}"


def _header(p: Patient) -> _Out:
    out = _Out.new().title(f"Patient : {patient_label(p)}")
    out.line(f"Statut : {_status(p)}")
    if p.identity_status != "qualifiée":
        forced = f" ({', '.join(p.identity_status_forced_by)})" if p.identity_status_forced_by else ""
        out.line(f"Identité {p.identity_status}{forced} : à qualifier avant tout échange de données.")
    return out


def help_reply() -> Reply:
    out = _Out.new().title("Commandes du robot de coordination :")
    out.items([f"{c.SIGIL}{s.syntax} — {s.description}. Exemple : {s.example}" for s in c.COMMANDS])
    return out.line("Le robot agit en votre nom : le service vérifie vos droits sur chaque dossier.").reply()


__all__ = ["EventId", "Handlers", "Refused", "help_reply"]
