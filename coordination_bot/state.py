"""The bot's state under the home (``var/bot/``), kept together because it only works together:

    state.json        device id, access token, the store's pickle key, the three cross-signing seeds
                      and the last sync token handled (mode 0600, written atomically)
    store/            matrix-nio's crypto store (Olm account, Megolm sessions), encrypted with the
                      pickle key
    pending.json      encrypted events not decryptable yet (ciphertext only), retried when keys arrive
    marks.db          reactions ❗ / ❓ (identifiers only)
    files_pending.json  ids of the attachments being checked (``coordination_bot.files``), redone at start
    rooms.json        patient rooms the bot created, by request id (a restart never creates a second)
    dms.json          the bot's direct rooms, by Matrix user (notifications)

A fresh store on an old device id breaks the device for everyone (Synapse refuses its one-time keys,
other clients reject it): the device id, token and store are created together and reused on every
start; the bot never logs out (that deletes the device).
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from coordination_bot.crosssigning import CrossSigningKeys

STATE_FORMAT = 1


class StateError(Exception):
    """Unreadable state; the message is French and says what to do."""


@dataclass(frozen=True)
class BotState:
    device_id: str | None = None
    access_token: str | None = None
    pickle_key: str = field(default_factory=lambda: secrets.token_urlsafe(48))
    cross_signing: CrossSigningKeys = field(default_factory=CrossSigningKeys.generate)
    sync_token: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "format": STATE_FORMAT,
            "device_id": self.device_id,
            "access_token": self.access_token,
            "pickle_key": self.pickle_key,
            "cross_signing": self.cross_signing.to_json(),
            "sync_token": self.sync_token,
        }


def write_private(path: Path, text: str) -> None:
    """Write a file readable by its owner only (0600), atomically."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


class StateDir:
    """``var/bot/``: created 0700 on first use."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @property
    def state_file(self) -> Path:
        return self.path / "state.json"

    @property
    def store_dir(self) -> Path:
        return self.path / "store"

    @property
    def pending_file(self) -> Path:
        return self.path / "pending.json"

    @property
    def marks_file(self) -> Path:
        return self.path / "marks.db"

    @property
    def rooms_file(self) -> Path:
        return self.path / "rooms.json"

    @property
    def dms_file(self) -> Path:
        return self.path / "dms.json"

    def prepare(self) -> None:
        for directory in (self.path, self.store_dir):
            directory.mkdir(parents=True, exist_ok=True)
            os.chmod(directory, 0o700)

    def load(self) -> BotState:
        """The saved state, or a fresh one (new pickle key and cross-signing seeds) saved at once."""
        if not self.state_file.exists():
            if any(self.store_dir.iterdir()):
                raise StateError(
                    f"{self.store_dir} contient un magasin de clés sans {self.state_file} : le robot ne "
                    "peut pas le rouvrir. Restaurez state.json, ou effacez tout le dossier "
                    f"{self.path} pour recréer l'appareil du robot (les salons devront le réinviter "
                    "s'ils le bloquent)."
                )
            state = BotState()
            self.save(state)
            return state
        try:
            raw = json.loads(self.state_file.read_text(encoding="utf-8"))
            if raw.get("format") != STATE_FORMAT:
                raise StateError(f"{self.state_file} : format {raw.get('format')!r} inconnu.")
            return BotState(
                device_id=raw.get("device_id"),
                access_token=raw.get("access_token"),
                pickle_key=str(raw["pickle_key"]),
                cross_signing=CrossSigningKeys.from_json(raw["cross_signing"]),
                sync_token=raw.get("sync_token"),
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise StateError(
                f"{self.state_file} est illisible ({exc}) : restaurez-le depuis une sauvegarde."
            ) from exc

    def save(self, state: BotState) -> None:
        write_private(self.state_file, json.dumps(state.to_json(), indent=2) + "\n")

    def save_sync_token(self, state: BotState, token: str) -> BotState:
        state = replace(state, sync_token=token)
        self.save(state)
        return state

    def load_pending(self) -> list[dict[str, Any]]:
        if not self.pending_file.exists():
            return []
        try:
            raw = json.loads(self.pending_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return []
        return [e for e in raw if isinstance(e, dict)] if isinstance(raw, list) else []

    def save_pending(self, events: list[dict[str, Any]]) -> None:
        write_private(self.pending_file, json.dumps(events))
