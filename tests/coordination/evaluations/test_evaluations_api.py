"""Evaluations through the real app: forms as files, typed answers, drafts, signature, scores, FHIR."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse
from sqlalchemy.ext.asyncio import AsyncSession

from coordination.evaluations import aggir
from tests.coordination.patients.support import audit_actions, create_patient
from tests.support.service import FakeTokens, Pro, add_professional

GIR4 = {v: "A" for v in aggir.VARIABLES} | {"toilette": "B", "habillage": "B"}  # rank 11


@pytest.fixture
async def pro(db: AsyncSession, tokens: FakeTokens) -> Pro:
    return await add_professional(db, tokens, localpart="eval", national_id="810000000301")


async def _evaluate(client: httpx.AsyncClient, pro: Pro, pid: str, **body: Any) -> httpx.Response:
    return await client.post(f"/api/v1/patients/{pid}/evaluations", json=body, headers=pro.headers)


async def test_the_built_in_forms_are_listed_with_their_questionnaires(
    client: httpx.AsyncClient, pro: Pro
) -> None:
    forms = await client.get("/api/v1/evaluation-forms", headers=pro.headers)
    assert forms.status_code == 200, forms.text
    ids = {f["id"]: f["scoring"] for f in forms.json()["items"]}
    assert ids == {"aggir": "aggir", "mini-zarit": "sum", "evaluation-multidimensionnelle": "sum"}
    aggir_form = (await client.get("/api/v1/evaluation-forms/aggir", headers=pro.headers)).json()
    assert [i["link_id"] for i in aggir_form["items"]][:10] == list(aggir.VARIABLES)
    assert aggir_form["questionnaire"]["resourceType"] == "Questionnaire"
    multi = (
        await client.get("/api/v1/evaluation-forms/evaluation-multidimensionnelle", headers=pro.headers)
    ).json()
    assert {i["section"] for i in multi["items"]} >= {
        "sante",
        "autonomie",
        "social",
        "environnement",
        "aidants",
    }
    unknown = await client.get("/api/v1/evaluation-forms/nope", headers=pro.headers)
    assert unknown.status_code == 404 and unknown.json()["errcode"] == "AZ_UNKNOWN_FORM"


def _gds4() -> dict[str, Any]:
    """A form nobody coded: the 4-item geriatric depression scale, as a Questionnaire file."""
    ordinal = "http://hl7.org/fhir/StructureDefinition/ordinalValue"

    def option(code: str, points: int) -> dict[str, Any]:
        return {
            "valueCoding": {
                "code": code,
                "display": code,
                "extension": [{"url": ordinal, "valueDecimal": points}],
            }
        }

    questions = [
        "Êtes-vous satisfait de votre vie ?",
        "Avez-vous l'impression que votre situation est désespérée ?",
    ]
    return {
        "resourceType": "Questionnaire",
        "id": "mini-gds",
        "version": "1",
        "title": "Mini-GDS",
        "status": "active",
        "extension": [
            {"url": "https://azurezo.fr/fhir/StructureDefinition/questionnaire-scoring", "valueCode": "sum"}
        ],
        "item": [
            {
                "linkId": f"q{n}",
                "text": t,
                "type": "choice",
                "required": True,
                "answerOption": [option("oui", 1), option("non", 0)],
            }
            for n, t in enumerate(questions, 1)
        ],
    }


async def test_a_form_dropped_as_a_file_appears_and_is_scored(
    client: httpx.AsyncClient, pro: Pro, forms_dir: Path
) -> None:
    (forms_dir / "mini-gds.json").write_text(json.dumps(_gds4()), encoding="utf-8")
    (forms_dir / "broken.json").write_text('{"resourceType": "Questionnaire", "status": "active", "item": 3}')
    forms = (await client.get("/api/v1/evaluation-forms", headers=pro.headers)).json()
    assert "mini-gds" in {f["id"] for f in forms["items"]}
    assert len(forms["items"]) == 4  # the broken file is skipped, never served half-read
    pid = (await create_patient(client, pro))["id"]
    signed = await _evaluate(
        client, pro, pid, form_id="mini-gds", answers={"q1": "oui", "q2": "non"}, sign=True
    )
    assert signed.status_code == 201, signed.text
    assert (signed.json()["score"], signed.json()["score_label"]) == (1, "1 / 2")


async def test_draft_autosave_then_signature_computes_the_gir(
    client: httpx.AsyncClient, db: AsyncSession, pro: Pro
) -> None:
    pid = (await create_patient(client, pro))["id"]
    draft = await _evaluate(client, pro, pid, form_id="aggir", answers={"coherence": "A"})
    assert draft.status_code == 201, draft.text
    assert (draft.json()["status"], draft.json()["score"], draft.json()["version"]) == ("brouillon", None, 1)
    url = f"/api/v1/patients/{pid}/evaluations/{draft.json()['id']}"

    early = await client.patch(url, json={"version": 1, "sign": True}, headers=pro.headers)
    assert early.status_code == 422 and "Signature impossible" in early.json()["error"]

    saved = await client.patch(url, json={"version": 1, "answers": GIR4}, headers=pro.headers)
    assert saved.status_code == 200, saved.text
    assert saved.json()["score"] == 4 and saved.json()["score_details"] == {
        "rang": 11,
        "groupe": "H",
        "score_groupe": 4000,
    }
    stale = await client.patch(url, json={"version": 1, "answers": {"toilette": "A"}}, headers=pro.headers)
    assert stale.status_code == 409 and stale.json()["errcode"] == "AZ_STALE_VERSION"

    signed = await client.patch(
        url,
        json={"version": 2, "answers": {"commentaire": "Aide pour la toilette le matin."}, "sign": True},
        headers=pro.headers,
    )
    assert signed.status_code == 200, signed.text
    body = signed.json()
    assert (body["status"], body["score_label"], body["signed_by"]) == ("signee", "GIR 4", pro.national_id)
    assert body["signed_by_name"] == "Jeanne MARTIN" and body["signed_at"] is not None
    frozen = await client.patch(url, json={"version": 3, "answers": {"toilette": "C"}}, headers=pro.headers)
    assert frozen.status_code == 409 and frozen.json()["errcode"] == "AZ_ALREADY_SIGNED"

    actions = [a for a, _ in await audit_actions(db, pid)]
    assert actions.count("evaluation.created") == 1 and actions.count("evaluation.signed") == 1
    assert "evaluation.updated" in actions


@pytest.mark.parametrize(
    ("answers", "field", "words"),
    [
        ({"coherence": "D"}, "answers.coherence", "choisissez l'une des réponses proposées"),
        ({"coherence": 1}, "answers.coherence", "choisissez"),
        ({"inconnue": "A"}, "answers.inconnue", "n'a pas de question"),
        ({"commentaire": "a\u0000b"}, "answers.commentaire", "caractère de contrôle"),
    ],
)
async def test_answers_are_typed_by_their_question(
    client: httpx.AsyncClient, pro: Pro, answers: dict[str, Any], field: str, words: str
) -> None:
    pid = (await create_patient(client, pro))["id"]
    resp = await _evaluate(client, pro, pid, form_id="aggir", answers=answers)
    assert resp.status_code == 422, resp.text
    assert words in resp.json()["error"]
    assert resp.json()["fields"][0]["field"] == field


async def test_typed_values_of_the_multidimensional_form(client: httpx.AsyncClient, pro: Pro) -> None:
    pid = (await create_patient(client, pro))["id"]
    wrong = await _evaluate(
        client, pro, pid, form_id="evaluation-multidimensionnelle", answers={"sante_medicaments": "huit"}
    )
    assert wrong.status_code == 422 and "nombre" in wrong.json()["error"]
    answers = {
        "sante_difficulte": "importante",
        "sante_medicaments": 9,
        "sante_hospitalisations": True,
        "autonomie_difficulte": "moderee",
        "social_difficulte": "moderee",
        "environnement_difficulte": "aucune",
        "aidants_difficulte": "importante",
        "aidants_detail": "Fille seule aidante, épuisée.",
        "synthese_besoins": "Aide à domicile, répit pour l'aidante.",
    }
    signed = await _evaluate(
        client, pro, pid, form_id="evaluation-multidimensionnelle", answers=answers, sign=True
    )
    assert signed.status_code == 201, signed.text
    assert signed.json()["score"] == 6 and signed.json()["score_label"] == "6 / 10 : situation très complexe"
    assert signed.json()["answers"]["sante_hospitalisations"] is True


async def test_mini_zarit_score_and_the_history_of_scores(client: httpx.AsyncClient, pro: Pro) -> None:
    pid = (await create_patient(client, pro))["id"]
    first = {f"q{n}": "parfois" for n in range(1, 8)}  # 7 x 0.5 = 3.5
    second = first | {"q1": "souvent", "q3": "souvent", "q7": "souvent"}  # 3.5 + 1.5 = 5
    for answers in (first, second):
        resp = await _evaluate(client, pro, pid, form_id="mini-zarit", answers=answers, sign=True)
        assert resp.status_code == 201, resp.text
    assert resp.json()["score_label"] == "5 / 7 : fardeau sévère"
    await _evaluate(client, pro, pid, form_id="aggir", answers=GIR4, sign=True)
    await _evaluate(client, pro, pid, form_id="aggir", answers={"coherence": "A"})  # a draft: not a score yet

    history = await client.get(f"/api/v1/patients/{pid}/evaluations/scores", headers=pro.headers)
    assert history.status_code == 200, history.text
    points = [(p["form_id"], p["score"], p["change"]) for p in history.json()["items"]]
    assert points == [("mini-zarit", 3.5, None), ("mini-zarit", 5, 1.5), ("aggir", 4, None)]
    zarit_only = await client.get(
        f"/api/v1/patients/{pid}/evaluations/scores?form_id=aggir", headers=pro.headers
    )
    assert [p["score_label"] for p in zarit_only.json()["items"]] == ["GIR 4"]

    page = await client.get(f"/api/v1/patients/{pid}/evaluations?limit=3", headers=pro.headers)
    assert [e["form_id"] for e in page.json()["items"]] == ["aggir", "aggir", "mini-zarit"]
    rest = await client.get(
        f"/api/v1/patients/{pid}/evaluations?limit=3&cursor={page.json()['next_cursor']}", headers=pro.headers
    )
    assert [e["form_id"] for e in rest.json()["items"]] == ["mini-zarit"] and rest.json()[
        "next_cursor"
    ] is None


async def test_questionnaire_response_export_validates(client: httpx.AsyncClient, pro: Pro) -> None:
    pid = (await create_patient(client, pro))["id"]
    signed = await _evaluate(
        client, pro, pid, form_id="aggir", answers=GIR4 | {"commentaire": "Vu à domicile."}, sign=True
    )
    exported = await client.get(
        f"/api/v1/patients/{pid}/evaluations/{signed.json()['id']}/fhir", headers=pro.headers
    )
    assert exported.status_code == 200, exported.text
    resource = QuestionnaireResponse.model_validate(exported.json())
    assert resource.status == "completed"
    assert resource.questionnaire == "https://azurezo.fr/fhir/Questionnaire/aggir|1997-427"
    toilette = next(i for i in resource.item if i.linkId == "toilette")
    assert toilette.answer[0].valueCoding.code == "B"
    assert resource.author.identifier.value == pro.national_id
    score = resource.extension[0]
    assert {e.url: (e.valueDecimal or e.valueString) for e in score.extension} == {
        "value": 4,
        "label": "GIR 4",
    }

    multi = await _evaluate(
        client,
        pro,
        pid,
        form_id="evaluation-multidimensionnelle",
        answers={"sante_difficulte": "aucune", "sante_medicaments": 3},
    )
    nested = (
        await client.get(f"/api/v1/patients/{pid}/evaluations/{multi.json()['id']}/fhir", headers=pro.headers)
    ).json()
    parsed = QuestionnaireResponse.model_validate(nested)
    assert parsed.status == "in-progress"
    assert [i.linkId for i in parsed.item] == ["sante"]
    assert [(i.linkId, i.answer[0].valueInteger) for i in parsed.item[0].item][1] == ("sante_medicaments", 3)


async def test_an_evaluation_of_another_patient_is_not_found(client: httpx.AsyncClient, pro: Pro) -> None:
    one = (await create_patient(client, pro))["id"]
    other = (await create_patient(client, pro, birth_name="DURAND"))["id"]
    ev = await _evaluate(client, pro, one, form_id="aggir", answers={})
    resp = await client.get(f"/api/v1/patients/{other}/evaluations/{ev.json()['id']}", headers=pro.headers)
    assert resp.status_code == 404
