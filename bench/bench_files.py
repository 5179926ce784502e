"""File rules in encrypted rooms: p95 from upload to the bot's verdict, against the raw download +
decrypt of the same file in the same run.

    .venv/bin/python bench/bench_files.py [--rounds 10] [--sizes 4,1024,8192] [--burst 8]

Starts the real stack (service + Synapse with our module) and the real bot (``azurezo bot run``) from
a fresh home. One professional (matrix-nio, E2EE) has an encrypted room where the bot is moderator
(as in a patient room, which the bot creates). For each size (KiB) and round it sends an allowed file
(a PNG of that size) and a forbidden one (a Windows executable padded to that size), encrypted as
Element does, and measures:

- upload -> verdict: from the start of the upload to the bot's decision (the bot logs the verdict with
  its delay after the event's ``origin_server_ts``, so the time is read on one clock, the machine's);
  for a refused file the redaction and the notice follow;
- for the forbidden file, upload -> redaction seen by the sender's client (what the user sees);
- the baseline: the same client downloading the ciphertext (authenticated media) and decrypting it,
  right after, so machine noise hits both alike.

Then a burst: ``--burst`` large forbidden files sent at once, immediately followed by ``!aide``; the
command's round trip is compared with an idle ``!aide`` (a big file must not stall commands).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import re
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
from nio import (
    AsyncClient,
    MatrixRoom,
    RedactionEvent,
    RoomCreateResponse,
    RoomGetEventResponse,
    RoomMessageNotice,
    RoomSendResponse,
    UploadResponse,
)
from nio.crypto.attachments import decrypt_attachment, encrypt_attachment

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from azurezo_cli.home import save_home  # noqa: E402
from tests.coordination_bot.test_bot_e2ee import start_bot, trust_only_cross_signed  # noqa: E402
from tests.filetyping import samples  # noqa: E402
from tests.support.stack import Stack, free_port, start_stack  # noqa: E402

ENCRYPTION = {"type": "m.room.encryption", "state_key": "", "content": {"algorithm": "m.megolm.v1.aes-sha2"}}
VERDICT = re.compile(r"file verdict (\S+) in \S+: (allowed|refused) .* ([0-9]+) ms after it was sent\)")


def png_of(size: int) -> bytes:
    """A real PNG of about ``size`` bytes (noise does not compress)."""
    from PIL import Image

    side = max(8, int((size / 3) ** 0.5))
    image = Image.frombytes("RGB", (side, side), os.urandom(side * side * 3))
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=0)
    return out.getvalue()


def exe_of(size: int) -> bytes:
    head = samples.pe()
    return head + os.urandom(max(0, size - len(head)))


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class Sender:
    def __init__(self, stack: Stack, client: AsyncClient) -> None:
        self.stack, self.client = stack, client
        self.redacted: dict[str, float] = {}
        self.replies: dict[str, float] = {}
        client.add_event_callback(self._on_redaction, RedactionEvent)
        client.add_event_callback(self._on_notice, RoomMessageNotice)

    async def _on_redaction(self, room: MatrixRoom, event: RedactionEvent) -> None:
        self.redacted.setdefault(event.redacts, time.time())

    async def _on_notice(self, room: MatrixRoom, event: RoomMessageNotice) -> None:
        target = event.source["content"].get("m.relates_to", {}).get("m.in_reply_to", {}).get("event_id")
        if target:
            self.replies.setdefault(target, time.time())

    async def send_file(self, room_id: str, data: bytes) -> tuple[str, float, dict[str, Any]]:
        """(event id, wall-clock upload start, the ``file`` object)."""
        started = time.time()
        ciphertext, keys = encrypt_attachment(data)
        up, _ = await self.client.upload(
            io.BytesIO(ciphertext), content_type="application/octet-stream", filesize=len(ciphertext)
        )
        assert isinstance(up, UploadResponse), up
        file = {"url": up.content_uri, **keys}
        content = {"msgtype": "m.file", "body": "piece", "file": file, "info": {"size": len(data)}}
        resp = await self.client.room_send(room_id, "m.room.message", content, ignore_unverified_devices=True)
        assert isinstance(resp, RoomSendResponse), resp
        return resp.event_id, started, file

    async def download_decrypt(self, file: dict[str, Any]) -> float:
        """The baseline: download the ciphertext and decrypt it, in seconds."""
        server, media_id = file["url"][len("mxc://") :].split("/", 1)
        started = time.monotonic()
        async with httpx.AsyncClient(timeout=30) as http:
            resp = await http.get(
                f"{self.stack.synapse_url}/_matrix/client/v1/media/download/{server}/{media_id}",
                headers={"Authorization": f"Bearer {self.client.access_token}"},
            )
        resp.raise_for_status()
        decrypt_attachment(resp.content, file["key"]["k"], file["hashes"]["sha256"], file["iv"])
        return time.monotonic() - started

    async def origin_ts(self, room_id: str, event_id: str) -> float:
        resp = await self.client.room_get_event(room_id, event_id)
        assert isinstance(resp, RoomGetEventResponse), resp
        return float(resp.event.server_timestamp) / 1000


def bot_verdicts(stack: Stack) -> dict[str, tuple[str, float]]:
    """event id -> (verdict, ms after origin_server_ts), from the bot's log."""
    out = {}
    for line in (stack.home.logs_dir / "bot.log").read_text(errors="replace").splitlines():
        match = VERDICT.search(line)
        if match:
            out[match.group(1)] = (match.group(2), float(match.group(3)))
    return out


async def wait_for(predicate: Any, timeout: float = 60.0) -> None:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        await asyncio.sleep(0.02)
    raise RuntimeError("timed out")


async def bench(stack: Stack, args: argparse.Namespace) -> None:
    person = await stack.add_person(family_name="BENCHFICHIERS")
    user_id, password = await stack.create_account(person.national_id)
    async with stack.client(user_id, password) as client:
        sender = Sender(stack, client)
        await client.sync(timeout=0, full_state=True)
        resp = await client.room_create(
            invite=[stack.bot_user_id],
            initial_state=[ENCRYPTION],
            room_version="11",
            power_level_override={"users": {user_id: 100, stack.bot_user_id: 50}},
        )
        assert isinstance(resp, RoomCreateResponse), resp
        room_id = resp.room_id
        syncer = asyncio.ensure_future(
            client.sync_forever(timeout=30000, sync_filter={"room": {"timeline": {"limit": 500}}})
        )
        await wait_for(lambda: stack.bot_user_id in (client.rooms.get(room_id) or MatrixRoom("", "")).users)
        await trust_only_cross_signed(stack, client)

        rows: dict[tuple[int, str], dict[str, list[float]]] = {}
        sizes = [int(s) for s in args.sizes.split(",")]
        print(
            f"{'size':>8} {'kind':>8} {'n':>3} {'verdict p50':>12} {'p95':>8} {'redaction p95':>14} "
            f"{'baseline p50':>13} {'p95':>8}"
        )
        for size_kib in sizes:
            for kind, make in (("allowed", png_of), ("refused", exe_of)):
                row = rows.setdefault((size_kib, kind), {"verdict": [], "redaction": [], "baseline": []})
                for _ in range(args.rounds):
                    data = make(size_kib * 1024)
                    event_id, started, file = await sender.send_file(room_id, data)
                    await wait_for(lambda e=event_id: e in bot_verdicts(stack))
                    verdict, after_sent_ms = bot_verdicts(stack)[event_id]
                    assert verdict == kind, (event_id, verdict, kind)
                    origin = await sender.origin_ts(room_id, event_id)
                    row["verdict"].append(origin + after_sent_ms / 1000 - started)
                    if kind == "refused":
                        await wait_for(lambda e=event_id: e in sender.redacted)
                        row["redaction"].append(sender.redacted[event_id] - started)
                    row["baseline"].append(await sender.download_decrypt(file))
                v, b, r = row["verdict"], row["baseline"], row["redaction"]
                print(
                    f"{size_kib:>6}Ki {kind:>8} {len(v):>3} "
                    f"{pct(v, 0.5) * 1000:>10.0f}ms {pct(v, 0.95) * 1000:>6.0f}ms "
                    f"{(f'{pct(r, 0.95) * 1000:.0f}ms' if r else '-'):>14} {pct(b, 0.5) * 1000:>11.0f}ms "
                    f"{pct(b, 0.95) * 1000:>6.0f}ms",
                    flush=True,
                )
        everything = [x for row in rows.values() for x in row["verdict"]]
        print(
            f"all files: n={len(everything)} upload->verdict p50 {pct(everything, 0.5) * 1000:.0f} ms, "
            f"p95 {pct(everything, 0.95) * 1000:.0f} ms, max {max(everything) * 1000:.0f} ms"
        )

        # Commands while big files are checked.
        async def command_rtt() -> float:
            sent = time.time()
            r = await client.room_send(
                room_id,
                "m.room.message",
                {"msgtype": "m.text", "body": "!aide"},
                ignore_unverified_devices=True,
            )
            assert isinstance(r, RoomSendResponse), r
            await wait_for(lambda: r.event_id in sender.replies)
            return sender.replies[r.event_id] - sent

        idle = [await command_rtt() for _ in range(5)]
        big = max(sizes) * 1024
        burst = [exe_of(big) for _ in range(args.burst)]
        sent = await asyncio.gather(*(sender.send_file(room_id, d) for d in burst))
        during = await command_rtt()
        await wait_for(lambda: all(e in sender.redacted for e, _, _ in sent), timeout=120)
        # The same load on Synapse without the bot's checks: the client downloads the 8 files while
        # a command goes through (tells Synapse's share of the delay from the bot's).
        downloads = asyncio.gather(*(sender.download_decrypt(f) for _, _, f in sent))
        synapse_busy = await command_rtt()
        await downloads
        origins = {e: await sender.origin_ts(room_id, e) for e, _, _ in sent}
        from_send = max(sender.redacted[e] - origins[e] for e, _, _ in sent)
        from_upload = max(sender.redacted[e] - s for e, s, _ in sent)
        print(
            f"!aide idle: median {sorted(idle)[2] * 1000:.0f} ms; "
            f"right after {args.burst} x {max(sizes)} KiB forbidden files: {during * 1000:.0f} ms "
            f"(while the client downloads them, no bot check: {synapse_busy * 1000:.0f} ms); "
            f"the last of the {args.burst} redacted {from_send:.1f} s after it was sent "
            f"({from_upload:.1f} s after its upload started)"
        )
        syncer.cancel()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--sizes", default="4,1024,8192", help="file sizes in KiB, comma-separated")
    parser.add_argument("--burst", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-files-") as tmp:
        stack = start_stack(Path(tmp))
        try:
            stack.home = replace(stack.home, bot_port=free_port())
            save_home(stack.home)
            start_bot(stack)
            asyncio.run(bench(stack, args))
        finally:
            stack.stop()


if __name__ == "__main__":
    main()
