"""Dispatches: caregivers sent to households; acknowledge and resolve them here."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from collector.api import crud
from collector.api.deps import NowDep, PaginationDep, SessionDep
from collector.api.models import (
    AcknowledgeRequest,
    DispatchDetail,
    DispatchPublic,
    Page,
    ResolveRequest,
)
from collector.domain.lifecycle import Acknowledge, Resolve
from collector.store.models import DispatchStatus

router = APIRouter(prefix="/dispatches", tags=["dispatches"])

_CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"description": "Not allowed in the dispatch's current state; `detail` says why"}
}


@router.get("")
def list_dispatches(
    session: SessionDep,
    page: PaginationDep,
    status: Annotated[DispatchStatus | None, Query(description="only this status")] = None,
    district: Annotated[str | None, Query(description="only this district")] = None,
    household_id: Annotated[str | None, Query(description="only this household's")] = None,
) -> Page[DispatchPublic]:
    """Newest first."""
    items, count = crud.list_dispatches(
        session,
        status=status,
        district=district,
        household_id=household_id,
        limit=page.limit,
        offset=page.offset,
    )
    data = [DispatchPublic.model_validate(d) for d in items]
    return Page[DispatchPublic](data=data, count=count, limit=page.limit, offset=page.offset)


@router.get("/{dispatch_id}")
def get_dispatch(session: SessionDep, dispatch_id: int) -> DispatchDetail:
    """The dispatch with every notification sent (or still to send) for it, oldest first."""
    return DispatchDetail.model_validate(crud.get_dispatch(session, dispatch_id))


@router.post("/{dispatch_id}/acknowledge", responses=_CONFLICT)
def acknowledge_dispatch(
    session: SessionDep, now: NowDep, dispatch_id: int, body: AcknowledgeRequest
) -> DispatchDetail:
    """Take the dispatch: records who and when, and stops escalation."""
    dispatch = crud.transition_dispatch(session, dispatch_id, Acknowledge(body.by), now=now)
    return DispatchDetail.model_validate(dispatch)


@router.post("/{dispatch_id}/resolve", responses=_CONFLICT)
def resolve_dispatch(
    session: SessionDep, now: NowDep, dispatch_id: int, body: ResolveRequest
) -> DispatchDetail:
    """Close the dispatch with an outcome; from ``open`` this also acknowledges it."""
    event = Resolve(body.outcome, body.note, body.by)
    dispatch = crud.transition_dispatch(session, dispatch_id, event, now=now)
    return DispatchDetail.model_validate(dispatch)
