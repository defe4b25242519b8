"""What routes get injected: the runtime, a database session, the caller's token check, paging, now.

    def list_things(session: SessionDep, page: PaginationDep) -> Page[ThingPublic]: ...

The app keeps the runtime and the API token on ``app.state`` (set by
:func:`collector.main.create_app`), so tests build an app over any object shaped like
:class:`Runtime`.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any, Protocol, cast

from fastapi import Depends, HTTPException, Query, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from collector.store.db import Database

MAX_PAGE = 500


class Runtime(Protocol):
    """What the HTTP app needs from the running collector (``collector.runtime.Collector``)."""

    db: Database

    def start(self) -> None:
        """Create the schema and start ingest, notifications and escalation."""

    def stop(self) -> None: ...

    def health(self) -> dict[str, Any]:
        """``{"status": "ok" | "degraded", "database": bool, "mqtt_connected": bool, ...}``."""
        ...


def get_runtime(request: Request) -> Runtime:
    return cast(Runtime, request.app.state.runtime)


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def get_session(runtime: RuntimeDep) -> Iterator[Session]:
    """A session that commits when the route returns without error and rolls back otherwise."""
    with runtime.db.session() as session:
        yield session


# scope="function": commit before the response is sent, so a 2xx always means "stored".
SessionDep = Annotated[Session, Depends(get_session, scope="function")]

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ApiToken",
    description="The collector's ANBU_API_TOKEN, sent as `Authorization: Bearer <token>`.",
)


def require_token(
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


def pagination(
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="items per page")] = 100,
    offset: Annotated[int, Query(ge=0, description="items to skip")] = 0,
) -> Pagination:
    return Pagination(limit, offset)


PaginationDep = Annotated[Pagination, Depends(pagination)]


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# A dependency rather than a call inside the route, so tests can pin the clock.
NowDep = Annotated[dt.datetime, Depends(utc_now)]
