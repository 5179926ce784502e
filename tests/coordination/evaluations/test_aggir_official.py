"""AGGIR against the regulation's own text: « Algorithme de la grille AGGIR » (décret n° 2001-1084,
annexe II; annexe 2-2 of the CASF). The tables below are transcribed from that text independently of
``coordination.evaluations.aggir``, and the worked cases are computed by hand from them."""

from __future__ import annotations

import pytest

from coordination.evaluations import aggir

# Variable order: cohérence, orientation, toilette, habillage, alimentation, élimination, transfert,
# déplacement intérieur. (value when C, value when B) as printed in the annex.
OFFICIAL = {
    "A": [(2000, 0), (1200, 0), (40, 16), (40, 16), (60, 20), (100, 16), (800, 120), (200, 32)],
    "B": [(1500, 320), (1200, 120), (40, 16), (40, 16), (60, 0), (100, 16), (800, 120), (-80, -40)],
    "C": [(0, 0), (0, 0), (40, 16), (40, 16), (60, 20), (160, 20), (1000, 200), (400, 40)],
    "D": [(0, 0), (0, 0), (0, 0), (0, 0), (2000, 200), (400, 200), (2000, 200), (200, 0)],
    "E": [(400, 0), (400, 0), (400, 100), (400, 100), (400, 100), (800, 100), (800, 100), (200, 0)],
    "F": [(200, 100), (200, 100), (500, 100), (500, 100), (500, 100), (500, 100), (500, 100), (200, 0)],
    "G": [(150, 0), (150, 0), (300, 200), (300, 200), (500, 200), (500, 200), (400, 200), (200, 100)],
    "H": [(0, 0), (0, 0), (3000, 2000), (3000, 2000), (3000, 2000), (3000, 2000), (1000, 2000), (1000, 1000)],
}
OFFICIAL_THRESHOLDS = {
    "A": [(4380, 1), (4140, 2), (3390, 3)],
    "B": [(2016, 4)],
    "C": [(1700, 5), (1432, 6)],
    "D": [(2400, 7)],
    "E": [(1200, 8)],
    "F": [(800, 9)],
    "G": [(650, 10)],
    "H": [(4000, 11), (2000, 12), (0, 13)],
}
OFFICIAL_GIR = {1: 1, 2: 2, 3: 2, 4: 2, 5: 2, 6: 2, 7: 2, 8: 3, 9: 3, 10: 4, 11: 4, 12: 5, 13: 6}


def test_the_tables_are_the_regulation_s() -> None:
    for group, (coefficients, thresholds) in aggir.GROUPS.items():
        assert list(coefficients) == OFFICIAL[group], group
        assert list(thresholds) == OFFICIAL_THRESHOLDS[group], group
    assert set(aggir.GROUPS) == set(OFFICIAL)
    assert aggir.RANK_TO_GIR == OFFICIAL_GIR


def _grid(**codes: str) -> dict[str, str]:
    grid = dict.fromkeys(aggir.VARIABLES, "A")
    grid.update(codes)
    return grid


# Worked by hand from the annex: the group that decides, its sum, the rank, the GIR.
CASES = [
    # all eight C: group A, 2000+1200+40+40+60+100+800+200 = 4440 >= 4380 -> rank 1
    (dict.fromkeys(aggir.VARIABLES[:8], "C"), 1, 1),
    # cohérence C, transfert C: A = 2800 < 3390; B = 1500 + 800 = 2300 >= 2016 -> rank 4 -> GIR 2
    ({"coherence": "C", "transferts": "C"}, 4, 2),
    # alimentation C, élimination C: A 160, B 160, C 220 < 1432; D = 2000 + 400 = 2400 -> rank 7 -> GIR 2
    ({"alimentation": "C", "elimination": "C"}, 7, 2),
    # toilette C, habillage C: E = 800 < 1200; F = 500 + 500 = 1000 >= 800 -> rank 9 -> GIR 3
    ({"toilette": "C", "habillage": "C"}, 9, 3),
    # alimentation C, élimination B: D 2200, E 500, F 600; G = 500 + 200 = 700 >= 650 -> rank 10 -> GIR 4
    ({"alimentation": "C", "elimination": "B"}, 10, 4),
    # toilette C, habillage B: G 500 < 650; H = 3000 + 2000 = 5000 >= 4000 -> rank 11 -> GIR 4
    ({"toilette": "C", "habillage": "B"}, 11, 4),
    # toilette B alone: G 200; H = 2000 -> rank 12 -> GIR 5
    ({"toilette": "B"}, 12, 5),
    # nothing: every sum is 0 -> rank 13 -> GIR 6
    ({}, 13, 6),
    # the two last variables never count: all C there, A elsewhere -> still GIR 6
    ({"deplacements_exterieurs": "C", "communication": "C"}, 13, 6),
]


@pytest.mark.parametrize(("codes", "rank", "gir"), CASES)
def test_worked_cases(codes: dict[str, str], rank: int, gir: int) -> None:
    result = aggir.classify(_grid(**codes))
    assert (result.rank, result.gir) == (rank, gir)
