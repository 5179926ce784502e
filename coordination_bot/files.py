"""File rules inside end-to-end encrypted rooms (issue 9).

Synapse only stores ciphertext for an encrypted room's attachments, so the module's upload check
(``synapse_module``, ``filetyping.classify``) cannot type them. The bot is a member of those rooms:
it downloads each attachment (main file and thumbnail), checks the SHA-256 of the ciphertext and
decrypts it in memory (``nio.crypto.attachments.decrypt_attachment``), then applies **the same
policy function with the same French refusal texts** as the module (``filetyping.classify``, here
on the plaintext, so ``allow_encrypted=False``). What is forbidden is redacted with the French reason,
and the sender is told in the room (a notice that mentions them through ``m.mentions``).

Safety rules:
- Nothing is written to disk: a download is read into memory, capped at the limit (one byte more
  means "too large" and the transfer stops), and dropped once judged.
- Fail closed: an attachment that cannot be read (malformed ``file`` object, unknown mxc, hash
  mismatch, a download that keeps failing) is redacted too, with a French reason saying what to do.
- Bounded: at most ``MAX_CONCURRENT_CHECKS`` attachments are checked at once, off the command path
  (the sync loop hands them over and goes on answering commands).
- Never lost: the ids of the attachments being checked are journaled (``files_pending.json``, ids only)
  and checked again after a restart.

This module holds the pure parts (what an event carries, the verdict on some bytes, the texts); the
``FileGuard`` at the end drives them against Synapse.
"""

from __future__ import annotations

import asyncio
import binascii
import hashlib
import json
import logging
import os
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import filetyping
from coordination_bot.ids import EventId, RoomId, UserId

logger = logging.getLogger(__name__)

ATTACHMENT_MSGTYPES = frozenset({"m.file", "m.image", "m.video", "m.audio"})
STICKER = "m.sticker"
MAX_CONCURRENT_CHECKS = 4
DOWNLOAD_ATTEMPTS = 3
DOWNLOAD_TIMEOUT_S = 8.0

# What a client may write as an mxc URI (spec "Matrix Content (mxc://) URIs"): a server name and a
# media id of [A-Za-z0-9_-]. Anything else is refused before a URL is built from it.
_MXC = re.compile(
    r"^mxc://([A-Za-z0-9.\-]{1,255}(?::[0-9]{1,5})?|\[[0-9A-Fa-f:.]{2,45}\](?::[0-9]{1,5})?)/([A-Za-z0-9_\-]{1,255})$"
)
_B64 = re.compile(r"^[A-Za-z0-9+/_\-]+={0,2}$")

# --- French texts (the policy's own refusals come from filetyping: the module's texts) -------------
TAMPERED = (
    "Ce fichier chiffré ne correspond pas à son empreinte de contrôle : il a pu être altéré et "
    "n'a pas été ouvert. Envoyez-le à nouveau depuis votre application."
)
UNREADABLE = (
    "Cette pièce jointe est mal formée ou introuvable, son contenu n'a donc pas pu être vérifié. "
    "Envoyez le fichier à nouveau depuis votre application."
)
UNCHECKED = (
    "Le contenu de ce fichier n'a pas pu être téléchargé pour être vérifié. Envoyez-le à nouveau "
    "dans quelques minutes."
)
CANNOT_ENFORCE = (
    "Le robot de coordination ne peut pas faire respecter les règles de partage de fichiers dans ce "
    "salon chiffré : il lui faut le droit de supprimer les messages des autres (niveau "
    "« modérateur », {level}). Un administrateur du salon peut le lui donner dans les paramètres "
    "du salon (Rôles et permissions). D'ici là, seuls les fichiers PDF, images, Word, Excel et "
    "OpenDocument doivent y être partagés."
)
_THUMBNAIL = "La miniature jointe à ce fichier est refusée : "


@dataclass(frozen=True, slots=True)
class EncryptedKey:
    """The ``key``/``iv``/``hashes.sha256`` of an encrypted ``file`` object (spec "EncryptedFile")."""

    key: str
    iv: str
    sha256: str


@dataclass(frozen=True, slots=True)
class Media:
    """One downloadable part of an attachment: the file itself or its thumbnail."""

    role: Literal["file", "thumbnail"]
    server: str
    media_id: str
    encryption: EncryptedKey | None


@dataclass(frozen=True, slots=True)
class AttachmentRef:
    """What an event asks clients to download. ``problem`` is a French reason when the event claims an
    attachment but its description cannot be trusted (then ``media`` may be incomplete)."""

    media: tuple[Media, ...]
    problem: str | None = None


def parse_mxc(uri: object) -> tuple[str, str] | None:
    """``(server, media_id)`` of a well-formed mxc URI, else None."""
    if not isinstance(uri, str):
        return None
    match = _MXC.match(uri)
    return (match.group(1), match.group(2)) if match else None


def _encrypted_key(file: dict[str, Any]) -> EncryptedKey | None:
    key = file.get("key")
    hashes = file.get("hashes")
    iv = file.get("iv")
    if not (isinstance(key, dict) and isinstance(hashes, dict)):
        return None
    k, sha = key.get("k"), hashes.get("sha256")
    if key.get("alg", "A256CTR") != "A256CTR" or file.get("v", "v2") != "v2":
        return None
    if not all(isinstance(v, str) and _B64.match(v) for v in (k, sha, iv)):
        return None
    return EncryptedKey(key=str(k), iv=str(iv), sha256=str(sha))


def _media(role: Literal["file", "thumbnail"], file: object, url: object) -> Media | Literal[False] | None:
    """The media of a ``file`` object or a plain ``url``; None when neither is given; False when the
    description is malformed."""
    if file is not None:
        if not isinstance(file, dict):
            return False
        mxc, encryption = parse_mxc(file.get("url")), _encrypted_key(file)
        if mxc is None or encryption is None:
            return False
        return Media(role, mxc[0], mxc[1], encryption)
    if url is not None:
        mxc = parse_mxc(url)
        return False if mxc is None else Media(role, mxc[0], mxc[1], None)
    return None


def attachment_of(event_type: object, content: object) -> AttachmentRef | None:
    """The attachment an event carries (``m.file``/``m.image``/``m.video``/``m.audio`` messages and
    stickers, with their thumbnail), or None for any other event.

    Works on the decrypted ``type``/``content`` (nio's ``event.source``), whatever nio made of them: an
    encrypted room's ``url``-only attachment or a malformed one becomes a ``BadEvent`` in nio."""
    if not isinstance(content, dict):
        return None
    if not (
        event_type == STICKER
        or (event_type == "m.room.message" and content.get("msgtype") in ATTACHMENT_MSGTYPES)
    ):
        return None
    media: list[Media] = []
    problem = None
    main = _media("file", content.get("file"), content.get("url"))
    if isinstance(main, Media):
        media.append(main)
    else:  # no media at all, or a malformed one: clients would fail on it, nothing can be checked
        problem = UNREADABLE
    info = content.get("info")
    if isinstance(info, dict):
        thumb = _media("thumbnail", info.get("thumbnail_file"), info.get("thumbnail_url"))
        if isinstance(thumb, Media):
            media.append(thumb)
        elif thumb is False:
            problem = UNREADABLE
    return AttachmentRef(tuple(media), problem)


# --- the verdict on downloaded bytes ----------------------------------------------------------------
def refused(refusal: str, reason: str, size: int = 0) -> filetyping.Verdict:
    return filetyping.Verdict(allowed=False, refusal=refusal, reason=reason, detected=refusal, size=size)


def judge(data: bytes, media: Media, *, max_bytes: int) -> filetyping.Verdict:
    """The policy's verdict on one downloaded part (ciphertext when ``media.encryption``).

    The SHA-256 of the ciphertext is checked before anything is decrypted (``decrypt_attachment``
    does it and refuses otherwise); the plaintext is then classified like any stored file. Blocking
    (AES on up to 10 MB, container inspection): call it from a worker thread."""
    from nio.crypto.attachments import decrypt_attachment
    from nio.exceptions import EncryptionError

    if len(data) > max_bytes:
        return refused(filetyping.Refusal.TOO_LARGE, filetyping.too_large_reason(max_bytes), len(data))
    plain = data
    if media.encryption is not None:
        enc = media.encryption
        try:
            plain = decrypt_attachment(data, enc.key, enc.sha256, enc.iv)
        except (EncryptionError, ValueError, binascii.Error):
            return refused("tampered", TAMPERED, len(data))
    # Plaintext: a random-looking content is not "ciphertext of an encrypted room" any more, it is an
    # unknown type, refused as the service refuses it for plaintext documents.
    return filetyping.classify(plain, max_bytes=max_bytes, allow_encrypted=False)


def combine(verdicts: list[tuple[Media, filetyping.Verdict]]) -> filetyping.Verdict:
    """An attachment is allowed only if every part is; the file's own refusal is named first."""
    for media, verdict in sorted(verdicts, key=lambda mv: mv[0].role != "file"):
        if not verdict.allowed:
            if media.role == "thumbnail" and verdict.reason:
                return refused(verdict.refusal or "thumbnail", _THUMBNAIL + verdict.reason, verdict.size)
            return verdict
    main = [v for m, v in verdicts if m.role == "file"]
    return main[0] if main else refused("unreadable", UNREADABLE)


class TooLarge(Exception):
    """The download went over the cap: stopped there."""


async def read_capped(chunks: AsyncIterator[bytes], *, cap: int) -> bytes:
    """Read a stream into memory, never more than ``cap`` + one chunk (then ``TooLarge``)."""
    buffer = bytearray()
    async for chunk in chunks:
        buffer += chunk
        if len(buffer) > cap:
            raise TooLarge(len(buffer))
    return bytes(buffer)


def can_redact(power_levels: dict[str, Any], user_id: str) -> tuple[bool, int]:
    """Whether ``user_id`` may redact others' events with these ``m.room.power_levels`` (spec
    defaults: redact 50, events_default 0, users_default 0), and the level it needs."""

    def level(value: object, default: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int | str):
            return default
        try:
            return int(value)
        except ValueError:
            return default

    users = power_levels.get("users") if isinstance(power_levels.get("users"), dict) else {}
    events = power_levels.get("events") if isinstance(power_levels.get("events"), dict) else {}
    mine = level((users or {}).get(user_id, power_levels.get("users_default", 0)), 0)
    redact = level(power_levels.get("redact", 50), 50)
    send = level((events or {}).get("m.room.redaction", power_levels.get("events_default", 0)), 0)
    needed = max(redact, send)
    return mine >= needed, needed


def redaction_reason(verdict: filetyping.Verdict) -> str:
    """The reason stored on the redaction (visible to every member; no identity, no file name)."""
    return "Fichier refusé par les règles de partage d'AZUREZO. " + (verdict.reason or UNREADABLE)


def sender_notice(sender: UserId, verdict: filetyping.Verdict, *, redacted: bool) -> dict[str, Any]:
    """The notice telling the sender why their file was removed (or could not be), mentioning them."""
    reason = verdict.reason or UNREADABLE
    if redacted:
        lead = "le fichier que vous venez d'envoyer a été retiré de ce salon."
    else:
        lead = (
            "le fichier que vous venez d'envoyer est refusé, mais le robot n'a pas le droit de le "
            "retirer de ce salon : supprimez-le vous-même."
        )
    link = f'<a href="https://matrix.to/#/{_html(sender)}">{_html(sender)}</a>'
    return {
        "msgtype": "m.notice",
        "body": f"{sender} : {lead} {reason}",
        "format": "org.matrix.custom.html",
        "formatted_body": f"{link} : {_html(lead)} {_html(reason)}",
        "m.mentions": {"user_ids": [sender]},
    }


def cannot_enforce_notice(level: int) -> dict[str, Any]:
    text = CANNOT_ENFORCE.format(level=level)
    return {
        "msgtype": "m.notice",
        "body": text,
        "format": "org.matrix.custom.html",
        "formatted_body": _html(text),
        "m.mentions": {},
    }


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def tx_id(kind: str, room_id: str, event_id: str) -> str:
    """A transaction id derived from the attachment: a check replayed after a crash makes Synapse
    return the first redaction / notice instead of sending a second."""
    return f"file-{kind}-" + hashlib.sha256(f"{room_id}{event_id}".encode()).hexdigest()[:32]


# --- journal ----------------------------------------------------------------------------------------
class Journal:
    """Ids of the attachments being checked (``files_pending.json``, 0600): checked again at start."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._ids: dict[str, str] = {}  # event id -> room id
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raw = []
        for item in raw if isinstance(raw, list) else []:
            if isinstance(item, list) and len(item) == 2 and all(isinstance(v, str) for v in item):
                self._ids[item[1]] = item[0]

    def pending(self) -> list[tuple[RoomId, EventId]]:
        return [(RoomId(room), EventId(event)) for event, room in self._ids.items()]

    def add(self, room_id: str, event_id: str) -> None:
        if event_id not in self._ids:
            self._ids[event_id] = room_id
            self._save()

    def done(self, event_id: str) -> None:
        if self._ids.pop(event_id, None) is not None:
            self._save()

    def _save(self) -> None:
        # Atomic (temporary file + rename) but not fsynced: it runs on the event loop for every file, and
        # an fsync on a busy disk would hold up the commands. A crashed bot process loses nothing (the
        # page cache survives it); only a power cut during a check may lose its id.
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(json.dumps([[room, event] for event, room in self._ids.items()]))
        os.replace(tmp, self.path)


# --- the guard ----------------------------------------------------------------------------------------
class MatrixSide(Protocol):
    """What the guard does on Matrix (``runner.NioFileSide`` is the real one)."""

    user_id: str

    def download(self, server: str, media_id: str) -> Any:
        """An async context manager yielding an ``httpx.Response`` streamed from the media repo."""
        ...

    async def redact(self, room_id: str, event_id: str, reason: str, tx_id: str) -> bool: ...

    async def notice(self, room_id: str, content: dict[str, Any], tx_id: str) -> None: ...

    async def power_levels(self, room_id: str) -> dict[str, Any] | None: ...


class FileGuard:
    """Checks attachments in the background, ``MAX_CONCURRENT_CHECKS`` at a time."""

    def __init__(
        self,
        side: MatrixSide,
        journal: Journal,
        *,
        max_bytes: int = filetyping.DEFAULT_MAX_UPLOAD_BYTES,
        concurrency: int = MAX_CONCURRENT_CHECKS,
    ) -> None:
        self._side = side
        self._journal = journal
        self._max_bytes = max_bytes
        self._slots = asyncio.Semaphore(concurrency)
        self._tasks: set[asyncio.Task[None]] = set()
        self._inflight: set[str] = set()
        self._warned: set[str] = set()

    def submit(
        self,
        room_id: RoomId,
        event_id: EventId,
        sender: UserId,
        ref: AttachmentRef,
        sent_ms: int | None = None,
    ) -> None:
        """Hand an attachment over; returns at once (the check runs in the background). An attachment
        already being checked (a sync replayed after a restart) is not checked twice."""
        if event_id in self._inflight:
            return
        self._inflight.add(event_id)
        self._journal.add(room_id, event_id)
        task = asyncio.ensure_future(self._check(room_id, event_id, sender, ref, sent_ms))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(lambda _: self._inflight.discard(event_id))

    async def drain(self) -> None:
        """Wait for the checks in progress (at shutdown and in tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def cancel(self) -> None:
        """Stop the checks in progress; their ids stay in the journal."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def pending(self) -> list[tuple[RoomId, EventId]]:
        return self._journal.pending()

    def forget(self, event_id: EventId) -> None:
        """A journaled attachment whose event is gone or carries no attachment any more."""
        self._journal.done(event_id)

    async def _check(
        self, room_id: RoomId, event_id: EventId, sender: UserId, ref: AttachmentRef, sent_ms: int | None
    ) -> None:
        started = time.monotonic()
        try:
            async with self._slots:
                verdict = await self.verdict(ref)
                # Logged when decided (ids and categories only, never a file name): the benchmark reads
                # the delay after the event's origin_server_ts from this line.
                since_sent = f", {time.time() * 1000 - sent_ms:.0f} ms after it was sent" if sent_ms else ""
                logger.info(
                    "file verdict %s in %s: %s (%s, %d bytes, %.0f ms%s)",
                    event_id,
                    room_id,
                    "allowed" if verdict.allowed else "refused",
                    verdict.refusal or verdict.detected,
                    verdict.size,
                    (time.monotonic() - started) * 1000,
                    since_sent,
                )
            # The slot bounds what costs memory and CPU (download, decryption, typing); the redaction
            # and the notice are two small requests, made after it is released.
            if not verdict.allowed:
                await self._refuse(room_id, event_id, sender, verdict)
            self._journal.done(event_id)
        except Exception:
            # Kept in the journal: checked again at the next start.
            logger.exception("attachment %s in %s could not be checked", event_id, room_id)

    async def verdict(self, ref: AttachmentRef) -> filetyping.Verdict:
        """Download each part (capped), check and classify it off the event loop."""
        if ref.problem is not None:
            return refused("unreadable", ref.problem)
        results: list[tuple[Media, filetyping.Verdict]] = []
        for media in ref.media:
            data = await self._download(media)
            if isinstance(data, filetyping.Verdict):
                results.append((media, data))
                continue
            results.append((media, await asyncio.to_thread(judge, data, media, max_bytes=self._max_bytes)))
            del data  # never kept: the bytes go with this iteration
        return combine(results)

    async def _download(self, media: Media) -> bytes | filetyping.Verdict:
        too_large = refused(filetyping.Refusal.TOO_LARGE, filetyping.too_large_reason(self._max_bytes))
        for attempt in range(DOWNLOAD_ATTEMPTS):
            try:
                async with self._side.download(media.server, media.media_id) as resp:
                    if resp.status_code in (403, 404):
                        return refused("unreadable", UNREADABLE)
                    if resp.status_code != 200:
                        raise OSError(f"media repository answered {resp.status_code}")
                    declared = resp.headers.get("content-length")
                    if declared is not None and declared.isdigit() and int(declared) > self._max_bytes:
                        return too_large
                    data: bytes = await read_capped(resp.aiter_bytes(), cap=self._max_bytes)
                    return data
            except TooLarge:
                return too_large
            except Exception as exc:
                logger.warning(
                    "download of %s/%s failed (attempt %d): %s",
                    media.server,
                    media.media_id,
                    attempt + 1,
                    type(exc).__name__,
                )
                await asyncio.sleep(0.5 * (attempt + 1))
        return refused("unchecked", UNCHECKED)

    async def _refuse(
        self, room_id: RoomId, event_id: EventId, sender: UserId, verdict: filetyping.Verdict
    ) -> bool:
        redacted = await self._side.redact(
            room_id, event_id, redaction_reason(verdict), tx_id("redact", room_id, event_id)
        )
        if not redacted:
            logger.warning("attachment %s in %s is refused but could not be redacted", event_id, room_id)
        await self._side.notice(
            room_id, sender_notice(sender, verdict, redacted=redacted), tx_id("notice", room_id, event_id)
        )
        return redacted

    async def check_power(self, room_id: RoomId) -> bool:
        """Tell an encrypted room once when the bot cannot redact there (and log it)."""
        levels = await self._side.power_levels(room_id)
        if levels is None:
            return True
        ok, needed = can_redact(levels, self._side.user_id)
        if not ok and room_id not in self._warned:
            self._warned.add(room_id)
            logger.warning(
                "room %s: the bot cannot redact (needs power level %d): file rules not enforced",
                room_id,
                needed,
            )
            await self._side.notice(room_id, cannot_enforce_notice(needed), tx_id("power", room_id, room_id))
        return ok
