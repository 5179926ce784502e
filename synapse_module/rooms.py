"""Patient rooms: who may be invited into or join a room linked to a patient dossier.

A room linked to a patient (``POST /api/v1/patients/{id}/rooms``) may hold only the people who may
read the dossier now: habilité professional members of the care circle, and the active professionals
of a habilité structure member, bound to a Matrix account; relatives never. The coordination bot
keeps the rooms in step with the circle; this rule makes Synapse refuse everyone else, so a room
admin cannot work around it from Element. Outside patient rooms (theme rooms, DMs) nothing changes.

The module asks the service ``GET {directory_url}/internal/v1/rooms/{room_id}/access/{user_id}``
(internal secret) → 200 ``{"room_id", "user_id", "patient_room": bool, "authorised": bool}``. Answers
go through the same ``DirectoryCache`` (TTL, size bound, outage back-off) as the directory check,
keyed by room and user, with ``Standing.ACTIVE`` meaning "may be in this room" and
``Standing.INACTIVE`` "may not". Invites ask the service afresh (a member just added to the circle
is invited by the bot at once); joins may reuse a recent "allowed" answer, never a refusal (someone
refused a moment ago and added to the circle since gets in at once). Fail closed: when the service
cannot answer, the invite or join is refused, as the directory gates are.
"""

from __future__ import annotations

import json

from synapse_module.directory import Answer, DirectoryUnavailable, Standing
from synapse_module.rules import Action

ALLOWED = Standing.ACTIVE
REFUSED = Standing.INACTIVE

SERVICE_DOWN = (
    "Le service de coordination est momentanément injoignable : {what}. "
    "Réessayez dans quelques minutes ; si cela dure, prévenez l'administrateur régional."
)
_PENDING = {
    # Said whatever the room is: with the service down, nobody knows whether it is a patient's.
    Action.INVITE: "l'invitation dans ce salon ne peut pas être vérifiée",
    Action.JOIN: "votre entrée dans ce salon ne peut pas être vérifiée",
}
NOT_IN_CIRCLE_INVITE = (
    "Cette personne n'est pas membre habilitée du cercle de soins de ce patient : elle ne peut pas "
    "être invitée dans son salon. Ajoutez-la d'abord au cercle de soins (habilitée) : le robot de "
    "coordination l'invitera."
)
NOT_IN_CIRCLE_JOIN = (
    "Vous n'êtes pas membre habilité du cercle de soins de ce patient : vous ne pouvez pas rejoindre "
    "son salon. Demandez à un membre du cercle de vous y ajouter."
)


def cache_key(room_id: str, user_id: str) -> str:
    """One cache entry per (room, user); NUL never occurs in either ID."""
    return f"{room_id}\x00{user_id}"


def split_key(key: str) -> tuple[str, str]:
    room_id, _, user_id = key.partition("\x00")
    return room_id, user_id


def parse_access_response(status: int, body: bytes, *, room_id: str, user_id: str) -> Standing:
    """Map the service's answer to ALLOWED / REFUSED; anything unexpected is an outage (fail closed)."""
    if status != 200:
        raise DirectoryUnavailable(f"HTTP {status}")
    try:
        payload = json.loads(body)
    except ValueError as exc:
        raise DirectoryUnavailable("malformed JSON") from exc
    if (
        not isinstance(payload, dict)
        or payload.get("room_id") != room_id
        or payload.get("user_id") != user_id
        or not isinstance(payload.get("authorised"), bool)
    ):
        raise DirectoryUnavailable("unexpected payload")
    return ALLOWED if payload["authorised"] else REFUSED


def room_reason(answer: Answer, *, action: Action) -> str | None:
    """Why ``action`` into a room is refused for this user (French), or None when allowed.

    Only a confirmed "allowed" lets someone in: a last-known answer during an outage is not enough.
    """
    if answer.standing is ALLOWED and answer.confirmed:
        return None
    if answer.standing is REFUSED:
        return NOT_IN_CIRCLE_INVITE if action is Action.INVITE else NOT_IN_CIRCLE_JOIN
    return SERVICE_DOWN.format(what=_PENDING.get(action, _PENDING[Action.JOIN]))
