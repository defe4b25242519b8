"""Technician tickets for people: the open (or recent) tickets of the viewer's scope, and a form
to close one by hand. Technicians see devices and household ids, never residents' names."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy import Select, select, update
from sqlalchemy.orm import Session

from collector.api.deps import NowDep, SessionDep
from collector.store.accounts import Role
from collector.store.models import Household
from collector.store.silence import TechnicianTicket
from collector.web import audit
from collector.web.access import Viewer, check, may_see_tickets
from collector.web.deps import FormDep, ViewerDep, render
from collector.web.records import BadForm, Missing

router = APIRouter(prefix="/tickets", include_in_schema=False)
SHOWN = 200
"""Most tickets on one page (newest first)."""


def _scoped(viewer: Viewer) -> Select[TechnicianTicket]:
    """Admins and district-less technicians: every ticket; others: their district's."""
    query = select(TechnicianTicket)
    if viewer.role is not Role.ADMIN and viewer.district is not None:
        homes = select(Household.id).where(Household.district == viewer.district)
        query = query.where(TechnicianTicket.household_id.in_(homes))
    elif viewer.role is Role.SUPERVISOR:  # a supervisor without a district sees nothing
        query = query.where(TechnicianTicket.id.is_(None))
    return query


def _ticket(session: Session, viewer: Viewer, ticket_id: int) -> TechnicianTicket:
    row = session.scalars(_scoped(viewer).where(TechnicianTicket.id == ticket_id)).first()
    if row is None:
        raise Missing(f"no ticket {ticket_id}")
    return row


@router.get("")
def tickets_page(
    request: Request, session: SessionDep, viewer: ViewerDep, closed: bool = False
) -> HTMLResponse:
    check(may_see_tickets(viewer), "technician tickets are for technicians and supervisors")
    query = _scoped(viewer)
    if not closed:
        query = query.where(TechnicianTicket.closed_at.is_(None))
    rows = session.scalars(
        query.order_by(TechnicianTicket.opened_at.desc(), TechnicianTicket.id.desc()).limit(SHOWN)
    ).all()
    return render(request, "tickets.html", viewer=viewer, tickets=rows, closed=closed)


@router.post("/{ticket_id}/close")
def close_ticket(
    session: SessionDep, viewer: ViewerDep, now: NowDep, form: FormDep, ticket_id: int
) -> RedirectResponse:
    check(may_see_tickets(viewer), "technician tickets are for technicians and supervisors")
    note = form.get("note", "").strip()
    if not note:
        raise BadForm("say what was done or found")
    if len(note) > 500:
        raise BadForm("the note is longer than 500 characters")
    row = _ticket(session, viewer, ticket_id)
    session.execute(
        update(TechnicianTicket)
        .where(TechnicianTicket.id == row.id, TechnicianTicket.closed_at.is_(None))
        .values(closed_at=now, close_detail=f"{viewer.display_name}: {note}")
        .execution_options(synchronize_session=False)
    )
    audit.record(
        session,
        viewer,
        "close_ticket",
        now=now,
        district=viewer.district,
        household_id=row.household_id,
        detail=f"ticket {row.id} ({row.kind}, {row.device_id})",
    )
    return RedirectResponse("/tickets", status_code=303)
