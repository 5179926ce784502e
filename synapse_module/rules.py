"""Who may register, invite, join, log in and keep a session: pure decisions, French reasons.

Every function here is pure: the callbacks in ``synapse_module.module`` gather the directory
answers and turn the result into Synapse's return values.
"""

from __future__ import annotations

import enum
from collections.abc import Collection
from dataclasses import dataclass

from synapse_module.directory import Answer, Standing


class Action(enum.Enum):
    INVITE = "invite"
    JOIN = "join"
    CREATE_ROOM = "create_room"


class Role(enum.Enum):
    ACTOR = "actor"  # the user doing it ("vous")
    TARGET = "target"  # the person invited ("cette personne")


@dataclass(frozen=True, slots=True)
class Check:
    """One user whose standing an action requires."""

    user_id: str
    role: Role


_CANNOT = {
    Action.INVITE: "vous ne pouvez pas inviter d'autres personnes",
    Action.JOIN: "vous ne pouvez pas rejoindre ce salon",
    Action.CREATE_ROOM: "vous ne pouvez pas créer de salon ni de conversation",
}
_PENDING = {
    Action.INVITE: "l'invitation ne peut pas être vérifiée",
    Action.JOIN: "votre entrée dans le salon ne peut pas être vérifiée",
    Action.CREATE_ROOM: "la création de la conversation ne peut pas être vérifiée",
}

DIRECTORY_DOWN = (
    "L'annuaire des professionnels est momentanément injoignable : {what}. "
    "Réessayez dans quelques minutes ; si cela dure, prévenez l'administrateur régional."
)


def gate_reason(answer: Answer, *, action: Action, role: Role) -> str | None:
    """Why ``action`` is refused for this user, in French, or None when it is allowed.

    Gates need a confirmed ACTIVE standing: a last-known answer served during a directory outage
    is not enough to let anyone new in.
    """
    standing = answer.standing
    if standing is Standing.ACTIVE and answer.confirmed:
        return None
    if standing is None or standing is Standing.ACTIVE:
        return DIRECTORY_DOWN.format(what=_PENDING[action])
    if role is Role.TARGET:
        if standing is Standing.NOT_BOUND:
            return (
                "Cette personne n'est pas inscrite dans l'annuaire des professionnels (RPPS/ROR) : "
                "elle ne peut pas être invitée."
            )
        return (
            "Cette personne n'est plus inscrite comme professionnel actif dans l'annuaire "
            "(RPPS/ROR) : elle ne peut pas être invitée."
        )
    if standing is Standing.NOT_BOUND:
        return (
            "Votre compte n'est rattaché à aucun professionnel de l'annuaire (RPPS/ROR) : "
            f"{_CANNOT[action]}. Contactez l'administrateur régional."
        )
    return (
        "Vous n'êtes plus inscrit comme professionnel actif dans l'annuaire (RPPS/ROR) : "
        f"{_CANNOT[action]}. Contactez votre ordre professionnel ou l'administrateur régional."
    )


def registration_reason(answer: Answer, *, user_id: str) -> str | None:
    """Why the account ``user_id`` may not be created, in French, or None when it may."""
    standing = answer.standing
    if standing is Standing.ACTIVE and answer.confirmed:
        return None
    if standing is None or standing is Standing.ACTIVE:
        return DIRECTORY_DOWN.format(what=f"la création du compte {user_id} ne peut pas être vérifiée")
    if standing is Standing.NOT_BOUND:
        return (
            f"Aucun professionnel de l'annuaire (RPPS/ROR) n'est rattaché à l'identifiant "
            f"{user_id} : le compte ne peut pas être créé. Rattachez d'abord un professionnel "
            "avec « azurezo account create »."
        )
    return (
        f"Le professionnel rattaché à {user_id} n'est pas actif dans l'annuaire (RPPS/ROR) : "
        "le compte ne peut pas être créé."
    )


def session_expired(answer: Answer) -> bool:
    """Whether the user's sessions must stop working now.

    Inactive or unbound (even as last known during an outage): yes. Active, or unknown because the
    directory is unreachable: no; an outage of the directory must not log everyone out.
    """
    return answer.standing in (Standing.INACTIVE, Standing.NOT_BOUND)


def login_reason(answer: Answer) -> str | None:
    """Why a login is refused, in French, or None. Same standard as sessions."""
    if answer.standing is Standing.INACTIVE:
        return (
            "Vous n'êtes plus inscrit comme professionnel actif dans l'annuaire (RPPS/ROR) : la "
            "connexion est refusée. Contactez votre ordre professionnel ou l'administrateur "
            "régional."
        )
    if answer.standing is Standing.NOT_BOUND:
        return (
            "Votre compte n'est rattaché à aucun professionnel de l'annuaire (RPPS/ROR) : la "
            "connexion est refusée. Contactez l'administrateur régional."
        )
    return None


def membership_checks(
    *, membership: str, sender: str, target: str, previous_membership: str | None
) -> list[Check]:
    """Whose standing an ``m.room.member`` event requires.

    An invite needs both the inviter and the invitee; a join needs the joiner, except when they
    are already joined (a display-name or avatar change re-sends the join event). Leaving, kicks,
    bans and knocks need nobody.
    """
    if membership == "invite":
        return [Check(sender, Role.ACTOR), Check(target, Role.TARGET)]
    if membership == "join" and previous_membership != "join":
        return [Check(target, Role.ACTOR)]
    return []


def room_creation_checks(*, creator: str, invitees: list[str]) -> list[Check]:
    """Whose standing creating a room (a DM is a room created with ``invite``) requires."""
    return [Check(creator, Role.ACTOR), *(Check(i, Role.TARGET) for i in invitees)]


SERVICE_MESSAGE_RATE = (20.0, 200)
"""Messages per second and burst allowed to our service accounts (the coordination bot answers every
professional of the region: Synapse's per-user default, 0.2/s burst 10, would make it queue replies)."""

MESSAGE_LIMITERS = frozenset({"rc_message", "rc_messages"})
"""Names Synapse gives its event-sending limiter: ``rc_message`` when the homeserver config has an
``rc_message`` section (ours always does), ``rc_messages`` when it falls back on the old flat keys."""


def service_rate_override(
    user_id: str, limiter_name: str, *, service_accounts: Collection[str]
) -> tuple[float, int] | None:
    """The message rate a service account gets instead of Synapse's per-user one; None for everyone
    else and for every other limiter (logins, joins, invites stay limited for the bot too)."""
    if limiter_name in MESSAGE_LIMITERS and user_id in service_accounts:
        return SERVICE_MESSAGE_RATE
    return None
