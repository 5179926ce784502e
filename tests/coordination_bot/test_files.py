"""The pure parts of the bot's file rules (``coordination_bot.files``) and the guard's bounds.

The guard is driven here through a recording Matrix side (our own protocol, like the handlers'
``RecordingGateway``); the real one is exercised against Synapse in ``test_bot_files.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from nio.crypto.attachments import encrypt_attachment

import filetyping
from coordination_bot import files
from coordination_bot.ids import EventId, RoomId, UserId
from tests.filetyping import samples

LIMIT = filetyping.DEFAULT_MAX_UPLOAD_BYTES


def encrypted_content(data: bytes, msgtype: str = "m.file") -> tuple[dict[str, Any], bytes]:
    ciphertext, keys = encrypt_attachment(data)
    return {
        "msgtype": msgtype,
        "body": "x",
        "file": {"url": "mxc://example.org/abcDEF_12-3", **keys},
    }, ciphertext


# --- what an event carries -------------------------------------------------------------------------
def test_encrypted_file_and_thumbnail_are_both_found() -> None:
    content, _ = encrypted_content(samples.png(), "m.image")
    _, thumb_keys = encrypt_attachment(samples.png())
    content["info"] = {"thumbnail_file": {"url": "mxc://example.org/thumb", **thumb_keys}}
    ref = files.attachment_of("m.room.message", content)
    assert ref is not None and ref.problem is None
    assert [(m.role, m.server, m.media_id) for m in ref.media] == [
        ("file", "example.org", "abcDEF_12-3"),
        ("thumbnail", "example.org", "thumb"),
    ]
    assert all(m.encryption is not None for m in ref.media)


@pytest.mark.parametrize("msgtype", ["m.file", "m.image", "m.video", "m.audio"])
def test_every_attachment_msgtype_and_url_only(msgtype: str) -> None:
    ref = files.attachment_of(
        "m.room.message", {"msgtype": msgtype, "body": "x", "url": "mxc://hs.test:8448/m1"}
    )
    assert ref is not None and ref.media[0].encryption is None and ref.media[0].server == "hs.test:8448"


def test_stickers_are_attachments_and_text_is_not() -> None:
    assert files.attachment_of("m.sticker", {"body": "s", "url": "mxc://a.b/c"}) is not None
    assert files.attachment_of("m.room.message", {"msgtype": "m.text", "body": "!aide"}) is None
    assert files.attachment_of("m.reaction", {"url": "mxc://a.b/c"}) is None
    assert files.attachment_of("m.room.message", "not a dict") is None


@pytest.mark.parametrize(
    "mutate",
    [
        lambda c: c.pop("file"),  # an attachment without media
        lambda c: c["file"].update(url="mxc://example.org/../../_synapse/admin"),  # path injection
        lambda c: c["file"].update(url="https://evil.example/x"),
        lambda c: c["file"].pop("hashes"),
        lambda c: c["file"]["key"].update(alg="A128CBC"),
        lambda c: c["file"].update(iv="not base64 !"),
        lambda c: c["file"].update(v="v1"),
        lambda c: c.update(file="a string"),
        lambda c: c.update(info={"thumbnail_file": {"url": "mxc://a.b/c"}}),  # thumbnail without key
    ],
)
def test_malformed_attachments_are_refused_as_unreadable(mutate: Any) -> None:
    content, _ = encrypted_content(samples.pdf())
    mutate(content)
    ref = files.attachment_of("m.room.message", content)
    assert ref is not None and ref.problem == files.UNREADABLE


# --- verdicts on bytes -----------------------------------------------------------------------------
def _media(content: dict[str, Any]) -> files.Media:
    ref = files.attachment_of("m.room.message", content)
    assert ref is not None
    return ref.media[0]


@pytest.mark.parametrize(
    "make", [samples.pdf, samples.png, samples.jpeg, samples.docx, samples.xlsx, samples.odt]
)
def test_allowed_documents_decrypt_and_pass(make: Any) -> None:
    content, ciphertext = encrypted_content(make())
    verdict = files.judge(ciphertext, _media(content), max_bytes=LIMIT)
    assert verdict.allowed and verdict.kind is not None


@pytest.mark.parametrize(
    "make",
    [
        samples.docm,
        samples.xlsm,
        samples.pe,
        samples.elf,
        samples.plain_zip,
        samples.shell_script,
        samples.html,
    ],
)
def test_forbidden_documents_get_the_modules_own_reason(make: Any) -> None:
    data = make()
    content, ciphertext = encrypted_content(data)
    verdict = files.judge(ciphertext, _media(content), max_bytes=LIMIT)
    module = filetyping.classify(data, max_bytes=LIMIT, allow_encrypted=True)  # what the module says
    assert not verdict.allowed
    assert (verdict.refusal, verdict.reason) == (module.refusal, module.reason)


def test_a_hash_mismatch_is_never_decrypted() -> None:
    content, ciphertext = encrypted_content(samples.pdf())
    tampered = bytes([ciphertext[0] ^ 1]) + ciphertext[1:]
    verdict = files.judge(tampered, _media(content), max_bytes=LIMIT)
    assert (verdict.allowed, verdict.refusal, verdict.reason) == (False, "tampered", files.TAMPERED)


def test_plaintext_that_looks_random_is_not_accepted_as_ciphertext() -> None:
    media = files.Media("file", "a.b", "c", None)
    assert filetyping.classify(samples.random_bytes(4096)).allowed  # the module lets ciphertext through
    verdict = files.judge(samples.random_bytes(4096), media, max_bytes=LIMIT)
    assert not verdict.allowed and verdict.refusal == filetyping.Refusal.UNKNOWN


def test_over_the_limit_is_too_large_with_the_modules_text() -> None:
    media = files.Media("file", "a.b", "c", None)
    verdict = files.judge(b"%PDF-" + bytes(2048), media, max_bytes=1024)
    assert verdict.reason == filetyping.too_large_reason(1024)


def test_a_refused_thumbnail_refuses_the_attachment_and_says_so() -> None:
    main, thumb = files.Media("file", "a", "b", None), files.Media("thumbnail", "a", "c", None)
    ok = filetyping.classify(samples.png())
    bad = filetyping.classify(samples.elf())
    verdict = files.combine([(main, ok), (thumb, bad)])
    assert not verdict.allowed and verdict.reason == "La miniature jointe à ce fichier est refusée : " + str(
        bad.reason
    )
    assert files.combine([(main, ok), (thumb, ok)]).allowed
    docm = filetyping.classify(samples.docm())
    assert files.combine([(thumb, bad), (main, docm)]).reason == docm.reason  # the file's own first


async def _stream(chunks: list[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


async def test_read_capped_stops_past_the_cap() -> None:
    assert await files.read_capped(_stream([b"ab", b"cd"]), cap=4) == b"abcd"
    with pytest.raises(files.TooLarge):
        await files.read_capped(_stream([b"ab", b"cd", b"e", b"never read"]), cap=4)


# --- power levels, texts ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("levels", "expected"),
    [
        ({"users": {"@bot:x": 50}}, (True, 50)),
        ({"users": {"@bot:x": 100}, "redact": 100}, (True, 100)),
        ({"users": {"@other:x": 100}}, (False, 50)),
        ({"users_default": 50}, (True, 50)),
        ({"users": {"@bot:x": 50}, "events": {"m.room.redaction": 75}}, (False, 75)),
        ({"users": {"@bot:x": "50"}, "redact": "oops"}, (True, 50)),
        ({}, (False, 50)),
    ],
)
def test_can_redact(levels: dict[str, Any], expected: tuple[bool, int]) -> None:
    assert files.can_redact(levels, "@bot:x") == expected


def test_sender_notice_mentions_the_sender_and_escapes_html() -> None:
    verdict = filetyping.classify(samples.pe())
    content = files.sender_notice(UserId("@a<b>:x"), verdict, redacted=True)
    assert content["m.mentions"] == {"user_ids": ["@a<b>:x"]}
    assert content["msgtype"] == "m.notice" and str(verdict.reason) in content["body"]
    assert "<b>" not in content["formatted_body"] and "&lt;b&gt;" in content["formatted_body"]
    assert "supprimez-le" in files.sender_notice(UserId("@a:x"), verdict, redacted=False)["body"]
    assert files.redaction_reason(verdict).endswith(str(verdict.reason))


# --- the guard: bounded, journaled, never stores -----------------------------------------------------
@dataclass
class Response:
    status_code: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        for i in range(0, len(self.body), 65536):
            yield self.body[i : i + 65536]


@dataclass
class RecordingSide:
    media: dict[str, Response]
    user_id: str = "@bot:x"
    redactions: list[tuple[str, str]] = field(default_factory=list)
    notices: list[dict[str, Any]] = field(default_factory=list)
    levels: dict[str, Any] | None = None
    gate: asyncio.Event = field(default_factory=asyncio.Event)
    running: int = 0
    most: int = 0
    redact_ok: bool = True

    @contextlib.asynccontextmanager
    async def download(self, server: str, media_id: str) -> AsyncIterator[Response]:
        self.running += 1
        self.most = max(self.most, self.running)
        try:
            await self.gate.wait()
            yield self.media[media_id]
        finally:
            self.running -= 1

    async def redact(self, room_id: str, event_id: str, reason: str, tx_id: str) -> bool:
        self.redactions.append((event_id, reason))
        return self.redact_ok

    async def notice(self, room_id: str, content: dict[str, Any], tx_id: str) -> None:
        self.notices.append(content)

    async def power_levels(self, room_id: str) -> dict[str, Any] | None:
        return self.levels


def _ref(media_id: str) -> files.AttachmentRef:
    return files.AttachmentRef((files.Media("file", "x", media_id, None),))


async def test_guard_bounds_concurrency_and_journals_until_done(tmp_path: Path) -> None:
    side = RecordingSide({"ok": Response(200, samples.pdf()), "bad": Response(200, samples.pe())})
    journal_path = tmp_path / "files_pending.json"
    guard = files.FileGuard(side, files.Journal(journal_path), concurrency=2)
    for i in range(6):
        guard.submit(RoomId("!r"), EventId(f"$e{i}"), UserId("@a:x"), _ref("bad" if i == 3 else "ok"))
    await asyncio.sleep(0.05)
    assert side.running == 2  # the others wait for a slot
    assert len(json.loads(journal_path.read_text())) == 6
    assert files.Journal(journal_path).pending()[0] == ("!r", "$e0")  # a restart would find them
    side.gate.set()
    await guard.drain()
    assert side.most == 2
    assert [e for e, _ in side.redactions] == ["$e3"]
    assert side.notices[0]["m.mentions"] == {"user_ids": ["@a:x"]}
    assert json.loads(journal_path.read_text()) == []
    assert journal_path.stat().st_mode & 0o777 == 0o600


async def test_guard_caps_downloads_and_fails_closed(tmp_path: Path) -> None:
    side = RecordingSide(
        {
            "huge": Response(200, b"%PDF-" + bytes(LIMIT)),  # no content-length: the stream is cut
            "declared": Response(200, b"", {"content-length": str(LIMIT + 1)}),
            "gone": Response(404, b""),
            "broken": Response(502, b""),
        }
    )
    side.gate.set()
    guard = files.FileGuard(side, files.Journal(tmp_path / "j.json"))
    too_large = filetyping.too_large_reason(LIMIT)
    assert (await guard.verdict(_ref("huge"))).reason == too_large
    assert (await guard.verdict(_ref("declared"))).reason == too_large
    assert (await guard.verdict(_ref("gone"))).reason == files.UNREADABLE
    assert (await guard.verdict(_ref("broken"))).reason == files.UNCHECKED


async def test_guard_tells_a_room_once_when_it_cannot_redact(tmp_path: Path) -> None:
    side = RecordingSide({}, levels={"users": {"@prof:x": 100}})
    guard = files.FileGuard(side, files.Journal(tmp_path / "j.json"))
    assert not await guard.check_power(RoomId("!r"))
    assert not await guard.check_power(RoomId("!r"))
    assert len(side.notices) == 1 and "modérateur" in side.notices[0]["body"]
    side.levels = None  # an unencrypted room: nothing to say
    assert await guard.check_power(RoomId("!other"))


async def test_an_attachment_submitted_twice_is_checked_once(tmp_path: Path) -> None:
    """A sync replayed after a restart hands over an attachment the journal already resumed."""
    side = RecordingSide({"bad": Response(200, samples.pe())})
    guard = files.FileGuard(side, files.Journal(tmp_path / "j.json"))
    guard.submit(RoomId("!r"), EventId("$e"), UserId("@a:x"), _ref("bad"))
    guard.submit(RoomId("!r"), EventId("$e"), UserId("@a:x"), _ref("bad"))
    side.gate.set()
    await guard.drain()
    assert side.redactions == [("$e", files.redaction_reason(filetyping.classify(samples.pe())))]
    assert len(side.notices) == 1
