"""In-process dashboard harness: a fake of Synapse's sign-in edge (an edge we do not own), wired to the
same ``FakeTokens`` the API tests use, and helpers to sign in and submit forms as a browser would."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field

import httpx

from coordination.errors import Unauthenticated
from coordination.ids import UserId
from coordination.web.matrix import LoginFlows, MatrixLogin, SsoProvider
from tests.support.service import FakeTokens


@dataclass
class FakeMatrixAuth:
    """Synapse's /login, /logout and OpenID userinfo, as far as the dashboard uses them."""

    tokens: FakeTokens
    passwords: dict[str, str] = field(default_factory=dict)  # user_id -> password
    login_tokens: dict[str, str] = field(default_factory=dict)  # SSO loginToken -> user_id
    openid: dict[str, str] = field(default_factory=dict)  # openid token -> user_id
    logged_out: list[str] = field(default_factory=list)
    sso: bool = False

    async def flows(self) -> LoginFlows:
        return LoginFlows(password=True, sso=[SsoProvider("psc", "Pro Santé Connect")] if self.sso else [])

    def _issue(self, user_id: str) -> MatrixLogin:
        token = self.tokens.issue(user_id)
        return MatrixLogin(UserId(user_id), token, f"DEV{uuid.uuid4().hex[:6]}")

    async def password_login(
        self, *, user: str, password: str, client_address: str | None = None
    ) -> MatrixLogin:
        if self.passwords.get(user) != password:
            raise Unauthenticated("Identifiant ou mot de passe incorrect : réessayez.")
        return self._issue(user)

    async def token_login(self, *, login_token: str) -> MatrixLogin:
        user_id = self.login_tokens.pop(login_token, None)
        if user_id is None:
            raise Unauthenticated("Connexion unique expirée : recommencez.")
        return self._issue(user_id)

    async def logout(self, *, access_token: str) -> None:
        self.logged_out.append(access_token)
        self.tokens.tokens.pop(access_token, None)

    async def openid_user(self, *, openid_token: str) -> UserId | None:
        found = self.openid.get(openid_token)
        return UserId(found) if found else None

    def sso_redirect_url(self, *, provider_id: str | None, return_url: str) -> str:
        return f"https://matrix.example/sso/{provider_id}?redirectUrl={return_url}"


CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, "no csrf_token in the page"
    return found.group(1)


async def sign_in(client: httpx.AsyncClient, user_id: str, password: str) -> httpx.Response:
    """Open the sign-in page (pre-login cookie + token), then post the form; returns the answer."""
    page = await client.get("/app/connexion")
    assert page.status_code == 200, page.text
    return await client.post(
        "/app/connexion",
        data={
            "identifiant": user_id,
            "mot_de_passe": password,
            "csrf_token": csrf_of(page.text),
            "suite": "/app/demandes",
        },
    )


async def page_csrf(client: httpx.AsyncClient, path: str = "/app/demandes") -> str:
    page = await client.get(path)
    assert page.status_code == 200, page.text
    return csrf_of(page.text)
