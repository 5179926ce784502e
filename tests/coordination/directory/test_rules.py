"""Pure directory rules: national ids and the mass deactivation threshold."""

from __future__ import annotations

import pytest

from coordination.directory.rules import (
    MASS_DEACTIVATION_FLOOR,
    MASS_DEACTIVATION_RATIO,
    is_mass_deactivation,
    luhn_ok,
    national_id_problem,
)


@pytest.mark.parametrize(
    ("deactivating", "active", "refused"),
    [
        (0, 0, False),
        (50, 60, False),  # most of a small directory, but no more than the floor
        (51, 60, True),
        (51, 1_100, False),  # over the floor, under 5 %
        (60, 1_000, True),
        (75_000, 1_500_000, False),  # exactly 5 %: allowed
        (75_001, 1_500_000, True),
    ],
)
def test_mass_deactivation_needs_both_the_ratio_and_the_floor(
    deactivating: int, active: int, refused: bool
) -> None:
    assert (
        is_mass_deactivation(
            deactivating=deactivating,
            active=active,
            max_ratio=MASS_DEACTIVATION_RATIO,
            floor=MASS_DEACTIVATION_FLOOR,
        )
        is refused
    )


def test_luhn_and_national_ids() -> None:
    assert luhn_ok("79927398713") and not luhn_ok("79927398710")
    assert not luhn_ok("7992739871x") and not luhn_ok("")
    assert "clé de contrôle" in (national_id_problem("879927398710") or "")
    assert national_id_problem("879927398713") is None
    assert national_id_problem("0131234567") is None  # ADELI
    assert "doit commencer par 8" in (national_id_problem("979927398713") or "")
