"""What the directory shows: person and structure cards, and a Matrix account's binding."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class Site(BaseModel):
    """Where a professional exercises (one RPPS activity line or one FHIR PractitionerRole)."""

    model_config = ConfigDict(frozen=True)

    structure_id: str | None = Field(description="Directory key of the structure, e.g. finess:060000001")
    name: str | None = Field(description="Site name (raison sociale / enseigne)")
    address: str | None = None
    postal_code: str | None = None
    city: str | None = None
    department: str | None = Field(default=None, description="Department code, e.g. 06")
    phone: str | None = None
    email: str | None = None
    specialty: str | None = Field(default=None, description="Savoir-faire, e.g. Médecine générale")
    mode: str | None = Field(default=None, description="Mode d'exercice: Libéral, Salarié...")
    role: str | None = Field(default=None, description="Function, e.g. coordinatrice de parcours")
    profession_code: str | None = None
    profession: str | None = None


class PersonCard(BaseModel):
    """A professional of the national directory, with every site they exercise at."""

    model_config = ConfigDict(frozen=True)

    national_id: str = Field(description="idNatPS: 8 + RPPS or 0 + ADELI")
    family_name: str
    given_name: str
    display_name: str = Field(description="e.g. Dr Jeanne MARTIN")
    civility: str | None = None
    profession_code: str | None = Field(description="TRE_G15 code, e.g. 10 (médecin)")
    profession: str | None
    active: bool = Field(description="False once delisted from the national directory")
    deactivated_at: datetime | None
    source: str = Field(description="Import that owns this entry: rpps or fhir")
    sites: list[Site]


class StructureCard(BaseModel):
    """A structure: legal entity, site, or service; a DAC has ``is_dac``."""

    model_config = ConfigDict(frozen=True)

    structure_id: str = Field(description="finess:<n>, siret:<n>, rpps-struct:<id> or fhir:<ref>")
    name: str
    kind: str | None
    is_dac: bool
    finess: str | None
    siret: str | None
    parent_id: str | None
    address: str | None
    postal_code: str | None
    city: str | None
    department: str | None
    phone: str | None
    email: str | None
    active: bool
    deactivated_at: datetime | None
    source: str


class BindingStatus(BaseModel):
    """The directory identity bound to a Matrix account (the Synapse module's question)."""

    model_config = ConfigDict(frozen=True)

    user_id: str = Field(description="Matrix ID, e.g. @jmartin:azurezo.local")
    national_id: str
    active: bool
    display_name: str


class SsoAccountIn(BaseModel):
    """The Synapse module's question at a first single sign-on: the national id the identity provider
    vouches for (Pro Santé Connect's ``SubjectNameID``, or the regional portal's RPPS claim)."""

    model_config = ConfigDict(extra="forbid")

    national_id: str = Field(min_length=1, max_length=64)
    reserved_localparts: list[str] = Field(default_factory=list, max_length=50)


class SsoAccount(BaseModel):
    """The account single sign-on signs the professional in to (created and bound if needed)."""

    model_config = ConfigDict(frozen=True)

    localpart: str
    user_id: str
    display_name: str
    existing: bool = Field(description="True when the professional already had a bound account")
