"""The dashboard in-process: sessions, timeouts, delisting, CSRF, security headers, refusal pages, and
a coordinator's day (take, answer with inclusion, patient page, upload, task) through the forms."""

from __future__ import annotations

import html
import re
import uuid
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from coordination.app import create_app
from coordination.circle.models import CircleMember
from coordination.db import utcnow
from coordination.settings import Settings
from coordination.web.models import WebSession
from tests.coordination.patients.support import delist
from tests.coordination.tasks.factories import add_member, add_patient
from tests.coordination.web.support import FakeMatrixAuth, csrf_of, page_csrf, sign_in
from tests.support.service import FakeTokens, Pro, add_professional, add_structure, running_app

DAC = "finess:060000099"
CABINET = "finess:060000001"
PASSWORD = "mot-de-passe-de-test-123"
PDF = Path(__file__).resolve().parents[3] / "config" / "demo" / "ordonnance.pdf"


@pytest.fixture
async def people(db: AsyncSession, tokens: FakeTokens, matrix: FakeMatrixAuth) -> dict[str, Pro]:
    await add_structure(db, DAC, "DAC Alpes-Maritimes", is_dac=True)
    await add_structure(db, CABINET, "Cabinet médical du Port")
    found = {
        "coord": await add_professional(
            db,
            tokens,
            localpart="coord",
            national_id="810000000031",
            family_name="GARNIER",
            given_name="Lucie",
            structure_ids=(DAC,),
        ),
        "gp": await add_professional(
            db, tokens, localpart="gp", national_id="810000000032", structure_ids=(CABINET,)
        ),
        "other": await add_professional(
            db,
            tokens,
            localpart="other",
            national_id="810000000033",
            family_name="BLANC",
            given_name="Antoine",
        ),
    }
    for pro in found.values():
        matrix.passwords[pro.user_id] = PASSWORD
    matrix.passwords["@stranger:azurezo.test"] = PASSWORD  # a Matrix account bound to nobody
    return found


async def _sessions(db: AsyncSession) -> list[WebSession]:
    rows = list((await db.scalars(select(WebSession))).all())
    db.expunge_all()  # keep the loaded values: the rollback below ends the read
    await db.rollback()
    return rows


def _assert_strict_headers(resp: httpx.Response) -> None:
    csp = resp.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "style-src 'self'" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp
    assert resp.headers["x-frame-options"] == "DENY"
    assert resp.headers["x-content-type-options"] == "nosniff"
    assert resp.headers["cache-control"] == "no-store"


def _assert_no_inline_code(html: str) -> None:
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), "inline script"
    assert not re.search(r"<style\b", html), "inline style element"
    assert not re.search(r"\sstyle=", html), "style attribute"
    assert not re.search(r"\son[a-z]+=", html), "inline event handler"


# --- sign-in, cookie, session ----------------------------------------------------------------------


async def test_sign_in_page_is_french_strict_and_without_inline_code(client: httpx.AsyncClient) -> None:
    resp = await client.get("/app")
    assert resp.status_code == 200
    assert '<html lang="fr">' in resp.text and "Connexion au tableau de bord" in resp.text
    _assert_strict_headers(resp)
    _assert_no_inline_code(resp.text)
    js = await client.get("/app/static/htmx.min.js")
    assert js.status_code == 200 and "javascript" in js.headers["content-type"]
    # The API keeps its own headers: /docs still works with Swagger's scripts.
    assert "content-security-policy" not in (await client.get("/health")).headers


async def test_password_sign_in_keeps_the_matrix_token_server_side(
    client: httpx.AsyncClient, people: dict[str, Pro], db: AsyncSession
) -> None:
    resp = await sign_in(client, people["coord"].user_id, PASSWORD)
    assert resp.status_code == 303 and resp.headers["location"] == "/app/demandes"
    cookie_header = resp.headers["set-cookie"]
    assert "azurezo_session=" in cookie_header
    assert "HttpOnly" in cookie_header and "SameSite=lax" in cookie_header and "Path=/app" in cookie_header
    assert "Secure" not in cookie_header  # plain http here; https answers set Secure
    cookie = client.cookies["azurezo_session"]
    [row] = await _sessions(db)
    assert row.user_id == people["coord"].user_id
    assert cookie not in (row.id, row.access_token) and row.access_token not in cookie_header
    home = await client.get("/app/demandes")
    assert home.status_code == 200 and "GARNIER" in home.text.upper()
    _assert_strict_headers(home)
    _assert_no_inline_code(home.text)
    assert '<a href="/app/indicateurs"' in home.text


async def test_session_survives_a_restart_of_the_service(
    client: httpx.AsyncClient,
    people: dict[str, Pro],
    settings: Settings,
    tokens: FakeTokens,
    matrix: FakeMatrixAuth,
) -> None:
    await sign_in(client, people["gp"].user_id, PASSWORD)
    cookie = client.cookies["azurezo_session"]
    restarted = create_app(settings, token_verifier=tokens, matrix_auth=matrix)
    async with running_app(restarted) as again:
        again.cookies.set("azurezo_session", cookie)
        assert (await again.get("/app/patients")).status_code == 200


async def test_wrong_password_is_refused_in_french(client: httpx.AsyncClient, people: dict[str, Pro]) -> None:
    resp = await sign_in(client, people["gp"].user_id, "mauvais")
    assert resp.status_code == 401 and "mot de passe incorrect" in resp.text
    assert "azurezo_session" not in client.cookies


async def test_account_outside_the_directory_gets_the_refusal_page_and_its_device_logged_out(
    client: httpx.AsyncClient, people: dict[str, Pro], matrix: FakeMatrixAuth, db: AsyncSession
) -> None:
    resp = await sign_in(client, "@stranger:azurezo.test", PASSWORD)
    assert resp.status_code == 403
    assert "rattaché à aucun professionnel de l'annuaire" in html.unescape(resp.text)
    assert matrix.logged_out and not await _sessions(db)


async def test_unsigned_pages_redirect_to_sign_in_with_the_way_back(client: httpx.AsyncClient) -> None:
    resp = await client.get("/app/patients?q=dup")
    assert resp.status_code == 303
    assert resp.headers["location"].startswith("/app/connexion?suite=%2Fapp%2Fpatients%3Fq%3Ddup")


async def test_sign_in_form_refuses_a_post_without_its_token(
    client: httpx.AsyncClient, people: dict[str, Pro]
) -> None:
    resp = await client.post(
        "/app/connexion", data={"identifiant": people["gp"].user_id, "mot_de_passe": PASSWORD}
    )
    assert resp.status_code == 403 and "Formulaire refusé" in resp.text


async def test_sign_out_ends_the_session_and_logs_the_device_out(
    client: httpx.AsyncClient, people: dict[str, Pro], matrix: FakeMatrixAuth, db: AsyncSession
) -> None:
    await sign_in(client, people["coord"].user_id, PASSWORD)
    [row] = await _sessions(db)
    token = row.access_token
    csrf = await page_csrf(client)
    out = await client.post("/app/deconnexion", data={"csrf_token": csrf})
    assert out.status_code == 303 and out.headers["location"] == "/app/connexion?motif=deconnexion"
    assert token in matrix.logged_out and not await _sessions(db)
    assert (await client.get("/app/demandes")).status_code == 303
    page = await client.get("/app/connexion?motif=deconnexion")
    assert "Vous êtes déconnecté(e)" in page.text


@pytest.mark.parametrize(
    ("column", "age", "motif"),
    [
        ("last_seen_at", timedelta(minutes=31), "inactivite"),
        ("created_at", timedelta(hours=12, minutes=1), "duree"),
    ],
)
async def test_idle_and_absolute_timeouts_sign_out(
    client: httpx.AsyncClient,
    people: dict[str, Pro],
    matrix: FakeMatrixAuth,
    db: AsyncSession,
    column: str,
    age: timedelta,
    motif: str,
) -> None:
    await sign_in(client, people["coord"].user_id, PASSWORD)
    assert (await client.get("/app/demandes")).status_code == 200
    [row] = await _sessions(db)
    await db.execute(update(WebSession).values({column: utcnow() - age}))
    await db.commit()
    resp = await client.get("/app/demandes")
    assert resp.status_code == 303 and f"motif={motif}" in resp.headers["location"]
    assert row.access_token in matrix.logged_out and not await _sessions(db)
    follow = await client.get(resp.headers["location"])
    assert "Votre session a été fermée" in follow.text


async def test_just_under_the_idle_timeout_the_session_lives_on(
    client: httpx.AsyncClient, people: dict[str, Pro], db: AsyncSession
) -> None:
    await sign_in(client, people["coord"].user_id, PASSWORD)
    await db.execute(update(WebSession).values(last_seen_at=utcnow() - timedelta(minutes=29)))
    await db.commit()
    assert (await client.get("/app/demandes")).status_code == 200
    [row] = await _sessions(db)
    assert utcnow() - row.last_seen_at < timedelta(minutes=1)  # the visit counted as activity


async def test_delisted_professional_is_signed_out_at_the_next_request(
    client: httpx.AsyncClient, people: dict[str, Pro], matrix: FakeMatrixAuth, db: AsyncSession
) -> None:
    await sign_in(client, people["gp"].user_id, PASSWORD)
    assert (await client.get("/app/patients")).status_code == 200
    [row] = await _sessions(db)
    await delist(db, people["gp"].national_id)
    resp = await client.get("/app/patients")
    assert resp.status_code == 403 and "plus inscrit comme actif" in resp.text
    assert row.access_token in matrix.logged_out and not await _sessions(db)
    assert (await client.get("/app/patients")).status_code == 303


async def test_device_logged_out_from_element_ends_the_dashboard_session(
    client: httpx.AsyncClient, people: dict[str, Pro], tokens: FakeTokens, db: AsyncSession
) -> None:
    await sign_in(client, people["gp"].user_id, PASSWORD)
    [row] = await _sessions(db)
    tokens.tokens.pop(row.access_token)  # Synapse no longer knows the token
    resp = await client.get("/app/patients")
    assert resp.status_code == 303 and "motif=ailleurs" in resp.headers["location"]


# --- CSRF -----------------------------------------------------------------------------------------


async def _sent_request(
    client: httpx.AsyncClient, gp: Pro, patient_id: uuid.UUID | None
) -> dict[str, object]:
    body: dict[str, object] = {
        "dac_structure_id": DAC,
        "reason": "Situation complexe à domicile",
        "urgency": "urgente",
    }
    if patient_id:
        body["patient_id"] = str(patient_id)
    draft = await client.post("/api/v1/requests", json=body, headers=gp.headers)
    assert draft.status_code == 201, draft.text
    sent = await client.post(
        f"/api/v1/requests/{draft.json()['id']}/send",
        json={"version": draft.json()["version"]},
        headers=gp.headers,
    )
    assert sent.status_code == 200, sent.text
    return dict(sent.json())


async def test_state_changing_forms_refuse_a_missing_or_foreign_token(
    client: httpx.AsyncClient, people: dict[str, Pro], db: AsyncSession
) -> None:
    req = await _sent_request(client, people["gp"], None)
    await sign_in(client, people["coord"].user_id, PASSWORD)
    csrf = await page_csrf(client)
    path = f"/app/demandes/{req['id']}/prendre"
    no_token = await client.post(path, data={"version": str(req["version"])})
    assert no_token.status_code == 403 and "Formulaire refusé" in no_token.text
    wrong = await client.post(path, data={"version": str(req["version"]), "csrf_token": "x" * 43})
    assert wrong.status_code == 403
    other_site = await client.post(
        path,
        data={"version": str(req["version"]), "csrf_token": csrf},
        headers={"Origin": "https://evil.example"},
    )
    assert other_site.status_code == 403
    still = await client.get(f"/api/v1/requests/{req['id']}", headers=people["gp"].headers)
    assert still.json()["status"] == "envoyee"  # nothing was taken
    signout = await client.post("/app/deconnexion", data={})
    assert signout.status_code == 403 and await _sessions(db)


# --- a coordinator's day ---------------------------------------------------------------------------


async def test_take_answer_with_inclusion_then_patient_page_upload_and_task(
    client: httpx.AsyncClient, people: dict[str, Pro], db: AsyncSession
) -> None:
    patient = await add_patient(db)
    await add_member(db, patient, national_id=people["gp"].national_id)
    req = await _sent_request(client, people["gp"], patient)
    assert (await sign_in(client, people["coord"].user_id, PASSWORD)).status_code == 303

    board = await client.get("/app/demandes")
    assert "Situation complexe à domicile" in board.text and "Urgente" in board.text
    detail = await client.get(f"/app/demandes/{req['id']}")
    csrf = csrf_of(detail.text)
    assert "Prendre en charge cette demande" in detail.text
    taken = await client.post(
        f"/app/demandes/{req['id']}/prendre", data={"version": str(req["version"]), "csrf_token": csrf}
    )
    assert taken.status_code == 303
    detail = await client.get(f"/app/demandes/{req['id']}")
    assert "Demande prise en charge" in detail.text and "Répondre (étape 3)" in detail.text
    version = re.search(r'name="version" value="(\d+)"', detail.text)
    assert version
    answered = await client.post(
        f"/app/demandes/{req['id']}/repondre",
        data={
            "version": version.group(1),
            "decision": "acceptee",
            "commentaire": "Visite à domicile jeudi",
            "inclure": "true",
            "csrf_token": csrf,
        },
    )
    assert answered.status_code == 303
    detail = await client.get(f"/app/demandes/{req['id']}")
    assert "Le patient est inclus" in detail.text and "patient inclus" in detail.text
    dac_member = await db.scalar(
        select(CircleMember).where(CircleMember.patient_id == patient, CircleMember.structure_id == DAC)
    )
    await db.rollback()
    assert dac_member is not None

    page = await client.get(f"/app/patients/{patient}")
    assert page.status_code == 200 and "DUPONT" in page.text and "Identité provisoire" in page.text
    _assert_no_inline_code(page.text)
    uploaded = await client.post(
        f"/app/patients/{patient}/documents",
        data={
            "csrf_token": csrf,
            "title": "Ordonnance du jour",
            "category": "ordonnance",
            "visibility": "cercle",
        },
        files={"file": ("ordonnance.pdf", PDF.read_bytes(), "application/pdf")},
    )
    assert uploaded.status_code == 303
    page = await client.get(f"/app/patients/{patient}")
    assert "Document « Ordonnance du jour » déposé" in page.text
    link = re.search(rf'href="(/app/patients/{patient}/documents/[0-9a-f-]+/contenu)"', page.text)
    assert link
    download = await client.get(link.group(1))
    assert download.status_code == 200 and download.content == PDF.read_bytes()
    assert download.headers["content-security-policy"].startswith("sandbox")

    created = await client.post(
        "/app/taches",
        data={
            "csrf_token": csrf,
            "title": "Appeler l'infirmière",
            "type": "appel",
            "patient_id": str(patient),
            "retour": str(patient),
        },
    )
    assert created.status_code == 303 and created.headers["location"] == f"/app/patients/{patient}#taches"
    page = await client.get(f"/app/patients/{patient}")
    assert "Appeler l&#39;infirmière" in page.text and "créée" in page.text
    assert "document.uploaded" in page.text and "patient.read" in page.text  # the audit trail section

    tasks = await client.get("/app/taches?portee=created")
    assert "Appeler l&#39;infirmière" in tasks.text
    task_id = re.search(r'action="/app/taches/([0-9a-f-]+)/cloturer"', tasks.text)
    task_version = re.search(r'name="version" value="(\d+)"', tasks.text)
    assert task_id and task_version
    closed = await client.post(
        f"/app/taches/{task_id.group(1)}/cloturer",
        data={"csrf_token": csrf, "version": task_version.group(1)},
    )
    assert closed.status_code == 303
    assert "Tâche terminée" in (await client.get("/app/taches")).text


async def test_outsider_gets_the_french_refusal_page_and_no_data(
    client: httpx.AsyncClient, people: dict[str, Pro], db: AsyncSession
) -> None:
    patient = await add_patient(db)
    await add_member(db, patient, national_id=people["gp"].national_id)
    await sign_in(client, people["other"].user_id, PASSWORD)
    resp = await client.get(f"/app/patients/{patient}")
    assert resp.status_code == 403
    assert "cercle de soins" in resp.text and "DUPONT" not in resp.text
    _assert_strict_headers(resp)
    search = await client.get("/app/patients?q=dup")
    assert "DUPONT" in search.text and "Vous ne faites pas partie de son cercle" in search.text
    assert f'href="/app/patients/{patient}"' not in search.text


async def test_patient_creation_shows_field_errors_then_the_duplicate_warning(
    client: httpx.AsyncClient, people: dict[str, Pro], db: AsyncSession
) -> None:
    await add_patient(db)  # DUPONT Marie 17/05/1940, F, 06088
    await sign_in(client, people["gp"].user_id, PASSWORD)
    csrf = await page_csrf(client, "/app/patients/nouveau")
    bad = await client.post(
        "/app/patients/nouveau",
        data={
            "csrf_token": csrf,
            "birth_name": "DUP0NT",
            "birth_first_names": "Marie",
            "birth_date": "1940-05-17",
            "sex": "F",
            "birth_place_code": "6088",
        },
    )
    assert bad.status_code == 422
    assert (
        "Nom de naissance : format invalide" in bad.text
        and "code INSEE du lieu de naissance attendu" in bad.text
    )
    assert 'value="DUP0NT"' in bad.text  # the form keeps what was typed
    dup = await client.post(
        "/app/patients/nouveau",
        data={
            "csrf_token": csrf,
            "birth_name": "DUPONT",
            "birth_first_names": "Marie",
            "birth_date": "1940-05-17",
            "sex": "F",
            "birth_place_code": "06088",
        },
    )
    assert (
        dup.status_code == 409
        and "mêmes traits d&#39;identité" in dup.text
        and 'name="confirm_duplicate"' in dup.text
    )
    ok = await client.post(
        "/app/patients/nouveau",
        data={
            "csrf_token": csrf,
            "birth_name": "DUPONT",
            "birth_first_names": "Marie",
            "birth_date": "1940-05-17",
            "sex": "F",
            "birth_place_code": "06088",
            "confirm_duplicate": "oui",
            "consent": "oui",
            "consent_mode": "oral",
        },
    )
    assert ok.status_code == 303 and ok.headers["location"].startswith("/app/patients/")
    page = await client.get(ok.headers["location"])
    assert "Dossier créé" in page.text and "Identité provisoire" in page.text and "donné (oral)" in page.text


async def test_search_needs_three_letters(client: httpx.AsyncClient, people: dict[str, Pro]) -> None:
    await sign_in(client, people["gp"].user_id, PASSWORD)
    resp = await client.get("/app/patients?q=du")
    assert (
        resp.status_code == 200 and "au moins 3 lettres" in resp.text and 'aria-invalid="true"' in resp.text
    )


# --- SSO and the Element widget --------------------------------------------------------------------


async def test_sso_redirects_to_synapse_and_redeems_the_login_token(
    client: httpx.AsyncClient, people: dict[str, Pro], matrix: FakeMatrixAuth
) -> None:
    matrix.sso = True
    page = await client.get("/app/connexion")
    assert "Se connecter avec Pro Santé Connect" in page.text
    start = await client.get("/app/connexion/sso?idp=psc&suite=/app/taches")
    assert start.status_code == 303 and start.headers["location"].startswith("https://matrix.example/sso/psc")
    assert "/app/connexion/sso/retour" in start.headers["location"]
    matrix.login_tokens["lt_123"] = people["coord"].user_id
    back = await client.get("/app/connexion/sso/retour?loginToken=lt_123&suite=/app/taches")
    assert back.status_code == 303 and back.headers["location"] == "/app/taches"
    assert (await client.get("/app/taches")).status_code == 200
    again = await client.get("/app/connexion/sso/retour?loginToken=lt_123")
    assert again.status_code == 401


async def test_open_redirects_are_refused(client: httpx.AsyncClient, people: dict[str, Pro]) -> None:
    page = await client.get("/app/connexion?suite=//evil.example/app")
    resp = await client.post(
        "/app/connexion",
        data={
            "identifiant": people["gp"].user_id,
            "mot_de_passe": PASSWORD,
            "csrf_token": csrf_of(page.text),
            "suite": "https://evil.example",
        },
    )
    assert resp.headers["location"] == "/app/demandes"


async def test_widget_shows_the_dossier_to_a_member_vouched_for_by_synapse(
    client: httpx.AsyncClient, people: dict[str, Pro], matrix: FakeMatrixAuth, db: AsyncSession
) -> None:
    patient = await add_patient(db)
    await add_member(db, patient, national_id=people["gp"].national_id)
    shell = await client.get(f"/app/widget/patients/{patient}")
    assert shell.status_code == 200 and "x-frame-options" not in shell.headers
    assert "frame-ancestors https:" in shell.headers["content-security-policy"]
    _assert_no_inline_code(shell.text)
    matrix.openid["oid_gp"] = people["gp"].user_id
    matrix.openid["oid_other"] = people["other"].user_id
    ok = await client.post(f"/app/widget/patients/{patient}", json={"openid_token": "oid_gp"})
    assert ok.status_code == 200 and "DUPONT" in ok.text
    outsider = await client.post(f"/app/widget/patients/{patient}", json={"openid_token": "oid_other"})
    assert outsider.status_code == 403 and "DUPONT" not in outsider.text
    forged = await client.post(f"/app/widget/patients/{patient}", json={"openid_token": "oid_forged"})
    assert forged.status_code == 403 and "n'a pas été reconnu" in html.unescape(forged.text)


async def test_unknown_dashboard_address_is_a_french_page(client: httpx.AsyncClient) -> None:
    resp = await client.get("/app/nulle-part")
    assert resp.status_code == 404 and "Cette page n'existe pas" in html.unescape(resp.text)


async def test_expired_sessions_are_ended_and_logged_out_at_start(
    client: httpx.AsyncClient,
    people: dict[str, Pro],
    settings: Settings,
    tokens: FakeTokens,
    matrix: FakeMatrixAuth,
    db: AsyncSession,
) -> None:
    """A professional who never came back leaves no live Matrix token once the service restarts."""
    await sign_in(client, people["gp"].user_id, PASSWORD)
    await sign_in(client, people["coord"].user_id, PASSWORD)
    gp_row, coord_row = sorted(await _sessions(db), key=lambda r: r.user_id != people["gp"].user_id)
    await db.execute(
        update(WebSession)
        .where(WebSession.id == gp_row.id)
        .values(last_seen_at=utcnow() - timedelta(hours=1))
    )
    await db.commit()
    async with running_app(create_app(settings, token_verifier=tokens, matrix_auth=matrix)):
        pass
    assert [r.id for r in await _sessions(db)] == [coord_row.id]
    assert gp_row.access_token in matrix.logged_out and coord_row.access_token not in matrix.logged_out


async def test_task_board_tabs_mine_and_my_structures(
    client: httpx.AsyncClient, people: dict[str, Pro], db: AsyncSession
) -> None:
    created = await client.post(
        "/api/v1/tasks",
        json={"title": "Relancer l'assistante sociale", "type": "appel", "assignee_structure_ids": [DAC]},
        headers=people["gp"].headers,
    )
    assert created.status_code == 201, created.text
    await sign_in(client, people["coord"].user_id, PASSWORD)
    mine = await client.get("/app/taches")
    assert "Relancer" not in mine.text and "Aucune tâche dans cette liste" in mine.text
    structure = await client.get("/app/taches?portee=structure")
    assert "Relancer l&#39;assistante sociale" in structure.text and "DAC Alpes-Maritimes" in structure.text
    by_type = await client.get("/app/taches?portee=structure&type=visite")
    assert "Relancer" not in by_type.text


async def test_cookie_is_secure_when_served_over_https(
    settings: Settings, tokens: FakeTokens, matrix: FakeMatrixAuth, people: dict[str, Pro]
) -> None:
    app = create_app(settings, token_verifier=tokens, matrix_auth=matrix)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="https://tableau.example") as tls:
            resp = await sign_in(tls, people["gp"].user_id, PASSWORD)
    assert resp.status_code == 303
    cookie = next(c for c in resp.headers.get_list("set-cookie") if c.startswith("azurezo_session="))
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie


async def test_an_htmx_request_after_expiry_asks_the_page_to_go_to_sign_in(client: httpx.AsyncClient) -> None:
    resp = await client.get("/app/patients?q=dup", headers={"HX-Request": "true"})
    assert resp.status_code == 200 and resp.headers["hx-redirect"].startswith("/app/connexion?suite=")
