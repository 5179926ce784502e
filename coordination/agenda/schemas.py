"""Request and answer bodies of the agenda API (the answers are also the service's read models)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, computed_field

from coordination import text
from coordination.ids import (
    AgendaId,
    AppointmentId,
    AvailabilityId,
    EventTypeId,
    NationalId,
    PatientId,
    StructureId,
    UnavailabilityId,
    UserId,
)
from coordination.vocab import AgendaAudience, AgendaOwnerKind, AppointmentStatus, EventCategory

NationalIdIn = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[0-9A-Za-z]{2,20}$")]
StructureIdIn = Annotated[
    str, StringConstraints(strip_whitespace=True, pattern=r"^[a-z]{2,10}:[0-9A-Za-z.\-_]{1,68}$")
]
LocalDateTime = Annotated[
    str,
    StringConstraints(strip_whitespace=True, pattern=r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}$"),
]
"""A Europe/Paris wall time, ``AAAA-MM-JJTHH:MM``."""
Colour = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^#[0-9a-fA-F]{6}$")]
Note = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=2000, pattern=text.PARAGRAPH_PATTERN),
    AfterValidator(text.nfc),
]
RRule = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=4, max_length=500, pattern=r"^[A-Za-z0-9=;:,+\-]+$"),
]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


# --- agendas -------------------------------------------------------------------------------------


class AgendaCreate(_In):
    name: text.Line200 = Field(examples=["Consultations Dr Martin"])
    owner_kind: AgendaOwnerKind = AgendaOwnerKind.PROFESSIONNEL
    structure_id: StructureIdIn | None = Field(
        default=None,
        description="La structure de l'agenda (obligatoire pour une structure ou une ressource ; pour un "
        "professionnel, l'une de ses structures, qui définit « mes structures »)",
    )
    visibility: AgendaAudience = Field(
        default=AgendaAudience.ANNUAIRE, description="Qui voit les créneaux libres et occupés"
    )
    booking: AgendaAudience = Field(default=AgendaAudience.ANNUAIRE, description="Qui peut réserver")
    requires_confirmation: bool = Field(
        default=False, description="Les réservations sont des demandes que le gestionnaire confirme"
    )
    delegate_national_ids: list[NationalIdIn] = Field(default_factory=list, max_length=50)


class AgendaUpdate(_In):
    """A partial change; ``version`` is the one you read (else 409)."""

    version: int = Field(ge=1, le=2**31 - 1)
    name: text.Line200 | None = None
    visibility: AgendaAudience | None = None
    booking: AgendaAudience | None = None
    requires_confirmation: bool | None = None
    delegate_national_ids: list[NationalIdIn] | None = Field(default=None, max_length=50)


class EventTypeOut(_Out):
    id: EventTypeId
    agenda_id: AgendaId
    name: str
    category: EventCategory
    duration_minutes: int
    colour: str
    bookable: bool

    @computed_field  # type: ignore[prop-decorator]
    @property
    def category_label(self) -> str:
        return self.category.label


class AgendaOut(_Out):
    id: AgendaId
    version: int
    name: str
    owner_kind: AgendaOwnerKind
    owner_national_id: NationalId | None
    structure_id: StructureId | None
    owner_label: str = Field(description="Le professionnel ou la structure, pour l'affichage")
    visibility: AgendaAudience
    booking: AgendaAudience
    requires_confirmation: bool
    profession_code: str | None
    specialty: str | None
    city: str | None
    postal_code: str | None
    department: str | None
    delegate_national_ids: list[NationalId]
    event_types: list[EventTypeOut]
    can_manage: bool
    can_book: bool
    ics_enabled: bool


class EventTypeCreate(_In):
    name: text.Line100 = Field(examples=["Consultation"])
    category: EventCategory
    duration_minutes: int = Field(ge=5, le=600)
    colour: Colour = "#3366cc"
    bookable: bool = True


# --- availability --------------------------------------------------------------------------------


class AvailabilityCreate(_In):
    start_local: LocalDateTime = Field(
        description="Premier début, heure de Paris (AAAA-MM-JJTHH:MM)", examples=["2026-03-02T09:00"]
    )
    duration_minutes: int = Field(ge=5, le=24 * 60)
    rrule: RRule | None = Field(
        default=None,
        description="Règle RFC 5545 sans DTSTART : FREQ=DAILY, WEEKLY ou MONTHLY, avec INTERVAL, BYDAY, "
        "BYMONTH, UNTIL, COUNT (« FREQ=WEEKLY;BYDAY=MO,TH;UNTIL=20260630T235959 », "
        "« FREQ=WEEKLY;INTERVAL=2 », « FREQ=MONTHLY;BYDAY=1MO ») ; absent : une seule fois",
        examples=["FREQ=WEEKLY;BYDAY=MO,TU,TH"],
    )
    exdates: list[LocalDateTime] = Field(
        default_factory=list, max_length=500, description="Débuts locaux annulés (jours fériés...)"
    )
    event_type_id: EventTypeId | None = Field(
        default=None, description="Réservée à ce type ; absent : tous les types réservables"
    )
    label: Annotated[str, StringConstraints(max_length=100, pattern=text.LINE_PATTERN)] = ""


class AvailabilityOut(_Out):
    id: AvailabilityId
    agenda_id: AgendaId
    event_type_id: EventTypeId | None
    start_local: str
    duration_minutes: int
    rrule: str | None
    exdates: list[str]
    label: str


class AvailabilityExceptions(_In):
    """Occurrences to cancel (EXDATE), by their local start."""

    exdates: list[LocalDateTime] = Field(min_length=1, max_length=500)


class UnavailabilityCreate(_In):
    start: datetime = Field(description="Début (avec fuseau : 2026-08-01T00:00:00+02:00)")
    end: datetime
    reason: Annotated[str, StringConstraints(max_length=200, pattern=text.LINE_PATTERN)] = ""


class UnavailabilityOut(_Out):
    id: UnavailabilityId
    agenda_id: AgendaId
    start: datetime
    end: datetime
    reason: str


# --- slots and planning --------------------------------------------------------------------------


class SlotOut(_Out):
    """A free slot (UTC, with the Paris wall time for display)."""

    agenda_id: AgendaId
    agenda_name: str
    owner_label: str
    city: str | None
    department: str | None
    event_type_id: EventTypeId
    event_type_name: str
    category: EventCategory
    start: datetime
    end: datetime
    start_local: str = Field(description="Heure de Paris, ISO 8601 avec décalage")
    distance_km: float | None = Field(
        default=None,
        description="Distance à vol d'oiseau (km, au dixième) de la commune de la recherche (`near`)",
    )


class BusyOut(_Out):
    """An occupied period; details only for those who may read the appointment."""

    start: datetime
    end: datetime
    kind: Literal["rendez_vous", "indisponibilite"]
    appointment_id: AppointmentId | None = None
    status: AppointmentStatus | None = None
    event_type_name: str | None = None


class AgendaPlanningOut(_Out):
    agenda: AgendaOut
    openings: list[tuple[datetime, datetime]] = Field(description="Plages d'ouverture (UTC)")
    busy: list[BusyOut]


class PlanningOut(_Out):
    start: datetime
    end: datetime
    agendas: list[AgendaPlanningOut]


# --- appointments --------------------------------------------------------------------------------


class AppointmentCreate(_In):
    agenda_id: AgendaId
    event_type_id: EventTypeId
    start: datetime = Field(description="Début du créneau (avec fuseau)")
    patient_id: PatientId | None = Field(
        default=None, description="Le patient, si vous êtes membre habilité de son cercle de soins"
    )
    participant_national_ids: list[NationalIdIn] = Field(default_factory=list, max_length=20)
    participant_structure_ids: list[StructureIdIn] = Field(default_factory=list, max_length=20)
    note: Note = ""
    request: bool = Field(
        default=False, description="Une demande que le gestionnaire de l'agenda confirme ou refuse"
    )


class AppointmentUpdate(_In):
    """Change the status (confirm, decline, cancel, done, no-show) or the note."""

    version: int = Field(ge=1, le=2**31 - 1)
    status: AppointmentStatus | None = None
    note: Note | None = None


class AppointmentOut(_Out):
    id: AppointmentId
    version: int
    agenda_id: AgendaId
    agenda_name: str
    event_type_id: EventTypeId
    event_type_name: str
    category: EventCategory
    start: datetime
    end: datetime
    start_local: str
    status: AppointmentStatus
    patient_id: PatientId | None
    note: str
    participant_national_ids: list[NationalId]
    participant_structure_ids: list[StructureId]
    booked_by_national_id: NationalId
    booked_by_user_id: UserId
    created_at: datetime

    @computed_field  # type: ignore[prop-decorator]
    @property
    def status_label(self) -> str:
        return self.status.label


class SlotTakenOut(BaseModel):
    """409: the slot is no longer free; the next free ones of the same agenda and type."""

    errcode: str
    error: str
    next_slots: list[SlotOut]


class IcsTokenOut(_Out):
    url: str = Field(description="Adresse secrète du flux ICS (montrée une seule fois)")
