"""Sign-up requests through the service: matching without enumeration, approval (by an administrator
or the rule), the activation e-mail read from a real SMTP server (aiosmtpd), refusal, new links, audit.

Activation itself registers a Matrix account: it is tested against a real Synapse in
``tests/integration/test_signup_activation.py``.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from email import message_from_bytes
from email.message import Message

import httpx
import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from coordination.audit.models import AuditEntry
from coordination.directory.models import AccountBinding, Activity, Person, Structure
from coordination.errors import Conflict, Invalid, NotFound
from coordination.ids import UserId
from coordination.security import Actor, actor_for_user
from coordination.settings import Settings
from coordination.signup import rules, service
from coordination.signup.models import ActivationLink
from coordination.signup.schemas import SignupIn
from coordination.vocab import SignupStatus
from tests.support.service import FakeTokens, Pro, add_professional

NID = "899700000013"


class Inbox:
    """aiosmtpd handler: keeps every message it accepts."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        self.messages.append(message_from_bytes(envelope.content))  # type: ignore[attr-defined]
        return "250 Message accepted for delivery"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    port = _free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


@pytest.fixture
def mail_settings(settings: Settings, smtp: tuple[Inbox, int]) -> Settings:
    return settings.model_copy(
        update={
            "smtp_host": "127.0.0.1",
            "smtp_port": smtp[1],
            "smtp_starttls": False,
            "public_url": "https://azurezo.exemple.fr",
        }
    )


async def _person(
    db: AsyncSession, *, national_id: str = NID, active: bool = True, structure: str | None = None
) -> None:
    db.add(
        Person(
            national_id=national_id,
            id_type="8",
            family_name="LE GALL-HERVÉ",
            given_name="Marie-Claire",
            search_name="LE GALL HERVE MARIE CLAIRE",
            profession_code="60",
            profession="Infirmier",
            active=active,
            source="rpps",
        )
    )
    if structure:
        db.add(
            Structure(
                structure_id=structure,
                name="CHU",
                search_name="CHU",
                email="accueil@chu-nice.fr",
                source="rpps",
            )
        )
        await db.flush()
        db.add(Activity(national_id=national_id, structure_id=structure, profession_code="60"))
    await db.commit()


def _form(**changes: str | None) -> SignupIn:
    values: dict[str, str | None] = {
        "family_name": "Le Gall-Herve",
        "given_name": "Marie",
        "national_id": NID,
        "email": "mc.legall@exemple.fr",
    }
    values.update(changes)
    return SignupIn.model_validate(values)


async def _admin(db: AsyncSession, tokens: FakeTokens) -> Pro:
    pro = await add_professional(db, tokens, localpart="admin", national_id="899700000021", given_name="Paul")
    assert await service.add_administrator(session=db, national_id=pro.national_id)
    return pro


@pytest.mark.parametrize(
    "form",
    [
        {"national_id": "899700000099"},  # unknown number
        {"family_name": "DURAND"},  # someone else's name
        {"given_name": "Jeanne"},
    ],
)
async def test_every_mismatch_gets_the_same_sentence(
    db: AsyncSession, settings: Settings, form: dict[str, str]
) -> None:
    await _person(db)
    with pytest.raises(Invalid) as refused:
        await service.submit(session=db, settings=settings, form=_form(**form))
    assert refused.value.message == rules.MISMATCH


async def test_a_delisted_professional_gets_the_same_sentence(db: AsyncSession, settings: Settings) -> None:
    await _person(db, active=False)
    with pytest.raises(Invalid) as refused:
        await service.submit(session=db, settings=settings, form=_form())
    assert refused.value.message == rules.MISMATCH


async def test_a_matching_request_waits_for_an_administrator_once(
    db: AsyncSession, settings: Settings
) -> None:
    await _person(db)
    first = await service.submit(session=db, settings=settings, form=_form())
    assert first.status is SignupStatus.EN_ATTENTE
    assert first.display_name.endswith("LE GALL-HERVÉ")  # the directory's identity, not the typed one
    again = await service.submit(session=db, settings=settings, form=_form(email="autre@exemple.fr"))
    assert again.id == first.id


async def test_someone_with_an_account_is_told_to_sign_in(db: AsyncSession, settings: Settings) -> None:
    await _person(db)
    db.add(AccountBinding(user_id="@mclg:azurezo.test", national_id=NID))
    await db.commit()
    with pytest.raises(Conflict, match="déjà un compte"):
        await service.submit(session=db, settings=settings, form=_form())


async def test_only_administrators_decide(
    db: AsyncSession, settings: Settings, tokens: FakeTokens, client: httpx.AsyncClient
) -> None:
    await _person(db)
    request = await service.submit(session=db, settings=settings, form=_form())
    pro = await add_professional(
        db, tokens, localpart="nobody", national_id="899700000039", given_name="Claire"
    )
    resp = await client.post(f"/api/v1/signup-requests/{request.id}/approve", headers=pro.headers)
    assert resp.status_code == 403
    assert "administrateurs" in resp.json()["error"]


async def test_approval_without_smtp_shows_the_link_to_the_administrator(
    db: AsyncSession, settings: Settings, tokens: FakeTokens, client: httpx.AsyncClient
) -> None:
    await _person(db)
    request = await service.submit(session=db, settings=settings, form=_form())
    admin = await _admin(db, tokens)
    listed = await client.get("/api/v1/signup-requests?status=en_attente", headers=admin.headers)
    assert [item["id"] for item in listed.json()["items"]] == [str(request.id)]

    resp = await client.post(f"/api/v1/signup-requests/{request.id}/approve", headers=admin.headers)
    assert resp.status_code == 200, resp.text
    decision = resp.json()
    assert decision["emailed"] is False
    token = decision["activation_url"].rsplit("/", 1)[-1]
    assert decision["request"]["status"] == "validee"
    assert decision["request"]["user_id"] == "@marie.claire.le.gall.herve:azurezo.test"
    # Only the digest is stored, and the binding is made (the localpart is reserved).
    assert await db.get(ActivationLink, rules.token_digest(token)) is not None
    assert (
        await db.scalars(
            select(AccountBinding.national_id).where(AccountBinding.user_id == decision["request"]["user_id"])
        )
    ).one() == NID
    again = await client.post(f"/api/v1/signup-requests/{request.id}/approve", headers=admin.headers)
    assert again.status_code == 409


async def test_approval_e_mails_a_single_use_link(
    db: AsyncSession, mail_settings: Settings, smtp: tuple[Inbox, int], tokens: FakeTokens
) -> None:
    inbox, _ = smtp
    await _person(db)
    request = await service.submit(session=db, settings=mail_settings, form=_form())
    admin = await _admin(db, tokens)
    actor = await _actor(db, admin)
    decision = await service.approve(session=db, settings=mail_settings, actor=actor, request_id=request.id)
    assert decision.emailed and decision.activation_url is None
    [message] = inbox.messages
    assert message["To"] == "mc.legall@exemple.fr"
    assert message["Subject"] == "Activez votre compte AZUREZO"
    body = message.get_payload(decode=True).decode()  # type: ignore[union-attr]
    match = re.search(r"https://azurezo\.exemple\.fr/activation/([A-Za-z0-9_\-]+)", body)
    assert match, body
    owner = await service.link_owner(session=db, token=match.group(1))
    assert owner.id == request.id

    # A new link replaces the first one.
    await service.resend(session=db, settings=mail_settings, actor=actor, request_id=request.id)
    assert len(inbox.messages) == 2
    with pytest.raises(NotFound, match="72 heures"):
        await service.link_owner(session=db, token=match.group(1))


async def test_auto_approval_by_the_structure_s_domain(
    db: AsyncSession, mail_settings: Settings, smtp: tuple[Inbox, int]
) -> None:
    inbox, _ = smtp
    await _person(db, structure="chu")
    rule = mail_settings.model_copy(update={"signup_auto_approve_structure_domain": True})
    outcome = await service.submit(
        session=db, settings=rule, form=_form(email="mc.legall@chu-nice.fr", structure_id="chu")
    )
    assert outcome.status is SignupStatus.VALIDEE
    assert outcome.decided_by == "auto"
    assert len(inbox.messages) == 1


async def test_a_structure_that_is_not_theirs_is_refused(db: AsyncSession, settings: Settings) -> None:
    await _person(db)
    with pytest.raises(Invalid, match="structures d'exercice"):
        await service.submit(session=db, settings=settings, form=_form(structure_id="ailleurs"))


async def test_refusal_with_a_reason_and_every_step_audited(
    db: AsyncSession, settings: Settings, tokens: FakeTokens
) -> None:
    await _person(db)
    request = await service.submit(session=db, settings=settings, form=_form())
    admin = await _admin(db, tokens)
    refused = await service.refuse(
        session=db, actor=await _actor(db, admin), request_id=request.id, reason="Exerce hors de la région."
    )
    assert refused.status is SignupStatus.REFUSEE and refused.refusal_reason == "Exerce hors de la région."
    actions = list(await db.scalars(select(AuditEntry.action).where(AuditEntry.object_id == str(request.id))))
    assert actions == ["signup.submitted", "signup.refused"]


async def test_administrators_are_active_professionals(db: AsyncSession) -> None:
    await _person(db, active=False)
    with pytest.raises(NotFound):
        await service.add_administrator(session=db, national_id=NID)


async def _actor(db: AsyncSession, pro: Pro) -> Actor:
    return await actor_for_user(session=db, user_id=UserId(pro.user_id))
