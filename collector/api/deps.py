"""What routes get injected: the runtime, a database session, the caller's token check, paging, now.

    async def list_things(db: DbDep, page: PaginationDep) -> Page[ThingPublic]:
        return await db.run(lambda session: ...)

The app keeps the runtime, the API token and the session slots on ``app.state`` (set by
:func:`collector.main.create_app`), so tests build an app over any object shaped like
:class:`Runtime`.

Routes are ``async``; their database work runs in one worker-thread hop (:meth:`Db.run`), and
every other dependency here is ``async`` too, so a request costs one thread hand-off, not six.
Sessions are rationed: at most ``api_db_sessions`` requests hold a database session at once (a
:class:`SessionSlots`), so the API can never take the connections ingest and notifications need;
a request that cannot get a slot within ``api_db_wait_s`` is answered 503 with ``Retry-After``
at once instead of hanging on the pool.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import secrets
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Annotated, Any, Protocol, TypeVar, cast

from fastapi import Depends, HTTPException, Query, Request, Response, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from collector.api.cache import PageCache
from collector.store.db import Database
from firmware_config.topics import ID_PATTERN

log = logging.getLogger("collector.http")

MAX_PAGE = 500
MAX_OFFSET = 1_000_000
"""Deeper than this, walk the list with ``cursor``: a large offset makes the database skip rows."""
MAX_CURSOR = 512
RETRY_AFTER_S = 1


class Runtime(Protocol):
    """What the HTTP app needs from the running collector (``collector.runtime.Collector``)."""

    db: Database

    def start(self) -> None:
        """Create the schema and start ingest, notifications and escalation."""

    def stop(self) -> None: ...

    def health(self) -> dict[str, Any]:
        """``{"status": "ok" | "degraded", "database": bool, "mqtt_connected": bool, ...}``."""
        ...


async def get_runtime(request: Request) -> Runtime:
    return cast(Runtime, request.app.state.runtime)


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


class SessionSlots:
    """At most ``size`` API requests hold a database session; the others wait ``wait_s``, then 503.

    A plain bounded semaphore, because sync routes run in the server's worker threads.
    """

    def __init__(self, size: int, wait_s: float) -> None:
        if size < 1:
            raise ValueError(f"size={size} must be at least 1")
        self.size = size
        self.wait_s = wait_s
        self._free = threading.BoundedSemaphore(size)
        self.refused = 0

    def acquire(self) -> bool:
        if self._free.acquire(timeout=self.wait_s):
            return True
        self.refused += 1
        return False

    def release(self) -> None:
        self._free.release()


def busy() -> HTTPException:
    """503 with ``Retry-After``: the request was not started, so trying again is safe."""
    return HTTPException(
        status.HTTP_503_SERVICE_UNAVAILABLE,
        "the collector is busy: every database session is in use; try again shortly",
        headers={"Retry-After": str(RETRY_AFTER_S)},
    )


_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class Db:
    """The database as an ``async`` route sees it: ``await db.run(work)``."""

    database: Database
    slots: SessionSlots
    pages: PageCache
    writes: bool
    """The request may change data (not GET/HEAD): a success empties the page cache."""

    async def run(self, work: Callable[[Session], _T]) -> _T:
        """``work(session)`` in a worker thread; committed if it returns, rolled back if not.

        Raises the 503 of :func:`busy` when no session slot frees up in time.
        """
        try:
            return await run_in_threadpool(self._run, work)
        finally:
            if self.writes:
                self.pages.clear()

    async def page(
        self, request: Request, work: Callable[[Session], Response], tables: frozenset[str]
    ) -> Response:
        """A list page from the page cache, or from ``work`` (then kept there).

        ``tables`` are those ``work`` reads: a write to any of them makes the kept page stale.
        With the cache on, concurrent misses for one page wait for a single read of it.
        """
        if not self.pages.enabled:
            return await self.run(work)
        key = f"{request.url.path}?{request.url.query}"
        body = self.pages.get(key, tables)
        if body is not None:
            return Response(body, media_type="application/json")
        pending = self.pages.inflight.get(key)
        if pending is not None:
            return Response(await asyncio.shield(pending), media_type="application/json")
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self.pages.inflight[key] = future
        try:
            reading = self.pages.reading(tables)
            response = await self.run(work)
            body = bytes(response.body)
            self.pages.put(key, body, reading)
            future.set_result(body)
            return response
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning when nobody waited
            raise
        finally:
            del self.pages.inflight[key]

    def _run(self, work: Callable[[Session], _T]) -> _T:
        if not self.slots.acquire():
            log.warning("no database session free")
            raise busy()
        try:
            with self.database.session() as session:
                return work(session)
        finally:
            self.slots.release()


async def get_db(request: Request, runtime: RuntimeDep) -> Db:
    state = request.app.state
    writes = request.method not in ("GET", "HEAD")
    return Db(runtime.db, state.session_slots, state.page_cache, writes)


DbDep = Annotated[Db, Depends(get_db)]


def get_session(request: Request, runtime: RuntimeDep) -> Iterator[Session]:
    """For sync routes: a session that commits when the route returns and rolls back otherwise.

    Rationed by the same slots as :class:`Db`.
    """
    slots: SessionSlots = request.app.state.session_slots
    if not slots.acquire():
        log.warning("no database session free", extra={"path": request.url.path})
        raise busy()
    try:
        with runtime.db.session() as session:
            yield session
    finally:
        slots.release()


# scope="function": commit before the response is sent, so a 2xx always means "stored".
SessionDep = Annotated[Session, Depends(get_session, scope="function")]

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ApiToken",
    description="The collector's ANBU_API_TOKEN, sent as `Authorization: Bearer <token>`.",
)


async def require_token(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """401 unless the request carries ``Authorization: Bearer <ANBU_API_TOKEN>``."""
    challenge = {"WWW-Authenticate": "Bearer"}
    if credentials is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing bearer token: send the header 'Authorization: Bearer <token>' "
            "with the collector's API token (ANBU_API_TOKEN)",
            headers=challenge,
        )
    expected: str = request.app.state.api_token
    if not secrets.compare_digest(credentials.credentials.encode(), expected.encode()):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "invalid bearer token: it does not match the collector's API token (ANBU_API_TOKEN)",
            headers=challenge,
        )


@dataclass(frozen=True, slots=True)
class Pagination:
    limit: int
    offset: int
    cursor: str | None = None


async def pagination(
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="items per page")] = 100,
    offset: Annotated[
        int,
        Query(
            ge=0,
            le=MAX_OFFSET,
            description="items to skip; for deep pages use `cursor` instead",
        ),
    ] = 0,
    cursor: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=MAX_CURSOR,
            pattern=r"^[A-Za-z0-9_-]+={0,2}$",
            description="`next_cursor` of the previous page: the page after it (keyset paging, "
            "as fast on the last page as on the first). Not together with `offset`.",
        ),
    ] = None,
) -> Pagination:
    if cursor is not None and offset:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            [
                {
                    "loc": ["query", "offset"],
                    "msg": "give either offset or cursor, not both",
                    "type": "value_error",
                }
            ],
        )
    return Pagination(limit, offset, cursor)


PaginationDep = Annotated[Pagination, Depends(pagination)]

DistrictFilter = Annotated[
    str | None, Query(pattern=ID_PATTERN, description="only this district, e.g. seodaemun")
]
HouseholdFilter = Annotated[
    str | None, Query(pattern=ID_PATTERN, description="only this household's, e.g. h0001")
]


def wall_clock() -> dt.datetime:
    """Now, in UTC: for code outside a route (a route takes ``NowDep``)."""
    return dt.datetime.now(dt.UTC)


async def utc_now() -> dt.datetime:
    return wall_clock()


# A dependency rather than a call inside the route, so tests can pin the clock.
NowDep = Annotated[dt.datetime, Depends(utc_now)]
