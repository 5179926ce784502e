"""The pure rules of sign-up: name matching, auto-approval, links, password strength."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from coordination.signup import rules


@pytest.mark.parametrize(
    ("family", "given", "expected"),
    [
        ("MARTIN", "Jeanne", True),
        ("martin", "jeanne", True),
        ("Le Gall-Hervé", "Marie-Claire", True),  # accents, hyphens and case
        ("LE GALL HERVE", "Marie", True),  # one of the given names
        ("LE GALL HERVE", "Claire", True),
        ("LE GALL", "Marie-Claire", False),  # part of the family name is not the name
        ("MARTIN", "Jean", False),  # "Jean" is not "Jeanne"
        ("", "Marie", False),
    ],
)
def test_names_match_typography_not_other_people(family: str, given: str, expected: bool) -> None:
    directory = (
        ("LE GALL-HERVÉ", "Marie-Claire")
        if "GALL" in family.upper() or family == ""
        else ("MARTIN", "Jeanne")
    )
    assert (
        rules.names_match(
            typed_family=family, typed_given=given, family_name=directory[0], given_name=directory[1]
        )
        is expected
    )


def test_auto_approval_by_trusted_domain_or_the_structure_s_domain() -> None:
    assert rules.auto_approvable(
        email="j.martin@chu-nice.mssante.fr", trusted_domains=["mssante.fr"], structure_emails=[]
    )
    assert not rules.auto_approvable(
        email="j.martin@mssante.fr.evil.com", trusted_domains=["mssante.fr"], structure_emails=[]
    )
    assert rules.auto_approvable(
        email="j.martin@CHU-Nice.fr", trusted_domains=[], structure_emails=["accueil@chu-nice.fr"]
    )
    assert not rules.auto_approvable(
        email="j.martin@gmail.com", trusted_domains=[], structure_emails=["a@chu-nice.fr", None]
    )
    assert not rules.auto_approvable(email="j.martin@gmail.com", trusted_domains=[""], structure_emails=[])


def test_tokens_are_random_and_only_their_digest_is_kept() -> None:
    token, digest = rules.new_token()
    other, _ = rules.new_token()
    assert token != other and len(token) >= 43
    assert digest == rules.token_digest(token) and token not in digest


def test_a_link_serves_once_and_for_72_hours() -> None:
    now = datetime(2026, 11, 29, 12, tzinfo=UTC)
    expires = now + rules.ACTIVATION_VALIDITY
    assert rules.link_usable(expires_at=expires, used_at=None, now=now)
    assert not rules.link_usable(expires_at=expires, used_at=now, now=now)
    assert not rules.link_usable(expires_at=expires, used_at=None, now=now + timedelta(hours=72))


@pytest.mark.parametrize(
    ("password", "weak"),
    [
        ("court", True),
        ("azertyuiop123", True),  # keyboard row
        ("jeannemartin2026", True),  # the person's own name
        ("motdepasse!!!", True),
        ("tartine-voilier-cerisier-42", False),
        ("Le chat dort sur la commode bleue", False),
    ],
)
def test_password_strength(password: str, weak: bool) -> None:
    problem = rules.password_problem(password, user_inputs=["Jeanne", "MARTIN", "899700000013"])
    assert (problem is not None) is weak


def test_the_throttle_counts_per_kind_and_key() -> None:
    from coordination.signup.throttle import Throttle

    throttle = Throttle({"submit": "3/hour"})
    assert [throttle.allow("submit", "10.0.0.1") for _ in range(4)] == [True, True, True, False]
    assert throttle.allow("submit", "10.0.0.2")  # another address has its own budget
    assert 1 <= throttle.retry_after("submit", "10.0.0.1") <= 3600
