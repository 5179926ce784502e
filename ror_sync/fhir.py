"""FHIR R4 reader for the ROR and the Annuaire Santé: searchset Bundles from files or a FHIR server.

What becomes what
-----------------
- ``Organization`` -> a directory structure, keyed ``finess:<n>``, else ``siret:<n>``, else
  ``fhir:Organization/<id>``; ``partOf`` -> ``parent_id``.
- ``HealthcareService`` -> marks the Organization that provides it as a DAC when the service is one.
- ``Location`` -> fills the address of its managing Organization when that one has none.
- ``Practitioner`` -> a directory person (national id from the IDNPS, RPPS or ADELI identifier).
- ``PractitionerRole`` -> an activity of that person at the role's Organization (directly, or through
  its HealthcareService); profession from the TRE_G15 coding, savoir-faire (R38), function (R21), mode
  of exercise (R23). ``active: false`` roles and practitioners are left out (a full import then
  deactivates a practitioner who only has such entries).

Identifiers are matched on their **type + value** (``IDNPS``, ``RPPS``, ``ADELI``, ``FINEG``/``FINESS``,
``FINEJ``, ``SIRET``, ``IDNST``), never on the system URI, whose spelling differs between sources
(http/https, finess.sante / finess.esante, rpps.fr...). Only an identifier without a type falls back on a
keyword of its system URI ("finess", "rpps", "adeli", "siret", or the idNatPS/idNatSt OIDs).

DAC recognition: see :func:`coordination.directory.rules.any_dac` (TRE_R66 code 606, TRE_R316 code 801,
or "Dispositif d'appui à la coordination" spelled out in a coding display or type text).

Each resource is validated with the ``fhir.resources.R4B`` models (the default classes are R5 and refuse
R4 data); an invalid resource is rejected with its place (file or page URL, entry number) and the reason,
and the records are read from the validated model, never from the raw JSON. The reader keeps compact
records (a few hundred bytes per resource), not the Bundles, so a region's ROR fits easily; the RPPS
file is the one that needs streaming.

Pages of a FHIR server are asked again, with exponential backoff, when the server answers 429 or 5xx,
times out or drops the connection (``RETRIES``, ``BACKOFF_SECONDS``); past that, nothing is imported.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
from fhir.resources.R4B.address import Address
from fhir.resources.R4B.codeableconcept import CodeableConcept
from fhir.resources.R4B.coding import Coding
from fhir.resources.R4B.contactpoint import ContactPoint
from fhir.resources.R4B.domainresource import DomainResource
from fhir.resources.R4B.healthcareservice import HealthcareService
from fhir.resources.R4B.identifier import Identifier
from fhir.resources.R4B.location import Location
from fhir.resources.R4B.organization import Organization
from fhir.resources.R4B.practitioner import Practitioner
from fhir.resources.R4B.practitionerrole import PractitionerRole
from fhir.resources.R4B.reference import Reference
from pydantic import ValidationError

from coordination.directory.rules import (
    any_dac,
    department_from_postal_code,
    national_id_problem,
    person_search_name,
    search_key,
)
from ror_sync.report import Rejections

logger = logging.getLogger(__name__)

RESOURCE_TYPES = ("Organization", "HealthcareService", "Location", "Practitioner", "PractitionerRole")
MAX_PAGES = 100_000


class FhirSourceError(Exception):
    """A source could not be read at all (network, HTTP error, not JSON): nothing is imported."""


MODELS: dict[str, type[DomainResource]] = {
    "Organization": Organization,
    "HealthcareService": HealthcareService,
    "Location": Location,
    "Practitioner": Practitioner,
    "PractitionerRole": PractitionerRole,
}


# --- identifiers -------------------------------------------------------------------------------

_TYPE_KINDS = {
    "IDNPS": "idnps",
    "RPPS": "rpps",
    "ADELI": "adeli",
    "FINEG": "finess",
    "FINESS": "finess",
    "FINEJ": "finess_ej",
    "SIRET": "siret",
    "SIREN": "siren",
    "IDNST": "idnst",
}
_SYSTEM_KINDS = (
    ("1.2.250.1.71.4.2.1", "idnps"),
    ("1.2.250.1.71.4.2.2", "idnst"),
    ("rpps", "rpps"),
    ("adeli", "adeli"),
    ("finess", "finess"),
    ("siret", "siret"),
    ("siren", "siren"),
)


def identifier_kind(identifier: Identifier) -> str | None:
    """The kind of an identifier from its type (any coding code or the type text), else its system."""
    id_type = identifier.type
    if id_type is not None:
        for coding in id_type.coding or []:
            kind = _TYPE_KINDS.get(str(coding.code or "").strip().upper())
            if kind:
                return kind
        # Typed, with a type we do not use (internal ids...): never guess from the URI.
        return _TYPE_KINDS.get(str(id_type.text or "").strip().upper())
    system = str(identifier.system or "").lower()
    for needle, kind in _SYSTEM_KINDS:
        if needle in system:
            return kind
    return None


def identifiers_by_kind(identifiers: list[Identifier] | None) -> dict[str, str]:
    found: dict[str, str] = {}
    for ident in identifiers or []:
        value = str(ident.value or "").strip()
        kind = identifier_kind(ident)
        if kind and value and kind not in found:
            found[kind] = value
    return found


def national_id_of(ids: dict[str, str]) -> str | None:
    """idNatPS from a practitioner's identifiers: IDNPS as is, else 8 + RPPS, else 0 + ADELI."""
    if "idnps" in ids:
        return ids["idnps"].upper()
    if "rpps" in ids:
        return "8" + ids["rpps"]
    if "adeli" in ids:
        return "0" + ids["adeli"].upper()
    return None


def structure_key_of(ids: dict[str, str]) -> str | None:
    if "finess" in ids:
        return f"finess:{ids['finess']}"
    if "siret" in ids:
        return f"siret:{ids['siret']}"
    idnst = ids.get("idnst", "")
    # idNatSt: 1 + FINESS, 3 + SIRET (other prefixes have no shared key with the RPPS extract).
    if idnst.startswith("1") and len(idnst) == 10:
        return f"finess:{idnst[1:]}"
    if idnst.startswith("3") and len(idnst) == 15:
        return f"siret:{idnst[1:]}"
    if "finess_ej" in ids:
        return f"finess:{ids['finess_ej']}"
    return None


_REF = re.compile(r"(?:^|/)(Organization|HealthcareService|Location|Practitioner|PractitionerRole)/([^/]+)")


def reference_of(ref: Reference | None) -> str | None:
    """``"Practitioner/12"`` from a Reference (relative, absolute, or versioned); None when logical."""
    if ref is None or not ref.reference:
        return None
    match = _REF.search(str(ref.reference).split("/_history/")[0])
    return f"{match.group(1)}/{match.group(2)}" if match else None


def _logical(ref: Reference | None) -> dict[str, str]:
    """The identifier of a logical reference (``{"identifier": {...}}``), by kind."""
    if ref is None or ref.identifier is None:
        return {}
    return identifiers_by_kind([ref.identifier])


def _codings(concepts: list[CodeableConcept] | None) -> list[Coding]:
    return [c for concept in concepts or [] for c in concept.coding or []]


def _texts(concepts: list[CodeableConcept] | None) -> list[str]:
    return [str(c.text) for c in concepts or [] if c.text]


def _triples(codings: list[Coding]) -> list[tuple[str | None, str | None, str | None]]:
    return [(c.system, c.code, c.display) for c in codings]


_TRE = re.compile(r"TRE[_-](R\d+|G\d+)", re.IGNORECASE)


def _tre(coding: Coding) -> str | None:
    match = _TRE.search(str(coding.system or ""))
    return match.group(1).upper() if match else None


def _telecom(points: list[ContactPoint] | None) -> tuple[str, str]:
    phone = email = ""
    for t in points or []:
        if t.system == "phone" and not phone:
            phone = str(t.value or "")
        elif t.system == "email" and not email:
            email = str(t.value or "")
    return phone, email


def _address(addresses: list[Address] | Address | None) -> tuple[str, str, str]:
    if isinstance(addresses, Address):  # Location.address is a single Address
        addresses = [addresses]
    for a in addresses or []:
        lines = " ".join(str(x) for x in a.line or [])
        return lines, str(a.postalCode or ""), str(a.city or "")
    return "", "", ""


# --- records -----------------------------------------------------------------------------------


@dataclass
class _Org:
    ref: str
    key: str
    name: str
    finess: str
    siret: str
    parent: str | None
    is_dac: bool
    address: str
    postal_code: str
    city: str
    phone: str
    email: str
    where: tuple[str, int]


_NO_SITE = _Org("", "", "", "", "", None, False, "", "", "", "", "", ("", 0))


@dataclass
class _Practitioner:
    ref: str
    national_id: str
    family: str
    given: str
    civility: str
    where: tuple[str, int]


@dataclass
class _Role:
    practitioner: str | None
    national_id: str | None
    org: str | None
    org_key: str | None
    services: list[str]
    profession_code: str
    profession: str
    specialty: str
    mode: str
    role: str
    phone: str
    email: str
    where: tuple[str, int]


class FhirRows(NamedTuple):
    """Staging rows in ``FHIR_FORMAT`` (lines, sites) and ``STRUCT_COLUMNS`` (structures)."""

    lines: list[tuple[Any, ...]]
    sites: list[tuple[Any, ...]]
    structs: list[tuple[Any, ...]]


def _role_codes(role: PractitionerRole) -> tuple[str, str, str, str, str]:
    """(profession code, profession, specialty, mode, function) of a role, from its TRE codings."""
    prof_code = prof = mode = function = ""
    for c in _codings(role.code):
        tre, code, display = _tre(c), str(c.code or ""), str(c.display or "")
        if tre == "G15" and not prof_code:
            prof_code, prof = code, display
        elif tre == "R23" and not mode:
            mode = display or code
        elif tre == "R21" and not function:
            function = display or code
        elif tre is None and not function and display:
            function = display
    if not function:
        function = next(iter(_texts(role.code)), "")
    specialty = next((str(c.display or c.code or "") for c in _codings(role.specialty)), "")
    return prof_code, prof, specialty, mode, function


@dataclass
class FhirSnapshot:
    """Compact records of every resource read, resolved into staging rows by :meth:`staging_rows`."""

    orgs: dict[str, _Org] = field(default_factory=dict)
    services: dict[str, tuple[str | None, bool]] = field(default_factory=dict)
    locations: list[tuple[str | None, str, str, str]] = field(default_factory=list)
    practitioners: dict[str, _Practitioner] = field(default_factory=dict)
    roles: list[_Role] = field(default_factory=list)
    resource_count: int = 0
    _where: dict[int, tuple[str, int]] = field(default_factory=dict)

    def where(self, line_no: int) -> tuple[str, int]:
        return self._where.get(line_no, ("FHIR", line_no))

    def add(self, resource: DomainResource, where: tuple[str, int], rejections: Rejections) -> None:
        """Keep what the directory needs of a validated resource (``MODELS``)."""
        if isinstance(resource, Organization):
            self._add_organization(resource, where)
        elif isinstance(resource, HealthcareService):
            concepts = [*(resource.category or []), *(resource.type or []), *(resource.specialty or [])]
            dac = any_dac(_triples(_codings(concepts)), [*_texts(concepts), str(resource.name or "")])
            self.services[f"HealthcareService/{resource.id}"] = (reference_of(resource.providedBy), dac)
        elif isinstance(resource, Location):
            address, postal, city = _address(resource.address)
            self.locations.append((reference_of(resource.managingOrganization), address, postal, city))
        elif isinstance(resource, Practitioner):
            self._add_practitioner(resource, where, rejections)
        elif isinstance(resource, PractitionerRole):
            self._add_role(resource, where)

    def _add_organization(self, org: Organization, where: tuple[str, int]) -> None:
        ref = f"Organization/{org.id or ''}"
        ids = identifiers_by_kind(org.identifier)
        phone, email = _telecom(org.telecom)
        address, postal, city = _address(org.address)
        self.orgs[ref] = _Org(
            ref=ref,
            key=structure_key_of(ids) or f"fhir:{ref}",
            name=str(org.name or ""),
            finess=ids.get("finess", ""),
            siret=ids.get("siret", ""),
            parent=reference_of(org.partOf),
            is_dac=any_dac(_triples(_codings(org.type)), _texts(org.type)),
            address=address,
            postal_code=postal,
            city=city,
            phone=phone,
            email=email,
            where=where,
        )

    def _add_practitioner(self, prac: Practitioner, where: tuple[str, int], rejections: Rejections) -> None:
        if prac.active is False:
            return
        ref = f"Practitioner/{prac.id or ''}"
        nid = national_id_of(identifiers_by_kind(prac.identifier))
        problem = national_id_problem(nid) if nid else "aucun identifiant IDNPS, RPPS ou ADELI"
        if problem or nid is None:
            rejections.add(where[0], where[1], f"{ref} : {problem}")
            return
        names = prac.name or []
        official = next((n for n in names if n.use == "official"), names[0] if names else None)
        family = str(official.family or "").strip() if official is not None else ""
        if official is None or not family:
            rejections.add(where[0], where[1], f"{ref} : nom de famille absent")
            return
        self.practitioners[ref] = _Practitioner(
            ref=ref,
            national_id=nid,
            family=family,
            given=" ".join(str(g) for g in official.given or []).strip(),
            civility=" ".join(str(p) for p in official.prefix or []).strip(),
            where=where,
        )

    def _add_role(self, role: PractitionerRole, where: tuple[str, int]) -> None:
        if role.active is False:
            return
        prof_code, prof, specialty, mode, function = _role_codes(role)
        phone, email = _telecom(role.telecom)
        self.roles.append(
            _Role(
                practitioner=reference_of(role.practitioner),
                national_id=national_id_of(_logical(role.practitioner)),
                org=reference_of(role.organization),
                org_key=structure_key_of(_logical(role.organization)),
                services=[r for r in map(reference_of, role.healthcareService or []) if r],
                profession_code=prof_code,
                profession=prof,
                specialty=specialty,
                mode=mode,
                role=function,
                phone=phone,
                email=email,
                where=where,
            )
        )

    def staging_rows(self, rejections: Rejections) -> FhirRows:
        """Resolve references inside what was read; the rest is resolved against the directory in SQL.

        Rows are in ``coordination.directory.store.FHIR_FORMAT``; each role has its own site row."""
        self._apply_services_and_locations()
        structs = self._structure_rows()
        lines = self._practitioner_rows(first_line=len(structs) + 1)
        role_lines, sites = self._role_rows(first_line=len(structs) + len(lines) + 1)
        return FhirRows([*lines, *role_lines], sites, structs)

    def _apply_services_and_locations(self) -> None:
        for provider, dac in self.services.values():
            if dac and provider in self.orgs:
                self.orgs[provider].is_dac = True
        for managing, address, postal, city in self.locations:
            org = self.orgs.get(managing or "")
            if org is not None and not org.address and not org.city:
                org.address, org.postal_code, org.city = address, postal, city

    def _structure_rows(self) -> list[tuple[Any, ...]]:
        by_key: dict[str, _Org] = {}
        for org in self.orgs.values():
            if org.key in by_key:  # the same structure listed twice (two sources): first one wins
                by_key[org.key].is_dac = by_key[org.key].is_dac or org.is_dac
                continue
            by_key[org.key] = org
        structs: list[tuple[Any, ...]] = []
        for line_no, org in enumerate(by_key.values(), start=1):
            parent = self.orgs.get(org.parent or "")
            structs.append(
                (
                    line_no, org.key, "dac" if org.is_dac else "organisation", org.name or org.key,
                    search_key(org.name), org.finess, org.siret, parent.key if parent is not None else None,
                    None if parent is not None else org.parent, org.is_dac, org.address, org.postal_code,
                    org.city, department_from_postal_code(org.postal_code), org.phone, org.email, org.ref,
                )
            )  # fmt: skip
        return structs

    def _practitioner_rows(self, *, first_line: int) -> list[tuple[Any, ...]]:
        first_role: dict[str, _Role] = {}
        for role in self.roles:
            if role.national_id is None and role.practitioner in self.practitioners:
                role.national_id = self.practitioners[role.practitioner].national_id
            if role.national_id:
                first_role.setdefault(role.national_id, role)
        lines: list[tuple[Any, ...]] = []
        for line_no, prac in enumerate(self.practitioners.values(), start=first_line):
            first = first_role.get(prac.national_id)
            values = (
                prac.national_id,
                prac.national_id[0],
                prac.civility,
                prac.family,
                prac.given,
                person_search_name(prac.family, prac.given),
                first.profession_code if first else "",
                first.profession if first else "",
            )
            lines.append((line_no, 1, 0, *values, "", "", "", None, None, prac.ref, None, _h(values)))
        return lines

    def _role_org(self, role: _Role) -> str | None:
        """The Organization of a role: its own, else the provider of one of its HealthcareServices."""
        if role.org is not None:
            return role.org
        providers = (self.services.get(s, (None, False))[0] for s in role.services)
        return next((p for p in providers if p), None)

    def _role_rows(self, *, first_line: int) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        lines: list[tuple[Any, ...]] = []
        sites: list[tuple[Any, ...]] = []
        for line_no, role in enumerate(self.roles, start=first_line):
            self._where[line_no] = role.where
            org_ref = self._role_org(role)
            org = self.orgs.get(org_ref or "")
            key = org.key if org is not None else role.org_key
            site = org or _NO_SITE
            act: tuple[str, ...] = (
                role.profession_code, role.profession, role.specialty, role.mode, role.role, site.name,
                search_key(site.name), site.finess, site.siret, site.address, site.postal_code, site.city,
                department_from_postal_code(site.postal_code), role.phone or site.phone,
                role.email or site.email,
            )  # fmt: skip
            digest = _h((role.national_id or role.practitioner or "", key or org_ref or "", *act))
            unresolved = role.practitioner if role.national_id is None else None
            lines.append(
                (
                    line_no,
                    0,
                    1,
                    role.national_id,
                    *([""] * 5),
                    *act[:5],
                    None,
                    line_no,
                    None,
                    unresolved,
                    digest,
                )
            )
            sites.append((line_no, key, None if key else org_ref, *act[5:]))
        return lines, sites


def _h(values: tuple[Any, ...]) -> int:
    text = "\x1f".join(str(v) for v in values)
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=6).digest(), "big")


# --- reading -----------------------------------------------------------------------------------


def _is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def search_urls(source: str, since: datetime | None) -> list[str]:
    """The searches to run for a URL: the URL itself when it names a search, else one per type."""
    parts = urlsplit(source)
    last = parts.path.rstrip("/").rsplit("/", 1)[-1]
    if last in RESOURCE_TYPES or parts.query:
        urls = [source]
    else:
        base = source.rstrip("/")
        urls = [f"{base}/{t}?_count=500" for t in RESOURCE_TYPES]
    if since is None:
        return urls
    stamp = since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    out = []
    for url in urls:
        p = urlsplit(url)
        query = [(k, v) for k, v in parse_qsl(p.query) if k != "_lastUpdated"]
        query.append(("_lastUpdated", f"ge{stamp}"))
        out.append(urlunsplit((p.scheme, p.netloc, p.path, urlencode(query), p.fragment)))
    return out


def _file_page(source: str) -> tuple[str, Any]:
    try:
        return source, json.loads(Path(source).read_bytes())
    except FileNotFoundError as exc:
        raise FhirSourceError(f"{source} : fichier introuvable.") from exc
    except (OSError, ValueError) as exc:
        raise FhirSourceError(f"{source} : fichier JSON illisible ({exc}).") from exc


def _pages(
    source: str, since: datetime | None, fetch: Callable[[str], Any] | None
) -> Iterator[tuple[str, Any]]:
    """(where, JSON) of every page of a source: a file, or each search of a URL with its next pages."""
    if not _is_url(source):
        yield _file_page(source)
        return
    client = httpx.Client(timeout=60.0, follow_redirects=True, headers={"Accept": "application/fhir+json"})
    try:
        for url in search_urls(source, since):
            seen: set[str] = set()
            next_url: str | None = url
            while next_url and len(seen) < MAX_PAGES:
                seen.add(next_url)
                data = _fetched(fetch, next_url) if fetch is not None else _get(client, next_url)
                yield next_url, data
                links = data.get("link") or [] if isinstance(data, dict) else []
                following = next((lk.get("url") for lk in links if lk.get("relation") == "next"), None)
                next_url = following if following and following not in seen else None
    finally:
        client.close()


def _fetched(fetch: Callable[[str], Any], url: str) -> Any:
    try:
        return fetch(url)
    except httpx.HTTPError as exc:
        raise FhirSourceError(
            f"{url} : serveur FHIR injoignable ({type(exc).__name__}) ; rien n'a été importé, "
            "réessayez plus tard."
        ) from exc


# A FHIR server that is restarting, overloaded or behind a flaky proxy answers 5xx, times out or drops
# the connection now and then: each page is asked again after 0.5, 1, 2 and 4 s before the import
# gives up (and imports nothing).
RETRIES = 4
BACKOFF_SECONDS = 0.5
TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})


def _get(client: httpx.Client, url: str) -> Any:
    """GET one page, retried with exponential backoff on transient failures."""
    for attempt in range(RETRIES + 1):
        last = attempt == RETRIES
        try:
            resp = client.get(url)
        except httpx.TransportError as exc:  # timeouts, refused or dropped connections
            if last:
                raise FhirSourceError(
                    f"{url} : serveur FHIR injoignable ({type(exc).__name__}, {RETRIES + 1} essais) ; "
                    "rien n'a été importé, réessayez plus tard."
                ) from exc
            logger.warning("FHIR GET %s failed (%s), attempt %d", url, type(exc).__name__, attempt + 1)
        else:
            if resp.status_code not in TRANSIENT_STATUSES or last:
                return _json(resp, url, attempts=attempt + 1)
            logger.warning("FHIR GET %s answered %d, attempt %d", url, resp.status_code, attempt + 1)
        time.sleep(BACKOFF_SECONDS * 2**attempt)
    raise AssertionError("unreachable")  # pragma: no cover


def _json(resp: httpx.Response, url: str, *, attempts: int) -> Any:
    if resp.status_code != 200:
        tried = f", {attempts} essais" if attempts > 1 else ""
        raise FhirSourceError(
            f"{url} : le serveur FHIR a répondu {resp.status_code}{tried} ; rien n'a été importé "
            "(vérifiez l'URL et les droits d'accès, ou réessayez plus tard)."
        )
    try:
        return resp.json()
    except ValueError as exc:
        raise FhirSourceError(f"{url} : réponse non JSON ; rien n'a été importé.") from exc


def _last_updated(resource: dict[str, Any]) -> datetime | None:
    stamp = (resource.get("meta") or {}).get("lastUpdated")
    if not stamp:
        return None
    try:
        value = datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _entries(label: str, data: Any) -> list[Any]:
    """The entries of a page: a Bundle's, or the page itself when it is one resource."""
    if not isinstance(data, dict) or data.get("resourceType") not in ("Bundle", *RESOURCE_TYPES):
        raise FhirSourceError(
            f"{label} : ni Bundle FHIR ni ressource FHIR (resourceType absent ou inattendu)."
        )
    if data["resourceType"] == "Bundle":
        return list(data.get("entry") or [])
    return [{"resource": data}]


def _validated(
    entry: Any, where: tuple[str, int], *, since: datetime | None, rejections: Rejections
) -> DomainResource | None:
    """The entry's resource as its ``fhir.resources.R4B`` model; None when it is not for the
    directory, older than ``since`` (files), or invalid (then rejected with its place and reason)."""
    resource = entry.get("resource") if isinstance(entry, dict) else None
    if not isinstance(resource, dict):
        rejections.add(where[0], where[1], "entrée sans ressource")
        return None
    kind = resource.get("resourceType")
    model = MODELS.get(str(kind))
    if model is None:
        return None  # OperationOutcome, other types: not part of the directory
    if since is not None:
        stamp = _last_updated(resource)
        if stamp is not None and stamp < since:
            return None
    try:
        return model.model_validate(resource)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first.get("loc", ()))
        rejections.add(
            where[0],
            where[1],
            f"{kind}/{resource.get('id', '?')} invalide (FHIR R4) : {loc} : {first.get('msg')}",
        )
        return None


def read_fhir_sources(
    sources: list[str],
    *,
    since: datetime | None,
    rejections: Rejections,
    on_resource: Callable[[int], None] | None = None,
    fetch: Callable[[str], Any] | None = None,
) -> FhirSnapshot:
    """Read every source into a :class:`FhirSnapshot`; invalid resources go to ``rejections``.

    Raises :class:`FhirSourceError` when a source cannot be read at all (a partial snapshot would
    deactivate everyone it misses, so nothing is imported then).
    """
    snapshot = FhirSnapshot()
    for source in sources:
        # A server filters on _lastUpdated itself; a file is filtered here.
        file_since = None if _is_url(source) else since
        for label, data in _pages(source, since, fetch):
            for number, entry in enumerate(_entries(label, data), start=1):
                resource = _validated(entry, (label, number), since=file_since, rejections=rejections)
                if resource is None:
                    continue
                snapshot.resource_count += 1
                snapshot.add(resource, (label, number), rejections)
                if on_resource is not None:
                    on_resource(snapshot.resource_count)
    return snapshot
