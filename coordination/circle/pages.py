"""Dashboard forms of the care circle (on the patient page): add, remove, authorise a member."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import TypeAdapter, ValidationError

from coordination.circle import service
from coordination.circle.schemas import MemberIn, MemberUpdate
from coordination.db import SessionDep
from coordination.errors import ServiceError
from coordination.ids import MemberId, PatientId
from coordination.validation import french_validation_message
from coordination.web.deps import FormActor, flash

router = APIRouter(prefix="/app/patients/{patient_id}/cercle", include_in_schema=False)

_MEMBER: TypeAdapter[Any] = TypeAdapter(MemberIn)
_LABELS = {
    "national_id": "Identifiant national (RPPS)",
    "structure_id": "Identifiant de la structure",
    "name": "Nom",
    "relationship": "Lien",
    "role": "Rôle",
    "kind": "Type de membre",
}


def _back(patient_id: PatientId) -> RedirectResponse:
    return RedirectResponse(f"/app/patients/{patient_id}#cercle", status_code=303)


def _member_body(form: dict[str, str]) -> dict[str, Any]:
    kind = form.get("kind", "")
    body: dict[str, Any] = {"kind": kind, "role": form.get("role", "").strip()}
    if kind == "professional":
        body["national_id"] = form.get("identifiant", "")
    elif kind == "structure":
        body["structure_id"] = form.get("identifiant", "")
    elif kind == "relative":
        body["name"] = form.get("nom", "")
        body["relationship"] = form.get("lien", "")
        body["role"] = body["role"] or "aidant"
    if kind in ("professional", "structure"):
        body["habilite"] = form.get("habilite") == "oui"
    return body


@router.post("")
async def add(request: Request, patient_id: PatientId, actor: FormActor, db: SessionDep) -> Response:
    """Add a directory professional (RPPS), a structure, or a relative typed by hand."""
    form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
    try:
        member = _MEMBER.validate_python(_member_body(form))
        added = await service.add_member(session=db, actor=actor, patient_id=patient_id, member=member)
    except ValidationError as exc:
        details = "; ".join(
            f"{_LABELS.get(str(e['loc'][-1]), str(e['loc'][-1]))} : {french_validation_message(dict(e))}"
            for e in exc.errors()
        )
        await flash(request, db, f"Membre non ajouté — {details}.", kind="erreur")
        return _back(patient_id)
    except ServiceError as exc:
        await flash(request, db, exc.message, kind="erreur")
        return _back(patient_id)
    await flash(request, db, f"{added.display_name} ajouté(e) au cercle de soins.")
    return _back(patient_id)


@router.post("/{member_id}/retirer")
async def remove(
    request: Request, patient_id: PatientId, member_id: MemberId, actor: FormActor, db: SessionDep
) -> Response:
    try:
        await service.remove_member(session=db, actor=actor, patient_id=patient_id, member_id=member_id)
    except ServiceError as exc:
        await flash(request, db, exc.message, kind="erreur")
        return _back(patient_id)
    await flash(request, db, "Membre retiré du cercle de soins.")
    return _back(patient_id)


@router.post("/{member_id}/habilitation")
async def authorise(
    request: Request, patient_id: PatientId, member_id: MemberId, actor: FormActor, db: SessionDep
) -> Response:
    """Give or withdraw the authorisation to read the dossier (never the last authorised member's)."""
    habilite = (await request.form()).get("habilite") == "oui"
    try:
        await service.update_member(
            session=db,
            actor=actor,
            patient_id=patient_id,
            member_id=member_id,
            change=MemberUpdate(habilite=habilite),
        )
    except ServiceError as exc:
        await flash(request, db, exc.message, kind="erreur")
        return _back(patient_id)
    await flash(request, db, "Habilitation donnée." if habilite else "Habilitation retirée.")
    return _back(patient_id)
