"""The sign-up pages: the public form (same French sentence for every mismatch, throttled, CSRF), the
administrators' list (validate / refuse), the activation page reached from the link."""

from __future__ import annotations

import re
from html import unescape

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from coordination.directory.models import Person
from coordination.signup import rules
from coordination.signup import service as signup
from coordination.signup.pages import THROTTLE
from tests.coordination.web.support import FakeMatrixAuth, csrf_of, page_csrf, sign_in
from tests.support.service import FakeTokens, add_professional

NID = "899700000013"


async def _person(db: AsyncSession) -> None:
    db.add(
        Person(
            national_id=NID,
            id_type="8",
            family_name="MARTIN",
            given_name="Jeanne",
            search_name="MARTIN JEANNE",
            profession_code="10",
            profession="Médecin",
            active=True,
            source="rpps",
        )
    )
    await db.commit()


async def _submit(client: httpx.AsyncClient, **fields: str) -> httpx.Response:
    form = await client.get("/app/inscription")
    assert form.status_code == 200
    data = {
        "family_name": "Martin",
        "given_name": "Jeanne",
        "national_id": NID,
        "email": "j.martin@exemple.fr",
    }
    data.update(fields)
    return await client.post("/app/inscription", data={**data, "csrf_token": csrf_of(form.text)})


async def test_the_public_form_records_a_request_and_hides_who_is_in_the_directory(
    client: httpx.AsyncClient, db: AsyncSession
) -> None:
    THROTTLE.reset()
    await _person(db)
    short = await client.get("/inscription")
    assert short.status_code == 302 and short.headers["location"] == "/app/inscription"
    page = await client.get("/app/inscription")
    assert "Content-Security-Policy" in page.headers and "Demander un compte" in page.text
    unknown = await _submit(client, national_id="899700000099")
    other_name = await _submit(client, family_name="Durand")
    assert unknown.status_code == other_name.status_code == 422
    assert rules.MISMATCH in unescape(unknown.text) and rules.MISMATCH in unescape(other_name.text)
    bad_email = await _submit(client, email="pas-une-adresse")
    assert bad_email.status_code == 422 and "Adresse e-mail professionnelle" in bad_email.text
    ok = await _submit(client)
    assert ok.status_code == 200 and "Votre demande est enregistrée" in ok.text
    forged = await client.post("/app/inscription", data={"family_name": "Martin", "csrf_token": "faux"})
    assert forged.status_code == 403


async def test_the_form_is_throttled_per_address(client: httpx.AsyncClient, db: AsyncSession) -> None:
    THROTTLE.reset({"submit": "2/hour", "activation": "20/hour", "activation_link": "10/hour"})
    try:
        await _person(db)
        answers = [(await _submit(client, national_id="899700000099")).status_code for _ in range(3)]
        assert answers == [422, 422, 429]
    finally:
        THROTTLE.reset()


async def test_an_administrator_validates_and_the_link_activates_in_the_browser(
    client: httpx.AsyncClient, db: AsyncSession, tokens: FakeTokens, matrix: FakeMatrixAuth
) -> None:
    THROTTLE.reset()
    await _person(db)
    assert (await _submit(client)).status_code == 200
    admin = await add_professional(
        db, tokens, localpart="admin", national_id="899700000021", given_name="Paul"
    )
    matrix.passwords[admin.user_id] = "mot-de-passe"
    outsider = await add_professional(
        db, tokens, localpart="autre", national_id="899700000039", given_name="Claire"
    )
    matrix.passwords[outsider.user_id] = "autre-mot-de-passe"

    await sign_in(client, outsider.user_id, "autre-mot-de-passe")
    refused = await client.get("/app/admin/inscriptions")
    assert refused.status_code == 403 and "administrateurs" in refused.text
    await client.post("/app/deconnexion", data={"csrf_token": await page_csrf(client)})

    await signup.add_administrator(session=db, national_id=admin.national_id)
    await sign_in(client, admin.user_id, "mot-de-passe")
    listed = await client.get("/app/admin/inscriptions")
    assert listed.status_code == 200 and "MARTIN" in listed.text
    action = re.search(r'action="(/app/admin/inscriptions/[^/]+/valider)"', listed.text)
    assert action
    done = await client.post(
        action.group(1), data={"csrf_token": csrf_of(listed.text)}, follow_redirects=True
    )
    link = re.search(r"(/activation/[A-Za-z0-9_\-]+)", done.text)
    assert link, done.text  # no SMTP here: the administrator sees the link to pass on
    activation = await client.get(link.group(1), follow_redirects=True)
    assert activation.status_code == 200 and "Activer votre compte" in activation.text
    assert "@jeanne.martin:azurezo.test" in activation.text
    mismatch = await client.post(
        f"/app{link.group(1)}",
        data={
            "password": "tartine-voilier-42!",
            "confirmation": "autre",
            "csrf_token": csrf_of(activation.text),
        },
    )
    assert mismatch.status_code == 422 and "diffèrent" in unescape(mismatch.text)
    weak = await client.post(
        f"/app{link.group(1)}",
        data={
            "password": "jeannemartin",
            "confirmation": "jeannemartin",
            "csrf_token": csrf_of(activation.text),
        },
    )
    assert weak.status_code == 422 and "trop" in unescape(weak.text)


async def test_dashboard_logins_reach_synapse_with_the_browser_s_address() -> None:
    """Synapse limits logins per address: it must see each browser's, not the service's (loopback)."""
    from coordination.web.matrix import SynapseAuth

    seen: list[str | None] = []

    def synapse(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("x-forwarded-for"))
        return httpx.Response(200, json={"user_id": "@a:azurezo.test", "access_token": "t", "device_id": "D"})

    async with httpx.AsyncClient(transport=httpx.MockTransport(synapse)) as http:
        auth = SynapseAuth("http://synapse.test", public_url=None, client=http)
        await auth.password_login(user="a", password="p", client_address="203.0.113.7")
    assert seen == ["203.0.113.7"]
