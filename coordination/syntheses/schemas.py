"""Bodies of the synthesis API."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from coordination.ids import NationalId, PatientId
from coordination.text import Paragraph20000


class SynthesisIn(BaseModel):
    """The new text, and the version it replaces (0 when the dossier has none yet)."""

    model_config = ConfigDict(extra="forbid")

    text: Paragraph20000 = Field(description="Le texte de synthèse (20 000 caractères au plus)")
    version: int = Field(ge=0, description="La version lue avant modification (0 s'il n'y en a pas)")


class SynthesisOut(BaseModel):
    """The current synthesis: an empty text at version 0 when nobody wrote one yet."""

    patient_id: PatientId
    text: str
    version: int
    author_national_id: NationalId | None
    author_display_name: str | None
    created_at: datetime | None
