"""What the dashboard asks Synapse: sign-in flows, password and SSO-token login, logout, OpenID check.

The professional's password goes to Synapse once, at sign-in, and is never stored; the access token
Synapse gives back stays in ``web_sessions`` on the server. SSO (OIDC, e.g. Pro Santé Connect) is
Synapse's: the dashboard only follows ``m.login.sso`` and redeems the ``m.login.token`` it gets back,
so a provider configured in homeserver.yaml appears on the sign-in page with no change here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import quote, urlencode

import httpx

from coordination.errors import ErrCode, Unauthenticated, Unavailable
from coordination.ids import UserId

logger = logging.getLogger(__name__)

DEVICE_NAME = "Tableau de bord AZUREZO"


@dataclass(frozen=True, slots=True)
class SsoProvider:
    id: str | None
    name: str


@dataclass(frozen=True, slots=True)
class LoginFlows:
    password: bool
    sso: list[SsoProvider] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class MatrixLogin:
    user_id: UserId
    access_token: str
    device_id: str | None


class MatrixAuth(Protocol):
    """The Synapse calls of the dashboard (a fake replaces it in the in-process tests)."""

    async def flows(self) -> LoginFlows: ...

    async def password_login(
        self, *, user: str, password: str, client_address: str | None = None
    ) -> MatrixLogin:
        """``client_address``: the browser's, so Synapse's per-address login limits count each
        professional's browser, not the service (which every dashboard sign-in comes from)."""

    async def token_login(self, *, login_token: str) -> MatrixLogin: ...

    async def logout(self, *, access_token: str) -> None: ...

    async def openid_user(self, *, openid_token: str) -> UserId | None: ...

    def sso_redirect_url(self, *, provider_id: str | None, return_url: str) -> str: ...


_UNREACHABLE = "Le serveur de messagerie ne répond pas : réessayez dans quelques instants."


class SynapseAuth:
    """``MatrixAuth`` over Synapse's client API (and the ``openid`` listener resource)."""

    def __init__(self, synapse_url: str, *, public_url: str | None, client: httpx.AsyncClient) -> None:
        self._url = synapse_url.rstrip("/")
        self._public = (public_url or synapse_url).rstrip("/")
        self._client = client

    async def _call(self, method: str, path: str, **kwargs: object) -> httpx.Response:
        try:
            return await self._client.request(method, f"{self._url}{path}", timeout=10.0, **kwargs)  # type: ignore[arg-type]
        except httpx.HTTPError as exc:
            logger.warning("synapse %s %s failed: %s", method, path.split("?")[0], type(exc).__name__)
            raise Unavailable(_UNREACHABLE) from exc

    async def flows(self) -> LoginFlows:
        resp = await self._call("GET", "/_matrix/client/v3/login")
        if resp.status_code != 200:
            raise Unavailable(_UNREACHABLE)
        password, providers = False, list[SsoProvider]()
        for flow in resp.json().get("flows", []):
            kind = flow.get("type")
            if kind == "m.login.password":
                password = True
            elif kind == "m.login.sso":
                listed = flow.get("identity_providers") or []
                providers.extend(
                    SsoProvider(str(p.get("id")), str(p.get("name") or p.get("id"))) for p in listed
                )
                if not listed:
                    providers.append(SsoProvider(None, "l'authentification unique"))
        return LoginFlows(password=password, sso=providers)

    async def _login(self, body: dict[str, object], client_address: str | None) -> MatrixLogin:
        # Synapse's listener trusts X-Forwarded-For (x_forwarded: true, loopback only): its login rate
        # limits then apply per browser, not to the service as a whole.
        headers = {"X-Forwarded-For": client_address} if client_address else {}
        resp = await self._call(
            "POST",
            "/_matrix/client/v3/login",
            json={**body, "initial_device_display_name": DEVICE_NAME},
            headers=headers,
        )
        if resp.status_code == 200:
            data = resp.json()
            return MatrixLogin(UserId(str(data["user_id"])), str(data["access_token"]), data.get("device_id"))
        if resp.status_code == 429:
            wait = int(resp.json().get("retry_after_ms", 60_000)) // 1000 + 1
            raise Unavailable(
                f"Trop de tentatives de connexion depuis ce poste : réessayez dans {wait} secondes."
            )
        if resp.status_code in (400, 401, 403):
            raise Unauthenticated(
                "Identifiant ou mot de passe incorrect : saisissez votre identifiant Matrix (par exemple "
                "« jmartin ») et le mot de passe de votre messagerie, puis réessayez.",
                errcode=ErrCode.UNAUTHENTICATED,
            )
        raise Unavailable(_UNREACHABLE)

    async def password_login(
        self, *, user: str, password: str, client_address: str | None = None
    ) -> MatrixLogin:
        return await self._login(
            {
                "type": "m.login.password",
                "identifier": {"type": "m.id.user", "user": user},
                "password": password,
            },
            client_address,
        )

    async def token_login(self, *, login_token: str) -> MatrixLogin:
        return await self._login({"type": "m.login.token", "token": login_token}, None)

    async def logout(self, *, access_token: str) -> None:
        """Log the device out (best effort: a token already gone is fine)."""
        try:
            await self._client.post(
                f"{self._url}/_matrix/client/v3/logout",
                headers={"Authorization": f"Bearer {access_token}"},
                timeout=10.0,
            )
        except httpx.HTTPError as exc:
            logger.warning("matrix logout failed: %s", type(exc).__name__)

    async def openid_user(self, *, openid_token: str) -> UserId | None:
        """The Matrix user an OpenID token (from the Element widget API) belongs to, per Synapse."""
        resp = await self._call(
            "GET", f"/_matrix/federation/v1/openid/userinfo?{urlencode({'access_token': openid_token})}"
        )
        if resp.status_code == 200 and isinstance(sub := resp.json().get("sub"), str):
            return UserId(sub)
        if resp.status_code in (401, 403, 404):
            return None
        raise Unavailable(_UNREACHABLE)

    def sso_redirect_url(self, *, provider_id: str | None, return_url: str) -> str:
        path = "/_matrix/client/v3/login/sso/redirect"
        if provider_id:
            path += "/" + quote(provider_id, safe="")
        return f"{self._public}{path}?{urlencode({'redirectUrl': return_url})}"
