"""Pure rules of evaluations: each answer typed by its question, and the score computed from the form.

``check_answers`` turns the JSON answers of a client into typed values (a French 422 names the question
otherwise); ``compute_score`` applies the form's scoring (``aggir``, ``sum`` or ``none``). A draft may
be incomplete; signing requires every required question and a computable score.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from coordination.errors import Invalid
from coordination.evaluations import aggir
from coordination.evaluations.forms import FormDef, ItemDef
from coordination.text import LINE_PATTERN, PARAGRAPH_PATTERN

Answer = bool | int | float | str
MAX_STRING = 500
MAX_TEXT = 5000
MAX_NUMBER = 1e9


@dataclass(frozen=True, slots=True)
class Score:
    """A computed score: its value, the French label people read, and the details of the method."""

    value: float
    label: str
    details: dict[str, Any]


def _refuse(item: ItemDef, why: str) -> Invalid:
    return Invalid(f"Question « {item.text} » : {why}", field=f"answers.{item.link_id}")


def _text(item: ItemDef, value: Any) -> str:
    limit, pattern = (MAX_TEXT, PARAGRAPH_PATTERN) if item.type == "text" else (MAX_STRING, LINE_PATTERN)
    if not isinstance(value, str):
        raise _refuse(item, "la réponse doit être un texte.")
    cleaned = unicodedata.normalize("NFC", value.strip())
    if len(cleaned) > limit or not re.match(pattern, cleaned):
        raise _refuse(item, f"texte de {limit} caractères au plus, sans caractère de contrôle.")
    return cleaned


def _number(item: ItemDef, value: Any) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _refuse(item, "la réponse doit être un nombre.")
    if abs(value) > MAX_NUMBER:
        raise _refuse(item, f"la réponse doit être comprise entre -{MAX_NUMBER:g} et {MAX_NUMBER:g}.")
    if item.type == "integer" and not float(value).is_integer():
        raise _refuse(item, "la réponse doit être un nombre entier.")
    return int(value) if item.type == "integer" else float(value)


def _typed(item: ItemDef, value: Any) -> Answer:
    if item.type == "boolean":
        if not isinstance(value, bool):
            raise _refuse(item, "répondez par oui (true) ou non (false).")
        return value
    if item.type in ("integer", "decimal"):
        return _number(item, value)
    if item.type == "date":
        try:
            return date.fromisoformat(str(value)).isoformat()
        except ValueError as exc:
            raise _refuse(item, "la date doit être au format AAAA-MM-JJ.") from exc
    if item.type == "choice":
        codes = [o.code for o in item.options]
        if value not in codes:
            raise _refuse(item, f"choisissez l'une des réponses proposées ({', '.join(codes)}).")
        return str(value)
    return _text(item, value)


def check_answers(form: FormDef, answers: Mapping[str, Any]) -> dict[str, Answer]:
    """The answers typed by their questions (``null`` or an empty text drops an answer); an unknown
    question or a value of the wrong type is a French 422 naming the question."""
    typed: dict[str, Answer] = {}
    for link_id, value in answers.items():
        item = form.item(link_id)
        if item is None:
            raise Invalid(
                f"Le formulaire « {form.title} » n'a pas de question « {link_id} » : retirez cette réponse.",
                field=f"answers.{link_id}",
            )
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        typed[link_id] = _typed(item, value)
    return typed


def missing_required(form: FormDef, answers: Mapping[str, Answer]) -> list[ItemDef]:
    """The required questions left without an answer."""
    return [i for i in form.items if i.required and i.link_id not in answers]


def _aggir_score(answers: Mapping[str, Answer]) -> Score | None:
    if any(v not in answers for v in aggir.VARIABLES):
        return None
    result = aggir.classify({v: str(answers[v]) for v in aggir.VARIABLES})
    return Score(
        value=result.gir,
        label=f"GIR {result.gir}",
        details={"rang": result.rank, "groupe": result.group, "score_groupe": result.group_score},
    )


def _sum_score(form: FormDef, answers: Mapping[str, Answer]) -> Score | None:
    scored = [i for i in form.items if any(o.ordinal is not None for o in i.options)]
    if not scored or any(i.link_id not in answers for i in scored):
        return None
    total = 0.0
    for item in scored:
        option = next(o for o in item.options if o.code == answers[item.link_id])
        total += option.ordinal or 0.0
    maximum = sum(max((o.ordinal or 0.0) for o in i.options) for i in scored)
    band = next((b for b in form.bands if b.low <= total <= b.high), None)
    label = f"{total:g} / {maximum:g}" + (f" : {band.label}" if band else "")
    return Score(
        value=total, label=label, details={"maximum": maximum, "tranche": band.label if band else None}
    )


def compute_score(form: FormDef, answers: Mapping[str, Answer]) -> Score | None:
    """The form's score, or None while the answers it needs are missing (or the form has none)."""
    if form.scoring == "aggir":
        return _aggir_score(answers)
    if form.scoring == "sum":
        return _sum_score(form, answers)
    return None
