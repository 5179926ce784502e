"""Account activation against a real Synapse: the e-mailed link sets the password, registers the
account bound to the directory, and works once; a professional delisted meanwhile cannot activate."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from coordination.db import make_engine, make_sessionmaker
from coordination.errors import Forbidden, Invalid, NotFound
from coordination.ids import UserId
from coordination.security import actor_for_user
from coordination.signup import service
from coordination.signup.schemas import SignupIn
from tests.support.stack import Stack

pytestmark = pytest.mark.synapse
PASSWORD = "voilier-cerisier-tartine-42"


async def _approved_link(stack: Stack, session: AsyncSession, family: str, given: str) -> tuple[str, str]:
    """A professional asks for an account and an administrator approves it; returns (nid, token)."""
    person = await stack.add_person(family_name=family, given_name=given)
    admin = await stack.add_person(family_name="ADMIN", given_name="Alice")
    admin_user, _ = await stack.create_account(admin.national_id)
    await service.add_administrator(session=session, national_id=admin.national_id)
    settings = stack.home.service_settings()
    request = await service.submit(
        session=session,
        settings=settings,
        form=SignupIn(
            family_name=family, given_name=given, national_id=person.national_id, email="pro@exemple.fr"
        ),
    )
    actor = await actor_for_user(session=session, user_id=UserId(admin_user))
    decision = await service.approve(session=session, settings=settings, actor=actor, request_id=request.id)
    assert decision.activation_url is not None  # no SMTP in this home: the administrator passes it on
    assert decision.activation_url.startswith(f"{stack.service_url}/activation/")
    return person.national_id, decision.activation_url.rsplit("/", 1)[-1]


async def test_the_link_sets_the_password_and_registers_the_bound_account_once(stack: Stack) -> None:
    engine = make_engine(stack.home.database_url)
    try:
        async with make_sessionmaker(engine)() as session:
            national_id, token = await _approved_link(stack, session, "ACTIVE", "Agathe")
            settings = stack.home.service_settings()
            with pytest.raises(Invalid, match="trop facile"):
                await service.activate(
                    session=session, settings=settings, token=token, password="agatheactive1"
                )
            done = await service.activate(session=session, settings=settings, token=token, password=PASSWORD)
            assert done.user_id == f"@agathe.active:{stack.server_name}"
            with pytest.raises(NotFound, match="une seule fois"):
                await service.activate(session=session, settings=settings, token=token, password=PASSWORD)
    finally:
        await engine.dispose()
    token_ = await stack.login(done.user_id, PASSWORD)  # the password chosen, with Element's login
    async with httpx.AsyncClient() as client:
        me = await client.get(f"{stack.service_url}/api/v1/me", headers={"Authorization": f"Bearer {token_}"})
    assert me.status_code == 200 and me.json()["national_id"] == national_id


async def test_a_professional_delisted_before_activation_cannot_activate(stack: Stack) -> None:
    engine = make_engine(stack.home.database_url)
    try:
        async with make_sessionmaker(engine)() as session:
            national_id, token = await _approved_link(stack, session, "RADIE", "Bruno")
            await stack.set_active(national_id, False)
            with pytest.raises(Forbidden, match="plus inscrit"):
                await service.activate(
                    session=session, settings=stack.home.service_settings(), token=token, password=PASSWORD
                )
    finally:
        await engine.dispose()
