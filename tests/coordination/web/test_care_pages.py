"""The patient's evaluations, PPCS and timeline pages (issue 14), through the real app in-process: a
professional fills an AGGIR form in the browser and sees the GIR on the patient page, a form of every
item type is rendered from its FHIR Questionnaire, the plan is saved and downloaded, the timeline shows
both and filters by kind, and an outsider is refused everything (the full matrix is test_page_access.py).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from coordination.evaluations import aggir
from coordination.settings import Settings
from tests.coordination.patients.support import add_circle_member, audit_actions, create_patient
from tests.coordination.web.support import FakeMatrixAuth, csrf_of, sign_in
from tests.support.service import FakeTokens, Pro, add_professional

PASSWORD = "mot-de-passe-de-test-123"
GIR4 = {v: "A" for v in aggir.VARIABLES} | {"toilette": "B", "habillage": "B"}
NEXT = re.compile(r"/app/patients/[0-9a-f-]+/evaluations/([0-9a-f-]{36})$")

# A dropped form with one question of each type the service reads, to check the generic rendering.
EVERY_TYPE: dict[str, Any] = {
    "resourceType": "Questionnaire",
    "id": "tous-types",
    "status": "active",
    "title": "Formulaire de test : tous les types",
    "item": [
        {
            "linkId": "g",
            "type": "group",
            "text": "Section unique",
            "item": [
                {"linkId": "vit_seul", "type": "boolean", "text": "Vit seul(e)", "required": True},
                {"linkId": "chutes", "type": "integer", "text": "Chutes dans l'année"},
                {"linkId": "poids", "type": "decimal", "text": "Poids (kg)"},
                {"linkId": "aidant", "type": "string", "text": "Aidant principal"},
                {"linkId": "note", "type": "text", "text": "Observations"},
                {"linkId": "visite", "type": "date", "text": "Date de la visite"},
                {
                    "linkId": "humeur",
                    "type": "choice",
                    "text": "Humeur",
                    "answerOption": [
                        {"valueCoding": {"code": "bonne", "display": "Bonne"}},
                        {"valueCoding": {"code": "triste", "display": "Triste"}},
                    ],
                },
            ],
        }
    ],
}


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    forms = tmp_path / "forms"
    forms.mkdir()
    (forms / "tous-types.json").write_text(json.dumps(EVERY_TYPE), encoding="utf-8")
    return Settings(
        database_url=database_url,
        synapse_url="http://127.0.0.1:9",
        server_name="azurezo.test",
        internal_api_secret="t" * 48,
        documents_dir=tmp_path / "documents",
        bot_user_id="@azurezo-bot:azurezo.test",
        evaluation_forms_dir=forms,
    )


@pytest.fixture
async def team(
    client: httpx.AsyncClient, db: AsyncSession, tokens: FakeTokens, matrix: FakeMatrixAuth
) -> dict[str, Any]:
    """A signed-in GP in a consenting patient's circle, a nurse of the circle, an outsider."""
    gp = await add_professional(db, tokens, localpart="gp", national_id="810000001401")
    nurse = await add_professional(
        db, tokens, localpart="ide", national_id="810000001402", family_name="ROUX", given_name="Léa"
    )
    outsider = await add_professional(
        db, tokens, localpart="out", national_id="810000001403", family_name="INTRUS"
    )
    for pro in (gp, outsider):
        matrix.passwords[pro.user_id] = PASSWORD
    pid = (await create_patient(client, gp, consent={"given": True, "mode": "oral"}))["id"]
    await add_circle_member(
        client, gp, pid, kind="professional", national_id=nurse.national_id, role="infirmière", habilite=True
    )
    assert (await sign_in(client, gp.user_id, PASSWORD)).status_code == 303
    return {"gp": gp, "nurse": nurse, "outsider": outsider, "pid": pid}


async def _start(client: httpx.AsyncClient, pid: str, form_id: str) -> tuple[str, str]:
    """Start an evaluation from the list page; returns (its page's address, the page)."""
    listing = await client.get(f"/app/patients/{pid}/evaluations")
    assert listing.status_code == 200, listing.text
    started = await client.post(
        f"/app/patients/{pid}/evaluations", data={"form_id": form_id, "csrf_token": csrf_of(listing.text)}
    )
    assert started.status_code == 303, started.text
    url = started.headers["location"]
    assert NEXT.search(url), url
    page = await client.get(url)
    assert page.status_code == 200, page.text
    return url, page.text


def _version(html: str) -> str:
    found = re.search(r'name="version" value="(\d+)"', html)
    assert found
    return found.group(1)


async def test_a_professional_fills_an_aggir_form_and_sees_the_gir(
    client: httpx.AsyncClient, team: dict[str, Any], db: AsyncSession
) -> None:
    pid = team["pid"]
    before = await client.get(f"/app/patients/{pid}")
    assert "Aucune évaluation signée pour ce patient" in before.text
    url, html = await _start(client, pid, "aggir")
    # Each AGGIR variable is a labelled group of radio buttons; the two actions are plain buttons.
    assert (
        "<legend>Cohérence : converser et/ou se comporter de façon sensée (obligatoire pour signer)" in html
    )
    for variable in aggir.VARIABLES:
        assert f'name="q-{variable}" value="A"' in html, variable
        assert f'<label for="q-{variable}-1">' in html, variable
    assert 'value="brouillon"' in html and 'value="signer"' in html
    assert "<script>" not in html and " on" + "click=" not in html

    draft = await client.post(
        url,
        data={
            "csrf_token": csrf_of(html),
            "version": _version(html),
            "action": "brouillon",
            "q-coherence": "A",
        },
    )
    assert draft.status_code == 303 and draft.headers["location"] == url
    html = (await client.get(url)).text
    assert "Brouillon enregistré." in html
    assert 'name="q-coherence" value="A" checked' in html
    assert 'name="q-toilette" value="A" checked' not in html

    incomplete = await client.post(
        url,
        data={"csrf_token": csrf_of(html), "version": _version(html), "action": "signer", "q-coherence": "A"},
    )
    assert incomplete.status_code == 422
    assert "Signature impossible : répondez d&#39;abord à" in incomplete.text
    assert 'aria-invalid="true"' in incomplete.text
    assert 'name="q-coherence" value="A" checked' in incomplete.text  # what was typed is kept

    answers = {f"q-{k}": v for k, v in GIR4.items()}
    signed = await client.post(
        url, data={"csrf_token": csrf_of(html), "version": _version(html), "action": "signer", **answers}
    )
    assert signed.status_code == 303, signed.text
    html = (await client.get(url)).text
    assert "Évaluation signée. Résultat : GIR 4." in html
    assert "Résultat : GIR 4" in html and "<fieldset disabled" in html and 'value="signer"' not in html

    dossier = await client.get(f"/app/patients/{pid}")
    section = dossier.text.split('id="evaluations"', 1)[1].split("</section>", 1)[0]
    assert "GIR 4" in section and f"/app/patients/{pid}/evaluations/" in section
    history = await client.get(f"/app/patients/{pid}/evaluations")
    assert "GIR 4" in history.text and "Signée" in history.text and "première" in history.text
    actions = [a for a, _ in await audit_actions(db, pid)]
    assert {"evaluation.created", "evaluation.updated", "evaluation.signed", "evaluation.scores"} <= set(
        actions
    )

    # Signed means frozen: a second post is refused in French, the GIR stays.
    again = await client.post(
        url, data={"csrf_token": csrf_of(html), "version": "3", "action": "brouillon", "q-coherence": "C"}
    )
    assert again.status_code == 303
    assert "ne peut plus changer" in (await client.get(url)).text


async def test_every_item_type_is_rendered_with_a_label_and_saved(
    client: httpx.AsyncClient, team: dict[str, Any]
) -> None:
    url, html = await _start(client, team["pid"], "tous-types")
    assert "<h2>Section unique</h2>" in html
    for name, control in [
        ("chutes", 'inputmode="numeric"'),
        ("poids", 'inputmode="decimal"'),
        ("aidant", ""),
        ("visite", 'type="date"'),
    ]:
        assert f'<label for="q-{name}">' in html
        assert re.search(rf'<input id="q-{name}" name="q-{name}"[^>]*{control}', html), name
    assert '<label for="q-note">' in html and '<textarea id="q-note"' in html
    assert "<legend>Vit seul(e) (obligatoire pour signer)</legend>" in html
    assert 'name="q-humeur" value="triste"' in html

    too_long = await client.post(
        url, data={"csrf_token": csrf_of(html), "version": "1", "action": "brouillon", "q-note": "x" * 5001}
    )
    assert too_long.status_code == 422 and "dépasse 5 000 caractères" in too_long.text
    unknown = await client.post(
        f"/app/patients/{team['pid']}/evaluations", data={"csrf_token": csrf_of(html), "form_id": "a b"}
    )
    assert unknown.status_code == 303
    listing = await client.get(unknown.headers["location"])
    assert "Choisissez un formulaire dans la liste" in listing.text
    wrong = await client.post(
        url, data={"csrf_token": csrf_of(html), "version": "1", "action": "brouillon", "q-chutes": "deux"}
    )
    assert wrong.status_code == 422
    assert "Chutes dans l&#39;année » : écrivez un nombre" in wrong.text
    saved = await client.post(
        url,
        data={
            "csrf_token": csrf_of(html),
            "version": "1",
            "action": "signer",
            "q-vit_seul": "oui",
            "q-chutes": "2",
            "q-poids": "61,5",
            "q-aidant": "Sa fille",
            "q-note": "Logement à étage.\r\nEscalier sans rampe.",
            "q-visite": "2026-11-02",
            "q-humeur": "triste",
        },
    )
    assert saved.status_code == 303, saved.text
    page = (await client.get(url)).text
    assert 'name="q-vit_seul" value="oui" checked' in page
    assert 'value="61,5"' in page and 'value="2"' in page and 'value="2026-11-02"' in page
    assert "Logement à étage.\nEscalier sans rampe.</textarea>" in page
    api = await client.get(
        f"/api/v1/patients/{team['pid']}/evaluations/{NEXT.search(url).group(1)}",  # type: ignore[union-attr]
        headers=team["gp"].headers,
    )
    answers = api.json()["answers"]
    assert answers["vit_seul"] is True and answers["chutes"] == 2 and answers["poids"] == 61.5
    assert api.json()["status"] == "signee"


def _plan_form(csrf: str, nurse: Pro, **extra: str) -> dict[str, str]:
    return {
        "csrf_token": csrf,
        "version": "0",
        "situation": "Vit seule, chutes répétées.",
        "patient_wishes": "Rester à domicile.",
        "problems-0-id": "",
        "problems-0-title": "Chutes répétées",
        "problems-0-detail": "Trois chutes depuis l'été",
        "problems-1-id": "",
        "problems-1-title": "",
        "problems-1-detail": "",
        "objectives-0-id": "",
        "objectives-0-problem_id": "",
        "objectives-0-title": "Sécuriser le domicile",
        "actions-0-id": "",
        "actions-0-objective_id": "",
        "actions-0-title": "Visite du logement par l'ergothérapeute",
        "actions-0-responsible": f"pro:{nurse.national_id}",
        "actions-0-responsible_other": "",
        "actions-0-deadline": "2030-01-15",
        "actions-0-status": "a_faire",
        "actions-0-create_task": "oui",
        "actions-1-id": "",
        "actions-1-objective_id": "",
        "actions-1-title": "Installer une téléassistance",
        "actions-1-responsible": "",
        "actions-1-responsible_other": "Sa fille (aidante)",
        "actions-1-deadline": "",
        "actions-1-status": "en_cours",
        "next_review_date": "",
        "status": "en_cours",
        **extra,
    }


async def test_plan_is_saved_edited_and_downloaded_then_shown_in_the_timeline(
    client: httpx.AsyncClient, team: dict[str, Any]
) -> None:
    pid, nurse = team["pid"], team["nurse"]
    page = await client.get(f"/app/patients/{pid}/plan")
    assert page.status_code == 200
    assert "Pas encore de plan pour ce patient" in page.text
    assert f'value="pro:{nurse.national_id}"' in page.text  # the circle's habilité members are offered
    saved = await client.post(f"/app/patients/{pid}/plan", data=_plan_form(csrf_of(page.text), nurse))
    assert saved.status_code == 303
    page = await client.get(f"/app/patients/{pid}/plan")
    assert "Plan enregistré (version 1)." in page.text
    shown = page.text.split('id="titre-edition"', 1)[0]
    assert "Visite du logement par l&#39;ergothérapeute" in shown and "(tâche n°" in shown
    assert "Sa fille (aidante)" in shown and "15/01/2030" in shown and "En cours" in shown
    assert f"/app/patients/{pid}/plan/pdf" in shown

    # Edit: the objective is now tied to the saved problem; the téléassistance action is removed.
    problem_id = re.search(r'name="problems-0-id" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    form = dict(re.findall(r'<input type="hidden" name="([a-z]+-\d+-id)" value="([^"]*)"', page.text))
    edited = _plan_form(
        csrf_of(page.text),
        nurse,
        version="1",
        **form,
        **{"objectives-0-problem_id": problem_id, "actions-1-title": "", "actions-0-status": "realisee"},
    )
    resp = await client.post(f"/app/patients/{pid}/plan", data=edited)
    assert resp.status_code == 303
    page = await client.get(f"/app/patients/{pid}/plan")
    assert "Plan enregistré (version 2)." in page.text
    shown = page.text.split('id="titre-edition"', 1)[0]
    assert "téléassistance" not in shown and "Réalisée" in shown
    assert re.search(r"Chutes répétées</strong>.*?Objectif : Sécuriser le domicile", shown, re.S)

    stale = await client.post(f"/app/patients/{pid}/plan", data=edited)  # version 1 again
    assert stale.status_code == 303
    assert "modifié par un autre membre" in (await client.get(f"/app/patients/{pid}/plan")).text

    pdf = await client.get(f"/app/patients/{pid}/plan/pdf")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    assert pdf.headers["content-type"] == "application/pdf"

    timeline = await client.get(f"/app/patients/{pid}/chronologie")
    assert timeline.status_code == 200
    assert timeline.text.count("Plan personnalisé (PPCS)</span>") >= 2
    only_evaluations = await client.get(f"/app/patients/{pid}/chronologie?type=evaluation")
    assert "Plan personnalisé (PPCS)</span>" not in only_evaluations.text
    assert 'id="type-evaluation" name="type" value="evaluation" checked' in only_evaluations.text


async def test_timeline_shows_a_signed_evaluation_and_an_entered_event_with_the_filter(
    client: httpx.AsyncClient, team: dict[str, Any]
) -> None:
    pid = team["pid"]
    url, html = await _start(client, pid, "aggir")
    answers = {f"q-{k}": v for k, v in GIR4.items()}
    await client.post(url, data={"csrf_token": csrf_of(html), "version": "1", "action": "signer", **answers})
    page = await client.get(f"/app/patients/{pid}/chronologie")
    refused = await client.post(
        f"/app/patients/{pid}/chronologie/evenements",
        data={"csrf_token": csrf_of(page.text), "kind": "chute", "occurred_on": "", "title": "Chute"},
    )
    assert refused.status_code == 303
    page = await client.get(f"/app/patients/{pid}/chronologie")
    assert "Événement non enregistré — Date" in page.text
    added = await client.post(
        f"/app/patients/{pid}/chronologie/evenements",
        data={
            "csrf_token": csrf_of(page.text),
            "kind": "hospitalisation",
            "occurred_on": "2026-10-03",
            "title": "Hospitalisation en gériatrie",
        },
    )
    assert added.status_code == 303
    page = await client.get(f"/app/patients/{pid}/chronologie")
    assert "Événement ajouté à la chronologie." in page.text
    assert "Hospitalisation en gériatrie" in page.text and "GIR 4" in page.text
    events = await client.get(f"/app/patients/{pid}/chronologie?type=evenement")
    assert "Hospitalisation en gériatrie" in events.text and "GIR 4" not in events.text


async def test_an_outsider_is_refused_every_care_page_in_french(
    client: httpx.AsyncClient, browser: httpx.AsyncClient, team: dict[str, Any], db: AsyncSession
) -> None:
    pid = team["pid"]
    url, _page = await _start(client, pid, "aggir")
    outsider: Pro = team["outsider"]
    assert (await sign_in(browser, outsider.user_id, PASSWORD)).status_code == 303
    for path in (
        f"/app/patients/{pid}/evaluations",
        url,
        f"/app/patients/{pid}/plan",
        f"/app/patients/{pid}/chronologie",
    ):
        resp = await browser.get(path)
        assert resp.status_code == 403, path
        assert "DUPONT" not in resp.text and "cercle" in resp.text, path
    csrf = csrf_of((await browser.get("/app/taches")).text)
    answers = {f"q-{k}": v for k, v in GIR4.items()}
    signed = await browser.post(url, data={"csrf_token": csrf, "version": "1", "action": "signer", **answers})
    assert signed.status_code == 303
    plan = await browser.post(f"/app/patients/{pid}/plan", data=_plan_form(csrf, team["nurse"]))
    assert plan.status_code == 303
    assert outsider.national_id not in {n for _, n in await audit_actions(db, pid)}
    # The evaluation is still the GP's untouched draft.
    still = await client.get(url)
    assert "Brouillon" in still.text and "Résultat : GIR" not in still.text


async def test_the_form_saves_itself_as_a_draft_after_each_change(
    client: httpx.AsyncClient, team: dict[str, Any], db: AsyncSession
) -> None:
    """The htmx autosave: the form posts to ``/brouillon`` on change; the answer is the status line and
    the new version (out of band), or the French reason the draft was not saved."""
    pid = team["pid"]
    url, html = await _start(client, pid, "tous-types")
    assert f'hx-post="{url}/brouillon" hx-trigger="change delay:800ms"' in html
    assert 'id="etat-brouillon" role="status" aria-live="polite"' in html
    csrf, headers = csrf_of(html), {"HX-Request": "true"}
    saved = await client.post(
        f"{url}/brouillon",
        data={"csrf_token": csrf, "version": "1", "q-chutes": "2", "q-aidant": "Sa fille"},
        headers=headers,
    )
    assert saved.status_code == 200, saved.text
    assert "Brouillon enregistré automatiquement" in saved.text
    assert '<input type="hidden" id="version" name="version" value="2" hx-swap-oob="true">' in saved.text
    page = await client.get(url)
    assert 'name="q-aidant" value="Sa fille"' in page.text and _version(page.text) == "2"

    not_a_number = await client.post(
        f"{url}/brouillon", data={"csrf_token": csrf, "version": "2", "q-chutes": "deux"}, headers=headers
    )
    assert not_a_number.status_code == 200
    refusal = "Brouillon non enregistré automatiquement : Question « Chutes dans l&#39;année » : écrivez"
    assert refusal in not_a_number.text
    stale = await client.post(
        f"{url}/brouillon", data={"csrf_token": csrf, "version": "1", "q-chutes": "3"}, headers=headers
    )
    assert stale.status_code == 200 and "Brouillon non enregistré automatiquement" in stale.text
    assert "hx-swap-oob" not in stale.text
    assert _version((await client.get(url)).text) == "2"  # neither refusal saved anything
    assert "evaluation.updated" in [a for a, _ in await audit_actions(db, pid)]


async def test_signing_just_after_the_pages_own_autosave_is_not_a_conflict(
    client: httpx.AsyncClient, team: dict[str, Any]
) -> None:
    """The button pressed while the page's autosave was in flight: that autosave took version 2, the
    page still says 1. Same person, seconds ago: the posted form goes on top. Another member's save
    in between is still refused."""
    pid = team["pid"]
    url, html = await _start(client, pid, "aggir")
    csrf, page_version = csrf_of(html), _version(html)
    autosaved = await client.post(
        f"{url}/brouillon",
        data={"csrf_token": csrf, "version": page_version, "q-coherence": "A"},
        headers={"HX-Request": "true"},
    )
    assert "Brouillon enregistré automatiquement" in autosaved.text
    answers = {f"q-{k}": v for k, v in GIR4.items()}
    signed = await client.post(
        url, data={"csrf_token": csrf, "version": page_version, "action": "signer", **answers}
    )
    assert signed.status_code == 303
    assert "Évaluation signée. Résultat : GIR 4." in (await client.get(url)).text

    url, html = await _start(client, pid, "aggir")
    csrf, page_version = csrf_of(html), _version(html)
    evaluation_id = NEXT.search(url).group(1)  # type: ignore[union-attr]
    nurse = team["nurse"]
    by_nurse = await client.patch(
        f"/api/v1/patients/{pid}/evaluations/{evaluation_id}",
        json={"version": int(page_version), "answers": {"coherence": "C"}},
        headers=nurse.headers,
    )
    assert by_nurse.status_code == 200, by_nurse.text
    refused = await client.post(
        url, data={"csrf_token": csrf, "version": page_version, "action": "signer", **answers}
    )
    assert refused.status_code == 303
    page = (await client.get(url)).text
    assert "Évaluation signée" not in page and 'value="signer"' in page
