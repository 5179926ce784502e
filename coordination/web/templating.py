"""The dashboard's Jinja2 environment (autoescape everywhere) and ``render``.

Templates of a domain live in ``coordination/<domain>/templates/<domain>/*.html``; the shared layout is
``templates/base.html`` here (blocks ``title`` and ``content``). The loader finds every
``coordination/*/templates`` directory, so a new domain only adds its folder.
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

PACKAGE_ROOT = Path(__file__).resolve().parent.parent
PARIS = ZoneInfo("Europe/Paris")
WEB_STATE = "azurezo_web"
"""Attribute of ``request.state`` holding the signed-in page context (set by ``deps``)."""


def template_dirs() -> list[str]:
    """``coordination/web/templates`` first (the layout), then every domain's ``templates``."""
    dirs = [PACKAGE_ROOT / "web" / "templates"]
    dirs += sorted(p for p in PACKAGE_ROOT.glob("*/templates") if p.is_dir() and p.parent.name != "web")
    return [str(d) for d in dirs]


def _when(value: datetime | None) -> str:
    """A moment in Paris time, as French professionals read it."""
    if value is None:
        return ""
    return value.astimezone(PARIS).strftime("%d/%m/%Y %H:%M")


def _day(value: date | None) -> str:
    return value.strftime("%d/%m/%Y") if value is not None else ""


def _age(days: int) -> str:
    if days <= 0:
        return "aujourd'hui"
    return "hier" if days == 1 else f"il y a {days} jours"


# The audit trail's action codes, as a professional reads them (unknown codes are shown as they are).
ACTIONS = {
    "patient.created": "a créé le dossier",
    "patient.read": "a consulté le dossier",
    "patient.updated": "a modifié le dossier",
    "patient.discharged": "a enregistré la sortie",
    "patient.reactivated": "a réactivé le suivi",
    "patient.search_hit": "a trouvé le patient par la recherche",
    "patient.listed": "a vu le patient dans sa liste",
    "circle.read": "a consulté le cercle de soins",
    "circle.member_added": "a ajouté un membre au cercle",
    "circle.member_removed": "a retiré un membre du cercle",
    "circle.member_updated": "a modifié un membre du cercle",
    "document.uploaded": "a déposé un document",
    "document.list": "a consulté la liste des documents",
    "document.read": "a consulté un document",
    "document.downloaded": "a téléchargé un document",
    "task.created": "a créé une tâche",
    "task.updated": "a modifié une tâche",
    "task.list": "a consulté les tâches",
    "request.created": "a créé une demande au DAC",
    "request.sent": "a envoyé une demande au DAC",
    "request.read": "a consulté une demande",
    "request.list": "a vu la demande dans le tableau de bord",
    "request.taken": "a pris en charge la demande",
    "request.answered": "a répondu à la demande",
    "request.patient_included": "a inclus le patient dans le suivi du DAC",
    "synthesis.read": "a consulté la synthèse",
    "synthesis.update": "a modifié la synthèse",
    "synthesis.history": "a consulté l'historique de la synthèse",
    "circle.member_read": "a consulté la fiche d'un membre du cercle",
    "document.deleted": "a supprimé un document",
    "document.updated": "a modifié un document",
    "document.visibility_changed": "a changé la visibilité d'un document",
    "patient.duplicate_candidate": "a vu le dossier comme doublon possible",
    "patient.fhir_export": "a exporté le dossier (FHIR)",
    "patient.homonym_flagged": "a signalé un homonyme",
    "request.cancelled": "a annulé une demande au DAC",
    "request.updated": "a modifié une demande au DAC",
    "room.linked": "a relié un salon au dossier",
    "room.list": "a consulté les salons du dossier",
    "room.read": "a consulté un salon du dossier",
    "task.assigned": "a assigné une tâche",
    "task.read": "a consulté une tâche",
    "audit.read": "a consulté la traçabilité",
    "evaluation.created": "a commencé une évaluation",
    "evaluation.updated": "a enregistré le brouillon d'une évaluation",
    "evaluation.signed": "a signé une évaluation",
    "evaluation.read": "a consulté une évaluation",
    "evaluation.list": "a consulté la liste des évaluations",
    "evaluation.scores": "a consulté l'historique des scores",
    "evaluation.export": "a exporté une évaluation (FHIR)",
    "plan.read": "a consulté le plan personnalisé",
    "plan.update": "a modifié le plan personnalisé",
    "plan.history": "a consulté les versions du plan",
    "plan.pdf": "a téléchargé le plan en PDF",
    "plan.fhir": "a exporté le plan (FHIR)",
    "timeline.read": "a consulté la chronologie",
    "timeline.event": "a ajouté un événement à la chronologie",
    "situation.read": "a consulté le signalement de situation complexe",
    "situation.flag": "a signalé une situation complexe",
    "situation.clear": "a levé le signalement de situation complexe",
    "situation.board": "a vu le patient au tableau des situations complexes",
}


def _action(code: str) -> str:
    return ACTIONS.get(code, code)


def make_environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(template_dirs()),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["moment"] = _when
    env.filters["jour"] = _day
    env.filters["age"] = _age
    env.filters["action"] = _action
    return env


ENVIRONMENT = make_environment()


def render(
    request: Request,
    template_name: str,
    context: dict[str, Any] | None = None,
    *,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    """Render a page with the signed-in context (user, anti-forgery token, messages) when there is one."""
    web = getattr(request.state, WEB_STATE, None)
    values: dict[str, Any] = {
        "request_path": request.url.path,
        "web": web,
        "csrf_token": web.csrf_token if web is not None else "",
        "flash": web.flash if web is not None else [],
    }
    values.update(context or {})
    html = ENVIRONMENT.get_template(template_name).render(values)
    return HTMLResponse(html, status_code=status_code, headers=headers)


def render_error(
    request: Request, *, status_code: int, message: str, title: str | None = None
) -> HTMLResponse:
    """The French error page of the dashboard (refusal, unknown object, service error)."""
    default_titles = {
        400: "Requête refusée",
        401: "Connexion requise",
        403: "Accès refusé",
        404: "Page ou dossier introuvable",
        409: "Conflit",
        413: "Envoi trop volumineux",
        415: "Type de fichier refusé",
        422: "Saisie invalide",
        503: "Service momentanément indisponible",
    }
    heading = title or default_titles.get(status_code, "Erreur")
    return render(request, "error.html", {"title": heading, "message": message}, status_code=status_code)
