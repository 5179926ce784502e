"""Request and answer bodies of the documents API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

from coordination.documents.rules import CATEGORIES, VISIBILITIES
from coordination.tasks.rules import canonical

Category = Annotated[
    Literal[
        "ordonnance",
        "compte_rendu",
        "lettre_de_liaison",
        "lettre_de_sortie",
        "resultat_biologie",
        "imagerie",
        "photo",
        "evaluation",
        "administratif",
        "autre",
    ],
    BeforeValidator(lambda v: canonical(v, CATEGORIES)),
]
Visibility = Annotated[Literal["cercle", "restreinte"], BeforeValidator(lambda v: canonical(v, VISIBILITIES))]
Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class UploadForm(BaseModel):
    """The fields sent with the file (multipart form); ``member_ids`` may repeat."""

    model_config = ConfigDict(extra="forbid")

    title: Title = Field(description="A clear name, e.g. « Compte rendu d'hospitalisation du 3 mars »")
    category: Category
    visibility: Visibility = "cercle"
    member_ids: list[uuid.UUID] = Field(
        default_factory=list,
        max_length=50,
        description="With visibility=restreinte: the circle members (ids) who may see it",
    )


def upload_openapi() -> dict[str, Any]:
    """The multipart body of the upload, for the OpenAPI document (the body is parsed by hand)."""
    return {
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["title", "category", "file"],
                        "properties": {
                            "title": {"type": "string", "minLength": 1, "maxLength": 200},
                            "category": {"type": "string", "enum": list(CATEGORIES)},
                            "visibility": {
                                "type": "string",
                                "enum": list(VISIBILITIES),
                                "default": "cercle",
                            },
                            "member_ids": {
                                "type": "array",
                                "items": {"type": "string", "format": "uuid"},
                            },
                            "file": {
                                "type": "string",
                                "format": "binary",
                                "description": "PDF, image (JPEG, PNG, GIF, WebP, HEIC), Word, "
                                "Excel or OpenDocument; 10 MB at most",
                            },
                        },
                    }
                }
            },
        }
    }


class VisibilityIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = Field(ge=1, description="The version you read (else 409)")
    visibility: Visibility
    member_ids: list[uuid.UUID] = Field(default_factory=list, max_length=50)


class DocumentOut(BaseModel):
    id: uuid.UUID
    version: int
    patient_id: uuid.UUID
    title: str
    category: str
    category_label: str
    kind: str = Field(description="Detected kind from the content, e.g. pdf, jpeg, docx")
    mime_type: str
    extension: str
    size: int
    sha256: str
    uploader_national_id: str
    uploader_user_id: str
    visibility: str
    member_ids: list[uuid.UUID] = Field(description="Chosen members when visibility=restreinte")
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None
    download_url: str


class DocumentPage(BaseModel):
    items: list[DocumentOut]
    next_offset: int | None


class CategoryOut(BaseModel):
    code: str
    label: str
