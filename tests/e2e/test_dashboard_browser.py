"""The dashboard as a coordinator uses it, in Debian's Chromium against `azurezo up` (issue 10).

Lucie Garnier (demo coordinator of DAC 06) signs in with her Matrix password, finds the request Dr
Martin-Roux sent about a patient, takes it, answers with inclusion, opens the patient, uploads a
document, creates a task and signs out. A pharmacist outside the circle gets the French refusal page;
a form posted without its anti-forgery token is refused. Every page is checked by axe-core (no serious
or critical violation) and photographed at 1280 and 360 px; the browser reports no CSP violation.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import CHROMIUM_ARGS, DemoInstance

pytestmark = [pytest.mark.synapse, pytest.mark.slow]

PDF = Path(__file__).resolve().parents[2] / "config" / "demo" / "ordonnance.pdf"
WIDTHS = (1280, 360)


def _login(demo: DemoInstance, localpart: str) -> str:
    user_id, password = demo.user(localpart)
    resp = httpx.post(
        f"{demo.synapse_url}/_matrix/client/v3/login",
        json={
            "type": "m.login.password",
            "identifier": {"type": "m.id.user", "user": user_id},
            "password": password,
        },
        timeout=30,
    )
    assert resp.status_code == 200, resp.text
    return str(resp.json()["access_token"])


@pytest.fixture(scope="module")
def sent_request(demo: DemoInstance) -> dict[str, Any]:
    """Dr Martin-Roux (demo GP in Nice) creates a patient and sends a request about them to DAC 06."""
    headers = {"Authorization": f"Bearer {_login(demo, 'jmartin')}"}
    api = f"{demo.service_url}/api/v1"
    patient = httpx.post(
        f"{api}/patients",
        json={
            "birth_name": "LAMBERT",
            "birth_first_names": ["Odette"],
            "birth_date": "1938-02-11",
            "sex": "F",
            "birth_place_code": "06088",
        },
        headers=headers,
        timeout=30,
    )
    assert patient.status_code == 201, patient.text
    dacs = httpx.get(
        f"{api}/directory/structures", params={"q": "DAC 06", "dac": "true"}, headers=headers, timeout=30
    )
    assert dacs.status_code == 200 and dacs.json()["items"], dacs.text
    dac = dacs.json()["items"][0]["structure_id"]
    draft = httpx.post(
        f"{api}/requests",
        json={
            "dac_structure_id": dac,
            "patient_id": patient.json()["id"],
            "reason": "Retour à domicile difficile",
            "urgency": "urgente",
            "description": "Vit seule, chutes répétées.",
        },
        headers=headers,
        timeout=30,
    )
    assert draft.status_code == 201, draft.text
    sent = httpx.post(
        f"{api}/requests/{draft.json()['id']}/send",
        json={"version": draft.json()["version"]},
        headers=headers,
        timeout=30,
    )
    assert sent.status_code == 200, sent.text
    return {"request": sent.json(), "patient_id": patient.json()["id"]}


@pytest.fixture(scope="module")
def browser(chromium: str) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


def expect_status(page: Any, text: str) -> None:
    """The page's first status line (the flash) says ``text``: waits until the page that follows the
    action replaces the current one (Playwright's retrying assertion, not a one-off read)."""
    from playwright.sync_api import expect

    expect(page.get_by_role("status").first).to_contain_text(text)


class Visit:
    """One professional's browser: checks every page it lands on (axe, CSP, screenshots)."""

    def __init__(self, browser: Any, axe: str, artifacts: Path, who: str) -> None:
        self.context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="fr-FR")
        self.page = self.context.new_page()
        self.axe = axe
        self.artifacts = artifacts
        self.who = who
        self.csp_errors: list[str] = []
        self.page.on("console", self._console)

    def _console(self, message: Any) -> None:
        if "Content Security Policy" in message.text or "Refused to" in message.text:
            self.csp_errors.append(message.text)

    def check(self, name: str) -> None:
        """axe-core on the page (no serious/critical violation) and screenshots at 1280 and 360 px."""
        # Runtime evaluation by the driver, not a <script> in the page: the page's CSP stays untouched.
        self.page.evaluate(self.axe + "\n;undefined")
        result = self.page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
        bad = [
            f"{v['id']} ({v['impact']}): {v['help']} — {[n['target'] for n in v['nodes']][:3]}"
            for v in result["violations"]
            if v["impact"] in ("serious", "critical")
        ]
        assert not bad, f"axe on {name}: " + "\n".join(bad)
        for width in WIDTHS:
            self.page.set_viewport_size({"width": width, "height": 900})
            self.page.screenshot(path=str(self.artifacts / f"{self.who}-{name}-{width}.png"), full_page=True)
            if width == 360:  # nothing wider than a phone at 360 px
                overflow = self.page.evaluate("document.documentElement.scrollWidth")
                assert overflow <= 362, f"{name} is {overflow}px wide at 360px"
        self.page.set_viewport_size({"width": 1280, "height": 900})
        assert not self.csp_errors, self.csp_errors

    def sign_in(self, demo: DemoInstance, localpart: str) -> None:
        user_id, password = demo.user(localpart)
        self.page.goto(demo.dashboard_url)
        assert "Connexion" in self.page.title()
        self.check("connexion")
        self.page.get_by_label("Identifiant Matrix").fill(user_id)
        self.page.get_by_label("Mot de passe").fill(password)
        self.page.get_by_role("button", name="Se connecter").click()
        self.page.wait_for_load_state()

    def close(self) -> None:
        self.context.close()


def test_a_coordinators_day_in_chromium(
    demo: DemoInstance, browser: Any, axe_source: str, artifacts: Path, sent_request: dict[str, Any]
) -> None:
    visit = Visit(browser, axe_source, artifacts, "coordinatrice")
    page = visit.page
    try:
        visit.sign_in(demo, "lgarnier")
        assert page.url.endswith("/app/demandes")
        assert "GARNIER" in page.get_by_role("banner").inner_text().upper()
        visit.check("demandes")

        # Find the request on the board (new, urgent), open it, take it.
        page.get_by_role("link", name="Retour à domicile difficile").click()
        page.wait_for_load_state()
        visit.check("demande")
        page.get_by_role("button", name="Prendre en charge cette demande").click()
        page.wait_for_load_state()
        expect_status(page, "Demande prise en charge")

        # Answer with inclusion: the DAC joins the patient's circle.
        page.get_by_label("Décision").select_option("acceptee")
        page.get_by_label("Commentaire pour le demandeur").fill("Évaluation à domicile prévue jeudi.")
        page.get_by_label("Inclure le patient dans le suivi du DAC").check()
        page.get_by_role("button", name="Envoyer la réponse").click()
        page.wait_for_load_state()
        expect_status(page, "Le patient est inclus")
        visit.check("demande-repondue")

        # Open the patient (now reachable through the DAC's membership).
        page.get_by_role("link", name="Ouvrir le dossier du patient").click()
        page.wait_for_load_state()
        assert "LAMBERT Odette" in page.get_by_role("heading", level=1).inner_text()
        assert page.get_by_text("Identité provisoire").first.is_visible()
        visit.check("patient")

        # Upload a document.
        page.get_by_text("Déposer un document").click()
        page.get_by_label("Fichier (PDF").set_input_files(str(PDF))
        page.locator("#doc-titre").fill("Ordonnance de sortie")
        page.get_by_label("Catégorie").select_option("ordonnance")
        page.get_by_role("button", name="Déposer").click()
        page.wait_for_load_state()
        expect_status(page, "Ordonnance de sortie")
        with page.expect_download() as download:
            page.get_by_role("link", name=re.compile("Ordonnance de sortie")).click()
        assert Path(download.value.path()).read_bytes() == PDF.read_bytes()

        # Create a task for this patient.
        page.get_by_text("Créer une tâche pour ce patient").click()
        page.locator("#tache-titre").fill("Organiser la concertation de sortie")
        page.locator("#tache-type").select_option("concertation_pluriprofessionnelle")
        page.get_by_role("button", name="Créer la tâche").click()
        page.wait_for_load_state()
        expect_status(page, "Organiser la concertation de sortie")
        assert "document.uploaded" in page.locator("#tracabilite").inner_text()

        page.get_by_role("link", name="Tâches", exact=True).click()
        page.wait_for_load_state()
        page.get_by_role("link", name="Créées par moi").click()
        page.wait_for_load_state()
        assert "Organiser la concertation de sortie" in page.locator("main").inner_text()
        visit.check("taches")

        # The DAC's indicators: the request taken and answered today is counted.
        page.get_by_role("link", name="Indicateurs", exact=True).click()
        page.wait_for_load_state()
        assert page.locator("svg[role=img]").count() >= 1
        visit.check("indicateurs")
        with page.expect_download() as csv_download:
            page.get_by_role("link", name=re.compile("CSV")).click()
        assert Path(csv_download.value.path()).read_bytes().startswith("\ufeff".encode())

        page.get_by_role("link", name="Patients", exact=True).click()
        page.wait_for_load_state()
        page.get_by_label("Rechercher par le nom de naissance ou le nom utilisé").fill("lam")
        page.get_by_role("button", name="Rechercher").click()
        page.wait_for_load_state()
        assert "LAMBERT" in page.locator("#resultats").inner_text()
        visit.check("patients")
        page.get_by_role("link", name="Créer un dossier patient").click()
        page.wait_for_load_state()
        visit.check("nouveau-patient")

        # Keyboard: the skip link is the first stop and leads to the content.
        page.goto(demo.dashboard_url + "/demandes")
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.textContent") == "Aller au contenu"

        page.get_by_role("button", name="Se déconnecter").click()
        page.wait_for_load_state()
        assert "Vous êtes déconnecté(e)" in page.locator("main").inner_text()
        page.goto(demo.dashboard_url + "/demandes")
        assert "/app/connexion" in page.url
    finally:
        visit.close()


def test_the_public_sign_up_page(demo: DemoInstance, browser: Any, axe_source: str, artifacts: Path) -> None:
    """The form a professional fills to ask for an account: accessible, French, CSP-clean."""
    visit = Visit(browser, axe_source, artifacts, "public")
    page = visit.page
    try:
        page.goto(demo.service_url + "/inscription")
        assert page.url.endswith("/app/inscription")
        visit.check("inscription")
        page.get_by_label("Nom de famille").fill("PERSONNE")
        page.get_by_label("Prénom").fill("Nemo")
        page.get_by_label("Numéro RPPS ou ADELI").fill("899700009999")
        page.get_by_label("Adresse e-mail professionnelle").fill("nemo@exemple.fr")
        page.get_by_role("button", name="Envoyer ma demande").click()
        page.wait_for_load_state()
        assert "ne correspondent à aucun professionnel actif" in page.get_by_role("alert").first.inner_text()
        visit.check("inscription-refusee")
    finally:
        visit.close()


def test_outsider_gets_the_french_refusal_page_and_a_forged_post_is_refused(
    demo: DemoInstance, browser: Any, axe_source: str, artifacts: Path, sent_request: dict[str, Any]
) -> None:
    visit = Visit(browser, axe_source, artifacts, "hors-cercle")
    page = visit.page
    try:
        visit.sign_in(demo, "fbonnet")  # a pharmacist in Avignon, not in the circle
        response = page.goto(f"{demo.dashboard_url}/patients/{sent_request['patient_id']}")
        assert response is not None and response.status == 403
        text = page.locator("main").inner_text()
        assert "Accès refusé" in text and "cercle de soins" in text and "LAMBERT" not in text
        visit.check("refus")

        # A state-changing POST without the form's token (what a forged cross-site form sends).
        forged = page.request.post(f"{demo.dashboard_url}/patients/nouveau", form={"birth_name": "PIRATE"})
        assert forged.status == 403 and "Formulaire refusé" in forged.text()
    finally:
        visit.close()


def test_widget_checks_the_element_openid_token_with_synapse(
    demo: DemoInstance, sent_request: dict[str, Any]
) -> None:
    """The widget's server side against the real Synapse: an OpenID token Element would hand over."""
    user_id, _ = demo.user("jmartin")
    token = _login(demo, "jmartin")
    openid = httpx.post(
        f"{demo.synapse_url}/_matrix/client/v3/user/{user_id}/openid/request_token",
        json={},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert openid.status_code == 200, openid.text
    url = f"{demo.dashboard_url}/widget/patients/{sent_request['patient_id']}"
    ok = httpx.post(url, json={"openid_token": openid.json()["access_token"]}, timeout=30)
    assert ok.status_code == 200 and "LAMBERT" in ok.text
    refused = httpx.post(url, json={"openid_token": "not-a-token"}, timeout=30)
    assert refused.status_code == 403 and "LAMBERT" not in refused.text


ELEMENT_HOST = """async ({src, token}) => {
  // Plays Element's side of the widget API: asks for capabilities, then answers get_openid.
  window.addEventListener("message", (event) => {
    const m = event.data;
    if (m && m.api === "fromWidget" && m.action === "get_openid") {
      event.source.postMessage({...m, response: {state: "allowed", access_token: token,
        matrix_server_name: "e2e.azurezo.test", expires_in: 3600, token_type: "Bearer"}}, "*");
    }
  });
  const frame = document.createElement("iframe");
  frame.src = src;
  frame.title = "Dossier patient";
  document.body.appendChild(frame);
  await new Promise((resolve) => { frame.onload = resolve; });
  frame.contentWindow.postMessage({api: "toWidget", widgetId: "w1", requestId: "cap-1",
    action: "capabilities", data: {}}, "*");
}"""


def test_widget_in_a_frame_gets_the_openid_token_and_shows_the_dossier(
    demo: DemoInstance, browser: Any, sent_request: dict[str, Any]
) -> None:
    """widget.js in Chromium, framed by a page on 127.0.0.1 playing Element's part of the widget API."""
    user_id, _ = demo.user("jmartin")
    openid = httpx.post(
        f"{demo.synapse_url}/_matrix/client/v3/user/{user_id}/openid/request_token",
        json={},
        headers={"Authorization": f"Bearer {_login(demo, 'jmartin')}"},
        timeout=30,
    )
    assert openid.status_code == 200, openid.text
    context = browser.new_context(viewport={"width": 800, "height": 900})
    try:
        page = context.new_page()
        page.goto(f"{demo.service_url}/health")
        src = f"{demo.dashboard_url}/widget/patients/{sent_request['patient_id']}?widgetId=w1"
        page.evaluate(ELEMENT_HOST, {"src": src, "token": openid.json()["access_token"]})
        dossier = page.frame_locator("iframe").locator("main")
        dossier.get_by_role("heading", level=1).wait_for(timeout=30_000)
        assert "LAMBERT Odette" in dossier.get_by_role("heading", level=1).inner_text()
        assert "Synthèse" in dossier.inner_text()
    finally:
        context.close()


def test_real_synapse_refuses_a_wrong_password_in_french(demo: DemoInstance) -> None:
    """The sign-in form against the real Synapse: a wrong password gives the French sentence, no cookie."""
    with httpx.Client(base_url=demo.service_url, timeout=30) as web:
        form = web.get("/app/connexion")
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        assert csrf
        user_id, _ = demo.user("spellegrin")
        resp = web.post(
            "/app/connexion",
            data={"identifiant": user_id, "mot_de_passe": "pas-le-bon", "csrf_token": csrf.group(1)},
        )
        assert resp.status_code == 401 and "mot de passe incorrect" in resp.text
        assert "azurezo_session" not in web.cookies


def test_a_gp_fills_aggir_by_keyboard_then_sees_plan_and_timeline(
    demo: DemoInstance, browser: Any, axe_source: str, artifacts: Path, sent_request: dict[str, Any]
) -> None:
    """Issue 14: the evaluation form (rendered from the FHIR Questionnaire), the PPCS and the timeline
    pass axe and fit 360 px; the AGGIR grid is filled from the keyboard and signed: the GIR shows."""
    visit = Visit(browser, axe_source, artifacts, "medecin")
    page = visit.page
    pid = sent_request["patient_id"]
    try:
        visit.sign_in(demo, "jmartin")
        page.goto(f"{demo.dashboard_url}/patients/{pid}/evaluations")
        visit.check("evaluations")
        page.get_by_label("Formulaire").select_option("aggir")
        page.get_by_role("button", name="Commencer l'évaluation").click()
        page.wait_for_load_state()
        assert "Brouillon" in page.locator("main").inner_text()
        visit.check("evaluation-aggir")
        # Keyboard only: focus the first choice of each variable, arrows move within the radio group.
        for variable in ("coherence", "orientation", "toilette", "habillage", "alimentation"):
            page.locator(f"#q-{variable}-1").focus()
            page.keyboard.press("Space")
        for variable in ("elimination", "transferts", "deplacements_interieurs", "deplacements_exterieurs"):
            page.locator(f"#q-{variable}-1").focus()
            page.keyboard.press("Space")
        page.locator("#q-communication-1").focus()
        page.keyboard.press("Space")
        page.locator("#q-toilette-1").focus()
        page.keyboard.press("ArrowDown")  # toilette: B
        page.locator("#q-habillage-1").focus()
        page.keyboard.press("ArrowDown")  # habillage: B
        page.get_by_role("button", name="Signer l'évaluation").focus()
        # The form has its own (autosave) status line: wait for the signed page, not the current one.
        with page.expect_navigation():
            page.keyboard.press("Enter")
        signed = page.get_by_role("status").filter(has_text="Évaluation signée")
        assert "Évaluation signée. Résultat : GIR 4." in signed.first.inner_text()
        page.goto(f"{demo.dashboard_url}/patients/{pid}")
        assert "GIR 4" in page.locator("#evaluations").inner_text()
        page.goto(f"{demo.dashboard_url}/patients/{pid}/plan")
        assert "consentement" in page.locator("main").inner_text()  # the demo patient has not consented
        visit.check("plan")
        page.goto(f"{demo.dashboard_url}/patients/{pid}/chronologie")
        assert "GIR 4" in page.locator("main").inner_text()
        visit.check("chronologie")
        page.get_by_label("Plan personnalisé (PPCS)").check()
        page.get_by_role("button", name="Filtrer").click()
        page.wait_for_load_state()
        assert "GIR 4" not in page.locator("#titre-chrono").locator("..").inner_text()
    finally:
        visit.close()
