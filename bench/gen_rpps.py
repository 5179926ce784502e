"""Generate a realistic, seeded RPPS extract (classic 52-column layout) for the import benchmark.

    .venv/bin/python bench/gen_rpps.py --lines 2000000 --out bench/out/rpps_2m.txt

About 1.35 lines per person (a fifth of the professionals have 2-3 sites), every line 52 columns with
its trailing ``|``, fields filled the way the public file fills them (~330 bytes a line). All invented.

Two distributions of sites (``--distribution``):

- ``shared`` (default): every line works at one of 300,000 sites drawn at random (~6.7 lines a site);
- ``liberal``: most lines carry a site of their own, as liberal practice does (a cabinet per
  professional): 85 % of the lines get a structure nobody else has, the rest one of 20,000 shared
  sites (hospitals, health centres): about one structure per line.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from coordination.directory.rules import luhn_key
from ror_sync.rpps import CLASSIC_HEADERS

FAMILY = [
    "MARTIN", "BERNARD", "THOMAS", "PETIT", "ROBERT", "RICHARD", "DURAND", "DUBOIS", "MOREAU",
    "LAURENT", "SIMON", "MICHEL", "LEFEBVRE", "LEROY", "ROUX", "DAVID", "BERTRAND", "MOREL", "FOURNIER",
    "GIRARD", "BONNET", "DUPONT", "LAMBERT", "FONTAINE", "ROUSSEAU", "VINCENT", "MULLER", "LEFEVRE",
    "FAURE", "ANDRE", "MERCIER", "BLANC", "GUERIN", "BOYER", "GARNIER", "CHEVALIER", "FRANCOIS",
    "LEGRAND", "GAUTHIER", "GARCIA", "PERRIN", "ROBIN", "CLEMENT", "MORIN", "NICOLAS", "HENRY",
    "ROUSSEL", "MATHIEU", "GAUTIER", "MASSON", "MARCHAND", "DUVAL", "DENIS", "DUMONT", "MARIE",
    "LEMAIRE", "NOEL", "MEYER", "DUFOUR", "MEUNIER", "BRUN", "BLANCHARD", "GIRAUD", "JOLY", "RIVIERE",
    "LUCAS", "BRUNET", "GAILLARD", "BARBIER", "ARNAUD", "MARTINEZ", "GERARD", "ROCHE", "RENARD",
    "SCHMITT", "ROY", "LEROUX", "COLIN", "VIDAL", "CARON", "PICARD", "ROGER", "FABRE", "AUBERT",
    "LEMOINE", "RENAUD", "DUMAS", "LACROIX", "OLIVIER", "PHILIPPE", "BOURGEOIS", "PIERRE", "BENOIT",
    "REY", "LECLERC", "PAYET", "ROLLAND", "LECLERCQ", "GUILLAUME", "LECOMTE", "LOPEZ", "JEAN",
    "DUPUY", "GUILLOT", "HUBERT", "BERGER", "CARPENTIER", "SANCHEZ", "DUPUIS", "MOULIN", "LOUIS",
    "DESCHAMPS", "HUET", "VASSEUR", "PEREZ", "BOUCHER", "FLEURY", "ROYER", "KLEIN", "JACQUET",
    "ADAM", "PARIS", "POIRIER", "MARTY", "AUBRY", "GUYOT", "CARRE", "CHARLES", "RENAULT", "CHARPENTIER",
    "MÉNARD", "MAILLARD", "BARON", "BERTIN", "BAILLY", "HERVÉ", "SCHNEIDER", "FERNANDEZ", "LE GALL",
    "COLLET", "LÉGER", "BOUVIER", "JULIEN", "PRÉVOST", "MILLET", "PERROT", "DANIEL", "LE ROUX",
    "COUSIN", "GERMAIN", "BRETON", "BESSON", "LANGLOIS", "RÉMY", "LE GOFF", "PELLETIER", "LÉVÊQUE",
]  # fmt: skip
GIVEN = [
    "Jean", "Marie", "Pierre", "Anne", "Michel", "Catherine", "Philippe", "Isabelle", "Alain",
    "Sylvie", "Nicolas", "Nathalie", "Christophe", "Sophie", "Patrick", "Valérie", "Frédéric",
    "Christine", "Laurent", "Sandrine", "Stéphane", "Céline", "Éric", "Véronique", "Olivier",
    "Émilie", "Julien", "Hélène", "Sébastien", "Aurélie", "Thierry", "Élodie", "François", "Chloé",
    "Jérôme", "Léa", "Mathieu", "Camille", "Romain", "Inès", "Antoine", "Zoé", "Benoît", "Maëlle",
]  # fmt: skip
PROFESSIONS = [
    ("10", "Médecin", 0.38), ("60", "Infirmier", 0.25), ("70", "Masseur-Kinésithérapeute", 0.12),
    ("21", "Pharmacien", 0.1), ("40", "Chirurgien-Dentiste", 0.06), ("50", "Sage-Femme", 0.03),
    ("91", "Orthophoniste", 0.03), ("26", "Audioprothésiste", 0.03),
]  # fmt: skip
SPECIALTIES = [
    ("SM54", "Médecine générale"), ("SM04", "Cardiologie"), ("SM26", "Qualifié en Médecine Générale"),
    ("SM53", "Spécialiste en Médecine Générale"), ("SM42", "Pédiatrie"), ("SM49", "Santé publique"),
]  # fmt: skip
MODES = [("L", "Libéral"), ("S", "Salarié"), ("B", "Bénévole")]
SECTORS = [
    ("SA07", "Cabinet individuel"), ("SA08", "Cabinet de groupe"), ("SA01", "Etablissement public"),
    ("SA05", "Centre de santé"), ("SA15", "Officine"),
]  # fmt: skip
TOWNS = [
    ("06000", "06088", "NICE"), ("06400", "06029", "CANNES"), ("06600", "06004", "ANTIBES"),
    ("06500", "06083", "MENTON"), ("06130", "06069", "GRASSE"), ("13001", "13201", "MARSEILLE"),
    ("13100", "13001", "AIX-EN-PROVENCE"), ("13200", "13004", "ARLES"), ("13500", "13056", "MARTIGUES"),
    ("83000", "83137", "TOULON"), ("83300", "83050", "DRAGUIGNAN"), ("83600", "83061", "FRÉJUS"),
    ("84000", "84007", "AVIGNON"), ("84200", "84031", "CARPENTRAS"), ("84300", "84035", "CAVAILLON"),
    ("04000", "04070", "DIGNE-LES-BAINS"), ("04100", "04112", "MANOSQUE"), ("05000", "05061", "GAP"),
    ("05100", "05023", "BRIANÇON"), ("75015", "75115", "PARIS"), ("69003", "69383", "LYON"),
]  # fmt: skip
STREETS = ["AVENUE JEAN MEDECIN", "BOULEVARD DE LA LIBERTE", "RUE DE LA REPUBLIQUE", "PLACE MASSENA",
           "RUE PARADIS", "COURS MIRABEAU", "AVENUE DE LA GARE", "CHEMIN DES OLIVIERS"]  # fmt: skip


def _rpps(n: int) -> str:
    body = f"1{n:09d}"
    return body + luhn_key(body)


DISTRIBUTIONS = ("shared", "liberal")
OWN_SITE_SHARE = 0.85  # liberal: share of the lines with a structure of their own
LIBERAL_SHARED_SITES = 20_000


def _site(s: int, rnd: random.Random) -> tuple[str, str, str, str, str, str, str, int]:
    cp, insee, town = TOWNS[s % len(TOWNS)]
    kind = rnd.random()
    finess = f"{cp[:2]}{s:07d}" if kind < 0.15 else ""
    siret = f"{s:09d}{rnd.randrange(10**5):05d}" if kind < 0.6 else ""
    tech = f"R{s + 10**13}"
    name = f"CABINET {rnd.choice(FAMILY)}" if kind > 0.15 else f"CENTRE HOSPITALIER {town}"
    return (finess, siret, tech, name, cp, insee, town, s)


def generate(
    path: Path, lines: int, *, seed: int = 20260101, sites: int = 300_000, distribution: str = "shared"
) -> None:
    if distribution not in DISTRIBUTIONS:
        raise ValueError(f"distribution inconnue : {distribution} (attendu : {', '.join(DISTRIBUTIONS)})")
    liberal = distribution == "liberal"
    if liberal:
        sites = LIBERAL_SHARED_SITES
    rnd = random.Random(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    weights = [w for *_, w in PROFESSIONS]
    site_rows = [_site(s, rnd) for s in range(sites)]
    next_own = sites  # liberal: the next structure of its own gets this number
    header = "|".join(CLASSIC_HEADERS) + "|\n"
    written = 0
    person = 0
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write(header)
        while written < lines:
            person += 1
            rpps = _rpps(person)
            family = rnd.choice(FAMILY)
            given = rnd.choice(GIVEN)
            code, label, _ = rnd.choices(PROFESSIONS, weights)[0]
            r = rnd.random()
            count = 1 if r < 0.75 else 2 if r < 0.92 else 3
            civ = ("DR", "Docteur") if code in ("10", "40") else ("", "")
            sexe = rnd.choice((("M", "Monsieur"), ("MME", "Madame")))
            for _ in range(min(count, lines - written)):
                if liberal and rnd.random() < OWN_SITE_SHARE:
                    finess, siret, tech, name, cp, insee, town, s = _site(next_own, rnd)
                    next_own += 1
                else:
                    finess, siret, tech, name, cp, insee, town, s = site_rows[rnd.randrange(sites)]
                spec = rnd.choice(SPECIALTIES) if code == "10" else ("", "")
                mode = rnd.choice(MODES)
                sector = rnd.choice(SECTORS)
                values = [
                    "8",
                    rpps,
                    "8" + rpps,
                    civ[0],
                    civ[1],
                    sexe[0],
                    sexe[1],
                    family,
                    given,
                    code,
                    label,
                    "C",
                    "Civil",
                    "S" if spec[0] else "",
                    "Spécialité ordinale" if spec[0] else "",
                    spec[0],
                    spec[1],
                    mode[0],
                    mode[1],
                    siret,
                    siret[:9],
                    finess,
                    "",
                    tech,
                    name,
                    "",
                    name,
                    "",
                    str(1 + s % 120),
                    "",
                    "AV",
                    "Avenue",
                    STREETS[s % len(STREETS)],
                    "",
                    f"{cp} {town}",
                    cp,
                    insee,
                    town,
                    "",
                    "",
                    f"04{s % 10**8:08d}",
                    "",
                    "",
                    f"contact{s}@exemple-sante.fr" if s % 3 == 0 else "",
                    cp[:2],
                    "",
                    "",
                    "ARS/ARS/ARS",
                    sector[0],
                    sector[1],
                    "",
                    "",
                ]
                out.write("|".join(values) + "|\n")
                written += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lines", type=int, default=2_000_000)
    parser.add_argument("--out", type=Path, default=Path("bench/out/rpps_2m.txt"))
    parser.add_argument("--seed", type=int, default=20260101)
    parser.add_argument("--distribution", choices=DISTRIBUTIONS, default="shared")
    args = parser.parse_args()
    generate(args.out, args.lines, seed=args.seed, distribution=args.distribution)
    print(f"{args.out}: {args.lines} lignes, {args.out.stat().st_size / 1e6:.0f} Mo")


if __name__ == "__main__":
    main()
