"""Directory HTTP edges: the public search for professionals, and the internal lookup for Synapse."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request

from coordination.db import SessionDep
from coordination.directory import service
from coordination.directory.schemas import BindingStatus, PersonCard, SsoAccount, SsoAccountIn, StructureCard
from coordination.errors import ErrCode, NotFound, Unauthenticated
from coordination.pagination import Cursor, Page
from coordination.security import CurrentActor

SearchText = Annotated[
    str,
    Query(
        min_length=2,
        max_length=100,
        description="Début du nom ou du prénom (accents et casse indifférents), ou numéro RPPS / "
        "identifiant national exact",
    ),
]
Limit = Annotated[int, Query(ge=1, le=service.MAX_LIMIT, description="Nombre maximal de résultats")]

public = APIRouter(prefix="/api/v1/directory", tags=["directory"])


@public.get("/persons", response_model=Page[PersonCard], summary="Rechercher un professionnel")
async def search_persons(
    session: SessionDep,
    _actor: CurrentActor,
    q: SearchText,
    limit: Limit = 50,
    cursor: Cursor = None,
    active_only: Annotated[bool, Query(description="Seulement les professionnels actifs")] = False,
) -> Page[PersonCard]:
    return await service.search_persons_page(
        session=session, text=q, limit=limit, active_only=active_only, cursor=cursor
    )


@public.get("/persons/{national_id}", response_model=PersonCard, summary="Fiche d'un professionnel")
async def get_person(
    session: SessionDep,
    _actor: CurrentActor,
    national_id: Annotated[str, Path(min_length=1, max_length=20)],
) -> PersonCard:
    return await service.get_person(session=session, national_id=national_id)


@public.get("/structures", response_model=Page[StructureCard], summary="Rechercher une structure")
async def search_structures(
    session: SessionDep,
    _actor: CurrentActor,
    q: SearchText,
    dac: Annotated[bool, Query(description="Seulement les DAC")] = False,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[StructureCard]:
    return await service.search_structures_page(
        session=session, text=q, dac_only=dac, limit=limit, cursor=cursor
    )


@public.get("/structures/{structure_id}", response_model=StructureCard, summary="Fiche d'une structure")
async def get_structure(
    session: SessionDep,
    _actor: CurrentActor,
    structure_id: Annotated[str, Path(min_length=1, max_length=80)],
) -> StructureCard:
    return await service.get_structure(session=session, structure_id=structure_id)


@public.get(
    "/structures/{structure_id}/members",
    response_model=Page[PersonCard],
    summary="Professionnels actifs d'une structure (coordinateurs d'un DAC)",
)
async def structure_members(
    session: SessionDep,
    _actor: CurrentActor,
    structure_id: Annotated[str, Path(min_length=1, max_length=80)],
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[PersonCard]:
    return await service.structure_members_page(
        session=session, structure_id=structure_id, limit=limit, cursor=cursor
    )


# Not for professionals: the Synapse module asks it with the internal secret (docs/ARCHITECTURE.md).
internal = APIRouter(prefix="/internal/v1/directory", include_in_schema=False)


def _check_internal_secret(request: Request) -> None:
    expected: str = request.app.state.settings.internal_api_secret
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), expected.encode()):
        raise Unauthenticated("Secret interne invalide.", errcode=ErrCode.UNAUTHENTICATED)


@internal.get("/matrix-users/{user_id}", response_model=BindingStatus)
async def matrix_user(request: Request, session: SessionDep, user_id: str) -> BindingStatus:
    _check_internal_secret(request)
    status = await service.binding_for_user(session=session, user_id=user_id)
    if status is None:
        raise NotFound(
            f"Aucun professionnel de l'annuaire n'est rattaché au compte {user_id}.",
            errcode=ErrCode.NOT_BOUND,
        )
    return status


@internal.post("/sso-accounts", response_model=SsoAccount)
async def sso_account(request: Request, session: SessionDep, body: SsoAccountIn) -> SsoAccount:
    """The account a professional signs in to by single sign-on (the module's OIDC mapping asks)."""
    _check_internal_secret(request)
    return await service.sso_account(
        session=session,
        national_id=body.national_id,
        server_name=request.app.state.settings.server_name,
        reserved_localparts=body.reserved_localparts,
    )


router = APIRouter()
router.include_router(public)
router.include_router(internal)
