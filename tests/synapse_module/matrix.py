"""Small helpers for the module's integration tests (tests/integration/test_module_*.py)."""

from __future__ import annotations

from typing import Any

import httpx

from tests.support.stack import Stack


async def new_professional(stack: Stack, prefix: str, *, admin: bool = False) -> tuple[str, str, str]:
    """A fresh active directory person with a bound account: ``(user_id, password, national_id)``."""
    person = await stack.add_person(family_name=prefix.upper(), given_name="Camille")
    user_id, password = await stack.create_account(
        person.national_id, stack.unique_localpart(prefix), admin=admin
    )
    return user_id, password, person.national_id


async def client_api(stack: Stack, method: str, path: str, token: str, **kwargs: Any) -> httpx.Response:
    """One client-server API call with an access token."""
    async with httpx.AsyncClient(base_url=stack.synapse_url, timeout=60.0) as client:
        return await client.request(method, path, headers={"Authorization": f"Bearer {token}"}, **kwargs)


async def login_raw(stack: Stack, user_id: str, password: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=30.0) as client:
        return await client.post(
            f"{stack.synapse_url}/_matrix/client/v3/login",
            json={
                "type": "m.login.password",
                "identifier": {"type": "m.id.user", "user": user_id},
                "password": password,
            },
        )


async def upload(
    stack: Stack, token: str, data: bytes, *, content_type: str, filename: str
) -> httpx.Response:
    async with httpx.AsyncClient(base_url=stack.synapse_url, timeout=120.0) as client:
        return await client.post(
            "/_matrix/media/v3/upload",
            params={"filename": filename},
            content=data,
            headers={"Authorization": f"Bearer {token}", "Content-Type": content_type},
        )
