"""The AGGIR algorithm of the regulation (pure): ten discriminant variables coded A/B/C -> rank -> GIR.

Source: the regulation's algorithm, « Algorithme de la grille AGGIR » (décret n° 2001-1084 du 20 novembre
2001, annexe II, now annexe 2-2 of the Code de l'action sociale et des familles; the grid itself is annexe
2-1). Every coefficient and threshold below was checked against that text (Légifrance, as transcribed in
etalab/lois-non-codifiees-et-reglements-francais). The eight first discriminant variables (cohérence,
orientation, toilette, habillage, alimentation, élimination, transferts, déplacements à l'intérieur)
are weighted by the tables of eight groups, A to H, tried in that order: the first group whose score
reaches one of its thresholds gives the rank (1 to 13); the rank gives the GIR (1 to 6). The two last
discriminant variables (déplacements à l'extérieur, communication à distance) are coded on the grid but
weigh 0 in every group: they do not change the GIR.

A variable is coded from the four adverbs of the guide (the person does it alone *spontanément*,
*totalement*, *correctement*, *habituellement*): all four -> A, none -> C, any other mix -> B
(``code_from_adverbs``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

Code = Literal["A", "B", "C"]

VARIABLES: tuple[str, ...] = (
    "coherence",
    "orientation",
    "toilette",
    "habillage",
    "alimentation",
    "elimination",
    "transferts",
    "deplacements_interieurs",
    "deplacements_exterieurs",
    "communication",
)
"""The ten discriminant variables, in the grid's order (the ``linkId`` of the form's items)."""

WEIGHTED = VARIABLES[:8]

# (coefficient when coded C, coefficient when coded B) for the eight weighted variables, per group,
# in the order of ``WEIGHTED``; then the thresholds (lowest score, rank), highest first.
_GroupTable = tuple[tuple[tuple[int, int], ...], tuple[tuple[int, int], ...]]
GROUPS: dict[str, _GroupTable] = {
    "A": (
        ((2000, 0), (1200, 0), (40, 16), (40, 16), (60, 20), (100, 16), (800, 120), (200, 32)),
        ((4380, 1), (4140, 2), (3390, 3)),
    ),
    "B": (
        ((1500, 320), (1200, 120), (40, 16), (40, 16), (60, 0), (100, 16), (800, 120), (-80, -40)),
        ((2016, 4),),
    ),
    "C": (
        ((0, 0), (0, 0), (40, 16), (40, 16), (60, 20), (160, 20), (1000, 200), (400, 40)),
        ((1700, 5), (1432, 6)),
    ),
    "D": (
        ((0, 0), (0, 0), (0, 0), (0, 0), (2000, 200), (400, 200), (2000, 200), (200, 0)),
        ((2400, 7),),
    ),
    "E": (
        ((400, 0), (400, 0), (400, 100), (400, 100), (400, 100), (800, 100), (800, 100), (200, 0)),
        ((1200, 8),),
    ),
    "F": (
        ((200, 100), (200, 100), (500, 100), (500, 100), (500, 100), (500, 100), (500, 100), (200, 0)),
        ((800, 9),),
    ),
    "G": (
        ((150, 0), (150, 0), (300, 200), (300, 200), (500, 200), (500, 200), (400, 200), (200, 100)),
        ((650, 10),),
    ),
    "H": (
        ((0, 0), (0, 0), (3000, 2000), (3000, 2000), (3000, 2000), (3000, 2000), (1000, 2000), (1000, 1000)),
        ((4000, 11), (2000, 12), (0, 13)),
    ),
}

RANK_TO_GIR: dict[int, int] = {
    # « Passage des rangs aux groupes »: 1 -> 1; 2 to 7 -> 2; 8, 9 -> 3; 10, 11 -> 4; 12 -> 5; 13 -> 6.
    1: 1,
    2: 2,
    3: 2,
    4: 2,
    5: 2,
    6: 2,
    7: 2,
    8: 3,
    9: 3,
    10: 4,
    11: 4,
    12: 5,
    13: 6,
}

GIR_LABELS: dict[int, str] = {
    1: "GIR 1 : perte d'autonomie mentale, corporelle, locomotrice et sociale",
    2: "GIR 2 : confiné au lit ou au fauteuil, fonctions mentales partiellement altérées, ou fonctions "
    "mentales altérées mais capacité de se déplacer",
    3: "GIR 3 : autonomie mentale conservée, aides pluriquotidiennes pour l'autonomie corporelle",
    4: "GIR 4 : aide pour les transferts, la toilette et l'habillage, ou pour les activités corporelles "
    "et les repas",
    5: "GIR 5 : aide ponctuelle pour la toilette, la préparation des repas et le ménage",
    6: "GIR 6 : autonome pour les actes essentiels de la vie courante",
}


@dataclass(frozen=True, slots=True)
class AggirResult:
    """The rank (1-13), the GIR (1-6), the group that classified it and that group's score."""

    gir: int
    rank: int
    group: str
    group_score: int


class AggirInputError(ValueError):
    """A discriminant variable is missing or not coded A, B or C (the message is French)."""


def group_score(group: str, codes: Mapping[str, str]) -> int:
    """The score of ``codes`` in one group's table (sum of the coefficients of the B and C codes)."""
    coefficients, _ = GROUPS[group]
    total = 0
    for variable, (if_c, if_b) in zip(WEIGHTED, coefficients, strict=True):
        code = codes[variable]
        total += if_c if code == "C" else if_b if code == "B" else 0
    return total


def _checked(codes: Mapping[str, str]) -> dict[str, str]:
    checked = {}
    for variable in VARIABLES:
        code = codes.get(variable)
        if code not in ("A", "B", "C"):
            raise AggirInputError(
                f"La variable « {variable} » doit être codée A, B ou C (reçu : {code!r}) : "
                "complétez la grille avant le calcul du GIR."
            )
        checked[variable] = code
    return checked


def classify(codes: Mapping[str, str]) -> AggirResult:
    """Rank and GIR of the ten discriminant variables coded A/B/C (keys: ``VARIABLES``)."""
    checked = _checked(codes)
    for group in GROUPS:
        score = group_score(group, checked)
        for lowest, rank in GROUPS[group][1]:
            if score >= lowest:
                return AggirResult(gir=RANK_TO_GIR[rank], rank=rank, group=group, group_score=score)
    raise AssertionError("group H classifies every score (its last threshold is 0)")  # pragma: no cover


ADVERBS: tuple[str, ...] = ("spontanement", "totalement", "correctement", "habituellement")
"""S, T, C, H: what the person does alone, as the guide asks for each variable."""


def code_from_adverbs(done: Mapping[str, bool]) -> Code:
    """A when the person does it alone spontanément, totalement, correctement and habituellement;
    C when none of the four holds (« ne fait pas »); B for any other mix (« fait partiellement »)."""
    missing = [a for a in ADVERBS if a not in done]
    if missing:
        raise AggirInputError(
            f"Adverbe(s) non renseigné(s) : {', '.join(missing)}. Répondez oui ou non pour chacun des quatre."
        )
    count = sum(1 for a in ADVERBS if done[a])
    if count == len(ADVERBS):
        return "A"
    return "C" if count == 0 else "B"
