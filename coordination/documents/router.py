"""HTTP edge of patient documents: parse, call one service function, format."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse
from pydantic import ValidationError

from coordination.db import SessionDep
from coordination.documents import rules
from coordination.documents import service as documents
from coordination.documents.schemas import (
    CategoryOut,
    DocumentOut,
    DocumentUpdate,
    UploadForm,
    upload_openapi,
)
from coordination.documents.upload import receive_form
from coordination.errors import Invalid
from coordination.ids import DocumentId, PatientId
from coordination.pagination import Cursor, Page
from coordination.schemas import ErrorOut
from coordination.security import CurrentActor
from coordination.settings import Settings
from coordination.vocab import DocumentCategory

router = APIRouter(tags=["documents"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    403: {"model": ErrorOut, "description": "Inactif, hors du cercle, ou pas l'auteur du dépôt"},
    404: {"model": ErrorOut, "description": "Patient ou document inconnu, ou non visible"},
    409: {"model": ErrorOut, "description": "Version périmée : rechargez le document"},
    422: {"model": ErrorOut, "description": "Saisie invalide"},
}
_UPLOAD_ERRORS: dict[int | str, dict[str, Any]] = _ERRORS | {
    413: {"model": ErrorOut, "description": "Fichier de plus de 10 Mo"},
    415: {"model": ErrorOut, "description": "Type de fichier refusé (d'après son contenu réel)"},
}


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _upload_form(fields: dict[str, list[str]]) -> UploadForm:
    """Validate the text fields like a JSON body (same French 422 answers)."""
    data: dict[str, Any] = {k: v[-1] for k, v in fields.items() if k != "member_ids"}
    if "member_ids" in fields:
        # Repeated fields or one comma-separated field.
        data["member_ids"] = [p.strip() for v in fields["member_ids"] for p in v.split(",") if p.strip()]
    try:
        return UploadForm.model_validate(data)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        ) from exc


@router.get(
    "/api/v1/documents/categories",
    response_model=list[CategoryOut],
    summary="Catégories de documents",
)
async def categories(actor: CurrentActor) -> list[CategoryOut]:
    """The fixed list of categories with their French labels."""
    return [CategoryOut(code=code, label=label) for code, label in DocumentCategory.labels().items()]


@router.post(
    "/api/v1/patients/{patient_id}/documents",
    response_model=DocumentOut,
    status_code=201,
    summary="Déposer un document (multipart)",
    openapi_extra=upload_openapi(),
    responses=_UPLOAD_ERRORS,
)
async def upload_document(
    patient_id: PatientId, request: Request, actor: CurrentActor, session: SessionDep
) -> DocumentOut:
    """Multipart form: ``file``, ``title``, ``category``, optional ``visibility`` and ``member_ids``."""
    settings = _settings(request)
    await documents.require_uploader(session=session, actor=actor, patient_id=patient_id)
    received = await receive_form(request, root=settings.documents_dir, max_bytes=settings.max_upload_bytes)
    try:
        if received.file is None:
            raise Invalid("Aucun fichier reçu : joignez le document dans le champ « file ».", field="file")
        return await documents.upload_document(
            session=session,
            actor=actor,
            patient_id=patient_id,
            form=_upload_form(received.fields),
            received=received.file,
            documents_dir=settings.documents_dir,
            max_bytes=settings.max_upload_bytes,
        )
    finally:
        if received.file is not None:
            received.file.path.unlink(missing_ok=True)  # already moved when stored


@router.get(
    "/api/v1/patients/{patient_id}/documents",
    response_model=Page[DocumentOut],
    summary="Documents du dossier",
    responses=_ERRORS,
)
async def list_documents(
    patient_id: PatientId,
    actor: CurrentActor,
    session: SessionDep,
    category: Annotated[DocumentCategory | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=documents.MAX_PAGE)] = 50,
    cursor: Cursor = None,
) -> Page[DocumentOut]:
    return await documents.list_documents(
        session=session, actor=actor, patient_id=patient_id, category=category, limit=limit, cursor=cursor
    )


@router.get(
    "/api/v1/patients/{patient_id}/documents/{doc_id}",
    response_model=DocumentOut,
    summary="Métadonnées d'un document",
    responses=_ERRORS,
)
async def get_document(
    patient_id: PatientId, doc_id: DocumentId, actor: CurrentActor, session: SessionDep
) -> DocumentOut:
    return await documents.get_document(session=session, actor=actor, patient_id=patient_id, doc_id=doc_id)


@router.get(
    "/api/v1/patients/{patient_id}/documents/{doc_id}/content",
    response_class=FileResponse,
    summary="Télécharger le document",
    responses=_ERRORS
    | {
        200: {
            "description": "Le fichier, avec le type détecté à partir de son contenu",
            "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
        }
    },
)
async def download_document(
    patient_id: PatientId,
    doc_id: DocumentId,
    request: Request,
    actor: CurrentActor,
    session: SessionDep,
) -> FileResponse:
    doc, path = await documents.open_content(
        session=session,
        actor=actor,
        patient_id=patient_id,
        doc_id=doc_id,
        documents_dir=_settings(request).documents_dir,
    )
    return FileResponse(
        path,
        media_type=doc.mime_type,
        headers={
            "Content-Disposition": rules.content_disposition(doc.title, doc.extension),
            "X-Content-Type-Options": "nosniff",
            # Health data: never kept by shared caches; never rendered as an active page.
            "Cache-Control": "private, no-store",
            "Content-Security-Policy": "sandbox; default-src 'none'",
        },
    )


@router.patch(
    "/api/v1/patients/{patient_id}/documents/{doc_id}",
    response_model=DocumentOut,
    summary="Modifier un document : titre, catégorie, visibilité (auteur)",
    responses=_ERRORS,
)
async def update_document(
    patient_id: PatientId,
    doc_id: DocumentId,
    body: DocumentUpdate,
    actor: CurrentActor,
    session: SessionDep,
) -> DocumentOut:
    return await documents.update_document(
        session=session, actor=actor, patient_id=patient_id, doc_id=doc_id, data=body
    )


@router.delete(
    "/api/v1/patients/{patient_id}/documents/{doc_id}",
    response_model=DocumentOut,
    summary="Supprimer un document (auteur, suppression logique)",
    responses=_ERRORS,
)
async def delete_document(
    patient_id: PatientId,
    doc_id: DocumentId,
    actor: CurrentActor,
    session: SessionDep,
    version: Annotated[int, Query(ge=1, description="La version lue (sinon 409)")],
) -> DocumentOut:
    return await documents.delete_document(
        session=session, actor=actor, patient_id=patient_id, doc_id=doc_id, version=version
    )
