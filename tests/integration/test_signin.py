"""Single sign-on bound to the directory, and the terms of use, on a real Synapse (issue 13).

One stack of its own: Synapse with ``oidc_providers`` pointing at a real OpenID Connect provider
(panva's certified ``oidc-provider``, run with Node.js from ``tests/support/oidc``) and
``user_consent`` on. Synapse runs the whole authorization-code flow; the test plays the browser.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import replace
from email import message_from_bytes
from html import unescape
from pathlib import Path
from urllib.parse import urljoin

import httpx
import pytest
from aiosmtpd.controller import Controller

from azurezo_cli import accounts
from azurezo_cli.home import Home, Sso
from azurezo_cli.synapse_config import TERMS_DIR, current_terms_version, terms_source
from coordination.db import make_engine, make_sessionmaker
from coordination.ids import UserId
from coordination.security import actor_for_user
from coordination.signup import service as signup
from coordination.signup.schemas import SignupIn
from tests.support.stack import SEED_PEOPLE, Stack, free_port, start_stack

OIDC_DIR = Path(__file__).resolve().parent.parent / "support" / "oidc"
CLIENT_SECRET = "azurezo-tests-client-secret-0123456789"

JEANNE = SEED_PEOPLE[0]  # active
CLAIRE = SEED_PEOPLE[2]  # active, gets a password account first
LOUIS = SEED_PEOPLE[3]  # delisted in the seed directory
PAUL = SEED_PEOPLE[1]  # active, delisted during a test

# Provider accounts (login -> claims). `ghost` carries a national id the directory does not know;
# `nobody` no national id at all.
ACCOUNTS = {
    "jeanne": {"SubjectNameID": JEANNE.national_id, "given_name": "Jeanne", "family_name": "MARTIN"},
    "claire": {"SubjectNameID": CLAIRE.national_id, "given_name": "Claire", "family_name": "BERNARD"},
    "louis": {"SubjectNameID": LOUIS.national_id, "given_name": "Louis", "family_name": "PETIT"},
    "paul": {"SubjectNameID": PAUL.national_id, "given_name": "Paul", "family_name": "DURAND"},
    "ghost": {"SubjectNameID": "899700009999", "given_name": "Nemo", "family_name": "PERSONNE"},
    "nobody": {"given_name": "Sans", "family_name": "NUMERO"},
}
REFUSED = "ne correspond à aucun professionnel actif de l'annuaire"

pytestmark = [pytest.mark.synapse, pytest.mark.timeout(600)]


def _node() -> str:
    node = shutil.which("node")
    if node is None or not (OIDC_DIR / "node_modules" / "oidc-provider").is_dir():
        pytest.fail(
            "Node.js and tests/support/oidc/node_modules are needed (make test installs them: "
            "npm ci --prefix tests/support/oidc)"
        )
    return node


class Provider:
    def __init__(self, workdir: Path, synapse_url: str) -> None:
        self.port = free_port()
        self.issuer = f"http://127.0.0.1:{self.port}"
        config = {
            "port": self.port,
            "issuer": self.issuer,
            "client_id": "azurezo",
            "client_secret": CLIENT_SECRET,
            "redirect_uri": f"{synapse_url}/_synapse/client/oidc/callback",
            "accounts": ACCOUNTS,
        }
        config_path = workdir / "oidc.json"
        config_path.write_text(json.dumps(config))
        self.log = (workdir / "oidc.log").open("wb")
        self.process = subprocess.Popen(
            [_node(), str(OIDC_DIR / "provider.mjs"), str(config_path)],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            cwd=OIDC_DIR,
        )
        with httpx.Client() as client:
            for _ in range(150):
                try:
                    if client.get(f"{self.issuer}/.well-known/openid-configuration").is_success:
                        return
                except httpx.HTTPError:
                    pass
                if self.process.poll() is not None:
                    break
                time.sleep(0.2)
        self.stop()
        raise AssertionError(f"the OIDC provider did not start: {(workdir / 'oidc.log').read_text()}")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)
        self.log.close()


@pytest.fixture(scope="module")
def sso_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, Provider]]:
    workdir = tmp_path_factory.mktemp("sso")
    secret_file = workdir / "client_secret"
    secret_file.write_text(CLIENT_SECRET + "\n")
    providers: list[Provider] = []

    def configure(home: Home) -> Home:
        provider = Provider(workdir, home.synapse_url)
        providers.append(provider)
        sso = Sso(issuer=provider.issuer, client_id="azurezo", client_secret_file=str(secret_file))
        return replace(home, sso=sso, terms_of_use=True)

    stack = start_stack(workdir, configure=configure)
    try:
        yield stack, providers[0]
    finally:
        try:
            stack.stop()
        finally:
            for provider in providers:
                provider.stop()


async def _sso(stack: Stack, login: str) -> httpx.Response:
    """Play the browser through Synapse's SSO redirect, the provider's login and consent pages and
    Synapse's callback; return Synapse's last answer (a redirect carrying ``loginToken``, or a page)."""
    client_redirect = f"{stack.service_url}/app/connexion/sso"
    url = f"{stack.synapse_url}/_matrix/client/v3/login/sso/redirect/oidc-psc?redirectUrl={client_redirect}"
    async with httpx.AsyncClient(timeout=30.0) as browser:
        return await _browse(browser, stack, login, url, stop_at=client_redirect)


async def _browse(
    browser: httpx.AsyncClient, stack: Stack, login: str, url: str, *, stop_at: str | None
) -> httpx.Response:
    """Follow redirects and the provider's forms from ``url`` until a redirect to ``stop_at`` (returned
    as is) or a page that is not the provider's (returned)."""
    # Synapse's OIDC session cookie is `Secure`: browsers keep it for http://127.0.0.1 (a
    # potentially trustworthy origin), httpx does not, so it is carried by hand, as a browser would.
    synapse_cookies: dict[str, str] = {}
    resp = await browser.get(url)
    visited: list[str] = []
    for _ in range(30):
        visited.append(f"{resp.status_code} {resp.url}")
        for header in resp.headers.get_list("set-cookie"):
            name, _sep, rest = header.partition("=")
            if name.startswith("oidc_session"):
                synapse_cookies[name] = rest.split(";", 1)[0]
        if resp.is_redirect:
            location = urljoin(str(resp.url), resp.headers["location"])
            if stop_at is not None and location.startswith(stop_at):
                return resp
            headers = {}
            if location.startswith(stack.synapse_url) and synapse_cookies:
                headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in synapse_cookies.items())
            resp = await browser.get(location, headers=headers)
            continue
        page = resp.text
        form = re.search(r'<form[^>]*action="([^"]+)"', page)
        if form is None or "/interaction/" not in str(resp.url):
            return resp  # a Synapse page (error, or a confirmation with the token in it)
        fields = dict(re.findall(r'<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"', page))
        if 'name="login"' in page:
            fields.update(login=login, password="any")
        resp = await browser.post(urljoin(str(resp.url), unescape(form.group(1))), data=fields)
    raise AssertionError("the SSO flow did not end:\n" + "\n".join(visited))


async def test_the_dashboard_signs_in_through_the_same_sso(sso_stack: tuple[Stack, Provider]) -> None:
    """Tableau de bord → « Se connecter avec Pro Santé Connect » → the provider → back signed in."""
    stack, _ = sso_stack
    async with httpx.AsyncClient(timeout=30.0) as browser:
        sign_in = await browser.get(f"{stack.service_url}/app/connexion")
        assert "Se connecter avec Pro Santé Connect" in unescape(sign_in.text)
        start = f"{stack.service_url}/app/connexion/sso?idp=oidc-psc&suite=/app/taches"
        page = await _browse(browser, stack, "jeanne", start, stop_at=None)
        assert page.status_code == 200, page.text[:500]
        assert str(page.url).endswith("/app/taches")
        assert "Se déconnecter" in unescape(page.text)


def _login_token(resp: httpx.Response) -> str:
    text = resp.headers.get("location", "") if resp.is_redirect else resp.text
    match = re.search(r"loginToken=([A-Za-z0-9_\-.~]+)", text)
    assert match, f"no login token in Synapse's answer: {resp.status_code} {text[:500]}"
    return match.group(1)


async def _token_login(stack: Stack, token: str) -> httpx.Response:
    async with httpx.AsyncClient() as client:
        return await client.post(
            f"{stack.synapse_url}/_matrix/client/v3/login",
            json={"type": "m.login.token", "token": token},
            timeout=30.0,
        )


async def _sign_in(stack: Stack, login: str) -> dict[str, str]:
    resp = await _token_login(stack, _login_token(await _sso(stack, login)))
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


async def test_first_sso_creates_an_account_bound_to_the_directory(sso_stack: tuple[Stack, Provider]) -> None:
    stack, _ = sso_stack
    first = await _sign_in(stack, "jeanne")
    assert first["user_id"] == f"@jeanne.martin:{stack.server_name}"
    async with httpx.AsyncClient() as client:
        me = await client.get(
            f"{stack.service_url}/api/v1/me", headers={"Authorization": f"Bearer {first['access_token']}"}
        )
    assert me.status_code == 200, me.text
    assert me.json()["national_id"] == JEANNE.national_id
    again = await _sign_in(stack, "jeanne")
    assert again["user_id"] == first["user_id"]  # the same account, not a second one


async def test_sso_signs_in_to_the_account_created_with_a_password(sso_stack: tuple[Stack, Provider]) -> None:
    stack, _ = sso_stack
    user_id, _password = await stack.create_account(CLAIRE.national_id, "cbernard")
    signed_in = await _sign_in(stack, "claire")
    assert signed_in["user_id"] == user_id


@pytest.mark.parametrize("login", ["ghost", "louis"])
async def test_unknown_and_delisted_identities_get_the_same_french_refusal(
    sso_stack: tuple[Stack, Provider], login: str
) -> None:
    stack, _ = sso_stack
    resp = await _sso(stack, login)
    assert not resp.is_redirect
    assert REFUSED in unescape(resp.text)
    assert "La connexion n'a pas abouti" in unescape(resp.text)


async def test_an_identity_without_national_id_is_refused_in_french(
    sso_stack: tuple[Stack, Provider],
) -> None:
    stack, _ = sso_stack
    resp = await _sso(stack, "nobody")
    assert "n'a pas transmis votre numéro RPPS" in unescape(resp.text)


async def test_a_professional_delisted_after_the_first_sso_cannot_sign_in(
    sso_stack: tuple[Stack, Provider],
) -> None:
    stack, _ = sso_stack
    await _sign_in(stack, "paul")
    await stack.set_active(PAUL.national_id, False)
    try:
        resp = await _sso(stack, "paul")
        if resp.is_redirect or "loginToken" in resp.text:
            login = await _token_login(stack, _login_token(resp))
            assert login.status_code == 403, login.text
        else:
            assert REFUSED in unescape(resp.text)
    finally:
        await stack.set_active(PAUL.national_id, True)


# --- terms of use ---------------------------------------------------------------------------------


async def _send(stack: Stack, token: str, room_id: str, text: str) -> httpx.Response:
    async with httpx.AsyncClient() as client:
        return await client.put(
            f"{stack.synapse_url}/_matrix/client/v3/rooms/{room_id}/send/m.room.message/{os.urandom(6).hex()}",
            headers={"Authorization": f"Bearer {token}"},
            json={"msgtype": "m.text", "body": text},
            timeout=30.0,
        )


async def _create_room(stack: Stack, token: str) -> httpx.Response:
    async with httpx.AsyncClient() as client:
        return await client.post(
            f"{stack.synapse_url}/_matrix/client/v3/createRoom",
            headers={"Authorization": f"Bearer {token}"},
            json={"preset": "private_chat"},
            timeout=30.0,
        )


async def _once_seen(call: Callable[[], Awaitable[httpx.Response]]) -> httpx.Response:
    """``call`` again while it meets the terms just accepted as not given: on Synapse workers the
    acceptance is written by the main process and reaches the other processes by replication, a
    moment later (the professional's client shows the terms again and the next try goes through)."""
    deadline = time.monotonic() + 15
    while True:
        resp = await call()
        refused = resp.status_code == 403 and resp.json().get("errcode") == "M_CONSENT_NOT_GIVEN"
        if not refused or time.monotonic() > deadline:
            return resp
        await asyncio.sleep(0.2)


async def _accept(consent_uri: str, *, version: str) -> httpx.Response:
    """Open the link Synapse gave, check it shows ``version`` of the French terms, accept it."""
    async with httpx.AsyncClient() as client:
        page = await client.get(consent_uri, timeout=30.0)
        assert page.status_code == 200, page.text
        text = unescape(page.text)
        assert "Conditions d'utilisation de la messagerie AZUREZO" in text
        assert f"vous acceptez la version {version} des conditions" in text
        fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page.text))
        assert set(fields) == {"v", "u", "h"} and fields["v"] == version
        return await client.post(urljoin(consent_uri, "consent"), data=fields, timeout=30.0)


async def test_terms_must_be_accepted_before_writing_and_again_for_a_new_version(
    sso_stack: tuple[Stack, Provider],
) -> None:
    stack, _ = sso_stack
    person = await stack.add_person(family_name="CONSENT", given_name="Lea")
    user_id, password = await stack.create_account(person.national_id)
    token = await stack.login(user_id, password)

    refused = await _create_room(stack, token)  # creating a room sends events: refused too
    assert refused.status_code == 403, refused.text
    body = refused.json()
    assert body["errcode"] == "M_CONSENT_NOT_GIVEN"
    assert "acceptez les conditions d'utilisation" in body["error"]
    accepted = await _accept(body["consent_uri"], version="1.0")
    assert accepted.status_code == 200
    assert "votre acceptation est enregistrée" in unescape(accepted.text)

    room = await _once_seen(lambda: _create_room(stack, token))
    assert room.status_code == 200, room.text
    room_id = room.json()["room_id"]
    assert (await _send(stack, token, room_id, "bonjour")).status_code == 200

    # A new version of the terms (the region's own, in <home>/terms): everyone is asked again.
    _publish_terms_version(stack.home, "1.1")
    await _restart(stack)
    token = await stack.login(user_id, password)
    again = await _send(stack, token, room_id, "toujours là ?")
    assert again.status_code == 403 and again.json()["errcode"] == "M_CONSENT_NOT_GIVEN"
    assert (await _accept(again.json()["consent_uri"], version="1.1")).status_code == 200
    assert (await _once_seen(lambda: _send(stack, token, room_id, "toujours là ?"))).status_code == 200


def _publish_terms_version(home: Home, version: str) -> None:
    """The region publishes its own terms, version ``version``, in ``<home>/terms``."""
    terms = home.path / "terms"
    terms.mkdir(exist_ok=True)
    text = (TERMS_DIR / "1.0.html").read_text(encoding="utf-8")
    (terms / f"{version}.html").write_text(text, encoding="utf-8")


async def _restart(stack: Stack) -> None:
    # Not in a worker thread: Synapse is started with PR_SET_PDEATHSIG, which fires when the
    # *thread* that started it ends.
    stack.restart_synapse()
    # The bot accepts the new version at each start (as `azurezo up` does).
    await accounts.ensure_service_account(
        home=stack.home, localpart=stack.home.bot_localpart, password=stack.bot_password
    )


async def test_the_bot_accepts_the_terms_by_itself(sso_stack: tuple[Stack, Provider]) -> None:
    stack, _ = sso_stack
    token = await stack.login(stack.bot_user_id, stack.bot_password)
    room = await _create_room(stack, token)
    assert room.status_code == 200, room.text


# --- the whole sign-up path ----------------------------------------------------------------------


class _Inbox:
    def __init__(self) -> None:
        self.bodies: list[str] = []

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        message = message_from_bytes(envelope.content)  # type: ignore[attr-defined]
        self.bodies.append(message.get_payload(decode=True).decode())  # type: ignore[union-attr]
        return "250 OK"


async def test_sign_up_approval_email_activation_login_and_terms(sso_stack: tuple[Stack, Provider]) -> None:
    """A professional asks, an administrator approves, the e-mail (a real SMTP server) carries the
    link, the password is set, Element's password login works, and the terms come first."""
    stack, _ = sso_stack
    inbox = _Inbox()
    smtp = Controller(inbox, hostname="127.0.0.1", port=free_port())
    smtp.start()
    try:
        settings = stack.home.service_settings().model_copy(
            update={"smtp_host": "127.0.0.1", "smtp_port": smtp.port, "smtp_starttls": False}
        )
        person = await stack.add_person(family_name="NOUVELLE", given_name="Rose")
        admin = await stack.add_person(family_name="ADMIN", given_name="Hugo")
        admin_user, _ = await stack.create_account(admin.national_id)
        engine = make_engine(stack.home.database_url)
        try:
            async with make_sessionmaker(engine)() as session:
                await signup.add_administrator(session=session, national_id=admin.national_id)
                form = SignupIn(
                    family_name="Nouvelle",
                    given_name="Rose",
                    national_id=person.national_id,
                    email="rose@exemple.fr",
                )
                request = await signup.submit(session=session, settings=settings, form=form)
                actor = await actor_for_user(session=session, user_id=UserId(admin_user))
                decision = await signup.approve(
                    session=session, settings=settings, actor=actor, request_id=request.id
                )
                assert decision.emailed
                [body] = inbox.bodies
                link = re.search(rf"{re.escape(stack.service_url)}/activation/(\S+)", body)
                assert link, body
                done = await signup.activate(
                    session=session,
                    settings=settings,
                    token=link.group(1),
                    password="fenetre-ocean-biscuit-77",
                )
        finally:
            await engine.dispose()
    finally:
        smtp.stop()
    token = await stack.login(done.user_id, "fenetre-ocean-biscuit-77")
    first = await _create_room(stack, token)
    assert first.status_code == 403 and first.json()["errcode"] == "M_CONSENT_NOT_GIVEN"
    assert (
        await _accept(first.json()["consent_uri"], version=current_terms_version(terms_source(stack.home)))
    ).status_code == 200
    assert (await _once_seen(lambda: _create_room(stack, token))).status_code == 200


# Last: it restarts Synapse with password logins off for the rest of the module.
async def test_with_password_login_off_only_sso_and_the_service_accounts_get_in(
    sso_stack: tuple[Stack, Provider],
) -> None:
    stack, _ = sso_stack
    person = await stack.add_person(family_name="MOTDEPASSE", given_name="Ines")
    user_id, password = await stack.create_account(person.national_id)
    assert stack.home.sso is not None
    stack.restart_synapse(replace(stack.home, sso=replace(stack.home.sso, password_login=False)))

    async with httpx.AsyncClient() as client:
        refused = await client.post(
            f"{stack.synapse_url}/_matrix/client/v3/login",
            json={
                "type": "m.login.password",
                "identifier": {"type": "m.id.user", "user": user_id},
                "password": password,
            },
            timeout=30.0,
        )
    assert refused.status_code == 403, refused.text
    assert "connexion par mot de passe est désactivée" in refused.json()["error"]
    await stack.login(stack.bot_user_id, stack.bot_password)  # the bot keeps its password
    assert (await _sign_in(stack, "jeanne"))["user_id"] == f"@jeanne.martin:{stack.server_name}"
