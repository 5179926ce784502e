"""Synapse's shared-secret registration (``/_synapse/admin/v1/register``), for the two places that
create Matrix accounts: ``azurezo account create`` (the operator) and account activation (the
professional, ``coordination.signup``). An HTTP client only: no database, no web layer."""

from __future__ import annotations

import hashlib
import hmac

import httpx


def registration_mac(*, shared_secret: str, nonce: str, localpart: str, password: str, admin: bool) -> str:
    """HMAC-SHA1 of the admin registration API: nonce, user, password, admin flag, NUL-separated."""
    parts = (nonce, localpart, password, "admin" if admin else "notadmin")
    message = b"\x00".join(part.encode() for part in parts)
    return hmac.new(shared_secret.encode(), message, digestmod=hashlib.sha1).hexdigest()


async def register_with_shared_secret(
    client: httpx.AsyncClient,
    *,
    synapse_url: str,
    shared_secret: str,
    localpart: str,
    password: str,
    admin: bool = False,
    displayname: str | None = None,
) -> httpx.Response:
    """Run Synapse's shared-secret registration and return its raw answer (callers read refusals)."""
    url = f"{synapse_url}/_synapse/admin/v1/register"
    nonce_resp = await client.get(url, timeout=10.0)
    nonce_resp.raise_for_status()
    nonce = str(nonce_resp.json()["nonce"])
    body: dict[str, object] = {
        "nonce": nonce,
        "username": localpart,
        "password": password,
        "admin": admin,
        "mac": registration_mac(
            shared_secret=shared_secret,
            nonce=nonce,
            localpart=localpart,
            password=password,
            admin=admin,
        ),
    }
    if displayname:
        body["displayname"] = displayname
    return await client.post(url, json=body, timeout=30.0)
