"""Uploads through the module in a real Synapse, including a real E2EE attachment round trip."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from urllib.parse import urlsplit

import httpx
import pytest
from nio import (
    MegolmEvent,
    RoomCreateResponse,
    RoomEncryptedFile,
    RoomSendResponse,
    UploadResponse,
)
from nio.crypto.attachments import decrypt_attachment, encrypt_attachment

from tests.filetyping import samples
from tests.support.polling import eventually
from tests.support.stack import Stack, workers_mode
from tests.synapse_module.matrix import client_api, new_professional, upload

pytestmark = pytest.mark.synapse

ALLOWED: list[tuple[str, str, str, Callable[[], bytes]]] = [
    ("compte-rendu.pdf", "application/pdf", "pdf", samples.pdf),
    ("photo.jpg", "image/jpeg", "jpeg", samples.jpeg),
    ("schema.png", "image/png", "png", samples.png),
    ("anim.gif", "image/gif", "gif", samples.gif),
    ("plaie.webp", "image/webp", "webp", samples.webp),
    ("plaie.heic", "image/heic", "heic", samples.heic),
    ("courrier.doc", "application/msword", "doc", samples.doc),
    (
        "courrier.docx",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "docx",
        samples.docx,
    ),
    ("suivi.xls", "application/vnd.ms-excel", "xls", samples.xls),
    ("suivi.xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "xlsx", samples.xlsx),
    ("note.odt", "application/vnd.oasis.opendocument.text", "odt", samples.odt),
    ("tableau.ods", "application/vnd.oasis.opendocument.spreadsheet", "ods", samples.ods),
]

REFUSED: list[tuple[str, str, Callable[[], bytes], str]] = [
    ("ordonnance.pdf", "application/pdf", samples.elf, "programme exécutable"),
    ("ordonnance.pdf", "application/pdf", samples.pe, "programme exécutable"),
    ("page.html", "text/html", samples.html, "pages web (HTML)"),
    ("logo.svg", "image/svg+xml", samples.svg, "images SVG"),
    (
        "courrier.docx",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        samples.docm,
        "macros",
    ),
    ("dossier.zip", "application/zip", samples.plain_zip, "archives compressées"),
    # Issue 6, item 8: each was stored before the shared policy checked them.
    ("ordonnance.pdf", "application/pdf", samples.mz_then_random, "programme exécutable"),
    ("ordonnance.pdf", "application/pdf", samples.pdf_header_then_garbage, "pas un valide"),
    ("ordonnance.pdf", "application/pdf", samples.pdf_open_action_javascript, "JavaScript"),
    ("ordonnance.pdf", "application/pdf", samples.pdf_then_zip_with_exe, "archive ZIP"),
    ("photo.jpg", "image/jpeg", samples.jpeg_then_html, "page web"),
    (
        "courrier.docx",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        samples.docx_inflating_to,
        "décompresse",
    ),
]


@pytest.fixture(scope="module")
def uploader_token(stack: Stack) -> str:
    async def make() -> str:
        user_id, password, _ = await new_professional(stack, "uploader")
        return await stack.login(user_id, password)

    return asyncio.run(make())


async def download(stack: Stack, token: str, mxc: str) -> httpx.Response:
    parts = urlsplit(mxc)
    return await client_api(
        stack, "GET", f"/_matrix/client/v1/media/download/{parts.netloc}{parts.path}", token
    )


@pytest.mark.parametrize(("filename", "content_type", "kind", "make"), ALLOWED, ids=[a[2] for a in ALLOWED])
async def test_each_allowed_type_uploads_and_downloads(
    stack: Stack,
    uploader_token: str,
    filename: str,
    content_type: str,
    kind: str,
    make: Callable[[], bytes],
) -> None:
    data = make()
    resp = await upload(stack, uploader_token, data, content_type=content_type, filename=filename)
    assert resp.status_code == 200, resp.text
    got = await download(stack, uploader_token, resp.json()["content_uri"])
    assert got.status_code == 200 and got.content == data


@pytest.mark.parametrize(
    ("filename", "content_type", "make", "why"),
    REFUSED,
    ids=[
        "elf-as-pdf",
        "pe-as-pdf",
        "html",
        "svg",
        "docm-as-docx",
        "zip",
        "mz-then-random",
        "pdf-garbage",
        "pdf-javascript",
        "pdf-plus-zip-exe",
        "jpeg-plus-html",
        "docx-zip-bomb",
    ],
)
async def test_refused_uploads_answer_forbidden_with_the_french_reason(
    stack: Stack,
    uploader_token: str,
    filename: str,
    content_type: str,
    make: Callable[[], bytes],
    why: str,
) -> None:
    resp = await upload(stack, uploader_token, make(), content_type=content_type, filename=filename)
    assert resp.status_code == 403, resp.text
    assert resp.json()["errcode"] == "M_FORBIDDEN"
    assert why in resp.json()["error"]


async def test_size_limit_is_exactly_ten_megabytes(stack: Stack, uploader_token: str) -> None:
    limit = 10 * 1024 * 1024
    exactly = samples.pdf().ljust(limit, b"\n")
    ok = await upload(stack, uploader_token, exactly, content_type="application/pdf", filename="gros.pdf")
    assert ok.status_code == 200, ok.text
    too_big = await upload(
        stack, uploader_token, exactly + b"\n", content_type="application/pdf", filename="trop-gros.pdf"
    )
    assert too_big.status_code == 413
    assert too_big.json()["errcode"] == "M_TOO_LARGE"
    # Issue 6, item 14: the module answers, in French, not Synapse ("Upload request body is too large").
    assert "dépasse la taille maximale autorisée (10 Mo)" in too_big.json()["error"]


async def test_clients_are_told_the_product_upload_limit(stack: Stack, uploader_token: str) -> None:
    resp = await client_api(stack, "GET", "/_matrix/client/v1/media/config", uploader_token)
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"m.upload.size": 10 * 1024 * 1024}


async def test_synapse_thumbnails_of_an_uploaded_photo_pass_the_check(
    stack: Stack, uploader_token: str
) -> None:
    resp = await upload(
        stack, uploader_token, samples.jpeg(), content_type="image/jpeg", filename="photo.jpg"
    )
    parts = urlsplit(resp.json()["content_uri"])
    thumb = await client_api(
        stack,
        "GET",
        f"/_matrix/client/v1/media/thumbnail/{parts.netloc}{parts.path}",
        uploader_token,
        params={"width": 32, "height": 32, "method": "scale"},
    )
    assert thumb.status_code == 200, thumb.text
    assert thumb.headers["content-type"].startswith("image/")


async def test_real_encrypted_attachment_in_an_e2ee_room_round_trips(stack: Stack) -> None:
    alice, alice_pw, _ = await new_professional(stack, "e2ea")
    bob, bob_pw, _ = await new_professional(stack, "e2eb")
    plaintext = samples.pdf()
    async with stack.client(alice, alice_pw) as a, stack.client(bob, bob_pw) as b:
        room = await a.room_create(
            name="Salon chiffré",
            invite=[bob],
            initial_state=[
                {
                    "type": "m.room.encryption",
                    "state_key": "",
                    "content": {"algorithm": "m.megolm.v1.aes-sha2"},
                }
            ],
        )
        assert isinstance(room, RoomCreateResponse), room
        await b.sync(timeout=3000)
        assert (await b.join(room.room_id)).__class__.__name__ == "JoinResponse"
        await a.sync(timeout=3000, full_state=True)
        await b.sync(timeout=3000)
        if a.should_query_keys:
            await a.keys_query()

        ciphertext, keys = encrypt_attachment(plaintext)
        uploaded, _ = await a.upload(
            lambda *_: ciphertext,
            content_type="application/octet-stream",
            filename="compte-rendu.pdf",
            filesize=len(ciphertext),
        )
        assert isinstance(uploaded, UploadResponse), uploaded
        sent = await a.room_send(
            room.room_id,
            "m.room.message",
            {
                "msgtype": "m.file",
                "body": "compte-rendu.pdf",
                "info": {"mimetype": "application/pdf", "size": len(plaintext)},
                "file": {"url": uploaded.content_uri, **keys},
            },
            ignore_unverified_devices=True,
        )
        assert isinstance(sent, RoomSendResponse), sent

        received: RoomEncryptedFile | None = None
        for _ in range(20):
            sync = await b.sync(timeout=1000)
            timeline = sync.rooms.join.get(room.room_id)  # type: ignore[union-attr]
            for event in timeline.timeline.events if timeline else []:
                assert not isinstance(event, MegolmEvent), "bob could not decrypt the message"
                if isinstance(event, RoomEncryptedFile):
                    received = event
            if received:
                break
        assert received is not None, "bob never received the encrypted file event"

        got = await download(stack, b.access_token, received.url)
        assert got.status_code == 200
        assert got.content == ciphertext
        decrypted = decrypt_attachment(got.content, received.key["k"], received.hashes["sha256"], received.iv)
        assert decrypted == plaintext


async def test_a_disguised_executable_encrypted_client_side_is_not_seen_by_the_server(
    stack: Stack, uploader_token: str
) -> None:
    """The documented limit: ciphertext cannot be typed, so the bot must check inside E2EE rooms."""
    ciphertext, _ = encrypt_attachment(samples.elf())
    resp = await upload(
        stack, uploader_token, ciphertext, content_type="application/octet-stream", filename="ordonnance.pdf"
    )
    assert resp.status_code == 200


async def test_upload_and_download_file_names_never_reach_synapse_log(
    stack: Stack, uploader_token: str
) -> None:
    # Issue 6, item 7: clients put the file name in the URI, and Synapse logs every URI.
    name = "CR_NOM_Prénom_1940-02-03.pdf"
    resp = await upload(stack, uploader_token, samples.pdf(), content_type="application/pdf", filename=name)
    assert resp.status_code == 200, resp.text
    parts = urlsplit(resp.json()["content_uri"])
    got = await client_api(
        stack,
        "GET",
        f"/_matrix/client/v1/media/download/{parts.netloc}{parts.path}/{name}",
        uploader_token,
    )
    assert got.status_code == 200
    # One process: synapse.log; with workers, the media worker's synapse-media1.log.
    log = stack.home.logs_dir / ("synapse-media1.log" if workers_mode() else "synapse.log")

    async def both_requests_logged() -> bool:
        text = log.read_text(encoding="utf-8", errors="replace")
        return f"{parts.path}/<redacted>" in text and "/_matrix/media/v3/upload?<redacted>" in text

    await eventually(both_requests_logged, within=10)
    text = log.read_text(encoding="utf-8", errors="replace")
    for leak in ("CR_NOM", "1940-02-03", "Pr%C3%A9nom", "Prénom"):
        assert leak not in text
