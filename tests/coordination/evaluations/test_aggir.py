"""The AGGIR algorithm against cases worked by hand from the regulation's tables.

The official guide's worked examples were not available to us: each case below was computed by hand
from the coefficient tables of the décret n° 97-427 (annexe 2-1 du CASF), the group and its score are
written out in the comment so that anyone can check them against the published tables; the cases
cover every rank from 1 to 13 at or next to its threshold.
"""

from __future__ import annotations

import itertools

import pytest

from coordination.evaluations import aggir


def codes(**changed: str) -> dict[str, str]:
    """Every variable A (autonomous) but those given."""
    return {v: changed.get(v, "A") for v in aggir.VARIABLES}


CASES = [
    # (codes, rank, GIR, group, group score)
    (codes(**dict.fromkeys(aggir.VARIABLES, "C")), 1, 1, "A", 4440),  # A: 2000+1200+40+40+60+100+800+200
    (codes(coherence="C", orientation="C", transferts="C", deplacements_interieurs="C"), 2, 2, "A", 4200),
    (
        codes(coherence="C", orientation="C", toilette="C", transferts="B", deplacements_interieurs="B"),
        3,
        2,
        "A",
        3392,
    ),
    (codes(coherence="C", orientation="C"), 4, 2, "B", 2700),  # A: 3200 < 3390; B: 1500 + 1200
    # Bedridden, lucid: A 1240, B 160, C: 40+40+60+160+1000+400 = 1700.
    (
        codes(
            toilette="C",
            habillage="C",
            alimentation="C",
            elimination="C",
            transferts="C",
            deplacements_interieurs="C",
        ),
        5,
        2,
        "C",
        1700,
    ),
    (codes(toilette="B", habillage="B", transferts="C", deplacements_interieurs="C"), 6, 2, "C", 1432),
    (codes(alimentation="C", elimination="C"), 7, 2, "D", 2400),  # A 160, B 160, C 220
    # A 320, B 120, C 460, D 800; E: 400+400+100+800+100 = 1800.
    (codes(toilette="C", habillage="C", alimentation="B", elimination="C", transferts="B"), 8, 3, "E", 1800),
    (codes(toilette="C", habillage="C"), 9, 3, "F", 1000),  # E: 800 < 1200
    # A 2052, B 1532, C 52, D 200, E 700, F 500; G: 150+200+200+200 = 750.
    (codes(coherence="C", toilette="B", habillage="B", alimentation="B"), 10, 4, "G", 750),
    (codes(toilette="B", habillage="B"), 11, 4, "H", 4000),  # G 400 < 650; H: 2000 + 2000
    (codes(toilette="B"), 12, 5, "H", 2000),
    (codes(), 13, 6, "H", 0),
]


@pytest.mark.parametrize(
    ("grid", "rank", "gir", "group", "score"), CASES, ids=[f"rang {c[1]}" for c in CASES]
)
def test_hand_worked_cases(grid: dict[str, str], rank: int, gir: int, group: str, score: int) -> None:
    assert aggir.classify(grid) == aggir.AggirResult(gir=gir, rank=rank, group=group, group_score=score)


def test_one_point_below_a_threshold_falls_to_the_next_group() -> None:
    # Without toilette C the rank 3 case scores 3352 in group A (< 3390), and is ranked by group B.
    result = aggir.classify(
        codes(coherence="C", orientation="C", transferts="B", deplacements_interieurs="B")
    )
    assert (result.group, result.rank) == ("B", 4)


def test_every_grid_gets_a_gir_and_the_two_last_variables_never_count() -> None:
    """All 3^10 grids: a rank and GIR always; déplacements extérieurs and communication weigh 0."""
    for combination in itertools.product("ABC", repeat=8):
        grid = dict(zip(aggir.WEIGHTED, combination, strict=True))
        results = {
            aggir.classify({**grid, "deplacements_exterieurs": e, "communication": c})
            for e, c in itertools.product("ABC", repeat=2)
        }
        assert len(results) == 1
        (result,) = results
        assert 1 <= result.rank <= 13 and result.gir == aggir.RANK_TO_GIR[result.rank]


@pytest.mark.parametrize("bad", [None, "D", "a", ""])
def test_a_missing_or_bad_code_is_refused_in_french(bad: str | None) -> None:
    grid: dict[str, str] = codes()
    if bad is None:
        del grid["transferts"]
    else:
        grid["transferts"] = bad
    with pytest.raises(aggir.AggirInputError, match="« transferts » doit être codée A, B ou C"):
        aggir.classify(grid)


@pytest.mark.parametrize(
    ("done", "code"),
    [
        ((True, True, True, True), "A"),
        ((False, False, False, False), "C"),
        ((True, False, True, True), "B"),
        ((False, False, False, True), "B"),
    ],
)
def test_code_from_the_four_adverbs(done: tuple[bool, ...], code: str) -> None:
    assert aggir.code_from_adverbs(dict(zip(aggir.ADVERBS, done, strict=True))) == code


def test_an_adverb_left_out_is_refused() -> None:
    with pytest.raises(aggir.AggirInputError, match="habituellement"):
        aggir.code_from_adverbs({"spontanement": True, "totalement": True, "correctement": True})
