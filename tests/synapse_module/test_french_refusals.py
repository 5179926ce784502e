"""Which requests get the module's French answer instead of Synapse's English registration refusals."""

from __future__ import annotations

import pytest

from synapse_module.french_refusals import (
    GUEST_ACCESS_CLOSED,
    REGISTRATION_CLOSED,
    registration_refusal,
)


def refusal(
    method: bytes = b"POST",
    path: str = "v3/register",
    kind: bytes | None = None,
    *,
    authenticated: bool = False,
    registration: bool = False,
    guests: bool = False,
) -> str | None:
    return registration_refusal(
        method=method,
        client_path=[p.encode() for p in path.split("/")],
        kind=kind,
        authenticated=authenticated,
        registration_enabled=registration,
        guest_access_enabled=guests,
    )


@pytest.mark.parametrize("version", ["r0", "v3"])
def test_closed_registration_is_refused_in_french(version: str) -> None:
    assert refusal(path=f"{version}/register") == REGISTRATION_CLOSED
    assert refusal(path=f"{version}/register", kind=b"user") == REGISTRATION_CLOSED
    assert refusal(b"GET", f"{version}/register/available") == REGISTRATION_CLOSED


def test_guest_registration_is_refused_in_french() -> None:
    assert refusal(kind=b"guest") == GUEST_ACCESS_CLOSED
    assert refusal(kind=b"guest", registration=True) == GUEST_ACCESS_CLOSED


@pytest.mark.parametrize(
    "case",
    [
        {"registration": True},  # open registration: the module's registration check decides
        {"kind": b"guest", "guests": True},
        {"authenticated": True},  # application services register with their token
        {"path": "v3/login"},
        {"path": "v3/register/email/requestToken"},
        {"method": b"OPTIONS"},  # CORS preflight: Synapse answers
        {"kind": b"other"},  # Synapse's own 400
    ],
)
def test_everything_else_is_left_to_synapse(case: dict[str, object]) -> None:
    assert refusal(**case) is None  # type: ignore[arg-type]


def test_texts_are_french_and_say_what_to_do() -> None:
    for text in (REGISTRATION_CLOSED, GUEST_ACCESS_CLOSED):
        assert "Demandez" in text and "structure de coordination" in text
