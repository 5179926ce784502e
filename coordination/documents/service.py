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
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio.to_thread
from sqlalchemy import ColumnElement, and_, exists, false, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.exc import StaleDataError

import filetyping
from coordination import patch
from coordination.audit import service as audit
from coordination.circle import access as circle_access
from coordination.db import commit_or_conflict, utcnow
from coordination.directory import service as directory
from coordination.documents import rules, storage
from coordination.documents.models import Document, DocumentAudience
from coordination.documents.schemas import DocumentOut, DocumentUpdate, UploadForm
from coordination.errors import Conflict, ErrCode, Forbidden, Invalid, NotFound, ServiceError
from coordination.ids import DocumentId, MemberId, NationalId, PatientId, UserId
from coordination.outbox import service as outbox
from coordination.outbox.events import DocumentShared
from coordination.pagination import Page, decode_cursor, encode_cursor
from coordination.security import Actor
from coordination.vocab import DocumentCategory, DocumentVisibility

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
    if visibility == DocumentVisibility.CERCLE:
        return []  # everyone authorised sees it: a member list would mean nothing
    wanted = sorted(set(member_ids))
    refs = await circle_access.member_refs(session=session, patient_id=patient_id, member_ids=wanted)
    for mid in wanted:
        ref = refs.get(mid)
        if ref is None:
            raise Invalid(
                f"Le membre {mid} ne fait pas partie du cercle de soins de ce patient : rechargez "
                "le cercle et choisissez parmi ses membres.",
                field="member_ids",
            )
        if ref.kind == "relative" or not ref.habilite:
            raise Invalid(
                "Un document ne peut être montré qu'à des professionnels ou structures habilités "
                "du cercle : un proche ou un membre non habilité n'accède pas au dossier.",
                field="member_ids",
            )
    return [
        DocumentAudience(
            member_id=mid, national_id=refs[mid].national_id, structure_id=refs[mid].structure_id
        )
        for mid in wanted
    ]


async def viewer_user_ids(*, session: AsyncSession, doc: Document) -> list[str]:
    """Matrix IDs of everyone who may see ``doc`` now (authorised members, narrowed by visibility)."""
    users = await circle_access.authorised_user_ids(session=session, patient_id=doc.patient_id)
    if doc.visibility == DocumentVisibility.CERCLE or not users:
        return users
    workplaces = await directory.workplaces_of_users(session=session, user_ids=users)
    pairs = _pairs(doc)
    return [
        u
        for u, (nid, structures) in sorted(workplaces.items())
        if rules.can_see(
            national_id=nid,
            structure_ids=structures,
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


def document_out(doc: Document) -> DocumentOut:
    """The read model of a document (its audience loaded)."""
    return DocumentOut(
        id=DocumentId(doc.id),
        version=doc.version,
        patient_id=PatientId(doc.patient_id),
        title=doc.title,
        category=doc.category,
        kind=doc.kind,
        mime_type=doc.mime_type,
        extension=doc.extension,
        size=doc.size,
        sha256=doc.sha256,
        uploader_national_id=NationalId(doc.uploader_national_id),
        uploader_user_id=UserId(doc.uploader_user_id),
        visibility=doc.visibility,
        member_ids=[MemberId(a.member_id) for a in doc.audience],
        created_at=doc.created_at,
        updated_at=doc.updated_at,
        deleted_at=doc.deleted_at,
        download_url=f"/api/v1/patients/{doc.patient_id}/documents/{doc.id}/content",
    )


async def _emit_shared(session: AsyncSession, doc: Document, recipients: Sequence[str]) -> None:
    if recipients:
        await outbox.emit(
            session=session,
            recipients=recipients,
            event=DocumentShared(
                document_id=DocumentId(doc.id),
                patient_id=PatientId(doc.patient_id),
                category=doc.category,
            ),
        )


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
) -> DocumentOut:
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
        category=form.category.value,
        sha256=received.sha256,
        size=received.size,
        kind=verdict.kind.kind,
        mime_type=verdict.kind.mime_type,
        extension=verdict.kind.extension,
        uploader_user_id=actor.user_id,
        uploader_national_id=actor.national_id,
        visibility=form.visibility.value,
        created_at=now,
        updated_at=now,
    )
    doc.audience = audience
    session.add(doc)
    await _record(session, actor, "document.uploaded", doc)
    await session.flush()
    recipients = [u for u in await viewer_user_ids(session=session, doc=doc) if u != actor.user_id]
    await _emit_shared(session, doc, recipients)
    await session.commit()
    logger.info("document %s (%s, %d bytes) added to patient %s", doc.id, doc.kind, doc.size, patient_id)
    return document_out(doc)


def _require_uploader_of(actor: Actor, doc: Document, what: str) -> None:
    if doc.uploader_national_id != actor.national_id:
        raise Forbidden(
            f"Seul l'auteur du dépôt peut {what} ce document : demandez-le-lui.",
            errcode=ErrCode.NOT_UPLOADER,
        )


_REQUIRED = {"title": "un titre", "category": "une catégorie", "visibility": "une visibilité"}


def _refuse_nulls(changed: dict[str, Any]) -> None:
    for name, what in _REQUIRED.items():
        if name in changed and changed[name] is None:
            raise Invalid(
                f"Un document a toujours {what} : donnez une valeur, ou n'envoyez pas le champ « {name} ».",
                field=name,
            )


async def _replace_audience(session: AsyncSession, doc: Document, changed: dict[str, Any]) -> set[str] | None:
    """Set the new visibility / choice of members when the body changes them; return who saw the
    document before (None when nothing changes). The document row itself is written once, later."""
    if "visibility" not in changed and "member_ids" not in changed:
        return None
    visibility = changed.get("visibility", doc.visibility)
    members = (
        (changed["member_ids"] or []) if "member_ids" in changed else [a.member_id for a in doc.audience]
    )
    audience = await _audience(session, doc.patient_id, visibility, members)
    before = set(await viewer_user_ids(session=session, doc=doc))
    # Old rows go first: a member chosen again gets the same primary key.
    doc.audience = []
    await session.flush()
    doc.audience = audience
    doc.visibility = str(visibility)
    return before


async def update_document(
    *,
    session: AsyncSession,
    actor: Actor,
    patient_id: PatientId,
    doc_id: DocumentId,
    data: DocumentUpdate,
) -> DocumentOut:
    """Uploader only, the ``coordination.patch`` way: rename, recategorise, or share with the whole
    circle or chosen members (``visibility`` / ``member_ids``); newcomers are notified."""
    doc = await _visible(session, actor, patient_id, doc_id)
    _require_uploader_of(actor, doc, "modifier")
    if doc.version != data.version:
        raise _stale()
    changed = patch.changes(data)
    _refuse_nulls(changed)
    try:
        before = await _replace_audience(session, doc, changed)
        renamed = patch.apply(doc, {k: str(v) for k, v in changed.items() if k in ("title", "category")})
        doc.updated_at = utcnow()
        await session.flush()  # the one write of the document row (its version bumps once)
        if before is not None:
            await _record(session, actor, "document.visibility_changed", doc)
            after = set(await viewer_user_ids(session=session, doc=doc))
            await _emit_shared(session, doc, sorted(after - before - {actor.user_id}))
        if renamed:
            await _record(session, actor, "document.updated", doc)
    except StaleDataError as exc:
        await session.rollback()
        raise _stale() from exc
    await _commit(session)
    return document_out(doc)


async def delete_document(
    *, session: AsyncSession, actor: Actor, patient_id: PatientId, doc_id: DocumentId, version: int
) -> DocumentOut:
    """Uploader only: hide the document from everyone (soft delete, audited)."""
    doc = await _visible(session, actor, patient_id, doc_id)
    _require_uploader_of(actor, doc, "supprimer")
    if doc.version != version:
        raise _stale()
    doc.deleted_at = doc.updated_at = utcnow()
    doc.deleted_by = actor.national_id
    await _record(session, actor, "document.deleted", doc)
    await _commit(session)
    return document_out(doc)


# --- reading ------------------------------------------------------------------------------------


def _position(cursor: str | None) -> tuple[datetime, uuid.UUID] | None:
    position = decode_cursor(cursor)
    if position is None:
        return None
    try:
        created, doc_id = datetime.fromisoformat(str(position["c"])), uuid.UUID(hex=str(position["i"]))
        if created.tzinfo is None:
            raise ValueError("our cursors carry the UTC offset")
        return created, doc_id
    except (KeyError, ValueError) as exc:
        raise Invalid(
            "Curseur de pagination invalide : reprenez la liste depuis le début (sans « cursor »).",
            field="cursor",
        ) from exc


def _older_than(after: tuple[datetime, uuid.UUID]) -> ColumnElement[bool]:
    """Keyset condition of the next page (newest first: strictly older, or same instant, smaller id)."""
    created, doc_id = after
    return or_(Document.created_at < created, and_(Document.created_at == created, Document.id < doc_id))


def _seen_by(actor: Actor) -> ColumnElement[bool]:
    chosen = exists().where(
        DocumentAudience.document_id == Document.id,
        or_(
            DocumentAudience.national_id == actor.national_id,
            DocumentAudience.structure_id.in_(sorted(actor.structure_ids))
            if actor.structure_ids
            else false(),
        ),
    )
    return or_(
        Document.visibility == DocumentVisibility.CERCLE.value,
        Document.uploader_national_id == actor.national_id,
        chosen,
    )


async def list_documents(
    *,
    session: AsyncSession,
    actor: Actor,
    patient_id: PatientId,
    category: DocumentCategory | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> Page[DocumentOut]:
    """The documents of a dossier the actor may see, newest first, keyset-paginated on
    ``(created_at, id)`` (``ix_documents_patient_created``). The read is audited."""
    await circle_access.require_authorised(session=session, actor=actor, patient_id=patient_id)
    limit = max(1, min(limit, MAX_PAGE))
    after = _position(cursor)
    stmt = select(Document).where(
        Document.patient_id == patient_id, Document.deleted_at.is_(None), _seen_by(actor)
    )
    if category is not None:
        stmt = stmt.where(Document.category == category.value)
    if after is not None:
        stmt = stmt.where(_older_than(after))
    stmt = stmt.order_by(Document.created_at.desc(), Document.id.desc()).limit(limit + 1)
    rows = (await session.scalars(stmt)).all()
    items = [document_out(d) for d in rows[:limit]]
    await audit.record(
        session=session,
        actor=actor,
        action="document.list",
        object_type="document",
        object_id=None,
        patient_id=patient_id,
    )
    await session.commit()
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        next_cursor = encode_cursor({"c": last.created_at.isoformat(), "i": last.id.hex})
    return Page[DocumentOut](items=items, next_cursor=next_cursor)


async def get_document(
    *, session: AsyncSession, actor: Actor, patient_id: PatientId, doc_id: DocumentId
) -> DocumentOut:
    """A document's metadata (audited read)."""
    doc = await _visible(session, actor, patient_id, doc_id)
    await _record(session, actor, "document.read", doc)
    await session.commit()
    return document_out(doc)


async def open_content(
    *,
    session: AsyncSession,
    actor: Actor,
    patient_id: PatientId,
    doc_id: DocumentId,
    documents_dir: Path,
) -> tuple[DocumentOut, Path]:
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
    return document_out(doc), path


async def sweep_orphans(*, session: AsyncSession, root: Path, older_than_seconds: float = 3600) -> int:
    """Delete stored files no document references any more (crash between store and commit).

    Soft-deleted documents still reference their content (the audit trail may point at them).
    """
    referenced = set((await session.scalars(select(Document.sha256).distinct())).all())
    return await anyio.to_thread.run_sync(
        lambda: storage.sweep_orphans(root, referenced=referenced, older_than_seconds=older_than_seconds)
    )
