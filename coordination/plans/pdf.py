"""The PPCS as a PDF in the layout of the HAS model (« Plan personnalisé de coordination en santé »).

Sections, as in the HAS template: identification of the person and of the plan (dates, coordinator),
the professionals and structures of the care circle, the summary of the situation and the person's
wishes, then the plan of actions as a table (problems / needs, objectives, actions, who, by when,
status), and the consent mention. Rendered with fpdf2's core fonts (Latin-1): characters outside it are
replaced by a close ASCII form rather than dropped silently.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime

from fpdf import FPDF
from fpdf.enums import XPos, YPos

from coordination.agenda import rules as agenda_rules
from coordination.plans.schemas import ActionOut, PlanOut

_REPLACEMENTS = {
    "\u2019": "'",
    "\u2018": "'",
    "\u201c": '"',
    "\u201d": '"',
    "\u2013": "-",
    "\u2014": "-",
    "\u2026": "...",
    "\u0153": "oe",
    "\u0152": "OE",
    "\u20ac": "EUR",
    "\u00a0": " ",
    "\u202f": " ",
}


def latin1(value: str) -> str:
    """``value`` in what the PDF core fonts can draw (Latin-1), with close replacements."""
    for char, replacement in _REPLACEMENTS.items():
        value = value.replace(char, replacement)
    return value.encode("latin-1", "replace").decode("latin-1")


def _d(value: date | datetime | None) -> str:
    return value.strftime("%d/%m/%Y") if value else "-"


class _Doc(FPDF):
    def footer(self) -> None:
        self.set_y(-12)
        self.set_font("Helvetica", "I", 8)
        self.cell(
            0,
            8,
            latin1(f"Document confidentiel - données de santé - page {self.page_no()}/{{nb}}"),
            align="C",
        )


def _heading(pdf: FPDF, title: str) -> None:
    pdf.ln(3)
    pdf.set_font("Helvetica", "B", 11)
    pdf.set_fill_color(220, 230, 242)
    pdf.cell(0, 7, latin1(title), fill=True, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font("Helvetica", "", 9)
    pdf.ln(1)


def _line(pdf: FPDF, label: str, value: str) -> None:
    pdf.set_font("Helvetica", "B", 9)
    pdf.cell(62, 5, latin1(label))
    pdf.set_font("Helvetica", "", 9)
    pdf.multi_cell(0, 5, latin1(value or "-"), new_x=XPos.LMARGIN, new_y=YPos.NEXT)


def _action_rows(plan: PlanOut) -> list[tuple[str, str, ActionOut | None]]:
    """(problem, objective, action) for the table, in the plan's order; a problem or an objective with
    no action yet still gets its row (the plan shows every need, answered or not)."""
    objectives = {o.id: o for o in plan.objectives}
    problems = {p.id: p.title for p in plan.problems}
    rows: list[tuple[str, str, ActionOut | None]] = []
    used_objectives, used_problems = set(), set()
    for action in plan.actions:
        objective = objectives.get(action.objective_id or "")
        problem = problems.get(objective.problem_id or "", "") if objective else ""
        if objective:
            used_objectives.add(objective.id)
            used_problems.add(objective.problem_id)
        rows.append((problem, objective.title if objective else "", action))
    for objective in plan.objectives:
        if objective.id not in used_objectives:
            used_problems.add(objective.problem_id)
            rows.append((problems.get(objective.problem_id or "", ""), objective.title, None))
    rows += [(p.title, "", None) for p in plan.problems if p.id not in used_problems]
    return rows


def _action_cell(action: ActionOut) -> str:
    """The action's title, and its linked appointment (Paris time, status) on the next line."""
    if action.appointment_id is None:
        return action.title
    if action.appointment_start is None or action.appointment_status is None:
        return f"{action.title}\nRendez-vous lié : supprimé de l'agenda"
    local = agenda_rules.to_local(action.appointment_start)
    return (
        f"{action.title}\nRendez-vous : {local:%d/%m/%Y à %H:%M}, {action.appointment_label or ''} "
        f"- {action.appointment_status.label.lower()}"
    )


def _actions_table(pdf: FPDF, plan: PlanOut) -> None:
    headings = ("Problèmes / besoins", "Objectifs", "Actions", "Responsable", "Échéance", "Statut")
    with pdf.table(
        col_widths=(34, 34, 44, 32, 20, 22), text_align="LEFT", line_height=4.5, first_row_as_headings=True
    ) as table:
        row = table.row()
        for heading in headings:
            row.cell(latin1(heading))
        for problem, objective, action in _action_rows(plan):
            row = table.row()
            values = (
                (
                    _action_cell(action),
                    action.responsible_label or "-",
                    _d(action.deadline),
                    action.status.label,
                )
                if action
                else ("(aucune action)", "-", "-", "-")
            )
            for value in (problem, objective, *values):
                row.cell(latin1(value))


def render(
    *,
    plan: PlanOut,
    patient_name: str,
    birth_date: date,
    contacts: Sequence[tuple[str, str]],
    consent_line: str,
) -> bytes:
    """The PDF bytes of ``plan`` (French, HAS PPCS layout)."""
    pdf = _Doc(orientation="P", unit="mm", format="A4")
    pdf.set_title("Plan personnalisé de coordination en santé")
    pdf.set_author("azurezo")
    pdf.alias_nb_pages()
    pdf.set_auto_page_break(auto=True, margin=15)
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 15)
    pdf.cell(0, 9, latin1("Plan personnalisé de coordination en santé (PPCS)"), align="C")
    pdf.ln(10)
    _heading(pdf, "1. La personne et le plan")
    _line(pdf, "Personne concernée", patient_name)
    _line(pdf, "Date de naissance", _d(birth_date))
    _line(
        pdf, "Version du plan", f"{plan.version} ({plan.status.label}), mise à jour le {_d(plan.updated_at)}"
    )
    _line(pdf, "Mis à jour par", plan.updated_by_name or plan.updated_by or "-")
    _line(pdf, "Prochaine révision", _d(plan.next_review_date))
    _heading(pdf, "2. Professionnels et structures du cercle de soins")
    for name, role in contacts or [("-", "")]:
        _line(pdf, name, role)
    _heading(pdf, "3. Synthèse de la situation")
    pdf.multi_cell(0, 5, latin1(plan.situation or "-"), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    _heading(pdf, "4. Attentes et souhaits de la personne")
    pdf.multi_cell(0, 5, latin1(plan.patient_wishes or "-"), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    _heading(pdf, "5. Plan d'actions")
    if plan.actions or plan.problems or plan.objectives:
        _actions_table(pdf, plan)
    else:
        pdf.cell(0, 5, latin1("Aucune action."), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    _heading(pdf, "6. Consentement")
    pdf.multi_cell(0, 5, latin1(consent_line), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    return bytes(pdf.output())
