"""Pure rules of the sign-up domain: identity matching, auto-approval, activation tokens, passwords."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from zxcvbn import zxcvbn

from coordination.directory.rules import search_key

ACTIVATION_VALIDITY = timedelta(hours=72)
MIN_PASSWORD_LENGTH = 12
MIN_PASSWORD_SCORE = 3  # zxcvbn: 3 = "safely unguessable: moderate protection from offline attacks"

# One sentence for every mismatch (unknown number, other name, delisted): the form must not tell
# whether a number is in the directory.
MISMATCH = (
    "Ces informations ne correspondent à aucun professionnel actif de l'annuaire de la région : "
    "vérifiez votre nom de famille, votre prénom et votre numéro RPPS ou ADELI tels qu'ils figurent "
    "sur votre carte professionnelle, puis recommencez. Si vous venez de vous inscrire à l'ordre, "
    "l'annuaire peut mettre quelques jours à vous connaître."
)


def names_match(*, typed_family: str, typed_given: str, family_name: str, given_name: str) -> bool:
    """Whether the name typed on the form is the directory's (case, accents, hyphens ignored).

    The given name matches if it is the directory's or one of its words ("Marie" for "Marie-Claire"),
    so a professional who writes their usual first name is not refused.
    """
    family_ok = search_key(typed_family) == search_key(family_name) and bool(search_key(family_name))
    typed = search_key(typed_given)
    given = search_key(given_name)
    given_ok = bool(typed) and (typed == given or typed in given.split())
    return family_ok and given_ok


def email_domain(email: str) -> str:
    return email.rsplit("@", 1)[-1].strip().lower()


def auto_approvable(
    *, email: str, trusted_domains: Iterable[str], structure_emails: Sequence[str | None]
) -> bool:
    """The configurable auto-approval rule (the directory match is already established).

    Approved without an administrator when the professional e-mail's domain is one of the
    ``trusted_domains`` (``mssante.fr`` covers every ``*.mssante.fr`` secure-mail domain), or the
    domain of the chosen structure's (or their activity's) e-mail in the directory.
    """
    domain = email_domain(email)
    for trusted in trusted_domains:
        trusted = trusted.strip().lower().lstrip(".")
        if trusted and (domain == trusted or domain.endswith("." + trusted)):
            return True
    return any(known and email_domain(known) == domain for known in structure_emails)


def new_token() -> tuple[str, str]:
    """A fresh activation token (URL-safe, 256 bits) and the SHA-256 kept in the database."""
    token = secrets.token_urlsafe(32)
    return token, token_digest(token)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def link_usable(*, expires_at: datetime, used_at: datetime | None, now: datetime) -> bool:
    return used_at is None and now < expires_at


def password_problem(password: str, *, user_inputs: Sequence[str]) -> str | None:
    """Why ``password`` is too weak (French advice), or None.

    zxcvbn estimates how many guesses an attacker needs (dictionaries, keyboard patterns, dates,
    repetitions, and the person's own name and numbers given in ``user_inputs``).
    """
    if len(password) < MIN_PASSWORD_LENGTH:
        return (
            f"Mot de passe trop court : {MIN_PASSWORD_LENGTH} caractères au moins. Une phrase de "
            "plusieurs mots est facile à retenir et difficile à deviner."
        )
    if len(password) > 512:
        return "Mot de passe trop long : 512 caractères au plus."
    words = [search_key(value).replace(" ", "").lower() for value in user_inputs if value]
    # "jeannemartin" is as guessable as "jeanne" + "martin": give zxcvbn the pairs too.
    words += [a + b for a in words for b in words if a != b]
    result = zxcvbn(password[:100], user_inputs=words)
    if int(result["score"]) < MIN_PASSWORD_SCORE:
        return (
            "Mot de passe trop facile à deviner (mot courant, suite de touches, date, votre nom ou "
            "votre numéro…) : choisissez une phrase de plusieurs mots sans lien évident avec vous."
        )
    return None
