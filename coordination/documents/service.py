"""Patient documents: upload, list, metadata, download, visibility, deletion.

Access. Every function first requires the actor to be an authorised member of the patient's care
circle (``circle_access.require_authorised``), on every request. On top of that a document is visible to the
whole authorised circle (``cercle``) or only to its uploader and chosen circle members
(``restreinte``: a professional member, or every professional working at a chosen structure member).
A document the actor may not see answers 404, like an unknown one.

Changes. Only the uploader changes a document's visibility or deletes it. Deletion is soft
(``deleted_at``): the document disappears from lists and downloads, its audit trail and stored content
stay (content is shared by every document with the same sha256, so it is never removed here).

Content. Uploads are typed from their bytes by ``filetyping`` (THE typing
implementation) with ``allow_encrypted=False``: the service receives plaintext, so bytes that only
"look encrypted" are refused like any unknown type. Downloads are served with the detected type.

Every read (list, metadata, download) and write is audited; "document.shared" is emitted in the same
transaction to the users who can see the document.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from pathlib import Path

import anyio.to_thread
from sqlalchemy import exists, false, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.exc import StaleDataError

import filetyping
from coordination.audit import service as audit
from coordination.circle import access as circle_access
from coordination.circle.models import CircleMember
from coordination.db import commit_or_conflict, utcnow
from coordination.directory.models import AccountBinding, Activity
from coordination.documents import rules, storage
from coordination.documents.models import Document, DocumentAudience
from coordination.documents.schemas import UploadForm
from coordination.errors import Conflict, ErrCode, Forbidden, Invalid, NotFound, ServiceError
from coordination.ids import DocumentId, PatientId
from coordination.outbox import service as outbox
from coordination.security import Actor

logger = logging.getLogger(__name__)

MAX_PAGE = 200


class UnsupportedType(ServiceError):
    """The content is not an accepted document or image (whatever its name says)."""

    status_code = 415
    errcode = ErrCode.UNSUPPORTED_TYPE


def _not_found() -> NotFound:
    return NotFound(
        "Document introuvable, ou vous n'y avez pas accès : son auteur l'a peut-être réservé à "
        "certains membres du cercle, ou l'a supprimé.",
        errcode=ErrCode.UNKNOWN_DOCUMENT,
    )


def _stale() -> Conflict:
    return Conflict(
        "Le document a été modifié entre-temps : rechargez-le, puis refaites votre modification.",
        errcode=ErrCode.STALE_VERSION,
    )


def _pairs(doc: Document) -> list[tuple[str | None, str | None]]:
    return [(a.national_id, a.structure_id) for a in doc.audience]


def actor_can_see(actor: Actor, doc: Document) -> bool:
    return rules.can_see(
        national_id=actor.national_id,
        structure_ids=actor.structure_ids,
        uploader_national_id=doc.uploader_national_id,
        visibility=doc.visibility,
        audience=_pairs(doc),
    )


async def _audience(
    session: AsyncSession, patient_id: uuid.UUID, visibility: str, member_ids: Sequence[uuid.UUID]
) -> list[DocumentAudience]:
    """Check the chosen members (habilité professionals or structures of this circle)."""
    if visibility == "cercle":
        return []  # everyone authorised sees it: a member list would mean nothing
    wanted = sorted(set(member_ids))
    if not wanted:
        return []
    rows = {
        m.id: m
        for m in (
            await session.scalars(
                select(CircleMember).where(CircleMember.patient_id == patient_id, CircleMember.id.in_(wanted))
            )
        ).all()
    }
    for mid in wanted:
        row = rows.get(mid)
        if row is None:
            raise Invalid(
                f"Le membre {mid} ne fait pas partie du cercle de soins de ce patient : rechargez "
                "le cercle et choisissez parmi ses membres.",
                field="member_ids",
            )
        if row.kind == "relative" or not row.habilite:
            raise Invalid(
                "Un document ne peut être montré qu'à des professionnels ou structures habilités "
                "du cercle : un proche ou un membre non habilité n'accède pas au dossier.",
                field="member_ids",
            )
    return [
        DocumentAudience(
            member_id=mid, national_id=rows[mid].national_id, structure_id=rows[mid].structure_id
        )
        for mid in wanted
    ]


async def viewer_user_ids(*, session: AsyncSession, doc: Document) -> list[str]:
    """Matrix IDs of everyone who may see ``doc`` now (authorised members, narrowed by visibility)."""
    users = await circle_access.authorised_user_ids(session=session, patient_id=doc.patient_id)
    if doc.visibility == "cercle" or not users:
        return users
    bindings: dict[str, str] = {
        u: n
        for u, n in (
            await session.execute(
                select(AccountBinding.user_id, AccountBinding.national_id).where(
                    AccountBinding.user_id.in_(users)
                )
            )
        ).all()
    }
    works_at: dict[str, set[str]] = {}
    for nid, sid in (
        await session.execute(
            select(Activity.national_id, Activity.structure_id).where(
                Activity.national_id.in_(set(bindings.values())), Activity.structure_id.is_not(None)
            )
        )
    ).all():
        if sid is not None:
            works_at.setdefault(nid, set()).add(sid)
    pairs = _pairs(doc)
    return [
        u
        for u, nid in bindings.items()
        if rules.can_see(
            national_id=nid,
            structure_ids=works_at.get(nid, set()),
            uploader_national_id=doc.uploader_national_id,
            visibility=doc.visibility,
            audience=pairs,
        )
    ]


async def _visible(
    session: AsyncSession, actor: Actor, patient_id: PatientId, doc_id: DocumentId
) -> Document:
    await circle_access.require_authorised(session=session, actor=actor, patient_id=patient_id)
    doc = await session.get(Document, doc_id)
    if (
        doc is None
        or doc.patient_id != patient_id
        or doc.deleted_at is not None
        or not actor_can_see(actor, doc)
    ):
        raise _not_found()
    return doc


async def _record(session: AsyncSession, actor: Actor, action: str, doc: Document) -> None:
    await audit.record(
        session=session,
        actor=actor,
        action=action,
        object_type="document",
        object_id=doc.id,
        patient_id=doc.patient_id,
    )


async def _commit(session: AsyncSession) -> None:
    await commit_or_conflict(session, on_stale=_stale())


# --- writing ------------------------------------------------------------------------------------


async def require_uploader(*, session: AsyncSession, actor: Actor, patient_id: PatientId) -> None:
    """Refuse before receiving any byte of an upload when the actor may not add to this dossier."""
    await circle_access.require_authorised(session=session, actor=actor, patient_id=patient_id)


def _refusal(verdict: filetyping.Verdict, max_bytes: int) -> ServiceError:
    if verdict.refusal == filetyping.Refusal.TOO_LARGE:
        return storage.too_large(max_bytes)
    reason = verdict.reason or "Ce type de fichier n'est pas accepté."
    if verdict.refusal == filetyping.Refusal.EMPTY:
        return Invalid(reason, field="file")
    return UnsupportedType(reason)


async def upload_document(
    *,
    session: AsyncSession,
    actor: Actor,
    patient_id: PatientId,
    form: UploadForm,
    received: storage.ReceivedFile,
    documents_dir: Path,
    max_bytes: int,
) -> Document:
    """Type, store and register an upload already received into ``.incoming``.

    Refuses content that is not an accepted document or image (415, French reason from
    ``filetyping``), an empty file (422) and chosen members outside the circle (422). The bytes are
    stored under their sha256 (once, whatever the number of uploads); the caller removes
    ``received.path`` if it is still there afterwards.
    """
    await circle_access.require_authorised(session=session, actor=actor, patient_id=patient_id)
    if received.size == 0:
        raise Invalid("Le fichier est vide : choisissez le bon fichier puis réessayez.", field="file")
    verdict = await anyio.to_thread.run_sync(
        lambda: filetyping.classify_path(str(received.path), max_bytes=max_bytes, allow_encrypted=False)
    )
    if not verdict.allowed or verdict.kind is None:
        logger.info("upload refused for patient %s: %s (%s)", patient_id, verdict.refusal, verdict.detected)
        raise _refusal(verdict, max_bytes)
    audience = await _audience(session, patient_id, form.visibility, form.member_ids)
    await anyio.to_thread.run_sync(lambda: storage.store(documents_dir, received))
    now = utcnow()
    doc = Document(
        id=uuid.uuid4(),
        patient_id=patient_id,
        title=form.title,
        category=form.category,
        sha256=received.sha256,
        size=received.size,
        kind=verdict.kind.kind,
        mime_type=verdict.kind.mime_type,
        extension=verdict.kind.extension,
        uploader_user_id=actor.user_id,
        uploader_national_id=actor.national_id,
        visibility=form.visibility,
        created_at=now,
        updated_at=now,
    )
    doc.audience = audience
    session.add(doc)
    await _record(session, actor, "document.uploaded", doc)
    await session.flush()
    recipients = [u for u in await viewer_user_ids(session=session, doc=doc) if u != actor.user_id]
    if recipients:
        await outbox.emit(
            session=session,
            kind="document.shared",
            recipients=recipients,
            payload={"document_id": str(doc.id), "patient_id": str(patient_id), "category": doc.category},
            patient_id=patient_id,
        )
    await session.commit()
    logger.info("document %s (%s, %d bytes) added to patient %s", doc.id, doc.kind, doc.size, patient_id)
    return doc


def _require_uploader_of(actor: Actor, doc: Document, what: str) -> None:
    if doc.uploader_national_id != actor.national_id:
        raise Forbidden(
            f"Seul l'auteur du dépôt peut {what} ce document : demandez-le-lui.",
            errcode=ErrCode.NOT_UPLOADER,
        )


async def change_visibility(
    *,
    session: AsyncSession,
    actor: Actor,
    patient_id: PatientId,
    doc_id: DocumentId,
    version: int,
    visibility: str,
    member_ids: Sequence[uuid.UUID],
) -> Document:
    """Uploader only: share with the whole circle or with chosen members; newcomers are notified."""
    doc = await _visible(session, actor, patient_id, doc_id)
    _require_uploader_of(actor, doc, "changer la visibilité de")
    if doc.version != version:
        raise _stale()
    audience = await _audience(session, patient_id, visibility, member_ids)
    before = set(await viewer_user_ids(session=session, doc=doc))
    try:
        # Old rows go first: a member chosen again gets the same primary key.
        doc.audience = []
        await session.flush()
        doc.audience = audience
        doc.visibility = visibility
        doc.updated_at = utcnow()
        await _record(session, actor, "document.visibility_changed", doc)
        await session.flush()
        after = set(await viewer_user_ids(session=session, doc=doc))
        newcomers = sorted(after - before - {actor.user_id})
        if newcomers:
            await outbox.emit(
                session=session,
                kind="document.shared",
                recipients=newcomers,
                payload={
                    "document_id": str(doc.id),
                    "patient_id": str(patient_id),
                    "category": doc.category,
                },
                patient_id=patient_id,
            )
    except StaleDataError as exc:
        await session.rollback()
        raise _stale() from exc
    await _commit(session)
    return doc


async def delete_document(
    *, session: AsyncSession, actor: Actor, patient_id: PatientId, doc_id: DocumentId, version: int
) -> Document:
    """Uploader only: hide the document from everyone (soft delete, audited)."""
    doc = await _visible(session, actor, patient_id, doc_id)
    _require_uploader_of(actor, doc, "supprimer")
    if doc.version != version:
        raise _stale()
    doc.deleted_at = doc.updated_at = utcnow()
    doc.deleted_by = actor.national_id
    await _record(session, actor, "document.deleted", doc)
    await _commit(session)
    return doc


# --- reading ------------------------------------------------------------------------------------


async def list_documents(
    *,
    session: AsyncSession,
    actor: Actor,
    patient_id: PatientId,
    category: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[Sequence[Document], int | None]:
    """The documents of a dossier the actor may see, newest first (``ix_documents_patient_created``).
    The read is audited."""
    await circle_access.require_authorised(session=session, actor=actor, patient_id=patient_id)
    limit = max(1, min(limit, MAX_PAGE))
    chosen = exists().where(
        DocumentAudience.document_id == Document.id,
        or_(
            DocumentAudience.national_id == actor.national_id,
            DocumentAudience.structure_id.in_(sorted(actor.structure_ids))
            if actor.structure_ids
            else false(),
        ),
    )
    stmt = select(Document).where(
        Document.patient_id == patient_id,
        Document.deleted_at.is_(None),
        or_(
            Document.visibility == "cercle",
            Document.uploader_national_id == actor.national_id,
            chosen,
        ),
    )
    if category is not None:
        stmt = stmt.where(Document.category == category)
    stmt = stmt.order_by(Document.created_at.desc(), Document.id.desc()).offset(offset).limit(limit + 1)
    rows = (await session.scalars(stmt)).all()
    await audit.record(
        session=session,
        actor=actor,
        action="document.list",
        object_type="document",
        object_id=None,
        patient_id=patient_id,
    )
    await session.commit()
    return rows[:limit], (offset + limit if len(rows) > limit else None)


async def get_document(
    *, session: AsyncSession, actor: Actor, patient_id: PatientId, doc_id: DocumentId
) -> Document:
    """A document's metadata (audited read)."""
    doc = await _visible(session, actor, patient_id, doc_id)
    await _record(session, actor, "document.read", doc)
    await session.commit()
    return doc


async def open_content(
    *,
    session: AsyncSession,
    actor: Actor,
    patient_id: PatientId,
    doc_id: DocumentId,
    documents_dir: Path,
) -> tuple[Document, Path]:
    """Check membership and visibility (on every download), audit, and return the stored file."""
    doc = await _visible(session, actor, patient_id, doc_id)
    path = storage.blob_path(documents_dir, doc.sha256)
    if not await anyio.to_thread.run_sync(path.is_file):
        logger.error("document %s: content %s missing from the store", doc.id, doc.sha256)
        raise NotFound(
            "Le contenu de ce document est introuvable sur le serveur : signalez-le à "
            "l'administrateur (le document reste listé).",
            errcode=ErrCode.CONTENT_MISSING,
        )
    await _record(session, actor, "document.downloaded", doc)
    await session.commit()
    return doc, path


async def sweep_orphans(*, session: AsyncSession, root: Path, older_than_seconds: float = 3600) -> int:
    """Delete stored files no document references any more (crash between store and commit).

    Soft-deleted documents still reference their content (the audit trail may point at them).
    """
    referenced = set((await session.scalars(select(Document.sha256).distinct())).all())
    return await anyio.to_thread.run_sync(
        lambda: storage.sweep_orphans(root, referenced=referenced, older_than_seconds=older_than_seconds)
    )
