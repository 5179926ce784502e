"""Input and read models of the sign-up domain (forms and the administrators' list)."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from coordination.contact import Email
from coordination.text import Line100, Line120
from coordination.vocab import SignupStatus


class SignupIn(BaseModel):
    """What a professional types on ``/inscription``."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    family_name: Line100 = Field(description="Nom de famille, comme sur la carte professionnelle")
    given_name: Line100 = Field(description="Prénom")
    national_id: Line120 = Field(description="Numéro RPPS (11 chiffres) ou ADELI (9 caractères)")
    email: Email = Field(description="Adresse e-mail professionnelle (l'activation y est envoyée)")
    structure_id: Line120 | None = Field(default=None, description="Structure d'exercice (annuaire)")


class SignupOut(BaseModel):
    """A request as administrators see it (identity from the directory, not as typed)."""

    model_config = ConfigDict(frozen=True)

    id: uuid.UUID
    national_id: str
    display_name: str
    profession: str | None
    email: str
    structure_id: str | None
    structure_name: str | None
    status: SignupStatus
    created_at: datetime
    decided_at: datetime | None
    decided_by: str | None
    refusal_reason: str | None
    user_id: str | None = Field(description="The Matrix account reserved at approval")


class Decision(BaseModel):
    """What an approval produced: the request, and the activation link when no e-mail could carry it."""

    model_config = ConfigDict(frozen=True)

    request: SignupOut
    emailed: bool
    activation_url: str | None = Field(
        default=None, description="Shown to the administrator only when SMTP is not configured"
    )


class Activated(BaseModel):
    model_config = ConfigDict(frozen=True)

    user_id: str
    homeserver_url: str
