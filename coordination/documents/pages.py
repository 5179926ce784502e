"""Dashboard forms of patient documents: upload (category, visibility) and download.

The upload streams to disk under the same cap as the API (``documents.upload.receive_form``); the
anti-forgery token travels as a form field and is checked before the file is typed or stored.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from pydantic import ValidationError

from coordination.db import SessionDep
from coordination.documents import rules
from coordination.documents import service as documents
from coordination.documents.schemas import UploadForm
from coordination.documents.upload import receive_form
from coordination.errors import ErrCode, ServiceError
from coordination.ids import DocumentId, PatientId
from coordination.settings import Settings
from coordination.validation import french_validation_message
from coordination.web.deps import CSRF_FIELD, PageActor, PageContext, check_csrf, check_origin, flash

router = APIRouter(prefix="/app/patients/{patient_id}/documents", include_in_schema=False)

_LABELS = {
    "title": "Titre",
    "category": "Catégorie",
    "visibility": "Visibilité",
    "member_ids": "Membres choisis",
}


def _back(patient_id: PatientId) -> RedirectResponse:
    return RedirectResponse(f"/app/patients/{patient_id}#documents", status_code=303)


def _form(fields: dict[str, list[str]]) -> UploadForm:
    data: dict[str, Any] = {k: v[-1] for k, v in fields.items() if k in ("title", "category", "visibility")}
    data["member_ids"] = fields.get("member_ids", [])
    return UploadForm.model_validate(data)


@router.post("")
async def upload(request: Request, patient_id: PatientId, context: PageContext, db: SessionDep) -> Response:
    """Upload a document: title, category, visibility (whole circle, or chosen members)."""
    check_origin(request)
    settings: Settings = request.app.state.settings
    actor = context.actor
    await documents.require_uploader(session=db, actor=actor, patient_id=patient_id)
    received = await receive_form(request, root=settings.documents_dir, max_bytes=settings.max_upload_bytes)
    try:
        check_csrf(context.csrf_token, (received.fields.get(CSRF_FIELD) or [""])[-1])
        if received.file is None or received.file.size == 0:
            await flash(request, db, "Aucun fichier reçu : choisissez le document à déposer.", kind="erreur")
            return _back(patient_id)
        doc = await documents.upload_document(
            session=db,
            actor=actor,
            patient_id=patient_id,
            form=_form(received.fields),
            received=received.file,
            documents_dir=settings.documents_dir,
            max_bytes=settings.max_upload_bytes,
        )
    except ValidationError as exc:
        details = "; ".join(
            f"{_LABELS.get(str(e['loc'][0]), str(e['loc'][0]))} : {french_validation_message(dict(e))}"
            for e in exc.errors()
        )
        await flash(request, db, f"Document non déposé — {details}.", kind="erreur")
        return _back(patient_id)
    except ServiceError as exc:
        if exc.errcode == ErrCode.CSRF:
            raise
        await flash(request, db, exc.message, kind="erreur")
        return _back(patient_id)
    finally:
        if received.file is not None:
            received.file.path.unlink(missing_ok=True)  # already moved when stored
    await flash(request, db, f"Document « {doc.title} » déposé ({doc.kind}, {doc.size // 1024 + 1} Ko).")
    return _back(patient_id)


@router.get("/{doc_id}/contenu")
async def download(
    request: Request, patient_id: PatientId, doc_id: DocumentId, actor: PageActor, db: SessionDep
) -> Response:
    """Download (membership and visibility checked on every download, audited)."""
    settings: Settings = request.app.state.settings
    doc, path = await documents.open_content(
        session=db, actor=actor, patient_id=patient_id, doc_id=doc_id, documents_dir=settings.documents_dir
    )
    return FileResponse(
        path,
        media_type=doc.mime_type,
        headers={
            "Content-Disposition": rules.content_disposition(doc.title, doc.extension),
            "Cache-Control": "private, no-store",
            "Content-Security-Policy": "sandbox; default-src 'none'",
        },
    )
