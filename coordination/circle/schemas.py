"""Request and answer bodies of the care-circle API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, StringConstraints, Tag, field_validator

from coordination.contact import Email, Phone
from coordination.directory.schemas import PersonCard, StructureCard
from coordination.ids import MemberId, PatientId
from coordination.text import Line60, Line200

MemberKind = Literal["professional", "structure", "relative"]

# Free text, but these are the roles the UI proposes (the list is open: a DAC may name its own).
SUGGESTED_ROLES = (
    "médecin traitant",
    "médecin spécialiste",
    "infirmier",
    "pharmacien",
    "masseur-kinésithérapeute",
    "travailleur social",
    "coordinateur DAC",
    "structure de soins",
    "aidant",
    "personne de confiance",
    "proche",
)

Role = Line60
NationalIdStr = Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^[0-9A-Za-z]{2,20}$")]
# A directory key: finess:<n>, siret:<n>, rpps-struct:<id>, fhir:<ref>...
StructureIdStr = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, max_length=80, pattern=r"^[a-z][a-z\-]{1,19}:[^\s\x00-\x1f]{1,78}$"
    ),
]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProfessionalMemberIn(_In):
    """A professional of the national directory, by national id (idNatPS)."""

    kind: Literal["professional"]
    national_id: NationalIdStr = Field(examples=["810001234567"])
    role: Role = Field(examples=["médecin traitant"])
    habilite: bool = Field(
        default=False,
        description="Authorised to read the dossier (effective only once bound to a Matrix account)",
    )


class StructureMemberIn(_In):
    """A structure of the directory: every professional working there gets access when habilité."""

    kind: Literal["structure"]
    structure_id: StructureIdStr = Field(examples=["finess:060780491"])
    role: Role = Field(examples=["coordinateur DAC"])
    habilite: bool = False


class RelativeMemberIn(_In):
    """A relative or caregiver typed by hand. Never authorised: a relative never reads the dossier."""

    kind: Literal["relative"]
    name: Line200
    relationship: Role = Field(examples=["fille", "conjoint"])
    phone: Phone | None = None
    email: Email | None = None
    role: Role = "aidant"
    habilite: Literal[False] = Field(
        default=False, description="Always false: a relative is never authorised"
    )

    @field_validator("habilite", mode="before")
    @classmethod
    def _never_habilite(cls, value: object) -> object:
        if value is True:
            raise ValueError(
                "un proche ou un aidant ne peut pas être habilité : seuls les professionnels "
                "et les structures de l'annuaire accèdent au dossier"
            )
        return value


def _member_kind(value: object) -> str | None:
    kind = value.get("kind") if isinstance(value, dict) else getattr(value, "kind", None)
    return kind if isinstance(kind, str) else None


MemberIn = Annotated[
    Annotated[ProfessionalMemberIn, Tag("professional")]
    | Annotated[StructureMemberIn, Tag("structure")]
    | Annotated[RelativeMemberIn, Tag("relative")],
    Discriminator(
        _member_kind,
        custom_error_type="value_error",
        custom_error_context={
            "error": "« kind » doit valoir « professional », « structure » ou « relative »"
        },
    ),
]


class MemberUpdate(_In):
    """Change a member's role or authorisation (``habilite`` only for professionals and structures)."""

    role: Role | None = None
    habilite: bool | None = None


class MemberOut(BaseModel):
    """A circle member as listed. ``has_access`` tells whether this member can read the dossier now."""

    id: MemberId
    patient_id: PatientId
    kind: MemberKind
    national_id: str | None = None
    structure_id: str | None = None
    display_name: str = Field(description="Directory name, structure name, or the relative's name")
    relationship: str | None = None
    phone: str | None = None
    email: str | None = None
    role: str
    habilite: bool
    has_access: bool = Field(
        description="habilité AND (structure, or professional active and bound to a Matrix account)"
    )
    user_id: str | None = Field(default=None, description="Matrix ID of a bound professional")
    added_at: datetime
    added_by: str


class MemberCard(MemberOut):
    """The member card: the member plus their directory details (none for a relative)."""

    person: PersonCard | None = None
    structure: StructureCard | None = None
