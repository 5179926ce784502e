"""Pure rules of requests to a DAC: the status machine and who may take each step.

Lifecycle::

    brouillon --envoyer--> envoyee --prendre_en_charge--> en_cours --repondre--> cloturee
        |                     |                                         \\------> refusee
        +------annuler--------+-------> annulee                    (decision "refusee")

Only the requester sends or cancels (cancelling is possible until the DAC takes the request); only the
DAC's coordinators take it and answer. Every other move is a 409.

Access at each step (issue 6, item 1: a member removed from the circle must not get back in through a
request drafted earlier) is decided again at that step, never inherited from an earlier one:
- update, send, cancel (requester): the actor is the request's author and, when the request names a
  patient, an authorised member of that patient's circle *now*;
- take, answer (coordinator): the actor is a coordinator of the addressed DAC now and did not create
  the request (nobody takes or answers their own request);
- an answer that includes the patient: the request's author must be authorised on the patient at that
  moment (active in the directory, habilité member directly or through a structure); otherwise the
  inclusion is refused (the DAC may still answer without it).
"""

from __future__ import annotations

from enum import StrEnum

from coordination.errors import Conflict, ErrCode
from coordination.vocab import Decision, RequestStatus, parse


class Step(StrEnum):
    """The moves of the status machine, with the French verb used in messages."""

    SEND = "envoyer"
    CANCEL = "annuler"
    TAKE = "prendre en charge"
    ANSWER = "répondre à"


# (status, step) -> new status.
TRANSITIONS: dict[tuple[RequestStatus, Step], RequestStatus] = {
    (RequestStatus.BROUILLON, Step.SEND): RequestStatus.ENVOYEE,
    (RequestStatus.BROUILLON, Step.CANCEL): RequestStatus.ANNULEE,
    (RequestStatus.ENVOYEE, Step.CANCEL): RequestStatus.ANNULEE,
    (RequestStatus.ENVOYEE, Step.TAKE): RequestStatus.EN_COURS,
    (RequestStatus.EN_COURS, Step.ANSWER): RequestStatus.CLOTUREE,
}


def next_status(current: str, step: Step, *, decision: Decision | None = None) -> RequestStatus:
    """The status after ``step``, or a French 409 naming the current status."""
    status = parse(RequestStatus, current)
    new = TRANSITIONS.get((status, step))
    if new is None:
        raise Conflict(
            f"Impossible de {step.value} une demande au statut « {status.label} » : rechargez la "
            "demande pour voir son état actuel.",
            errcode=ErrCode.BAD_TRANSITION,
        )
    if step is Step.ANSWER and decision is Decision.REFUSEE:
        return RequestStatus.REFUSEE
    return new
