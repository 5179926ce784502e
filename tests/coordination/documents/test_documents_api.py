"""Patient documents through the real app: typing, size cap, storage, visibility, refusals, events."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from coordination.audit.models import AuditEntry
from coordination.circle.models import CircleMember
from coordination.documents.models import Document
from coordination.outbox.models import OutboxEvent
from coordination.pagination import encode_cursor
from coordination.settings import Settings
from tests.coordination.tasks.factories import add_member, add_patient, add_relative
from tests.filetyping import samples
from tests.support.service import FakeTokens, Pro, add_professional, add_structure

SSIAD = "finess:060000002"
MAX = 10 * 1024 * 1024


@dataclass
class World:
    alice: Pro  # uploader
    bob: Pro  # member
    carol: Pro  # member
    nurse: Pro  # works at the SSIAD, a structure member
    dave: Pro  # not in the circle
    eve: Pro  # delisted, was in the circle
    patient: uuid.UUID
    bob_member: uuid.UUID
    ssiad_member: uuid.UUID
    relative_member: uuid.UUID


@pytest.fixture
async def world(db: AsyncSession, tokens: FakeTokens) -> World:
    await add_structure(db, SSIAD, "SSIAD de Nice")
    alice = await add_professional(db, tokens, localpart="alice", national_id="810000000001")
    bob = await add_professional(db, tokens, localpart="bob", national_id="810000000002")
    carol = await add_professional(db, tokens, localpart="carol", national_id="810000000003")
    nurse = await add_professional(
        db,
        tokens,
        localpart="nurse",
        national_id="810000000006",
        profession_code="60",
        structure_ids=(SSIAD,),
    )
    dave = await add_professional(db, tokens, localpart="dave", national_id="810000000004")
    eve = await add_professional(db, tokens, localpart="eve", national_id="810000000005", active=False)
    patient = await add_patient(db)
    await add_member(db, patient, national_id=alice.national_id)
    bob_member = await add_member(db, patient, national_id=bob.national_id)
    await add_member(db, patient, national_id=carol.national_id)
    await add_member(db, patient, national_id=eve.national_id)
    ssiad_member = await add_member(db, patient, structure_id=SSIAD, role="structure de soins")
    relative = await add_relative(db, patient)
    return World(alice, bob, carol, nurse, dave, eve, patient, bob_member, ssiad_member, relative)


def _url(world: World, suffix: str = "") -> str:
    return f"/api/v1/patients/{world.patient}/documents{suffix}"


async def _upload(
    client: httpx.AsyncClient,
    world: World,
    who: Pro,
    content: bytes,
    *,
    filename: str = "document.pdf",
    declared: str = "application/pdf",
    **fields: Any,
) -> httpx.Response:
    data: dict[str, Any] = {"title": "Compte rendu d'hospitalisation", "category": "compte_rendu"}
    data |= fields
    return await client.post(
        _url(world), data=data, files={"file": (filename, content, declared)}, headers=who.headers
    )


def _blobs(settings: Settings) -> list[Path]:
    root = settings.documents_dir
    return [p for p in root.rglob("*") if p.is_file() and ".incoming" not in p.parts]


def _incoming(settings: Settings) -> list[Path]:
    return list((settings.documents_dir / ".incoming").glob("*"))


async def _events(db: AsyncSession) -> list[OutboxEvent]:
    db.expire_all()
    return list((await db.scalars(select(OutboxEvent).where(OutboxEvent.kind == "document.shared"))).all())


ALLOWED = {
    "pdf": (samples.pdf, "application/pdf", ".pdf"),
    "jpeg": (samples.jpeg, "image/jpeg", ".jpg"),
    "png": (samples.png, "image/png", ".png"),
    "docx": (
        samples.docx,
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        ".docx",
    ),
    "xlsx": (samples.xlsx, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", ".xlsx"),
    "odt": (samples.odt, "application/vnd.oasis.opendocument.text", ".odt"),
    "doc": (samples.doc, "application/msword", ".doc"),
}


@pytest.mark.parametrize("kind", sorted(ALLOWED))
async def test_allowed_kinds_round_trip_byte_identical(
    client: httpx.AsyncClient, world: World, kind: str
) -> None:
    make, mime, ext = ALLOWED[kind]
    content = make()
    # The declared name and type are deliberately wrong: only the bytes count.
    resp = await _upload(
        client,
        world,
        world.alice,
        content,
        filename="scan.bin",
        declared="application/octet-stream",
        title="Résultats « NFS » / mars",
        category="Résultat biologie",
    )
    assert resp.status_code == 201, resp.text
    doc = resp.json()
    assert doc["kind"] == kind and doc["mime_type"] == mime and doc["extension"] == ext
    assert doc["category"] == "resultat_biologie" and doc["category_label"] == "Résultat de biologie"
    assert doc["sha256"] == hashlib.sha256(content).hexdigest()

    got = await client.get(doc["download_url"], headers=world.bob.headers)
    assert got.status_code == 200
    assert got.content == content
    assert got.headers["content-type"] == mime
    assert got.headers["x-content-type-options"] == "nosniff"
    disposition = got.headers["content-disposition"]
    assert disposition.startswith("attachment;")
    assert f'filename="Resultats_NFS_mars{ext}"' in disposition
    assert "filename*=UTF-8''R%C3%A9sultats" in disposition


FORBIDDEN = {
    "disguised_exe": (samples.pe, "ordonnance.pdf", 415),
    "elf": (samples.elf, "photo.jpg", 415),
    "html": (samples.html, "compte-rendu.pdf", 415),
    "svg": (samples.svg, "schema.png", 415),
    "zip": (samples.plain_zip, "dossier.docx", 415),
    "docm": (samples.docm, "courrier.docx", 415),
    "random": (lambda: os.urandom(8192), "chiffre.pdf", 415),
    "fake_pdf": (samples.plain_text, "analyse.pdf", 415),
    # Issue 6, item 8: the service and the Synapse module share the filetyping policy.
    "mz_then_random": (samples.mz_then_random, "ordonnance.pdf", 415),
    "pdf_garbage": (samples.pdf_header_then_garbage, "ordonnance.pdf", 415),
    "pdf_javascript": (samples.pdf_open_action_javascript, "ordonnance.pdf", 415),
    "pdf_zip_exe": (samples.pdf_then_zip_with_exe, "ordonnance.pdf", 415),
    "jpeg_html": (samples.jpeg_then_html, "photo.jpg", 415),
    "docx_bomb": (samples.docx_inflating_to, "courrier.docx", 415),
    "empty": (lambda: b"", "vide.pdf", 422),
}


@pytest.mark.parametrize("case", sorted(FORBIDDEN))
async def test_forbidden_kinds_refused_and_nothing_kept(
    client: httpx.AsyncClient, world: World, settings: Settings, db: AsyncSession, case: str
) -> None:
    make, filename, status = FORBIDDEN[case]
    resp = await _upload(client, world, world.alice, make(), filename=filename)
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["errcode"] in ("AZ_UNSUPPORTED_TYPE", "AZ_INVALID")
    assert any(w in body["error"] for w in ("accepté", "pas", "vide")), body["error"]
    assert _blobs(settings) == [] and _incoming(settings) == []
    assert (await db.scalars(select(Document))).all() == []
    assert await _events(db) == []


async def test_size_cap(client: httpx.AsyncClient, world: World, settings: Settings) -> None:
    at_limit = samples.pdf().ljust(MAX, b"\n")  # a real PDF: "%PDF-1.4" + zeros is refused now
    ok = await _upload(client, world, world.alice, at_limit)
    assert ok.status_code == 201, ok.text
    assert ok.json()["size"] == MAX

    over = at_limit + b"0"
    resp = await _upload(client, world, world.alice, over)
    assert resp.status_code == 413
    assert "10 Mo" in resp.json()["error"]
    # Far over the cap: refused on the declared Content-Length, before reading the body.
    huge = await _upload(client, world, world.alice, at_limit + b"0" * 200_000)
    assert huge.status_code == 413
    assert _incoming(settings) == []


async def test_size_cap_without_content_length(
    client: httpx.AsyncClient, world: World, settings: Settings
) -> None:
    """A chunked body (no Content-Length) is cut at the cap while streaming."""
    boundary = "azurezo-test-boundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="title"\r\n\r\nCR\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="category"\r\n\r\nautre\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.pdf"\r\n'
        "Content-Type: application/pdf\r\n\r\n%PDF-1.4\n"
    ).encode()
    sent = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal sent
        yield head
        chunk = b"0" * 65536
        for _ in range(400):  # 26 MB if nobody stops us
            sent += len(chunk)
            yield chunk
        yield f"\r\n--{boundary}--\r\n".encode()

    resp = await client.post(
        _url(world),
        content=body(),
        headers=world.alice.headers | {"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert resp.status_code == 413
    assert sent <= MAX + 2 * 65536  # reading stopped at the cap, not at the end of the body
    assert _incoming(settings) == []


async def test_content_stored_once(client: httpx.AsyncClient, world: World, settings: Settings) -> None:
    content = samples.png()
    first = await _upload(client, world, world.alice, content, category="photo")
    second = await _upload(client, world, world.bob, content, category="photo", title="Plaie, J+3")
    assert first.status_code == second.status_code == 201
    assert first.json()["id"] != second.json()["id"]
    digest = hashlib.sha256(content).hexdigest()
    (blob,) = _blobs(settings)
    assert blob == settings.documents_dir / digest[:2] / digest[2:4] / digest
    assert blob.read_bytes() == content


async def test_restricted_visibility_checked_on_every_request(
    client: httpx.AsyncClient, world: World, db: AsyncSession
) -> None:
    resp = await _upload(
        client,
        world,
        world.alice,
        samples.pdf(),
        visibility="restreinte",
        member_ids=[str(world.bob_member), str(world.ssiad_member)],
    )
    assert resp.status_code == 201, resp.text
    doc = resp.json()
    assert set(doc["member_ids"]) == {str(world.bob_member), str(world.ssiad_member)}
    (event,) = await _events(db)
    assert event.recipients == sorted([world.bob.user_id, world.nurse.user_id])

    for who in (world.alice, world.bob, world.nurse):
        assert (await client.get(doc["download_url"], headers=who.headers)).status_code == 200
    # Carol is an authorised member but not chosen: it does not exist for her.
    assert (await client.get(doc["download_url"], headers=world.carol.headers)).status_code == 404
    assert (await client.get(_url(world, f"/{doc['id']}"), headers=world.carol.headers)).status_code == 404
    listed = await client.get(_url(world), headers=world.carol.headers)
    assert listed.json()["items"] == []

    # Bob leaves the circle: his next download is refused.
    await db.execute(delete(CircleMember).where(CircleMember.id == world.bob_member))
    await db.commit()
    assert (await client.get(doc["download_url"], headers=world.bob.headers)).status_code == 403

    # Only the uploader changes visibility; opening it to the circle notifies the newcomers.
    by_nurse = await client.patch(
        _url(world, f"/{doc['id']}"),
        json={"version": doc["version"], "visibility": "cercle"},
        headers=world.nurse.headers,
    )
    assert by_nurse.status_code == 403
    opened = await client.patch(
        _url(world, f"/{doc['id']}"),
        json={"version": doc["version"], "visibility": "cercle"},
        headers=world.alice.headers,
    )
    assert opened.status_code == 200, opened.text
    assert opened.json()["member_ids"] == [] and opened.json()["version"] == doc["version"] + 1
    assert (await client.get(doc["download_url"], headers=world.carol.headers)).status_code == 200
    events = await _events(db)
    assert len(events) == 2 and events[1].recipients == [world.carol.user_id]
    stale = await client.patch(
        _url(world, f"/{doc['id']}"),
        json={"version": doc["version"], "visibility": "restreinte"},
        headers=world.alice.headers,
    )
    assert stale.status_code == 409
    # Narrow again to the same member chosen before (same primary key as a deleted row).
    narrowed = await client.patch(
        _url(world, f"/{doc['id']}"),
        json={
            "version": opened.json()["version"],
            "visibility": "restreinte",
            "member_ids": [str(world.ssiad_member)],
        },
        headers=world.alice.headers,
    )
    assert narrowed.status_code == 200, narrowed.text
    assert (await client.get(doc["download_url"], headers=world.carol.headers)).status_code == 404


async def test_audience_must_be_habilitated_members(client: httpx.AsyncClient, world: World) -> None:
    relative = await _upload(
        client,
        world,
        world.alice,
        samples.pdf(),
        visibility="restreinte",
        member_ids=[str(world.relative_member)],
    )
    assert relative.status_code == 422
    assert "proche" in relative.json()["error"]
    stranger = await _upload(
        client, world, world.alice, samples.pdf(), visibility="restreinte", member_ids=[str(uuid.uuid4())]
    )
    assert stranger.status_code == 422


async def test_list_metadata_delete_and_audit(
    client: httpx.AsyncClient, world: World, db: AsyncSession
) -> None:
    a = (await _upload(client, world, world.alice, samples.pdf(), category="ordonnance")).json()
    b = (await _upload(client, world, world.alice, samples.png(), category="photo")).json()
    listed = await client.get(_url(world), headers=world.bob.headers)
    assert [d["id"] for d in listed.json()["items"]] == [b["id"], a["id"]]
    only = await client.get(_url(world), params={"category": "ordonnance"}, headers=world.bob.headers)
    assert [d["id"] for d in only.json()["items"]] == [a["id"]]
    meta = await client.get(_url(world, f"/{a['id']}"), headers=world.bob.headers)
    assert meta.json()["title"] == "Compte rendu d'hospitalisation"

    assert (
        await client.delete(_url(world, f"/{a['id']}"), params={"version": 1}, headers=world.bob.headers)
    ).status_code == 403
    assert (
        await client.delete(_url(world, f"/{a['id']}"), params={"version": 7}, headers=world.alice.headers)
    ).status_code == 409
    gone = await client.delete(_url(world, f"/{a['id']}"), params={"version": 1}, headers=world.alice.headers)
    assert gone.status_code == 200 and gone.json()["deleted_at"]
    assert (await client.get(a["download_url"], headers=world.alice.headers)).status_code == 404
    listed = await client.get(_url(world), headers=world.bob.headers)
    assert [d["id"] for d in listed.json()["items"]] == [b["id"]]

    db.expire_all()
    actions = (
        await db.scalars(select(AuditEntry.action).where(AuditEntry.patient_id == world.patient))
    ).all()
    assert {"document.uploaded", "document.list", "document.read", "document.deleted"} <= set(actions)


async def test_bad_forms_answer_french_422(client: httpx.AsyncClient, world: World) -> None:
    no_title = await client.post(
        _url(world),
        data={"category": "autre"},
        files={"file": ("a.pdf", samples.pdf())},
        headers=world.alice.headers,
    )
    assert no_title.status_code == 422 and no_title.json()["fields"][0]["field"] == "title"
    bad_cat = await _upload(client, world, world.alice, samples.pdf(), category="divers")
    assert bad_cat.status_code == 422
    no_file = await client.post(
        _url(world),
        data={"title": "x", "category": "autre"},
        files={"other": ("a", b"x")},
        headers=world.alice.headers,
    )
    assert no_file.status_code == 422
    as_json = await client.post(_url(world), json={"title": "x"}, headers=world.alice.headers)
    assert as_json.status_code == 422
    assert "multipart" in as_json.json()["error"]
    broken = await client.post(
        _url(world),
        content=b"--x\r\ngarbage",
        headers=world.alice.headers | {"Content-Type": "multipart/form-data; boundary=x"},
    )
    assert broken.status_code == 422


async def test_patch_renames_recategorises_and_refuses_null(client: httpx.AsyncClient, world: World) -> None:
    """The one PATCH convention on documents: only the fields sent change, one version per change."""
    doc = (await _upload(client, world, world.alice, samples.pdf(), title="CR", category="autre")).json()
    url = _url(world, f"/{doc['id']}")
    renamed = await client.patch(
        url,
        json={"version": doc["version"], "title": "Compte rendu du 3 mars", "category": "Compte rendu"},
        headers=world.alice.headers,
    )
    assert renamed.status_code == 200, renamed.text
    body = renamed.json()
    assert (body["title"], body["category"], body["category_label"]) == (
        "Compte rendu du 3 mars",
        "compte_rendu",
        "Compte rendu",
    )
    assert body["visibility"] == "cercle" and body["version"] == doc["version"] + 1
    for field in ("title", "category", "visibility"):
        refused = await client.patch(
            url, json={"version": body["version"], field: None}, headers=world.alice.headers
        )
        assert refused.status_code == 422 and refused.json()["fields"][0]["field"] == field, refused.text
    not_uploader = await client.patch(
        url, json={"version": body["version"], "title": "Autre"}, headers=world.bob.headers
    )
    assert not_uploader.status_code == 403 and not_uploader.json()["errcode"] == "AZ_NOT_UPLOADER"


@pytest.mark.parametrize("title", ["CR\x00", "CR\x07 bip", "Deux\nlignes"])
async def test_control_characters_in_titles_are_refused(
    client: httpx.AsyncClient, world: World, settings: Settings, title: str
) -> None:
    """NUL in a title was stored on SQLite and a 500 on PostgreSQL (issue 6, item 5): a 422 on both,
    at upload (nothing kept) and at rename."""
    resp = await _upload(client, world, world.alice, samples.pdf(), title=title)
    assert resp.status_code == 422, resp.text
    assert resp.json()["fields"][0]["field"] == "title"
    assert _blobs(settings) == [] and _incoming(settings) == []
    doc = (await _upload(client, world, world.alice, samples.pdf())).json()
    renamed = await client.patch(
        _url(world, f"/{doc['id']}"),
        json={"version": doc["version"], "title": title},
        headers=world.alice.headers,
    )
    assert renamed.status_code == 422, renamed.text


async def test_list_pages_with_a_cursor(client: httpx.AsyncClient, world: World) -> None:
    """Newest first, ``limit`` at a time, following ``next_cursor`` to the end; a foreign cursor is 422."""
    ids = [
        (await _upload(client, world, world.alice, samples.pdf(), title=f"D{i}")).json()["id"]
        for i in range(5)
    ]
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, str | int] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = await client.get(_url(world), params=params, headers=world.bob.headers)
        assert page.status_code == 200, page.text
        seen += [d["id"] for d in page.json()["items"]]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(ids))
    naive = encode_cursor({"c": "2030-01-01T00:00:00", "i": uuid.uuid4().hex})  # no offset: not ours
    for cursor in ("eyJvIjoxfQ", naive, encode_cursor({"c": "hier", "i": "x"})):
        bad = await client.get(_url(world), params={"cursor": cursor}, headers=world.bob.headers)
        assert bad.status_code == 422 and bad.json()["fields"][0]["field"] == "cursor", bad.text
