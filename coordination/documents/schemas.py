"""Request and answer bodies of the documents API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, computed_field

from coordination import text
from coordination.ids import DocumentId, MemberId, NationalId, PatientId, UserId
from coordination.vocab import DocumentCategory, DocumentVisibility


class UploadForm(BaseModel):
    """The fields sent with the file (multipart form); ``member_ids`` may repeat."""

    model_config = ConfigDict(extra="forbid")

    title: text.Line200 = Field(
        description="Un nom clair, par exemple « Compte rendu d'hospitalisation du 3 mars »"
    )
    category: DocumentCategory
    visibility: DocumentVisibility = DocumentVisibility.CERCLE
    member_ids: list[MemberId] = Field(
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
                            "category": {"type": "string", "enum": [c.value for c in DocumentCategory]},
                            "visibility": {
                                "type": "string",
                                "enum": [v.value for v in DocumentVisibility],
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


class DocumentUpdate(BaseModel):
    """A partial change by the uploader (``coordination.patch``): fields left out are kept.

    ``member_ids`` (the chosen members, with ``visibility=restreinte``) replaces the current choice;
    ``null`` means nobody but the uploader. ``version`` is the one you read (else 409).
    """

    model_config = ConfigDict(extra="forbid")

    version: int = Field(ge=1, le=2**31 - 1)
    title: text.Line200 | None = None
    category: DocumentCategory | None = None
    visibility: DocumentVisibility | None = None
    member_ids: list[MemberId] | None = Field(default=None, max_length=50)


class DocumentOut(BaseModel):
    """A document's metadata as the service returns it (no ORM object leaves the service)."""

    model_config = ConfigDict(frozen=True)

    id: DocumentId
    version: int
    patient_id: PatientId
    title: str
    category: DocumentCategory
    kind: str = Field(description="Type détecté d'après le contenu, par exemple pdf, jpeg, docx")
    mime_type: str
    extension: str
    size: int
    sha256: str
    uploader_national_id: NationalId
    uploader_user_id: UserId
    visibility: DocumentVisibility
    member_ids: list[MemberId] = Field(description="Membres choisis quand visibility=restreinte")
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None
    download_url: str

    @computed_field  # type: ignore[prop-decorator]
    @property
    def category_label(self) -> str:
        return self.category.label


class CategoryOut(BaseModel):
    code: str
    label: str
