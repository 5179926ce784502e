"""Evaluation forms as data: FHIR R4B ``Questionnaire`` JSON files in a directory, no code per form.

A file ``<anything>.json`` holding a Questionnaire with ``status`` ``active`` is a form; dropping one in
the built-in directory (``coordination/evaluations/forms/``) or in the instance's
``evaluation_forms_dir`` makes it appear in the forms list on the next request (files are re-read when
their size or modification time changes). Each file is validated with ``fhir.resources`` (R4B); one that
does not validate is skipped with a warning naming the file, never served half-read.

What the service reads from a Questionnaire:
- ``id`` (the form's code), ``version``, ``title``, ``description``, ``url``;
- items: ``group`` (one level of sections), ``boolean``, ``integer``, ``decimal``, ``string``, ``text``,
  ``date``, ``choice`` (``answerOption.valueCoding``), with ``required``;
- how to score it, an extension ``SCORING_URL`` with ``valueCode``: ``aggir`` (the regulation's algorithm,
  items named as ``aggir.VARIABLES``), ``sum`` (the sum of the ``ordinalValue`` extensions of the chosen
  codings, with optional ``SCORE_BAND_URL`` bands naming the result) or ``none``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

from fhir.resources.R4B.questionnaire import Questionnaire, QuestionnaireItem
from pydantic import ValidationError

logger = logging.getLogger(__name__)

BUILTIN_DIR = Path(__file__).parent / "forms"
SCORING_URL = "https://azurezo.fr/fhir/StructureDefinition/questionnaire-scoring"
SCORE_BAND_URL = "https://azurezo.fr/fhir/StructureDefinition/questionnaire-score-band"
ORDINAL_URL = "http://hl7.org/fhir/StructureDefinition/ordinalValue"

ItemType = Literal["boolean", "integer", "decimal", "string", "text", "date", "choice"]
Scoring = Literal["aggir", "sum", "none"]
_ITEM_TYPES = {"boolean", "integer", "decimal", "string", "text", "date", "choice"}


@dataclass(frozen=True, slots=True)
class OptionDef:
    code: str
    display: str
    system: str | None
    ordinal: float | None


@dataclass(frozen=True, slots=True)
class ItemDef:
    link_id: str
    text: str
    type: ItemType
    required: bool
    section: str | None
    section_text: str | None
    options: tuple[OptionDef, ...] = ()


@dataclass(frozen=True, slots=True)
class ScoreBand:
    low: float
    high: float
    label: str


@dataclass(frozen=True, slots=True)
class FormDef:
    """A form as the service uses it, and the Questionnaire it was read from (served as is)."""

    id: str
    version: str
    title: str
    description: str
    url: str | None
    scoring: Scoring
    items: tuple[ItemDef, ...]
    bands: tuple[ScoreBand, ...]
    questionnaire: dict[str, Any] = field(repr=False, compare=False)

    def item(self, link_id: str) -> ItemDef | None:
        return next((i for i in self.items if i.link_id == link_id), None)


class FormFileError(ValueError):
    """A form file that cannot be served (message in French, naming what to fix)."""


def _ext(extensions: Sequence[Any] | None, url: str) -> list[Any]:
    return [e for e in extensions or () if e.url == url]


def _option(opt: Any) -> OptionDef:
    coding = opt.valueCoding
    if coding is None or not coding.code:
        raise FormFileError("chaque answerOption doit être un valueCoding avec un code")
    ordinals = _ext(coding.extension, ORDINAL_URL)
    ordinal = float(ordinals[0].valueDecimal) if ordinals else None
    return OptionDef(
        code=coding.code, display=coding.display or coding.code, system=coding.system, ordinal=ordinal
    )


def _items(items: Sequence[QuestionnaireItem], section: QuestionnaireItem | None) -> list[ItemDef]:
    found: list[ItemDef] = []
    for item in items:
        if item.type == "group":
            if section is not None:
                raise FormFileError(f"groupe « {item.linkId} » imbriqué : un seul niveau de sections")
            found.extend(_items(item.item or [], item))
            continue
        if item.type == "display":
            continue
        if item.type not in _ITEM_TYPES:
            raise FormFileError(f"type de question non pris en charge : {item.type} ({item.linkId})")
        options = tuple(_option(o) for o in item.answerOption or ())
        if item.type == "choice" and not options:
            raise FormFileError(f"la question à choix « {item.linkId} » n'a pas d'answerOption")
        found.append(
            ItemDef(
                link_id=str(item.linkId),
                text=str(item.text or item.linkId),
                type=cast(ItemType, item.type),
                required=bool(item.required),
                section=section.linkId if section else None,
                section_text=(section.text or section.linkId) if section else None,
                options=options,
            )
        )
    return found


def _bands(q: Questionnaire) -> tuple[ScoreBand, ...]:
    bands = []
    for band in _ext(q.extension, SCORE_BAND_URL):
        parts = {e.url: e for e in band.extension or ()}
        try:
            bands.append(
                ScoreBand(
                    low=float(parts["min"].valueDecimal),
                    high=float(parts["max"].valueDecimal),
                    label=str(parts["label"].valueString),
                )
            )
        except (KeyError, TypeError) as exc:
            raise FormFileError("une tranche de score doit avoir min, max et label") from exc
    return tuple(bands)


def parse_questionnaire(data: dict[str, Any]) -> FormDef:
    """Validate ``data`` as a FHIR R4B Questionnaire and read the form out of it."""
    try:
        q = Questionnaire.model_validate(data)
    except ValidationError as exc:
        raise FormFileError(f"Questionnaire FHIR invalide : {exc.errors()[0]['msg']}") from exc
    if not q.id or not q.title:
        raise FormFileError("le Questionnaire doit avoir un id et un titre")
    scorings = _ext(q.extension, SCORING_URL)
    scoring = scorings[0].valueCode if scorings else "none"
    if scoring not in ("aggir", "sum", "none"):
        raise FormFileError(f"méthode de score inconnue : {scoring} (aggir, sum ou none)")
    items = tuple(_items(q.item or [], None))
    if len({i.link_id for i in items}) != len(items):
        raise FormFileError("deux questions ont le même linkId")
    return FormDef(
        id=q.id,
        version=q.version or "1",
        title=q.title,
        description=str(q.description or ""),
        url=q.url,
        scoring=cast(Scoring, scoring),
        items=items,
        bands=_bands(q),
        questionnaire=q.model_dump(mode="json", exclude_none=True),
    )


_cache: dict[Path, tuple[tuple[int, int], FormDef | None]] = {}


def _read(path: Path) -> FormDef | None:
    stat = path.stat()
    key = (stat.st_mtime_ns, stat.st_size)
    cached = _cache.get(path)
    if cached is not None and cached[0] == key:
        return cached[1]
    form: FormDef | None
    try:
        form = parse_questionnaire(json.loads(path.read_text(encoding="utf-8")))
        if form.questionnaire.get("status") != "active":
            form = None
    except (OSError, ValueError) as exc:  # FormFileError and JSONDecodeError are ValueErrors
        logger.warning("evaluation form file %s skipped: %s", path.name, exc)
        form = None
    _cache[path] = (key, form)
    return form


def load_forms(directories: Sequence[Path]) -> dict[str, FormDef]:
    """Every active form of ``directories`` by id (the first directory wins on a duplicate id)."""
    forms: dict[str, FormDef] = {}
    for directory in directories:
        if not directory.is_dir():
            continue
        for path in sorted(directory.glob("*.json")):
            form = _read(path)
            if form is None:
                continue
            if form.id in forms:
                logger.warning("evaluation form %s of %s ignored: id already defined", form.id, path.name)
                continue
            forms[form.id] = form
    return forms


def form_directories(extra: Path | None) -> list[Path]:
    """The built-in forms, then the instance's own directory when configured."""
    return [BUILTIN_DIR] + ([extra] if extra is not None else [])
