"""FHIR import: identifier matching across system URIs, DACs, paging over a real HTTP server, deltas."""

from __future__ import annotations

import asyncio
import json
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from fhir.resources.R4B.identifier import Identifier
from sqlalchemy.ext.asyncio import AsyncSession

from coordination.directory import service
from ror_sync import fhir as fhir_reader
from ror_sync.fhir import FhirSourceError, identifier_kind
from ror_sync.importer import MassDeactivationError, import_fhir, import_rpps
from tests.ror_sync.helpers import bundle, national_id, rpps_line, write_rpps

R66 = "https://mos.esante.gouv.fr/NOS/TRE_R66-CategorieEtablissement/FHIR/TRE-R66-CategorieEtablissement"
G15 = "https://mos.esante.gouv.fr/NOS/TRE_G15-ProfessionSante/FHIR/TRE-G15-ProfessionSante"
OLD = "2025-01-01T00:00:00Z"
NEW = "2026-03-01T00:00:00Z"


def organization(
    rid: str, name: str, finess: str, system: str, *, dac: bool = False, updated: str = OLD
) -> dict[str, Any]:
    res: dict[str, Any] = {
        "resourceType": "Organization",
        "id": rid,
        "meta": {"lastUpdated": updated},
        "name": name,
        "identifier": [{"type": {"coding": [{"code": "FINEG"}]}, "system": system, "value": finess}],
        "address": [{"line": ["1 rue X"], "postalCode": "13005", "city": "MARSEILLE"}],
    }
    if dac:
        res["type"] = [{"coding": [{"system": R66, "code": "606"}]}]
    return res


def practitioner(rid: str, n: int, family: str, *, updated: str = OLD) -> dict[str, Any]:
    return {
        "resourceType": "Practitioner",
        "id": rid,
        "meta": {"lastUpdated": updated},
        "identifier": [
            {"type": {"coding": [{"code": "IDNPS"}]}, "system": "urn:oid:1.2.250.1.71.4.2.1",
             "value": national_id(n)}
        ],
        "name": [{"family": family, "given": ["Anne"]}],
    }  # fmt: skip


def role(rid: str, prac: str, org: str, *, updated: str = OLD, active: bool = True) -> dict[str, Any]:
    return {
        "resourceType": "PractitionerRole",
        "id": rid,
        "meta": {"lastUpdated": updated},
        "active": active,
        "practitioner": {"reference": f"Practitioner/{prac}"},
        "organization": {"reference": f"Organization/{org}"},
        "code": [{"coding": [{"system": G15, "code": "60", "display": "Infirmier"}]}],
    }


class FhirServer:
    """A real FHIR-ish server on 127.0.0.1: paged searchsets per type, ``_lastUpdated=ge`` honoured."""

    def __init__(
        self, resources: list[dict[str, Any]], page_size: int = 2, failures: list[int | str] | None = None
    ) -> None:
        self.resources = resources
        self.page_size = page_size
        self.requests: list[str] = []
        # The first requests fail, one planned failure each: an HTTP status, or "drop" (the connection
        # is closed without an answer).
        self.failures = list(failures or [])
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.requests.append(self.path)
                if outer.failures:
                    failure = outer.failures.pop(0)
                    if failure == "drop":
                        self.close_connection = True
                        return
                    self.send_response(int(failure))
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                parts = urlsplit(self.path)
                kind = parts.path.rsplit("/", 1)[-1]
                query = parse_qs(parts.query)
                rows = [r for r in outer.resources if r["resourceType"] == kind]
                for cond in query.get("_lastUpdated", []):
                    since = datetime.fromisoformat(cond[2:].replace("Z", "+00:00"))
                    rows = [
                        r
                        for r in rows
                        if datetime.fromisoformat(r["meta"]["lastUpdated"].replace("Z", "+00:00")) >= since
                    ]
                offset = int(query.get("_getpagesoffset", ["0"])[0])
                page = rows[offset : offset + outer.page_size]
                next_url = None
                if offset + outer.page_size < len(rows):
                    extra = "".join(f"&_lastUpdated={c}" for c in query.get("_lastUpdated", []))
                    next_url = f"{outer.url}/{kind}?_getpagesoffset={offset + outer.page_size}{extra}"
                body = json.dumps(bundle(page, next_url=next_url)).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/fhir+json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/fhir"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> FhirServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


@pytest.fixture
def resources() -> list[dict[str, Any]]:
    return [
        organization("dac", "DAC 13 - Bouches-du-Rhône", "139990100", "http://finess.sante.gouv.fr",
                     dac=True),
        organization("hop", "Hôpital Nord (fictif)", "139990200", "https://finess.esante.gouv.fr"),
        organization("clin", "Clinique Sud (fictive)", "139990300", "http://finess.sante.gouv.fr"),
        practitioner("p1", 1, "GARNIER"),
        practitioner("p2", 2, "BENSAÏD"),
        practitioner("p3", 3, "ROUX"),
        role("r1", "p1", "dac"),
        role("r2", "p2", "dac"),
        role("r3", "p3", "hop"),
    ]  # fmt: skip


async def fhir(database_url: str, sources: list[str], since: datetime | None = None):  # type: ignore[no-untyped-def]
    return await asyncio.to_thread(import_fhir, database_url, sources, since=since)


def test_identifier_kind_uses_the_type_before_the_system() -> None:
    def kind(data: dict[str, Any]) -> str | None:
        return identifier_kind(Identifier.model_validate(data))

    assert kind({"type": {"coding": [{"code": "FINEG"}]}, "system": "x"}) == "finess"
    assert kind({"system": "https://finess.esante.gouv.fr", "value": "1"}) == "finess"
    assert kind({"system": "http://finess.sante.gouv.fr", "value": "1"}) == "finess"
    assert kind({"system": "https://rpps.esante.gouv.fr", "value": "1"}) == "rpps"
    assert kind({"type": {"text": "RPPS"}, "value": "1"}) == "rpps"
    # A typed identifier we do not use is never guessed from its URI.
    assert kind({"type": {"coding": [{"code": "INTRN"}]}, "system": "finess"}) is None


async def test_paging_over_http_dac_detection_and_members(
    database_url: str, db: AsyncSession, resources: list[dict[str, Any]]
) -> None:
    with FhirServer(resources, page_size=2) as server:
        report = await fhir(database_url, [server.url])
    # Every type was searched, and each type's pages followed through their next links.
    assert sum("/Practitioner?" in r for r in server.requests) == 2
    assert sum("/PractitionerRole?" in r for r in server.requests) == 2
    assert (report.persons.added, report.structures.added, report.activities) == (3, 3, 3)

    dacs = await service.search_structures(session=db, text="DAC", dac_only=True)
    assert [d.structure_id for d in dacs] == ["finess:139990100"]
    assert not (await service.get_structure(session=db, structure_id="finess:139990200")).is_dac
    members = await service.structure_members(session=db, structure_id="finess:139990100")
    assert sorted(m.family_name for m in members) == ["BENSAÏD", "GARNIER"]
    assert members[0].sites[0].profession == "Infirmier"


async def test_same_structure_from_two_sources_matches_on_type_and_value(
    database_url: str, db: AsyncSession, tmp_path: Path
) -> None:
    # The RPPS names the site by its FINESS; the ROR spells the FINESS system differently.
    await asyncio.to_thread(import_rpps, database_url, write_rpps(tmp_path / "r.txt", [rpps_line(7, site=5)]))
    a = tmp_path / "a.json"
    a.write_text(json.dumps(bundle([organization("o1", "ROR NAME", "069990005",
                                                   "https://finess.esante.gouv.fr", dac=True)])))  # fmt: skip
    b = tmp_path / "b.json"
    b.write_text(json.dumps(bundle([organization("o9", "OTHER", "069990005",
                                                   "http://finess.sante.gouv.fr")])))  # fmt: skip
    report = await fhir(database_url, [str(a), str(b)])
    assert report.structures.seen == 1  # one structure, not two
    card = await service.get_structure(session=db, structure_id="finess:069990005")
    assert card.is_dac and card.name == "ROR NAME" and card.source == "fhir"


async def test_full_fhir_snapshot_deactivates_and_delta_never_does(
    database_url: str, db: AsyncSession, resources: list[dict[str, Any]]
) -> None:
    with FhirServer(resources) as server:
        await fhir(database_url, [server.url])
        # The next full snapshot lacks p3 (and its role): p3 is deactivated.
        server.resources = [r for r in resources if r["id"] not in ("p3", "r3")]
        report = await fhir(database_url, [server.url])
        assert report.persons.deactivated == 1
        assert not (await service.get_person(session=db, national_id=national_id(3))).active

        # A delta since 2026: only what changed after it is fetched; nobody is deactivated.
        server.resources = [
            *resources[:3],
            practitioner("p1", 1, "GARNIER-NEUVE", updated=NEW),
            role("r2b", "p2", "clin", updated=NEW),  # role alone: its practitioner is in the directory
        ]
        server.requests.clear()
        delta = await fhir(database_url, [server.url], since=datetime(2026, 1, 1, tzinfo=UTC))
    assert all("_lastUpdated=ge2026-01-01T00%3A00%3A00Z" in r for r in server.requests)
    assert delta.persons.deactivated == 0 and delta.structures.deactivated == 0
    db.expire_all()
    p1 = await service.get_person(session=db, national_id=national_id(1))
    assert p1.family_name == "GARNIER-NEUVE"
    assert [s.structure_id for s in p1.sites] == ["finess:139990100"]  # untouched by the delta
    p2 = await service.get_person(session=db, national_id=national_id(2))
    assert [s.structure_id for s in p2.sites] == ["finess:139990300"]


async def test_invalid_resources_and_unknown_practitioners_are_reported(
    database_url: str, tmp_path: Path
) -> None:
    bad = practitioner("bad", 4, "X")
    bad["name"] = "not a list"
    path = tmp_path / "b.json"
    path.write_text(json.dumps(bundle([bad, role("r9", "ghost", "nowhere")])))
    report = await fhir(database_url, [str(path)])
    assert report.rejected == 2
    reasons = " ".join(str(r) for r in report.rejections)
    assert f"{path}:1: Practitioner/bad invalide" in reasons
    assert "Practitioner/ghost" in reasons and f"{path}:2:" in reasons


@pytest.fixture
def quick_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fhir_reader, "BACKOFF_SECONDS", 0.01)


async def test_transient_failures_are_retried_with_backoff(
    database_url: str, resources: list[dict[str, Any]], quick_backoff: None
) -> None:
    with FhirServer(resources, failures=[503, "drop", 502, 500]) as server:
        report = await fhir(database_url, [server.url])
    assert (report.persons.added, report.structures.added, report.activities) == (3, 3, 3)
    # The first search was asked five times: four failures, then its answer.
    assert server.requests[:5] == [server.requests[0]] * 5
    assert server.requests.count(server.requests[0]) == 5


async def test_a_server_that_keeps_failing_imports_nothing(
    database_url: str, resources: list[dict[str, Any]], quick_backoff: None
) -> None:
    with FhirServer(resources, failures=[503] * 5) as server, pytest.raises(FhirSourceError) as failed:
        await fhir(database_url, [server.url])
    assert "a répondu 503, 5 essais ; rien n'a été importé" in str(failed.value)
    assert len(server.requests) == 5
    with FhirServer(resources, failures=[404]) as server, pytest.raises(FhirSourceError, match="404 ;"):
        await fhir(database_url, [server.url])
    assert len(server.requests) == 1  # not transient: not asked again


async def test_an_unreachable_server_imports_nothing(database_url: str, quick_backoff: None) -> None:
    with FhirServer([]) as server:
        url = server.url
    with pytest.raises(FhirSourceError, match="injoignable"):
        await fhir(database_url, [url])


async def test_a_partial_fhir_snapshot_is_refused_unless_allowed(
    database_url: str, db: AsyncSession, tmp_path: Path
) -> None:
    full = [practitioner(f"p{n}", n, f"NOM{n}") for n in range(1, 81)]
    complete = tmp_path / "complet.json"
    complete.write_text(json.dumps(bundle(full)))
    await fhir(database_url, [str(complete)])
    partial = tmp_path / "page1.json"  # only the first page of the export was saved
    partial.write_text(json.dumps(bundle(full[:20])))

    with pytest.raises(MassDeactivationError) as refused:
        await fhir(database_url, [str(partial)])
    assert "désactiverait 60 professionnels sur les 80 actifs issus de la source FHIR" in str(refused.value)
    assert f"azurezo directory import-fhir {partial} --allow-mass-deactivation" in str(refused.value)
    assert (await service.get_person(session=db, national_id=national_id(80))).active

    # A delta never deactivates, so it is never refused; consent lets the snapshot through.
    await fhir(database_url, [str(partial)], since=datetime(2020, 1, 1, tzinfo=UTC))
    report = await asyncio.to_thread(import_fhir, database_url, [str(partial)], allow_mass_deactivation=True)
    assert report.persons.deactivated == 60
    db.expire_all()
    assert not (await service.get_person(session=db, national_id=national_id(80))).active
