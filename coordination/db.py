"""Database plumbing: the declarative base, the engine and per-request sessions."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import DateTime, MetaData, TypeDecorator, event
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.orm.exc import StaleDataError

# Stable constraint names, so Alembic migrations are the same on SQLite and PostgreSQL.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend (SQLite stores no offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime refused: use datetime.now(UTC)")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


def utcnow() -> datetime:
    return datetime.now(UTC)


def make_engine(
    database_url: str, *, sqlite_busy_timeout: float = 5.0, sqlite_immediate: bool = False
) -> AsyncEngine:
    """Create the async engine; on SQLite, turn on foreign keys and WAL for concurrent readers.

    ``sqlite_immediate`` (the service's engine): every transaction starts with ``BEGIN IMMEDIATE``, so it
    takes the write lock up front and *waits* for it (``sqlite_busy_timeout`` seconds) while another
    process writes, e.g. a directory import. With SQLite's default deferred transactions, a request that
    reads then writes (every audited read does) fails at once with "database is locked" when another
    writer committed in between (WAL snapshot conflict): the busy timeout never applies to that case.
    SQLite has one writer at a time anyway, so this costs no real concurrency; the service's engine
    therefore keeps one connection, and its requests queue for it first come, first served (an asyncio
    queue, ``pool_timeout`` = the busy timeout) rather than in SQLite's busy handler, which retries in
    naps of up to 100 ms while the lock may have been free for most of them.
    """
    sqlite = database_url.startswith("sqlite")
    pool: dict[str, object] = {}
    if sqlite and sqlite_immediate:
        pool = {"pool_size": 1, "max_overflow": 0, "pool_timeout": sqlite_busy_timeout}
    engine = create_async_engine(
        database_url,
        pool_pre_ping=not sqlite,
        **pool,
        # Errors must never carry a patient's name or birth date into the logs: SQLAlchemy otherwise
        # puts the bound parameters in every exception message it raises.
        hide_parameters=True,
    )
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute(f"PRAGMA busy_timeout={int(sqlite_busy_timeout * 1000)}")
            cur.close()
            if sqlite_immediate:
                # Let SQLAlchemy's "begin" event below emit BEGIN instead of the driver's implicit one.
                dbapi_conn.isolation_level = None

        if sqlite_immediate:

            @event.listens_for(engine.sync_engine, "begin")
            def _sqlite_begin_immediate(conn):  # type: ignore[no-untyped-def]
                conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One session per request; the service functions commit, an exception rolls back.

    When the request carries an ``Idempotency-Key``, ``coordination.idempotency`` has opened the
    request's outer transaction: the session joins it, and its commits only release savepoints, so the
    write and its stored answer commit together.
    """
    outer: AsyncConnection | None = getattr(request.state, "azurezo.connection", None)
    if outer is not None:
        async with AsyncSession(
            bind=outer, join_transaction_mode="create_savepoint", expire_on_commit=False
        ) as session:
            yield session
        return
    maker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    async with maker() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]


async def commit_or_conflict(session: AsyncSession, *, on_stale: Exception) -> None:
    """Commit; when a versioned row changed since it was read (optimistic concurrency), roll back and
    raise ``on_stale`` (a French 409) instead of silently overwriting someone else's edit."""
    try:
        await session.commit()
    except StaleDataError as exc:
        await session.rollback()
        raise on_stale from exc
