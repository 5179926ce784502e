"""Directory tables. Persons are keyed by national id, structures by a typed key (``finess:...``)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from coordination.db import Base, UTCDateTime, utcnow


def _bytewise(length: int) -> String:
    """Text compared and sorted byte by byte on PostgreSQL (collation ``"C"``), for the search keys and
    identifiers the directory indexes: they hold ASCII (search keys are ``[A-Z0-9 ]``), where that order
    is the database's own (``C.UTF-8``) or any locale's but for spaces and punctuation, and building
    their indexes no longer goes through the locale's comparison, which PostgreSQL cannot speed up
    (about a third of the index builds of a 2M-line first import, issue 6 item 18). SQLite compares
    bytes anyway."""
    return String(length).with_variant(String(length, collation="C"), "postgresql")


class Person(Base):
    """A professional of the national directory (one row per idNatPS)."""

    __tablename__ = "directory_persons"
    # Partial index: only FHIR-imported rows have a logical id, so RPPS bulk loads do not pay for it.
    __table_args__ = (
        Index(
            "ix_directory_persons_fhir_id",
            "fhir_id",
            sqlite_where=text("fhir_id IS NOT NULL"),
            postgresql_where=text("fhir_id IS NOT NULL"),
        ),
    )

    national_id: Mapped[str] = mapped_column(String(20), primary_key=True)
    id_type: Mapped[str | None] = mapped_column(String(4))  # "8" RPPS, "0" ADELI (RPPS column)
    civility: Mapped[str | None] = mapped_column(String(20))
    family_name: Mapped[str] = mapped_column(String(200))
    given_name: Mapped[str] = mapped_column(String(200), default="")
    # Upper-case, accent-free "FAMILY GIVEN" used for prefix search.
    search_name: Mapped[str] = mapped_column(_bytewise(400), index=True)
    profession_code: Mapped[str | None] = mapped_column(String(10))
    profession: Mapped[str | None] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    deactivated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Which import owns this row ("rpps" or "fhir"): a full import only deactivates its own rows.
    source: Mapped[str] = mapped_column(String(10))
    # Order-independent digest of everything the owning import wrote for this person (person fields and
    # activities): a snapshot import compares it to tell "unchanged" from "updated" without row diffs.
    fingerprint: Mapped[int | None] = mapped_column(BigInteger)
    # FHIR logical id (Practitioner/<id>) so a delta import can resolve a PractitionerRole alone.
    fhir_id: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    activities: Mapped[list[Activity]] = relationship(
        back_populates="person", cascade="all, delete-orphan", lazy="raise"
    )


class Structure(Base):
    """A structure: legal entity, site, service (a DAC is one, ``is_dac``)."""

    __tablename__ = "directory_structures"
    __table_args__ = (
        Index(
            "ix_directory_structures_fhir_id",
            "fhir_id",
            sqlite_where=text("fhir_id IS NOT NULL"),
            postgresql_where=text("fhir_id IS NOT NULL"),
        ),
    )

    # "C" like the activities' structure_id: a join of the two in different collations is made in
    # "C", where an index in the database's collation cannot serve it (person cards scanned every
    # structure, migration directory_2_structure_key).
    structure_id: Mapped[str] = mapped_column(_bytewise(80), primary_key=True)
    kind: Mapped[str | None] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(300))
    search_name: Mapped[str] = mapped_column(_bytewise(300), index=True)
    finess: Mapped[str | None] = mapped_column(_bytewise(20), index=True)
    siret: Mapped[str | None] = mapped_column(String(20))
    parent_id: Mapped[str | None] = mapped_column(String(80))
    is_dac: Mapped[bool] = mapped_column(Boolean, default=False)
    address: Mapped[str | None] = mapped_column(Text)
    postal_code: Mapped[str | None] = mapped_column(String(10))
    city: Mapped[str | None] = mapped_column(String(120))
    department: Mapped[str | None] = mapped_column(String(3))
    phone: Mapped[str | None] = mapped_column(String(40))
    email: Mapped[str | None] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    deactivated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    source: Mapped[str] = mapped_column(String(10))
    # FHIR logical id (Organization/<id>) so a delta import can resolve references to it.
    fhir_id: Mapped[str | None] = mapped_column(String(100))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Activity(Base):
    """One exercise of a person at a site (one RPPS line, or one PractitionerRole)."""

    __tablename__ = "directory_activities"
    __table_args__ = (Index("ix_directory_activities_structure", "structure_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    national_id: Mapped[str] = mapped_column(
        ForeignKey("directory_persons.national_id", ondelete="CASCADE"), index=True
    )
    structure_id: Mapped[str | None] = mapped_column(_bytewise(80))
    profession_code: Mapped[str | None] = mapped_column(String(10))
    profession: Mapped[str | None] = mapped_column(String(200))
    specialty: Mapped[str | None] = mapped_column(String(200))  # savoir-faire
    mode: Mapped[str | None] = mapped_column(String(80))  # mode d'exercice
    role: Mapped[str | None] = mapped_column(String(200))
    site_name: Mapped[str | None] = mapped_column(String(300))
    address: Mapped[str | None] = mapped_column(Text)
    postal_code: Mapped[str | None] = mapped_column(String(10))
    city: Mapped[str | None] = mapped_column(String(120))
    department: Mapped[str | None] = mapped_column(String(3))
    phone: Mapped[str | None] = mapped_column(String(40))
    email: Mapped[str | None] = mapped_column(String(200))
    # Which import wrote it: an import replaces only its own activities of a person.
    source: Mapped[str] = mapped_column(String(10), default="rpps")

    person: Mapped[Person] = relationship(back_populates="activities", lazy="raise")


class AccountBinding(Base):
    """The Matrix account of a directory person (one each). Written before Synapse registers it."""

    __tablename__ = "directory_account_bindings"

    user_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    national_id: Mapped[str] = mapped_column(ForeignKey("directory_persons.national_id"), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
