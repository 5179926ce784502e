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
R4 data); an invalid resource is rejected with its place (file or page URL, entry number) and the reason.
The reader keeps compact records (a few hundred bytes per resource), not the Bundles, so a region's ROR
fits easily; the RPPS file is the one that needs streaming.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
from pydantic import ValidationError

from coordination.directory.rules import (
    any_dac,
    department_from_postal_code,
    national_id_problem,
    person_search_name,
    search_key,
)
from ror_sync.report import Rejections

RESOURCE_TYPES = ("Organization", "HealthcareService", "Location", "Practitioner", "PractitionerRole")
MAX_PAGES = 100_000


class FhirSourceError(Exception):
    """A source could not be read at all (network, HTTP error, not JSON): nothing is imported."""


def _models() -> dict[str, Any]:
    from fhir.resources.R4B.healthcareservice import HealthcareService
    from fhir.resources.R4B.location import Location
    from fhir.resources.R4B.organization import Organization
    from fhir.resources.R4B.practitioner import Practitioner
    from fhir.resources.R4B.practitionerrole import PractitionerRole

    return {
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


def identifier_kind(identifier: dict[str, Any]) -> str | None:
    """The kind of an identifier from its type (any coding code or the type text), else its system."""
    id_type = identifier.get("type") or {}
    for coding in id_type.get("coding") or []:
        kind = _TYPE_KINDS.get(str(coding.get("code") or "").strip().upper())
        if kind:
            return kind
    text_kind = _TYPE_KINDS.get(str(id_type.get("text") or "").strip().upper())
    if text_kind:
        return text_kind
    if id_type:
        return None  # typed, with a type we do not use (internal ids...): never guess from the URI
    system = str(identifier.get("system") or "").lower()
    for needle, kind in _SYSTEM_KINDS:
        if needle in system:
            return kind
    return None


def identifiers_by_kind(resource: dict[str, Any]) -> dict[str, str]:
    found: dict[str, str] = {}
    for ident in resource.get("identifier") or []:
        value = str(ident.get("value") or "").strip()
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


def reference_of(ref: dict[str, Any] | None) -> str | None:
    """``"Practitioner/12"`` from a Reference (relative, absolute, or versioned); None when logical."""
    if not ref or not ref.get("reference"):
        return None
    match = _REF.search(str(ref["reference"]).split("/_history/")[0])
    return f"{match.group(1)}/{match.group(2)}" if match else None


def _codings(concepts: list[dict[str, Any]] | dict[str, Any] | None) -> list[dict[str, Any]]:
    if concepts is None:
        return []
    if isinstance(concepts, dict):
        concepts = [concepts]
    return [c for concept in concepts for c in concept.get("coding") or []]


def _texts(concepts: list[dict[str, Any]] | dict[str, Any] | None) -> list[str]:
    if concepts is None:
        return []
    if isinstance(concepts, dict):
        concepts = [concepts]
    return [str(c.get("text")) for c in concepts if c.get("text")]


def _triples(codings: list[dict[str, Any]]) -> list[tuple[str | None, str | None, str | None]]:
    return [(c.get("system"), c.get("code"), c.get("display")) for c in codings]


_TRE = re.compile(r"TRE[_-](R\d+|G\d+)", re.IGNORECASE)


def _tre(coding: dict[str, Any]) -> str | None:
    match = _TRE.search(str(coding.get("system") or ""))
    return match.group(1).upper() if match else None


def _telecom(resource: dict[str, Any]) -> tuple[str, str]:
    phone = email = ""
    for t in resource.get("telecom") or []:
        if t.get("system") == "phone" and not phone:
            phone = str(t.get("value") or "")
        elif t.get("system") == "email" and not email:
            email = str(t.get("value") or "")
    return phone, email


def _address(resource: dict[str, Any]) -> tuple[str, str, str]:
    addresses = resource.get("address") or []
    if isinstance(addresses, dict):  # Location.address is a single Address
        addresses = [addresses]
    for a in addresses:
        lines = " ".join(str(x) for x in a.get("line") or [])
        return lines, str(a.get("postalCode") or ""), str(a.get("city") or "")
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

    def add(self, resource: dict[str, Any], where: tuple[str, int], rejections: Rejections) -> None:
        kind = resource.get("resourceType")
        rid = str(resource.get("id") or "")
        ref = f"{kind}/{rid}"
        if kind == "Organization":
            ids = identifiers_by_kind(resource)
            phone, email = _telecom(resource)
            address, postal, city = _address(resource)
            self.orgs[ref] = _Org(
                ref=ref,
                key=structure_key_of(ids) or f"fhir:{ref}",
                name=str(resource.get("name") or ""),
                finess=ids.get("finess", ""),
                siret=ids.get("siret", ""),
                parent=reference_of(resource.get("partOf")),
                is_dac=any_dac(_triples(_codings(resource.get("type"))), _texts(resource.get("type"))),
                address=address,
                postal_code=postal,
                city=city,
                phone=phone,
                email=email,
                where=where,
            )
        elif kind == "HealthcareService":
            concepts = [
                *(resource.get("category") or []),
                *(resource.get("type") or []),
                *(resource.get("specialty") or []),
            ]
            dac = any_dac(_triples(_codings(concepts)), [*_texts(concepts), str(resource.get("name") or "")])
            self.services[ref] = (reference_of(resource.get("providedBy")), dac)
        elif kind == "Location":
            address, postal, city = _address(resource)
            self.locations.append((reference_of(resource.get("managingOrganization")), address, postal, city))
        elif kind == "Practitioner":
            if resource.get("active") is False:
                return
            ids = identifiers_by_kind(resource)
            nid = national_id_of(ids)
            problem = national_id_problem(nid) if nid else "aucun identifiant IDNPS, RPPS ou ADELI"
            if problem:
                rejections.add(where[0], where[1], f"Practitioner/{rid} : {problem}")
                return
            assert nid is not None
            names = resource.get("name") or []
            official = next((n for n in names if n.get("use") == "official"), names[0] if names else {})
            family = str(official.get("family") or "").strip()
            if not family:
                rejections.add(where[0], where[1], f"Practitioner/{rid} : nom de famille absent")
                return
            self.practitioners[ref] = _Practitioner(
                ref=ref,
                national_id=nid,
                family=family,
                given=" ".join(str(g) for g in official.get("given") or []).strip(),
                civility=" ".join(str(p) for p in official.get("prefix") or []).strip(),
                where=where,
            )
        elif kind == "PractitionerRole":
            if resource.get("active") is False:
                return
            prof_code = prof = specialty = mode = role = ""
            for c in _codings(resource.get("code")):
                tre, code, display = _tre(c), str(c.get("code") or ""), str(c.get("display") or "")
                if tre == "G15" and not prof_code:
                    prof_code, prof = code, display
                elif tre == "R23" and not mode:
                    mode = display or code
                elif tre == "R21" and not role:
                    role = display or code
                elif tre is None and not role and display:
                    role = display
            if not role:
                role = next(iter(_texts(resource.get("code"))), "")
            for c in _codings(resource.get("specialty")):
                if not specialty:
                    specialty = str(c.get("display") or c.get("code") or "")
            prac = resource.get("practitioner") or {}
            logical = prac.get("identifier")
            nid = national_id_of(identifiers_by_kind({"identifier": [logical]})) if logical else None
            org = resource.get("organization") or {}
            org_logical = org.get("identifier")
            phone, email = _telecom(resource)
            self.roles.append(
                _Role(
                    practitioner=reference_of(prac),
                    national_id=nid,
                    org=reference_of(org),
                    org_key=structure_key_of(identifiers_by_kind({"identifier": [org_logical]}))
                    if org_logical
                    else None,
                    services=[
                        r for r in (reference_of(s) for s in resource.get("healthcareService") or []) if r
                    ],
                    profession_code=prof_code,
                    profession=prof,
                    specialty=specialty,
                    mode=mode,
                    role=role,
                    phone=phone,
                    email=email,
                    where=where,
                )
            )

    def staging_rows(self, rejections: Rejections) -> FhirRows:
        """Resolve references inside what was read; the rest is resolved against the directory in SQL.

        Rows are in ``coordination.directory.store.FHIR_FORMAT``; each role has its own site row."""
        for provider, dac in self.services.values():
            if dac and provider in self.orgs:
                self.orgs[provider].is_dac = True
        for managing, address, postal, city in self.locations:
            org = self.orgs.get(managing or "")
            if org is not None and not org.address and not org.city:
                org.address, org.postal_code, org.city = address, postal, city

        line_no = 0
        structs: list[tuple[Any, ...]] = []
        by_key: dict[str, _Org] = {}
        for org in self.orgs.values():
            if org.key in by_key:  # the same structure listed twice (two sources): first one wins
                by_key[org.key].is_dac = by_key[org.key].is_dac or org.is_dac
                continue
            by_key[org.key] = org
        for org in by_key.values():
            line_no += 1
            parent = self.orgs.get(org.parent or "")
            structs.append(
                (
                    line_no,
                    org.key,
                    "dac" if org.is_dac else "organisation",
                    org.name or org.key,
                    search_key(org.name),
                    org.finess,
                    org.siret,
                    parent.key if parent is not None else None,
                    None if parent is not None else org.parent,
                    org.is_dac,
                    org.address,
                    org.postal_code,
                    org.city,
                    department_from_postal_code(org.postal_code),
                    org.phone,
                    org.email,
                    org.ref,
                )
            )

        roles_of: dict[str, list[_Role]] = {}
        for role in self.roles:
            if role.national_id is None and role.practitioner in self.practitioners:
                role.national_id = self.practitioners[role.practitioner].national_id
            if role.national_id:
                roles_of.setdefault(role.national_id, []).append(role)

        lines: list[tuple[Any, ...]] = []
        sites: list[tuple[Any, ...]] = []
        for prac in self.practitioners.values():
            line_no += 1
            first = next(iter(roles_of.get(prac.national_id, [])), None)
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
        for role in self.roles:
            line_no += 1
            self._where[line_no] = role.where
            org_ref = role.org
            if org_ref is None:
                for service in role.services:
                    provider = self.services.get(service, (None, False))[0]
                    if provider:
                        org_ref = provider
                        break
            org = self.orgs.get(org_ref or "")
            key = org.key if org is not None else role.org_key
            site = org or _Org("", "", "", "", "", None, False, "", "", "", "", "", ("", 0))
            act: tuple[str, ...] = (
                role.profession_code,
                role.profession,
                role.specialty,
                role.mode,
                role.role,
                site.name,
                search_key(site.name),
                site.finess,
                site.siret,
                site.address,
                site.postal_code,
                site.city,
                department_from_postal_code(site.postal_code),
                role.phone or site.phone,
                role.email or site.email,
            )
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
                    role.practitioner if role.national_id is None else None,
                    _h((role.national_id or role.practitioner or "", key or org_ref or "", *act)),
                )
            )
            sites.append((line_no, key, None if key else org_ref, *act[5:]))
        return FhirRows(lines, sites, structs)


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


def _pages(
    source: str, since: datetime | None, fetch: Callable[[str], Any] | None
) -> Iterator[tuple[str, dict[str, Any]]]:
    if not _is_url(source):
        path = Path(source)
        try:
            data = json.loads(path.read_bytes())
        except FileNotFoundError as exc:
            raise FhirSourceError(f"{source} : fichier introuvable.") from exc
        except (OSError, ValueError) as exc:
            raise FhirSourceError(f"{source} : fichier JSON illisible ({exc}).") from exc
        yield source, data
        return
    client = httpx.Client(timeout=60.0, follow_redirects=True, headers={"Accept": "application/fhir+json"})
    try:
        for url in search_urls(source, since):
            seen: set[str] = set()
            next_url: str | None = url
            while next_url and len(seen) < MAX_PAGES:
                seen.add(next_url)
                try:
                    data = fetch(next_url) if fetch is not None else _get(client, next_url)
                except httpx.HTTPError as exc:
                    raise FhirSourceError(
                        f"{next_url} : serveur FHIR injoignable ({type(exc).__name__}) ; "
                        "rien n'a été importé, réessayez plus tard."
                    ) from exc
                yield next_url, data
                links = data.get("link") or [] if isinstance(data, dict) else []
                following = next((lk.get("url") for lk in links if lk.get("relation") == "next"), None)
                next_url = following if following and following not in seen else None
    finally:
        client.close()


def _get(client: httpx.Client, url: str) -> Any:
    resp = client.get(url)
    if resp.status_code != 200:
        raise FhirSourceError(
            f"{url} : le serveur FHIR a répondu {resp.status_code} ; rien n'a été importé "
            "(vérifiez l'URL et les droits d'accès)."
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
    models = _models()
    snapshot = FhirSnapshot()
    for source in sources:
        for label, data in _pages(source, since, fetch):
            if not isinstance(data, dict) or data.get("resourceType") not in ("Bundle", *RESOURCE_TYPES):
                raise FhirSourceError(
                    f"{label} : ni Bundle FHIR ni ressource FHIR (resourceType absent ou inattendu)."
                )
            entries = data.get("entry") or [] if data["resourceType"] == "Bundle" else [{"resource": data}]
            for number, entry in enumerate(entries, start=1):
                resource = entry.get("resource") if isinstance(entry, dict) else None
                if not isinstance(resource, dict):
                    rejections.add(label, number, "entrée sans ressource")
                    continue
                kind = resource.get("resourceType")
                if kind not in models:
                    continue  # OperationOutcome, other types: not part of the directory
                if since is not None and not _is_url(source):
                    stamp = _last_updated(resource)
                    if stamp is not None and stamp < since:
                        continue
                try:
                    models[kind].model_validate(resource)
                except ValidationError as exc:
                    first = exc.errors()[0]
                    loc = ".".join(str(p) for p in first.get("loc", ()))
                    rejections.add(
                        label,
                        number,
                        f"{kind}/{resource.get('id', '?')} invalide (FHIR R4) : {loc} : {first.get('msg')}",
                    )
                    continue
                snapshot.resource_count += 1
                snapshot.add(resource, (label, number), rejections)
                if on_resource is not None:
                    on_resource(snapshot.resource_count)
    return snapshot
