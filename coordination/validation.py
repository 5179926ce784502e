"""French sentences for pydantic validation errors: one translation for the API and the dashboard."""

from __future__ import annotations

from typing import Any

from coordination.text import CONTROL_PATTERNS


def french_validation_message(err: dict[str, Any]) -> str:
    """Translate a pydantic error into a French sentence a professional can act on."""
    kind = str(err.get("type", ""))
    ctx = err.get("ctx") or {}
    # pydantic joins the choices with an English "or": "'F', 'M' or 'I'".
    expected = str(ctx.get("expected", "")).replace(" or ", " ou ")
    loc = tuple(err.get("loc", ()))
    if loc == ("body",) and kind == "missing":
        return "le corps de la requête est vide : envoyez un objet JSON (voir /docs pour ses champs)"
    messages = {
        "missing": "ce champ est obligatoire",
        "string_too_short": f"trop court (au moins {ctx.get('min_length')} caractères)",
        "string_too_long": f"trop long (au plus {ctx.get('max_length')} caractères)",
        "string_pattern_mismatch": (
            "caractère de contrôle interdit (caractère invisible, ou retour à la ligne dans un champ "
            "d'une seule ligne) : retirez-le"
            if ctx.get("pattern") in CONTROL_PATTERNS
            else "format invalide"
        ),
        "date_from_datetime_parsing": "date invalide : attendu AAAA-MM-JJ",
        "date_parsing": "date invalide : attendu AAAA-MM-JJ",
        "date_from_datetime_inexact": "date invalide : attendu AAAA-MM-JJ",
        "datetime_parsing": "date et heure invalides : attendu AAAA-MM-JJTHH:MM:SS±HH:MM",
        "datetime_from_date_parsing": "date et heure invalides : attendu AAAA-MM-JJTHH:MM:SS±HH:MM",
        "enum": f"valeur non reconnue : choisissez parmi {expected}",
        "literal_error": f"valeur non reconnue : choisissez parmi {expected}",
        "int_parsing": "nombre entier attendu",
        "int_type": "nombre entier attendu",
        "bool_parsing": "vrai ou faux attendu",
        "bool_type": "vrai ou faux attendu",
        "uuid_parsing": "identifiant invalide",
        "uuid_type": "identifiant invalide",
        "string_type": "texte attendu",
        "extra_forbidden": "champ inconnu : retirez-le",
        "json_invalid": "le corps de la requête n'est pas du JSON valide",
        "model_type": "objet JSON attendu",
        "model_attributes_type": "objet JSON attendu (entre accolades { })",
        "list_type": "liste attendue",
        "dict_type": "objet JSON attendu",
        "greater_than_equal": f"doit être supérieur ou égal à {ctx.get('ge')}",
        "less_than_equal": f"doit être inférieur ou égal à {ctx.get('le')}",
        "greater_than": f"doit être supérieur à {ctx.get('gt')}",
        "less_than": f"doit être inférieur à {ctx.get('lt')}",
        "value_error": str(ctx.get("error", err.get("msg", "valeur invalide"))),
    }
    # Unknown kinds keep pydantic's code (stable, greppable) but never its English sentence.
    return messages.get(kind, f"valeur invalide ({kind})")


def field_name(loc: tuple[Any, ...] | list[Any]) -> str:
    """The offending field, dotted (``birth_first_names.0``); ``corps`` for the body as a whole."""
    loc = tuple(loc)
    if loc[:1] == ("body",) and (len(loc) == 1 or isinstance(loc[1], int)) and len(loc) <= 2:
        return "corps"  # the whole body: missing, not JSON (pydantic reports its byte offset), not an object
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "corps"
