"""The pure decisions: gates, sessions, logins, and whose standing each membership needs."""

from __future__ import annotations

import pytest

from synapse_module.directory import Answer, Standing
from synapse_module.rules import (
    Action,
    Check,
    Role,
    gate_reason,
    login_reason,
    membership_checks,
    registration_reason,
    room_creation_checks,
    session_expired,
)

ACTIVE = Answer(Standing.ACTIVE, confirmed=True)
INACTIVE = Answer(Standing.INACTIVE, confirmed=True)
NOT_BOUND = Answer(Standing.NOT_BOUND, confirmed=True)
DOWN_UNKNOWN = Answer(None, confirmed=False)
DOWN_LAST_ACTIVE = Answer(Standing.ACTIVE, confirmed=False)
DOWN_LAST_INACTIVE = Answer(Standing.INACTIVE, confirmed=False)


@pytest.mark.parametrize("action", list(Action))
@pytest.mark.parametrize("role", list(Role))
def test_only_a_confirmed_active_professional_passes_a_gate(action: Action, role: Role) -> None:
    assert gate_reason(ACTIVE, action=action, role=role) is None
    for answer in (INACTIVE, NOT_BOUND, DOWN_UNKNOWN, DOWN_LAST_ACTIVE, DOWN_LAST_INACTIVE):
        reason = gate_reason(answer, action=action, role=role)
        assert reason is not None and ("(RPPS/ROR)" in reason or "injoignable" in reason)


def test_invitee_reasons_say_why_the_person_cannot_be_invited() -> None:
    assert gate_reason(NOT_BOUND, action=Action.INVITE, role=Role.TARGET) == (
        "Cette personne n'est pas inscrite dans l'annuaire des professionnels (RPPS/ROR) : "
        "elle ne peut pas être invitée."
    )
    inactive = gate_reason(INACTIVE, action=Action.INVITE, role=Role.TARGET)
    assert inactive is not None and "plus inscrite comme professionnel actif" in inactive


def test_actor_reasons_say_what_they_cannot_do_and_whom_to_contact() -> None:
    join = gate_reason(INACTIVE, action=Action.JOIN, role=Role.ACTOR)
    assert join is not None
    assert "vous ne pouvez pas rejoindre ce salon" in join and "Contactez" in join
    invite = gate_reason(NOT_BOUND, action=Action.INVITE, role=Role.ACTOR)
    assert invite is not None and "Votre compte n'est rattaché à aucun professionnel" in invite


def test_directory_outage_refuses_gates_with_a_retry_message() -> None:
    for answer in (DOWN_UNKNOWN, DOWN_LAST_ACTIVE):
        reason = gate_reason(answer, action=Action.INVITE, role=Role.TARGET)
        assert reason is not None
        assert reason.startswith("L'annuaire des professionnels est momentanément injoignable")
        assert "Réessayez" in reason
    # Last known inactive: say so rather than "unreachable".
    last_inactive = gate_reason(DOWN_LAST_INACTIVE, action=Action.JOIN, role=Role.ACTOR)
    assert last_inactive is not None and "plus inscrit" in last_inactive


def test_registration_reasons() -> None:
    uid = "@jmartin:azurezo.test"
    assert registration_reason(ACTIVE, user_id=uid) is None
    not_bound = registration_reason(NOT_BOUND, user_id=uid)
    assert not_bound is not None and uid in not_bound and "azurezo account create" in not_bound
    inactive = registration_reason(INACTIVE, user_id=uid)
    assert inactive is not None and "n'est pas actif" in inactive
    down = registration_reason(DOWN_LAST_ACTIVE, user_id=uid)
    assert down is not None and "injoignable" in down


def test_sessions_end_for_inactive_or_unbound_but_survive_an_outage() -> None:
    assert not session_expired(ACTIVE)
    assert session_expired(INACTIVE)
    assert session_expired(NOT_BOUND)
    assert not session_expired(DOWN_LAST_ACTIVE)  # last known active: keep working
    assert not session_expired(DOWN_UNKNOWN)  # unknown (e.g. after a restart): keep working
    assert session_expired(DOWN_LAST_INACTIVE)


def test_login_follows_the_session_standard_with_a_french_reason() -> None:
    assert login_reason(ACTIVE) is None
    assert login_reason(DOWN_LAST_ACTIVE) is None
    assert login_reason(DOWN_UNKNOWN) is None
    inactive = login_reason(INACTIVE)
    assert inactive is not None and "la connexion est refusée" in inactive
    not_bound = login_reason(NOT_BOUND)
    assert not_bound is not None and "rattaché à aucun professionnel" in not_bound


def test_membership_checks() -> None:
    a, b = "@a:s", "@b:s"
    assert membership_checks(membership="invite", sender=a, target=b, previous_membership=None) == [
        Check(a, Role.ACTOR),
        Check(b, Role.TARGET),
    ]
    for previous in (None, "invite", "leave", "knock"):
        assert membership_checks(membership="join", sender=b, target=b, previous_membership=previous) == [
            Check(b, Role.ACTOR)
        ]
    # A profile change re-sends a join: nobody new gets in.
    assert membership_checks(membership="join", sender=b, target=b, previous_membership="join") == []
    for membership in ("leave", "ban", "knock"):
        assert membership_checks(membership=membership, sender=a, target=b, previous_membership="join") == []


def test_room_creation_checks_creator_then_invitees() -> None:
    assert room_creation_checks(creator="@a:s", invitees=["@b:s", "@c:s"]) == [
        Check("@a:s", Role.ACTOR),
        Check("@b:s", Role.TARGET),
        Check("@c:s", Role.TARGET),
    ]


def test_service_accounts_get_a_message_rate_of_their_own() -> None:
    from synapse_module.rules import SERVICE_MESSAGE_RATE, service_rate_override

    bots = frozenset({"@azurezo-bot:azurezo.test"})
    for limiter in ("rc_message", "rc_messages"):  # with and without an rc_message section
        assert service_rate_override("@azurezo-bot:azurezo.test", limiter, service_accounts=bots) == (
            SERVICE_MESSAGE_RATE
        )
    assert service_rate_override("@jeanne:azurezo.test", "rc_messages", service_accounts=bots) is None
    assert service_rate_override("@azurezo-bot:azurezo.test", "rc_login", service_accounts=bots) is None
