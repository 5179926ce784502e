"""Read models of the DAC indicators (figures only: no patient, no professional is named)."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, Field

from coordination.ids import StructureId


class CountOut(BaseModel):
    """One category of a breakdown and how many fall in it."""

    code: str = Field(description="Stable code of the category (ASCII)", examples=["urgente"])
    label: str = Field(description="French label", examples=["Urgente"])
    count: int = Field(ge=0)


class DelayOut(BaseModel):
    """A median delay over the requests it could be measured on."""

    median_seconds: int | None = Field(description="Median in seconds; null when no request was measured")
    median_label: str = Field(description="The median for people (« 3 h 20 min »), « — » when none")
    measured: int = Field(ge=0, description="How many requests the median is computed on")


class DacOut(BaseModel):
    """A DAC the caller coordinates."""

    structure_id: StructureId
    name: str


class IndicatorsOut(BaseModel):
    """A DAC's activity over the days ``[period_from, period_to)`` in Europe/Paris.

    Requests count when they were **sent** to the DAC within the period (drafts never count); their
    outcome and delays are as of now. Delays: from sending to taking (``taken_at``) and from sending to
    the answer (``answered_at``), over the requests received in the period that have one. Patients
    included: distinct patients the DAC included by answers given in the period. Open tasks: a snapshot
    at ``generated_at`` (tasks ``a_faire`` or ``en_cours`` assigned to the DAC's structure, or about a
    patient whose care circle has the DAC as a habilitée structure member), by age since creation.
    Complex situations: a snapshot at ``generated_at`` too (patients flagged complex now whose care
    circle has the DAC as a habilitée structure member), by where their plan's review date stands
    (past, today or later, none); counts only, no patient named.
    """

    dac_structure_id: StructureId
    dac_name: str
    period_from: date = Field(description="First day of the period (Europe/Paris)")
    period_to: date = Field(description="Day after the last (excluded)")
    generated_at: datetime
    requests_received: int = Field(ge=0)
    by_profession: list[CountOut] = Field(description="Requests by the requester's profession (directory)")
    by_origin: list[CountOut] = Field(
        description="Requests by the requester's mode of exercise at the structure they named"
    )
    by_urgency: list[CountOut]
    by_outcome: list[CountOut] = Field(description="Decision, or where the request stands")
    take_delay: DelayOut
    answer_delay: DelayOut
    patients_included: int = Field(ge=0)
    open_tasks: int = Field(ge=0)
    open_tasks_by_age: list[CountOut]
    complex_situations: int = Field(ge=0, description="Situations complexes suivies par le DAC, à ce jour")
    complex_situations_by_review: list[CountOut] = Field(
        description="Les mêmes, selon la date de révision de leur plan personnalisé (PPCS)"
    )
