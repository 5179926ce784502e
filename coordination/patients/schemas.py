"""Request and answer bodies of the patient API.

Optimistic concurrency (the convention for every patient-scoped update): every answer that shows a
patient carries its ``version``; every update body carries the ``version`` the client read (a
required body field, not an ``If-Match`` header). A stale version answers 409 ``AZ_STALE_VERSION``
and nothing is changed: reload, re-apply, resend.
"""

from __future__ import annotations

import datetime as dt
import re
from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

from coordination import text
from coordination.contact import Email, Phone
from coordination.ids import PatientId
from coordination.patients.rules import BIRTH_PLACE_PATTERN
from coordination.schemas import ErrorOut
from coordination.text import Line500, Paragraph500
from coordination.vocab import ConsentMode, DischargeReason, IdentityDocumentType, IdentityStatus

# --- identity ------------------------------------------------------------------------------------

# Latin letters (accents allowed), spaces, hyphens and apostrophes: what a civil-status name holds.
# NFC first (issue 6 item 5): macOS input and copy-paste send "E\u0301LODIE", which is "ÉLODIE".
_NAME = r"^[A-Za-zÀ-ÖØ-öø-ÿŒœŸ][A-Za-zÀ-ÖØ-öø-ÿŒœŸ' ’\-]*$"
Name = Annotated[
    str,
    BeforeValidator(text.nfc),
    StringConstraints(strip_whitespace=True, min_length=1, max_length=100, pattern=_NAME),
]


def _birth_place(value: object) -> object:
    if not isinstance(value, str):
        return value
    code = value.strip().upper()
    if not re.match(BIRTH_PLACE_PATTERN, code):
        raise ValueError(
            "code INSEE du lieu de naissance attendu : 5 caractères (2A ou 2B pour la Corse, "
            "99 suivi du code pays pour une naissance à l'étranger)"
        )
    return code


BirthPlaceCode = Annotated[str, BeforeValidator(_birth_place)]
InsNumber = Annotated[str, StringConstraints(strip_whitespace=True, max_length=30, pattern=text.LINE_PATTERN)]
Sex = Literal["F", "M", "I"]
PatientStatus = Literal["active", "sortie"]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ConsentIn(_In):
    """The patient's consent to sharing; the author is the caller, the time defaults to now."""

    given: bool
    mode: ConsentMode = Field(examples=[ConsentMode.ORAL])
    recorded_at: AwareDatetime | None = Field(default=None, description="Default: now")


class IdentityDocumentIn(_In):
    """An identity document seen by the caller (the check validates the identity)."""

    document_type: IdentityDocumentType
    checked_at: AwareDatetime | None = Field(default=None, description="Default: now")


class InsiRetrievalIn(_In):
    """The identity was retrieved from (or checked against) the national INSi service."""

    retrieved_at: AwareDatetime | None = Field(default=None, description="Default: now")


class IdentityAttributes(_In):
    """Identity-vigilance attributes; any of them keeps the identity provisoire."""

    homonyme: bool = False
    douteuse: bool = False
    fictive: bool = False


class PatientCreate(_In):
    """A new patient: the five strict traits, optional used names, contact and checks."""

    birth_name: Name = Field(examples=["MARTIN"])
    birth_first_names: list[Name] = Field(
        min_length=1,
        max_length=10,
        description="Birth first names in order; the first is the « premier prénom de naissance »",
        examples=[["Jeanne", "Marie"]],
    )
    birth_date: date
    sex: Sex
    birth_place_code: BirthPlaceCode = Field(
        description="INSEE code of the birthplace (Corsica 2A/2B; 99xxx abroad)", examples=["06088"]
    )
    used_name: Name | None = None
    used_first_name: Name | None = None
    address: Paragraph500 | None = None
    phone: Phone | None = None
    email: Email | None = None
    ins_number: InsNumber | None = Field(
        default=None, description="NIR or NIA: 13 characters + 2-digit key", examples=["269054958815780"]
    )
    consent: ConsentIn | None = None
    identity_document: IdentityDocumentIn | None = None
    insi: InsiRetrievalIn | None = None
    attributes: IdentityAttributes = Field(default_factory=IdentityAttributes)
    confirm_duplicate: bool = Field(
        default=False,
        description="Create even though likely duplicates were announced (409) for these traits",
    )


class PatientUpdate(_In):
    """A partial change. Fields left out are kept; ``null`` clears an optional field.

    Changing a strict trait withdraws the document check and the INSi retrieval (the identity must
    be checked again). ``version`` is the one you read (see the module docstring).
    """

    version: int = Field(ge=1, le=2**31 - 1)
    birth_name: Name | None = None
    birth_first_names: list[Name] | None = Field(default=None, min_length=1, max_length=10)
    birth_date: date | None = None
    sex: Sex | None = None
    birth_place_code: BirthPlaceCode | None = None
    used_name: Name | None = None
    used_first_name: Name | None = None
    address: Paragraph500 | None = None
    phone: Phone | None = None
    email: Email | None = None
    ins_number: InsNumber | None = None
    consent: ConsentIn | None = None
    identity_document: IdentityDocumentIn | None = None
    insi: InsiRetrievalIn | None = None
    attributes: IdentityAttributes | None = None


class DischargeIn(_In):
    """The patient leaves coordination ("sortie")."""

    version: int = Field(ge=1, le=2**31 - 1)
    reason: DischargeReason
    date: dt.date | None = Field(default=None, description="Default: today")
    note: Line500 | None = Field(default=None, description="Required when the reason is « autre »")


class ReactivateIn(_In):
    version: int = Field(ge=1, le=2**31 - 1)


# --- answers -------------------------------------------------------------------------------------


class ConsentOut(BaseModel):
    given: bool
    mode: ConsentMode
    recorded_by: str = Field(description="National id of the professional who recorded it")
    recorded_at: datetime


class IdentityDocumentOut(BaseModel):
    document_type: IdentityDocumentType
    checked_by: str
    checked_at: datetime


class InsiRetrievalOut(BaseModel):
    retrieved_by: str
    retrieved_at: datetime


class DischargeOut(BaseModel):
    reason: DischargeReason
    date: dt.date
    note: str | None = None


class PatientSummary(BaseModel):
    """The minimal identity: what anyone may see to tell whether a patient is already included."""

    id: PatientId
    birth_name: str
    first_birth_first_name: str
    used_name: str | None = None
    used_first_name: str | None = None
    birth_date: date
    sex: Sex
    identity_status: IdentityStatus
    status: PatientStatus
    is_member: bool = Field(description="Whether the caller is an authorised member of the circle")


class DuplicateCandidate(PatientSummary):
    match: Literal["identique", "homonyme", "meme_ins"] = Field(
        description="identique: same five strict traits; homonyme: same birth name, first first "
        "name and birth date; meme_ins: same INS number (never confirmable)"
    )


class DuplicateWarning(ErrorOut):
    """409 on creation: likely duplicates. Resend with ``confirm_duplicate: true`` if they differ."""

    candidates: list[DuplicateCandidate]


class PatientOut(BaseModel):
    """The full dossier (authorised members only)."""

    id: PatientId
    version: int
    birth_name: str
    birth_first_names: list[str]
    first_birth_first_name: str
    birth_date: date
    sex: Sex
    birth_place_code: str
    used_name: str | None = None
    used_first_name: str | None = None
    address: str | None = None
    phone: str | None = None
    email: str | None = None
    ins_number: str | None = None
    ins_kind: Literal["NIR", "NIA"] | None = None
    identity_status: IdentityStatus = Field(description="Computed by the service, never sent")
    identity_status_forced_by: list[Literal["homonyme", "douteuse", "fictive"]] = Field(
        description="Attributes that keep the identity provisoire (the badge to show)"
    )
    attributes: IdentityAttributes
    consent: ConsentOut | None = None
    identity_document: IdentityDocumentOut | None = None
    insi: InsiRetrievalOut | None = None
    status: PatientStatus
    discharge: DischargeOut | None = None
    created_at: datetime
    created_by: str
    updated_at: datetime
