"""What staff see about silent homes and sick devices: flags with their reasons, tickets."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path, Query, status
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select, update

from collector.api.deps import NowDep, PaginationDep, SessionDep
from collector.api.models import Name, Page
from collector.api.responses import CONFLICT, NOT_FOUND
from collector.domain.silence import LifeSignKind, SilenceLimit, SilenceReason
from collector.domain.supervision import TicketKind
from collector.store.silence import SilenceFlagRow, TechnicianTicket
from firmware_config.topics import ID_PATTERN

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
    """A technician ticket: ``open`` while ``closed_at`` is null, else ``closed``."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    device_id: str
    household_id: str
    kind: str
    """``offline``, ``audio_overruns``, ``outbox_backlog`` or ``microphone_silent``."""
    detail: str
    opened_at: dt.datetime
    closed_at: dt.datetime | None
    close_detail: str | None
    """Why it closed: the condition cleared (written by the collector), or who closed it by
    hand and their note."""
    status: Literal["open", "closed"] = "open"


def _ticket(row: TechnicianTicket) -> TicketPublic:
    public = TicketPublic.model_validate(row)
    return public.model_copy(update={"status": "open" if row.closed_at is None else "closed"})


class TicketClose(BaseModel):
    """A technician or staff member closes a ticket by hand."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    by: Name = Field(description="who closes it", examples=["박기사"])
    note: str = Field(
        min_length=1,
        max_length=500,
        pattern=r"^[^\x00-\x08\x0b-\x1f\x7f]+$",
        description="what was done or found",
        examples=["전원 어댑터 교체"],
    )


TicketId = Annotated[int, Path(ge=1, le=2**31 - 1, description="the ticket's id")]


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
    device_id: Annotated[str | None, Query(pattern=ID_PATTERN, max_length=64)] = None,
    household_id: Annotated[str | None, Query(pattern=ID_PATTERN, max_length=64)] = None,
    kind: Annotated[TicketKind | None, Query(description="only this kind")] = None,
) -> Page[TicketPublic]:
    """Technician tickets, newest first: a device offline (last will or missed heartbeats) or
    sick (audio overruns, outbox backlog, microphone silent while motion continues)."""
    query = select(TechnicianTicket)
    if open_only:
        query = query.where(TechnicianTicket.closed_at.is_(None))
    if device_id is not None:
        query = query.where(TechnicianTicket.device_id == device_id)
    if household_id is not None:
        query = query.where(TechnicianTicket.household_id == household_id)
    if kind is not None:
        query = query.where(TechnicianTicket.kind == kind.value)
    count = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(
        query.order_by(TechnicianTicket.opened_at.desc(), TechnicianTicket.id.desc())
        .limit(page.limit)
        .offset(page.offset)
    ).all()
    data = [_ticket(r) for r in rows]
    return Page[TicketPublic](data=data, count=count, limit=page.limit, offset=page.offset)


@router.get("/technician-tickets/{ticket_id}", responses=NOT_FOUND)
def get_ticket(session: SessionDep, ticket_id: TicketId) -> TicketPublic:
    row = session.get(TechnicianTicket, ticket_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no ticket {ticket_id}")
    return _ticket(row)


@router.post("/technician-tickets/{ticket_id}/close", responses=NOT_FOUND | CONFLICT)
def close_ticket(
    session: SessionDep, now: NowDep, ticket_id: TicketId, body: TicketClose
) -> TicketPublic:
    """Close an open ticket by hand (409 if it is already closed). If its condition still holds
    (the device is still offline), the collector opens a new ticket at its next check."""
    closed = session.execute(
        update(TechnicianTicket)
        .where(TechnicianTicket.id == ticket_id, TechnicianTicket.closed_at.is_(None))
        .values(closed_at=now, close_detail=f"{body.by}: {body.note}")
        .execution_options(synchronize_session=False)
    )
    row = session.get(TechnicianTicket, ticket_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no ticket {ticket_id}")
    if getattr(closed, "rowcount", 0) != 1:
        raise HTTPException(status.HTTP_409_CONFLICT, f"ticket {ticket_id} is already closed")
    session.refresh(row)
    return _ticket(row)
