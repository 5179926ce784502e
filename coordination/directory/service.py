"""Directory rules for the API, the CLI and the other domains: search, cards, account bindings.

Every function is keyword-only and takes the caller's ``AsyncSession``; only :func:`bind_account` writes
(and commits).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import TypeVar

from sqlalchemy import (
    ColumnElement,
    ScalarSelect,
    Select,
    SQLColumnExpression,
    and_,
    false,
    func,
    or_,
    select,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from coordination.directory.models import AccountBinding, Activity, Person, Structure
from coordination.directory.rules import national_id_from_query, search_key, sso_localparts
from coordination.directory.schemas import BindingStatus, PersonCard, Site, SsoAccount, StructureCard
from coordination.errors import Conflict, ErrCode, Forbidden, Invalid, NotFound
from coordination.pagination import Page, decode_cursor, encode_cursor

logger = logging.getLogger(__name__)

MAX_LIMIT = 200
MAX_OFFSET = 10_000
"""Searches rank by name: nobody pages past this; a narrower search is the answer."""

T = TypeVar("T")


def _display(civility: str | None, given_name: str, family_name: str) -> str:
    prefix = "Dr " if (civility or "").strip().upper() in ("DR", "DOCTEUR", "DR.") else ""
    return f"{prefix}{given_name} {family_name}".strip()


def display_name(person: Person) -> str:
    """``Dr Jeanne MARTIN`` for doctors (civility Docteur/DR), ``Jeanne MARTIN`` otherwise."""
    return _display(person.civility, person.given_name, person.family_name)


def _site(activity: Activity, structure: Structure | None) -> Site:
    return Site(
        structure_id=activity.structure_id,
        name=activity.site_name or (structure.name if structure else None),
        address=activity.address or (structure.address if structure else None),
        postal_code=activity.postal_code or (structure.postal_code if structure else None),
        city=activity.city or (structure.city if structure else None),
        department=activity.department or (structure.department if structure else None),
        phone=activity.phone or (structure.phone if structure else None),
        email=activity.email or (structure.email if structure else None),
        specialty=activity.specialty,
        mode=activity.mode,
        role=activity.role,
        profession_code=activity.profession_code,
        profession=activity.profession,
    )


async def _cards(session: AsyncSession, persons: Sequence[Person]) -> list[PersonCard]:
    """Cards for ``persons`` (in that order), with their sites loaded in one query."""
    if not persons:
        return []
    ids = [p.national_id for p in persons]
    rows = (
        await session.execute(
            select(Activity, Structure)
            .outerjoin(Structure, Structure.structure_id == Activity.structure_id)
            .where(Activity.national_id.in_(ids))
            .order_by(Activity.national_id, Activity.id)
        )
    ).all()
    sites: dict[str, list[Site]] = {nid: [] for nid in ids}
    for activity, structure in rows:
        if activity.structure_id is None and not activity.site_name:
            continue  # an exercise with no site (e.g. a locum): nothing to show as a site
        sites[activity.national_id].append(_site(activity, structure))
    return [
        PersonCard(
            national_id=p.national_id,
            family_name=p.family_name,
            given_name=p.given_name,
            display_name=display_name(p),
            civility=p.civility,
            profession_code=p.profession_code,
            profession=p.profession,
            active=p.active,
            deactivated_at=p.deactivated_at,
            source=p.source,
            sites=sites[p.national_id],
        )
        for p in persons
    ]


def _word_conditions(column: InstrumentedAttribute[str], text: str) -> list[ColumnElement[bool]]:
    # search_key leaves only [A-Z0-9 ], so no LIKE wildcard can come from the user.
    return [or_(column.like(f"{w}%"), column.like(f"% {w}%")) for w in search_key(text).split()]


def _offset(cursor: str | None) -> int:
    """The offset a search cursor stands for (searches are short, ranked lists: an offset is enough)."""
    position = decode_cursor(cursor)
    if position is None:
        return 0
    offset = position.get("o")
    if not isinstance(offset, int) or isinstance(offset, bool) or not 0 <= offset <= MAX_OFFSET:
        raise Invalid(
            "Curseur de page illisible : renvoyez la valeur `next_cursor` de la page précédente telle "
            "quelle, ou omettez-la pour la première page.",
            field="cursor",
        )
    return offset


def _page(rows: Sequence[T], *, offset: int, limit: int) -> Page[T]:
    """A page of ``rows`` fetched with ``limit + 1``: the extra row says that another page follows."""
    more = len(rows) > limit
    return Page[T](
        items=list(rows[:limit]), next_cursor=encode_cursor({"o": offset + limit}) if more else None
    )


async def search_persons(
    *, session: AsyncSession, text: str, limit: int = 50, active_only: bool = False, offset: int = 0
) -> list[PersonCard]:
    """Professionals whose family or given names start with every word of ``text`` (accents and case
    ignored, any order), or whose national id / RPPS number is exactly ``text``. Active ones first."""
    limit = max(1, min(limit, MAX_LIMIT + 1))
    national_id = national_id_from_query(text)
    if national_id is not None:
        condition: ColumnElement[bool] = Person.national_id == national_id
    else:
        words = _word_conditions(Person.search_name, text)
        if not words:
            return []
        condition = and_(*words)
    query = select(Person).where(condition)
    if active_only:
        query = query.where(Person.active.is_(True))
    query = query.order_by(Person.active.desc(), Person.search_name, Person.national_id)
    persons = (await session.scalars(query.offset(offset).limit(limit))).all()
    return await _cards(session, persons)


async def search_persons_page(
    *, session: AsyncSession, text: str, limit: int = 50, active_only: bool = False, cursor: str | None = None
) -> Page[PersonCard]:
    """A page of ``search_persons`` (the API's)."""
    offset, limit = _offset(cursor), max(1, min(limit, MAX_LIMIT))
    rows = await search_persons(
        session=session, text=text, limit=limit + 1, active_only=active_only, offset=offset
    )
    return _page(rows, offset=offset, limit=limit)


async def get_person(*, session: AsyncSession, national_id: str) -> PersonCard:
    """The card of one professional; ``NotFound`` when the national id is not in the directory."""
    person = await session.get(Person, national_id.strip().upper())
    if person is None:
        raise NotFound(
            f"Aucun professionnel d'identifiant national « {national_id} » dans l'annuaire : "
            "vérifiez le numéro (8 + RPPS ou 0 + ADELI) ou recherchez-le par son nom."
        )
    return (await _cards(session, [person]))[0]


def _structure_card(s: Structure) -> StructureCard:
    return StructureCard(
        structure_id=s.structure_id,
        name=s.name,
        kind=s.kind,
        is_dac=s.is_dac,
        finess=s.finess,
        siret=s.siret,
        parent_id=s.parent_id,
        address=s.address,
        postal_code=s.postal_code,
        city=s.city,
        department=s.department,
        phone=s.phone,
        email=s.email,
        active=s.active,
        deactivated_at=s.deactivated_at,
        source=s.source,
    )


async def search_structures(
    *, session: AsyncSession, text: str, dac_only: bool = False, limit: int = 50, offset: int = 0
) -> list[StructureCard]:
    """Structures whose name words start with the words of ``text``, or whose key / FINESS / SIRET is
    exactly ``text``; ``dac_only`` keeps the DACs. Active ones first."""
    limit = max(1, min(limit, MAX_LIMIT + 1))
    exact = text.strip()
    by_id = or_(Structure.structure_id == exact, Structure.finess == exact, Structure.siret == exact)
    words = _word_conditions(Structure.search_name, text)
    condition = or_(by_id, and_(*words)) if words else by_id
    query = select(Structure).where(condition)
    if dac_only:
        query = query.where(Structure.is_dac.is_(True))
    query = query.order_by(Structure.active.desc(), Structure.search_name, Structure.structure_id)
    rows = (await session.scalars(query.offset(offset).limit(limit))).all()
    return [_structure_card(s) for s in rows]


async def search_structures_page(
    *, session: AsyncSession, text: str, dac_only: bool = False, limit: int = 50, cursor: str | None = None
) -> Page[StructureCard]:
    """A page of ``search_structures`` (the API's)."""
    offset, limit = _offset(cursor), max(1, min(limit, MAX_LIMIT))
    rows = await search_structures(
        session=session, text=text, dac_only=dac_only, limit=limit + 1, offset=offset
    )
    return _page(rows, offset=offset, limit=limit)


async def get_structure(*, session: AsyncSession, structure_id: str) -> StructureCard:
    """One structure by its directory key; ``NotFound`` otherwise."""
    structure = await session.get(Structure, structure_id.strip())
    if structure is None:
        raise NotFound(
            f"Aucune structure « {structure_id} » dans l'annuaire : vérifiez l'identifiant "
            "(finess:…, siret:…) ou recherchez-la par son nom."
        )
    return _structure_card(structure)


async def structure_members(
    *, session: AsyncSession, structure_id: str, limit: int | None = None, offset: int = 0
) -> list[PersonCard]:
    """Active professionals with an activity at the structure (for a DAC: its coordinators), by name;
    all of them unless ``limit``."""
    await get_structure(session=session, structure_id=structure_id)
    query = (
        select(Person)
        .where(
            Person.active.is_(True),
            Person.national_id.in_(select(Activity.national_id).where(Activity.structure_id == structure_id)),
        )
        .order_by(Person.search_name, Person.national_id)
        .offset(offset)
    )
    if limit is not None:
        query = query.limit(max(1, limit))
    return await _cards(session, (await session.scalars(query)).all())


async def structure_members_page(
    *, session: AsyncSession, structure_id: str, limit: int = 50, cursor: str | None = None
) -> Page[PersonCard]:
    """A page of ``structure_members`` (the API's)."""
    offset, limit = _offset(cursor), max(1, min(limit, MAX_LIMIT))
    rows = await structure_members(session=session, structure_id=structure_id, limit=limit + 1, offset=offset)
    return _page(rows, offset=offset, limit=limit)


async def bind_account(*, session: AsyncSession, national_id: str, user_id: str) -> PersonCard:
    """Bind a Matrix account to a directory professional (one account each), and commit.

    Refused, in French: a national id not in the directory (``NotFound``), a delisted professional
    (``Forbidden``), a professional already bound to another account or an account already bound to
    another professional (``Conflict``). Binding the same pair again changes nothing.
    """
    national_id = national_id.strip().upper()
    person = await session.get(Person, national_id)
    if person is None:
        raise NotFound(
            f"Le professionnel « {national_id} » n'est pas dans l'annuaire national : importez "
            "l'annuaire (azurezo directory import-rpps) ou vérifiez le numéro.",
            errcode=ErrCode.NOT_IN_DIRECTORY,
        )
    existing = await session.get(AccountBinding, user_id)
    if existing is not None:
        if existing.national_id == national_id:
            return (await _cards(session, [person]))[0]
        raise Conflict(
            f"Le compte {user_id} est déjà rattaché à un autre professionnel : un compte ne peut "
            "représenter qu'une seule personne ; créez un autre compte.",
            errcode=ErrCode.ALREADY_BOUND,
        )
    if not person.active:
        raise Forbidden(
            f"Le professionnel « {national_id} » n'est plus actif dans l'annuaire national : "
            "aucun compte ne peut lui être rattaché.",
            errcode=ErrCode.INACTIVE,
        )
    taken = (
        await session.scalars(select(AccountBinding.user_id).where(AccountBinding.national_id == national_id))
    ).first()
    if taken is not None:
        raise Conflict(
            f"Le professionnel « {national_id} » a déjà un compte ({taken}) : utilisez ce compte "
            "ou faites-le supprimer d'abord.",
            errcode=ErrCode.ALREADY_BOUND,
        )
    session.add(AccountBinding(user_id=user_id, national_id=national_id))
    try:
        await session.commit()
    except IntegrityError as exc:  # a concurrent binding won the race
        await session.rollback()
        raise Conflict(
            f"Le professionnel « {national_id} » vient d'être rattaché à un autre compte.",
            errcode=ErrCode.ALREADY_BOUND,
        ) from exc
    logger.info("bound %s to national id %s", user_id, national_id)
    return (await _cards(session, [person]))[0]


async def binding_for_user(*, session: AsyncSession, user_id: str) -> BindingStatus | None:
    """The directory identity of a Matrix account, or None when the account is not bound."""
    row = (
        await session.execute(
            select(AccountBinding.user_id, Person)
            .join(Person, Person.national_id == AccountBinding.national_id)
            .where(AccountBinding.user_id == user_id)
        )
    ).first()
    if row is None:
        return None
    person: Person = row[1]
    return BindingStatus(
        user_id=row[0],
        national_id=person.national_id,
        active=person.active,
        display_name=display_name(person),
    )


# The same sentence for an unknown and a delisted national id: the identity provider's answer must
# not let anyone probe the directory.
_SSO_REFUSED = (
    "Votre identité a bien été vérifiée, mais elle ne correspond à aucun professionnel actif de "
    "l'annuaire de la région : vous ne pouvez pas ouvrir de compte. Si vous exercez dans la région, "
    "demandez à votre structure de vérifier votre inscription au RPPS ou écrivez à l'administrateur."
)


async def reserve_account(
    *, session: AsyncSession, national_id: str, server_name: str, reserved_localparts: Iterable[str] = ()
) -> SsoAccount:
    """The Matrix account of an active professional: the bound one, or the first free ``prenom.nom``
    localpart bound now (in the caller's transaction, not committed).

    ``Forbidden`` (one French sentence whether the number is unknown or delisted) otherwise. Used by
    single sign-on and by the approval of a sign-up request; Synapse registers the account later
    (the module's registration check then finds the binding).
    """
    national_id = national_id.strip().upper()
    person = await session.get(Person, national_id)
    if person is None or not person.active:
        why = "unknown" if person is None else "inactive"
        logger.info("account refused for national id %s (%s)", national_id, why)
        raise Forbidden(
            _SSO_REFUSED, errcode=ErrCode.NOT_IN_DIRECTORY if person is None else ErrCode.INACTIVE
        )
    name = display_name(person)
    bound = (
        await session.scalars(select(AccountBinding.user_id).where(AccountBinding.national_id == national_id))
    ).first()
    if bound is not None:
        localpart = bound[1:].split(":", 1)[0]
        return SsoAccount(localpart=localpart, user_id=bound, display_name=name, existing=True)
    reserved = set(reserved_localparts)
    for localpart in sso_localparts(
        given_name=person.given_name, family_name=person.family_name, national_id=national_id
    ):
        user_id = f"@{localpart}:{server_name}"
        if localpart in reserved or await session.get(AccountBinding, user_id) is not None:
            continue
        session.add(AccountBinding(user_id=user_id, national_id=national_id))
        await session.flush()
        logger.info("bound %s to national id %s", user_id, national_id)
        return SsoAccount(localpart=localpart, user_id=user_id, display_name=name, existing=False)
    raise Conflict(  # unreachable in practice: the last candidate is made of the unique national id
        "Aucun identifiant Matrix libre n'a été trouvé pour ce professionnel : écrivez à l'administrateur.",
        errcode=ErrCode.ALREADY_BOUND,
    )


async def sso_account(
    *, session: AsyncSession, national_id: str, server_name: str, reserved_localparts: Iterable[str] = ()
) -> SsoAccount:
    """The Matrix account a professional signs in to by single sign-on, bound on the first sign-in
    (``reserve_account``), committed. A concurrent first sign-in of the same person: ``Conflict``."""
    try:
        account = await reserve_account(
            session=session,
            national_id=national_id,
            server_name=server_name,
            reserved_localparts=reserved_localparts,
        )
        await session.commit()
    except IntegrityError as exc:
        await session.rollback()
        raise Conflict(
            "Une autre connexion de ce professionnel vient de créer son compte : recommencez.",
            errcode=ErrCode.ALREADY_BOUND,
        ) from exc
    return account


# --- look-ups for the other domains ---------------------------------------------------------------
# Every other domain reads the directory through these (never its tables): one place decides what
# "active", "bound" and a person's displayed name mean.


async def display_names(*, session: AsyncSession, national_ids: Iterable[str]) -> dict[str, str]:
    """``{national_id: "Dr Jeanne MARTIN"}`` for the ids known to the directory (active or not)."""
    ids = sorted(set(national_ids))
    if not ids:
        return {}
    rows = await session.execute(
        select(Person.national_id, Person.civility, Person.given_name, Person.family_name).where(
            Person.national_id.in_(ids)
        )
    )
    return {nid: _display(civility, given, family) for nid, civility, given, family in rows.tuples()}


async def structure_names(*, session: AsyncSession, structure_ids: Iterable[str]) -> dict[str, str]:
    """``{structure_id: name}`` for the structures known to the directory (active or not)."""
    ids = sorted(set(structure_ids))
    if not ids:
        return {}
    rows = await session.execute(
        select(Structure.structure_id, Structure.name).where(Structure.structure_id.in_(ids))
    )
    return {sid: name for sid, name in rows.tuples()}


async def active_national_ids(*, session: AsyncSession, national_ids: Iterable[str]) -> set[str]:
    """Those of ``national_ids`` that are active professionals of the directory."""
    ids = sorted(set(national_ids))
    if not ids:
        return set()
    rows = await session.scalars(
        select(Person.national_id).where(Person.national_id.in_(ids), Person.active.is_(True))
    )
    return set(rows)


async def active_structure_ids(*, session: AsyncSession, structure_ids: Iterable[str]) -> set[str]:
    """Those of ``structure_ids`` that are active structures of the directory."""
    ids = sorted(set(structure_ids))
    if not ids:
        return set()
    rows = await session.scalars(
        select(Structure.structure_id).where(Structure.structure_id.in_(ids), Structure.active.is_(True))
    )
    return set(rows)


def bound_active_users_query(
    *, national_ids: Iterable[str] = (), structure_ids: Iterable[str] = ()
) -> Select[str]:
    """``SELECT user_id`` of the Matrix accounts of active professionals who are one of
    ``national_ids`` or work at one of ``structure_ids`` (a query, to compose into larger ones)."""
    nids, sids = sorted(set(national_ids)), sorted(set(structure_ids))
    bound_active = (
        select(AccountBinding.user_id)
        .join(Person, Person.national_id == AccountBinding.national_id)
        .where(Person.active.is_(True))
    )
    direct = bound_active.where(Person.national_id.in_(nids)) if nids else None
    at_structures = (
        bound_active.where(
            Person.national_id.in_(select(Activity.national_id).where(Activity.structure_id.in_(sids)))
        )
        if sids
        else None
    )
    if direct is not None and at_structures is not None:
        return select(direct.union(at_structures).subquery().c.user_id)
    if direct is not None:
        return direct
    if at_structures is not None:
        return at_structures
    return select(AccountBinding.user_id).where(false())


async def bound_active_user_ids(
    *, session: AsyncSession, national_ids: Iterable[str] = (), structure_ids: Iterable[str] = ()
) -> list[str]:
    """Matrix IDs (sorted, unique) of the active professionals among ``national_ids`` or working at
    one of ``structure_ids`` who have an account: who can be told, or let in, now."""
    query = bound_active_users_query(national_ids=national_ids, structure_ids=structure_ids)
    return sorted(set(await session.scalars(query)))


async def person_for_user(*, session: AsyncSession, user_id: str) -> tuple[Person, list[str]] | None:
    """The directory person bound to a Matrix account and the structures they work at (active or not:
    the caller decides), or None when the account is not bound. For ``coordination.security``."""
    person = (
        await session.scalars(
            select(Person)
            .join(AccountBinding, AccountBinding.national_id == Person.national_id)
            .where(AccountBinding.user_id == user_id)
        )
    ).one_or_none()
    if person is None:
        return None
    structures = await session.scalars(
        select(Activity.structure_id)
        .where(Activity.national_id == person.national_id, Activity.structure_id.is_not(None))
        .distinct()
    )
    return person, sorted(s for s in structures if s)


# --- look-ups for documents --------------------------------------------------------------------------


async def workplaces_of_users(
    *, session: AsyncSession, user_ids: Iterable[str]
) -> dict[str, tuple[str, set[str]]]:
    """``{user_id: (national_id, structures they work at)}`` for the bound accounts among ``user_ids``
    (two queries, whatever their number; unbound accounts are absent)."""
    ids = sorted(set(user_ids))
    if not ids:
        return {}
    rows = await session.execute(
        select(AccountBinding.user_id, AccountBinding.national_id).where(AccountBinding.user_id.in_(ids))
    )
    bindings = {user_id: national_id for user_id, national_id in rows.tuples()}
    works_at: dict[str, set[str]] = {}
    activities = await session.execute(
        select(Activity.national_id, Activity.structure_id).where(
            Activity.national_id.in_(sorted(set(bindings.values()))), Activity.structure_id.is_not(None)
        )
    )
    for nid, sid in activities.tuples():
        if sid is not None:
            works_at.setdefault(nid, set()).add(sid)
    return {u: (nid, works_at.get(nid, set())) for u, nid in bindings.items()}


# --- look-ups for requests to a DAC and patients (h/svc-a) -----------------------------------------


async def active_dac_ids(*, session: AsyncSession, structure_ids: Iterable[str]) -> set[str]:
    """Those of ``structure_ids`` that are active structures marked DAC in the directory."""
    ids = sorted(set(structure_ids))
    if not ids:
        return set()
    rows = await session.scalars(
        select(Structure.structure_id).where(
            Structure.structure_id.in_(ids), Structure.active.is_(True), Structure.is_dac.is_(True)
        )
    )
    return set(rows)


async def bound_user_ids(*, session: AsyncSession, national_ids: Iterable[str]) -> dict[str, str]:
    """``{national_id: Matrix user ID}`` of those of ``national_ids`` bound to an account (active or
    not: the caller decides what an inactive one may do)."""
    ids = sorted(set(national_ids))
    if not ids:
        return {}
    rows = await session.execute(
        select(AccountBinding.national_id, AccountBinding.user_id).where(AccountBinding.national_id.in_(ids))
    )
    return {nid: uid for nid, uid in rows.tuples()}


# --- query fragments for the DAC indicators (aggregates over other domains' rows) ------------------
# Correlated scalar subqueries: each is one primary-key or indexed look-up per aggregated row, so an
# aggregate over a DAC's requests never scans the (possibly national) directory.


def profession_of(national_id: SQLColumnExpression[str]) -> ScalarSelect[str | None]:
    """The directory profession of the person ``national_id`` points to: its label, else its code,
    else null (unknown person)."""
    return (
        select(func.coalesce(Person.profession, Person.profession_code))
        .where(Person.national_id == national_id)
        .scalar_subquery()
    )


def exercise_mode_of(
    *, national_id: SQLColumnExpression[str], structure_id: SQLColumnExpression[str | None]
) -> ScalarSelect[str | None]:
    """How the person works at the structure (the RPPS "mode d'exercice" of their activity there, the
    first in alphabetical order when they have several), or null."""
    return (
        select(func.min(Activity.mode))
        .where(Activity.national_id == national_id, Activity.structure_id == structure_id)
        .scalar_subquery()
    )


def is_dac_of(structure_id: SQLColumnExpression[str | None]) -> ScalarSelect[bool | None]:
    """Whether the structure is marked DAC in the directory (null when unknown)."""
    return select(Structure.is_dac).where(Structure.structure_id == structure_id).scalar_subquery()
