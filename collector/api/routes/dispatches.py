"""Dispatches: caregivers sent to households; acknowledge and resolve them here."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response
from sqlalchemy.orm import Session

from collector.api import crud
from collector.api.deps import Db, DbDep, DistrictFilter, HouseholdFilter, NowDep, PaginationDep
from collector.api.models import (
    AcknowledgeRequest,
    DispatchDetail,
    DispatchPublic,
    Page,
    ResolveRequest,
)
from collector.api.responses import CONFLICT, NOT_FOUND, json_rows
from collector.domain.lifecycle import Acknowledge, Event, Resolve
from collector.store.models import DispatchStatus

router = APIRouter(prefix="/dispatches", tags=["dispatches"])

# Dispatch ids are 32-bit integers on PostgreSQL.
DispatchId = Annotated[int, Path(ge=1, le=2**31 - 1, description="the dispatch's id")]


@router.get("", response_model=Page[DispatchPublic])
async def list_dispatches(
    request: Request,
    db: DbDep,
    page: PaginationDep,
    status: Annotated[DispatchStatus | None, Query(description="only this status")] = None,
    district: DistrictFilter = None,
    household_id: HouseholdFilter = None,
) -> Response:
    """Newest first."""

    def work(session: Session) -> Response:
        listing = crud.list_dispatches(
            session,
            status=status,
            district=district,
            household_id=household_id,
            limit=page.limit,
            offset=page.offset,
            cursor=page.cursor,
        )
        return json_rows(crud.DISPATCH_FIELDS, listing, page)

    return await db.page(request, work, crud.DISPATCH_TABLES)


@router.get("/{dispatch_id}", responses=NOT_FOUND)
async def get_dispatch(db: DbDep, dispatch_id: DispatchId) -> DispatchDetail:
    """The dispatch with every notification sent (or still to send) for it, oldest first."""
    return await db.run(lambda s: DispatchDetail.model_validate(crud.get_dispatch(s, dispatch_id)))


async def _apply(db: Db, dispatch_id: int, event: Event, now: dt.datetime) -> DispatchDetail:
    return await db.run(
        lambda s: DispatchDetail.model_validate(
            crud.transition_dispatch(s, dispatch_id, event, now=now)
        )
    )


@router.post("/{dispatch_id}/acknowledge", responses=NOT_FOUND | CONFLICT)
async def acknowledge_dispatch(
    db: DbDep, now: NowDep, dispatch_id: DispatchId, body: AcknowledgeRequest
) -> DispatchDetail:
    """Take the dispatch: records who and when, and stops escalation."""
    return await _apply(db, dispatch_id, Acknowledge(body.by), now)


@router.post("/{dispatch_id}/resolve", responses=NOT_FOUND | CONFLICT)
async def resolve_dispatch(
    db: DbDep, now: NowDep, dispatch_id: DispatchId, body: ResolveRequest
) -> DispatchDetail:
    """Close the dispatch with an outcome; from ``open`` this also acknowledges it."""
    return await _apply(db, dispatch_id, Resolve(body.outcome, body.note, body.by), now)
