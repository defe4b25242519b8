"""What staff see about silent homes and sick devices: flags with their reasons, tickets."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict
from sqlalchemy import func, select

from collector.api.deps import PaginationDep, SessionDep
from collector.api.models import Page
from collector.domain.silence import LifeSignKind, SilenceLimit, SilenceReason
from collector.store.silence import SilenceFlagRow, TechnicianTicket

router = APIRouter(tags=["silence"])


class SilenceFlagPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    household_id: str
    stretch_started_at: dt.datetime
    """The last life sign before the silence."""
    last_kind: str | None
    limit: str
    """``period``, ``routine`` or ``device_offline``."""
    limit_h: float
    period_h: float
    raised_at: dt.datetime
    status: str
    checkin_due_at: dt.datetime | None
    closed_at: dt.datetime | None
    record: str | None
    dispatch_id: int | None
    why: str = ""


class TicketPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    device_id: str
    household_id: str
    kind: str
    detail: str
    opened_at: dt.datetime
    closed_at: dt.datetime | None
    close_detail: str | None


def _why(row: SilenceFlagRow) -> str:
    try:
        kind = None if row.last_kind is None else LifeSignKind(row.last_kind)
        reason = SilenceReason(
            SilenceLimit(row.limit), row.stretch_started_at, kind, row.limit_h, row.period_h
        )
    except ValueError:
        return ""
    return reason.describe()


@router.get("/silence-flags")
def list_silence_flags(
    session: SessionDep,
    page: PaginationDep,
    household_id: Annotated[str | None, Query(description="only this household's")] = None,
    status: Annotated[
        Literal["open", "checkin", "closed", "dispatched"] | None, Query(description="only these")
    ] = None,
) -> Page[SilenceFlagPublic]:
    """Silence flags, newest first, each with the reason staff read (``why``)."""
    query = select(SilenceFlagRow)
    if household_id is not None:
        query = query.where(SilenceFlagRow.household_id == household_id)
    if status is not None:
        query = query.where(SilenceFlagRow.status == status)
    count = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(
        query.order_by(SilenceFlagRow.raised_at.desc(), SilenceFlagRow.id.desc())
        .limit(page.limit)
        .offset(page.offset)
    ).all()
    data = [SilenceFlagPublic.model_validate(r).model_copy(update={"why": _why(r)}) for r in rows]
    return Page[SilenceFlagPublic](data=data, count=count, limit=page.limit, offset=page.offset)


@router.get("/technician-tickets")
def list_tickets(
    session: SessionDep,
    page: PaginationDep,
    open_only: Annotated[bool, Query(alias="open", description="only tickets not closed")] = True,
    device_id: Annotated[str | None, Query()] = None,
) -> Page[TicketPublic]:
    """Technician tickets, newest first."""
    query = select(TechnicianTicket)
    if open_only:
        query = query.where(TechnicianTicket.closed_at.is_(None))
    if device_id is not None:
        query = query.where(TechnicianTicket.device_id == device_id)
    count = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(
        query.order_by(TechnicianTicket.opened_at.desc(), TechnicianTicket.id.desc())
        .limit(page.limit)
        .offset(page.offset)
    ).all()
    data = [TicketPublic.model_validate(r) for r in rows]
    return Page[TicketPublic](data=data, count=count, limit=page.limit, offset=page.offset)
