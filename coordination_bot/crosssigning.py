"""Cross-signing of the bot's own device, so that Element trusts it (issue 8, FIELD-NOTES "Bot E2EE").

A bare matrix-nio device is not cross-signed: Element shows a red shield and a client in "only
cross-signed devices" mode shares no room key with it. At first start the bot creates its three
cross-signing keys (ed25519 seeds kept in its state, 0600), uploads them
(``/keys/device_signing/upload``, password UIA when Synapse asks) and signs its device with the
self-signing key (``/keys/signatures/upload``). At every start ``ensure_cross_signed`` checks what the
server holds and repairs what is missing or different.

vodozemac's Python API has no standalone ed25519 key: pycryptodome (a matrix-nio dependency) signs.
"""

from __future__ import annotations

import base64
import json
import logging
import secrets
from dataclasses import dataclass
from typing import Any

import httpx
from Crypto.PublicKey import ECC
from Crypto.Signature import eddsa

logger = logging.getLogger(__name__)


class CrossSigningError(Exception):
    """The server refused our keys or signature; the message is French."""


def b64(data: bytes) -> str:
    """Unpadded standard base64, as Matrix uses for keys and signatures."""
    return base64.b64encode(data).decode().rstrip("=")


def unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


def canonical_json(obj: Any) -> bytes:
    """Matrix canonical JSON of an object to sign (``signatures`` and ``unsigned`` removed)."""
    if isinstance(obj, dict):
        obj = {k: v for k, v in obj.items() if k not in ("signatures", "unsigned")}
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode("utf-8")


@dataclass(frozen=True)
class SigningKey:
    """An ed25519 key from its 32-byte seed."""

    seed: bytes

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(secrets.token_bytes(32))

    @property
    def public(self) -> str:
        key = ECC.construct(curve="ed25519", seed=self.seed)
        return b64(key.public_key().export_key(format="raw"))

    def sign(self, obj: Any) -> str:
        signer = eddsa.new(ECC.construct(curve="ed25519", seed=self.seed), "rfc8032")
        return b64(signer.sign(canonical_json(obj)))


def verify(public: str, obj: Any, signature: str) -> bool:
    """Whether ``signature`` (unpadded base64) is ``public``'s ed25519 signature of ``obj``."""
    try:
        key = eddsa.import_public_key(unb64(public))
        eddsa.new(key, "rfc8032").verify(canonical_json(obj), unb64(signature))
    except (ValueError, TypeError):
        return False
    return True


@dataclass(frozen=True)
class CrossSigningKeys:
    master: SigningKey
    self_signing: SigningKey
    user_signing: SigningKey

    @classmethod
    def generate(cls) -> CrossSigningKeys:
        return cls(SigningKey.generate(), SigningKey.generate(), SigningKey.generate())

    def to_json(self) -> dict[str, str]:
        return {
            "master": b64(self.master.seed),
            "self_signing": b64(self.self_signing.seed),
            "user_signing": b64(self.user_signing.seed),
        }

    @classmethod
    def from_json(cls, raw: dict[str, str]) -> CrossSigningKeys:
        return cls(
            SigningKey(unb64(raw["master"])),
            SigningKey(unb64(raw["self_signing"])),
            SigningKey(unb64(raw["user_signing"])),
        )

    def upload_body(self, user_id: str) -> dict[str, Any]:
        """The three public keys, the self-signing and user-signing ones signed by the master key."""
        master_id = f"ed25519:{self.master.public}"

        def key(usage: str, signing: SigningKey, signed: bool) -> dict[str, Any]:
            obj: dict[str, Any] = {
                "user_id": user_id,
                "usage": [usage],
                "keys": {f"ed25519:{signing.public}": signing.public},
            }
            if signed:
                obj["signatures"] = {user_id: {master_id: self.master.sign(obj)}}
            return obj

        return {
            "master_key": key("master", self.master, False),
            "self_signing_key": key("self_signing", self.self_signing, True),
            "user_signing_key": key("user_signing", self.user_signing, True),
        }


def device_is_cross_signed(query: dict[str, Any], user_id: str, device_id: str) -> bool:
    """Whether a ``/keys/query`` answer shows ``device_id`` signed by a self-signing key that is itself
    signed by the user's master key: the check a client in "only cross-signed devices" mode makes."""
    try:
        master = query["master_keys"][user_id]
        ssk = query["self_signing_keys"][user_id]
        device = query["device_keys"][user_id][device_id]
    except (KeyError, TypeError):
        return False
    if "master" not in master.get("usage", []) or "self_signing" not in ssk.get("usage", []):
        return False
    (master_id, master_pub), *_ = master["keys"].items()
    (ssk_id, ssk_pub), *_ = ssk["keys"].items()
    ssk_sig = ssk.get("signatures", {}).get(user_id, {}).get(master_id)
    device_sig = device.get("signatures", {}).get(user_id, {}).get(ssk_id)
    return bool(
        ssk_sig and device_sig and verify(master_pub, ssk, ssk_sig) and verify(ssk_pub, device, device_sig)
    )


async def ensure_cross_signed(
    *,
    client: httpx.AsyncClient,
    homeserver: str,
    access_token: str,
    user_id: str,
    device_id: str,
    password: str,
    keys: CrossSigningKeys,
) -> str:
    """Make the server hold ``keys`` as the user's cross-signing keys and ``device_id`` signed by the
    self-signing one. Idempotent; returns what was done (``"already"``, ``"signed"``, ``"uploaded"``).

    The device's own keys must already be uploaded (matrix-nio ``keys_upload``).
    """
    headers = {"Authorization": f"Bearer {access_token}"}
    base = f"{homeserver.rstrip('/')}/_matrix/client/v3"

    async def query() -> dict[str, Any]:
        resp = await client.post(f"{base}/keys/query", headers=headers, json={"device_keys": {user_id: []}})
        resp.raise_for_status()
        result: dict[str, Any] = resp.json()
        return result

    current = await query()
    server_master = current.get("master_keys", {}).get(user_id, {}).get("keys", {})
    server_ssk = current.get("self_signing_keys", {}).get(user_id, {}).get("keys", {})
    done = "already"
    if (
        f"ed25519:{keys.master.public}" not in server_master
        or f"ed25519:{keys.self_signing.public}" not in server_ssk
    ):
        await _upload_signing_keys(client, base, headers, user_id, password, keys.upload_body(user_id))
        done = "uploaded"
        current = await query()
    if device_is_cross_signed(current, user_id, device_id):
        return done
    device = current.get("device_keys", {}).get(user_id, {}).get(device_id)
    if device is None:
        raise CrossSigningError(
            f"Le serveur ne connaît pas les clés de l'appareil {device_id} du robot : "
            "redémarrez le robot ; si cela persiste, effacez son état (var/bot/) pour recréer l'appareil."
        )
    signed = {k: v for k, v in device.items() if k != "unsigned"}
    ssk_id = f"ed25519:{keys.self_signing.public}"
    signatures = dict(signed.get("signatures", {}))
    signatures[user_id] = {**signatures.get(user_id, {}), ssk_id: keys.self_signing.sign(device)}
    signed["signatures"] = signatures
    resp = await client.post(
        f"{base}/keys/signatures/upload", headers=headers, json={user_id: {device_id: signed}}
    )
    if resp.status_code != 200 or resp.json().get("failures"):
        raise CrossSigningError(
            f"Synapse a refusé la signature de l'appareil du robot ({resp.status_code}) : {resp.text[:300]}"
        )
    if not device_is_cross_signed(await query(), user_id, device_id):
        raise CrossSigningError("La signature croisée de l'appareil du robot n'a pas été enregistrée.")
    return "signed" if done == "already" else done


async def _upload_signing_keys(
    client: httpx.AsyncClient,
    base: str,
    headers: dict[str, str],
    user_id: str,
    password: str,
    body: dict[str, Any],
) -> None:
    url = f"{base}/keys/device_signing/upload"
    resp = await client.post(url, headers=headers, json=body)
    if resp.status_code == 401 and "session" in resp.json():
        # Replacing existing keys needs user-interactive auth (spec: /keys/device_signing/upload).
        auth = {
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": user_id},
            "password": password,
            "session": resp.json()["session"],
        }
        resp = await client.post(url, headers=headers, json={**body, "auth": auth})
    if resp.status_code != 200:
        raise CrossSigningError(
            f"Synapse a refusé les clés de signature croisée du robot ({resp.status_code}) : "
            f"{resp.text[:300]}"
        )
    logger.info("cross-signing keys uploaded for %s", user_id)
