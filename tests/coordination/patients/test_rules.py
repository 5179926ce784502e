"""Identity-vigilance rules: INS key (Corsica included), sex digit, identity status, search keys."""

from __future__ import annotations

from datetime import UTC, date, datetime, tzinfo

import pytest

from coordination.patients import rules


def _with_key(number13: str) -> str:
    return f"{number13}{rules.ins_key(number13):02d}"


def test_ins_key_of_a_published_example() -> None:
    # 2 69 05 49 588 157 80: the NIR example of the social-security documentation.
    assert rules.ins_key("2690549588157") == 80


def test_corsica_2a_counts_as_19() -> None:
    assert rules.ins_key("185052A006048") == 97 - 1850519006048 % 97


def test_corsica_2b_counts_as_18() -> None:
    assert rules.ins_key("299012B012345") == 97 - 2990118012345 % 97
    assert rules.ins_key("299012b012345") == rules.ins_key("299012B012345")


def test_corsica_letters_elsewhere_are_refused() -> None:
    number = "2A90112345678"
    assert rules.ins_problem(number + "00", sex="F") is not None


def test_valid_corsican_ins_passes() -> None:
    assert rules.ins_problem(_with_key("185052A006048"), sex="M") is None
    assert rules.ins_problem(_with_key("285052B006048"), sex="F") is None


@pytest.mark.parametrize(
    ("number", "problem"),
    [
        ("26905495881578", "15 caractères"),  # 14 characters
        ("2690549588157800", "15 caractères"),
        ("569054958815780", "15 caractères"),  # 5 is no sex digit
        ("269054958815781", "clé"),
        ("26905495881578A", "15 caractères"),
    ],
)
def test_malformed_or_wrong_key_is_explained(number: str, problem: str) -> None:
    found = rules.ins_problem(number, sex="F")
    assert found is not None and problem in found


@pytest.mark.parametrize(
    ("first", "sex", "ok"),
    [
        ("1", "M", True),
        ("2", "F", True),
        ("1", "F", False),
        ("2", "M", False),
        ("3", "M", True),
        ("4", "F", True),
        ("7", "M", True),
        ("8", "F", True),
        ("8", "M", False),
        ("7", "F", False),
        ("7", "I", True),
        ("2", "I", True),
    ],
)
def test_sex_digit_must_match_the_sex_trait(first: str, sex: str, ok: bool) -> None:
    number = _with_key(f"{first}690549588157")
    assert (rules.ins_problem(number, sex=sex) is None) is ok


def test_nia_is_told_apart() -> None:
    assert rules.is_nia(_with_key("7690549588157"))
    assert not rules.is_nia("269054958815780")


def test_normalise_drops_typing_separators() -> None:
    assert rules.normalise_ins("2 69 05 49 588 157 80") == "269054958815780"
    assert rules.normalise_ins("1.85.05.2a.006.048-71") == "185052A00604871"


@pytest.mark.parametrize(
    ("insi", "document", "attributes", "status"),
    [
        (False, False, {}, "provisoire"),
        (True, False, {}, "recuperee"),
        (False, True, {}, "validee"),
        (True, True, {}, "qualifiee"),
        (True, True, {"homonyme": True}, "provisoire"),
        (True, True, {"douteuse": True}, "provisoire"),
        (True, False, {"fictive": True}, "provisoire"),
        (False, True, {"homonyme": True, "fictive": True}, "provisoire"),
    ],
)
def test_identity_status_table(insi: bool, document: bool, attributes: dict[str, bool], status: str) -> None:
    flags = {"homonyme": False, "douteuse": False, "fictive": False, **attributes}
    found, forced = rules.identity_status(insi_retrieved=insi, document_checked=document, **flags)
    assert found == status
    assert forced == [name for name in ("homonyme", "douteuse", "fictive") if flags[name]]


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ("Le Goff-Hervé", "LEGOFFHERVE"),
        ("d'Artagnan", "DARTAGNAN"),
        ("ŒUVRAY", "OEUVRAY"),
        ("Müller", "MULLER"),
        ("  çà  ", "CA"),
    ],
)
def test_search_key_ignores_case_accents_and_separators(raw: str, key: str) -> None:
    assert rules.search_key(raw) == key


def test_prefix_bound_is_above_every_longer_key() -> None:
    bound = rules.prefix_upper_bound("DUP")
    assert "DUP" < "DUPONT" < "DUPZZZZ9" < bound < "DUQ"


class _Clock(datetime):
    """A clock stopped at 23:30 UTC on 1 March 2026, i.e. 00:30 on 2 March in Paris."""

    @classmethod
    def now(cls, tz: tzinfo | None = None) -> _Clock:
        instant = cls(2026, 3, 1, 23, 30, tzinfo=UTC)
        return instant.astimezone(tz) if tz is not None else instant.replace(tzinfo=None)


def test_today_for_a_patient_is_the_date_in_paris(monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 7: at 00:30 in Paris a server running in UTC is still on the day before."""
    monkeypatch.setattr(rules, "datetime", _Clock)
    assert rules.today() == date(2026, 3, 2)
