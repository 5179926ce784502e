"""The shape of the FHIR export answer (the content itself is checked against FHIR R4 by the service)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class FhirEntryOut(BaseModel):
    model_config = ConfigDict(extra="allow")

    fullUrl: str
    resource: dict[str, Any] = Field(
        description="A FHIR R4 resource (Patient, CareTeam, RelatedPerson, Task)"
    )


class FhirBundleOut(BaseModel):
    """A FHIR R4 Bundle of type ``collection``."""

    model_config = ConfigDict(extra="allow")

    resourceType: Literal["Bundle"]
    id: str
    type: Literal["collection"]
    timestamp: str
    entry: list[FhirEntryOut]
