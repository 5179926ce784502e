"""Pure rules of requests to a DAC: vocabularies and the status machine.

Lifecycle::

    brouillon --envoyer--> envoyée --prendre_en_charge--> en_cours --répondre--> clôturée
        |                     |                                         \\------> refusée
        +------annuler--------+-------> annulée                    (decision "refusée")

Only the requester sends or cancels (cancelling is possible until the DAC takes the request); only the
DAC's coordinators take it and answer. Every other move is a 409.
"""

from __future__ import annotations

from coordination.errors import Conflict, ErrCode

REQUEST_STATUSES: dict[str, str] = {
    "brouillon": "Brouillon",
    "envoyée": "Envoyée",
    "en_cours": "En cours",
    "clôturée": "Clôturée",
    "refusée": "Refusée",
    "annulée": "Annulée",
}
URGENCIES: dict[str, str] = {
    "normale": "Normale",
    "urgente": "Urgente",
    "très_urgente": "Très urgente",
}
DECISIONS: dict[str, str] = {
    "acceptée": "Acceptée",
    "réorientée": "Réorientée",
    "refusée": "Refusée",
    "information": "Information donnée",
}

# (status, action) -> new status.
TRANSITIONS: dict[tuple[str, str], str] = {
    ("brouillon", "envoyer"): "envoyée",
    ("brouillon", "annuler"): "annulée",
    ("envoyée", "annuler"): "annulée",
    ("envoyée", "prendre_en_charge"): "en_cours",
    ("en_cours", "répondre"): "clôturée",
}

_ACTION_LABELS = {
    "envoyer": "envoyer",
    "annuler": "annuler",
    "prendre_en_charge": "prendre en charge",
    "répondre": "répondre à",
    "modifier": "modifier",
}


def next_status(current: str, action: str, *, decision: str | None = None) -> str:
    """The status after ``action``, or a French 409 naming the current status."""
    new = TRANSITIONS.get((current, action))
    if new is None:
        raise Conflict(
            f"Impossible de {_ACTION_LABELS.get(action, action)} une demande au statut "
            f"« {REQUEST_STATUSES.get(current, current)} » : rechargez la demande pour voir son "
            "état actuel.",
            errcode=ErrCode.BAD_TRANSITION,
        )
    if action == "répondre" and decision == "refusée":
        return "refusée"
    return new
