"""HTTP edge of the administrators' side of sign-up (the public pages are ``pages.py``)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict

from coordination.db import SessionDep
from coordination.pagination import Cursor, Page
from coordination.security import CurrentActor
from coordination.signup import service
from coordination.signup.schemas import Decision, SignupOut
from coordination.text import Paragraph500
from coordination.vocab import SignupStatus

router = APIRouter(prefix="/api/v1/signup-requests", tags=["inscriptions"])


class RefusalIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Paragraph500


@router.get("", response_model=Page[SignupOut], summary="Sign-up requests (administrators)")
async def list_requests(
    session: SessionDep,
    actor: CurrentActor,
    status: SignupStatus | None = None,
    cursor: Cursor = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> Page[SignupOut]:
    return await service.list_requests(
        session=session, actor=actor, status=status, limit=limit, cursor=cursor
    )


@router.post(
    "/{request_id}/approve", response_model=Decision, summary="Approve: reserve the account, send the link"
)
async def approve(
    request_id: uuid.UUID, request: Request, session: SessionDep, actor: CurrentActor
) -> Decision:
    return await service.approve(
        session=session, settings=request.app.state.settings, actor=actor, request_id=request_id
    )


@router.post("/{request_id}/refuse", response_model=SignupOut, summary="Refuse, with a reason")
async def refuse(
    request_id: uuid.UUID, body: RefusalIn, session: SessionDep, actor: CurrentActor
) -> SignupOut:
    return await service.refuse(session=session, actor=actor, request_id=request_id, reason=body.reason)


@router.post("/{request_id}/resend", response_model=Decision, summary="A new activation link (old ones stop)")
async def resend(
    request_id: uuid.UUID, request: Request, session: SessionDep, actor: CurrentActor
) -> Decision:
    return await service.resend(
        session=session, settings=request.app.state.settings, actor=actor, request_id=request_id
    )
