"""Stores a non-urgent request for a call and queues who is told (collector/domain/requests.py).

Both ways in end here: a device's ``event/request`` (through ``Service.apply_event``) and an SMS
to the district's number (``POST /sms/inbound``). A request from a known household opens a
dispatch of kind ``request`` (priority normal) whose escalation is due when the working day
passes; its notification waits for office hours. An SMS from a number no household has is kept
in ``service_requests`` without a dispatch, for the office to match (logged as a warning), due
one working day later like any request: :func:`escalate_unanswered_texts` (run with every
escalation tick) tells the district's supervisor once when that passes with the text neither
matched nor closed. Those messages belong to the text (``notifications.service_request_id``),
not to a dispatch.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session

from collector.domain.dispatch import Contact, Message
from collector.domain.escalation import EscalationPolicy
from collector.domain.links import LinkSigner
from collector.domain.requests import decide_request, unanswered_text
from collector.service import add_notifications, household_view, open_dispatch
from collector.store.models import (
    DispatchReason,
    Household,
    Priority,
    ServiceRequest,
)
from collector.store.sql import insert_for, table_of

log = logging.getLogger("anbu.collector.requests")


@dataclass(frozen=True, slots=True)
class FiledRequest:
    request_id: int | None
    """None: a redelivery of a request already filed."""
    dispatch_id: int | None
    routed_to: str
    due_at: dt.datetime | None


def file_request(
    session: Session,
    *,
    message_id: str,
    channel: str,
    household: Household | None,
    district: str,
    sender: str | None,
    text: str,
    now: dt.datetime,
    policy: EscalationPolicy,
    links: LinkSigner,
    staff: Contact | None = None,
) -> FiledRequest:
    """File one request (idempotent on ``message_id``)."""
    view = None if household is None else household_view(household)
    decision = decide_request(
        view,
        policy.effective_book.contacts_for(district),
        staff=staff or policy.staff,
        channel=channel,
        request_ref=message_id[:12],
        now=now,
        calendar=policy.calendar,
    )
    table = table_of(ServiceRequest)
    inserted = session.execute(
        insert_for(session, table)
        .on_conflict_do_nothing(index_elements=["message_id"])
        .returning(table.c.id),
        {
            "message_id": message_id,
            "channel": channel,
            "household_id": None if household is None else household.id,
            "district": district,
            "sender": sender,
            "text": text[:2000],
            "received_at": now,
            "due_at": decision.due_at,
            "routed_to": decision.routed_to,
        },
    ).first()
    if inserted is None:
        existing = session.scalar(
            select(ServiceRequest).where(ServiceRequest.message_id == message_id)
        )
        return FiledRequest(
            None,
            None if existing is None else existing.dispatch_id,
            decision.routed_to,
            None if existing is None else existing.due_at,
        )
    request_id = int(inserted[0])
    if household is None:
        log.warning(
            "request from an unknown number kept for the office to match",
            extra={"request": request_id, "district": district, "channel": channel},
        )
        return FiledRequest(request_id, None, "nobody", decision.due_at)
    dispatch_id = _open_dispatch(
        session,
        request_id,
        household,
        text=text,
        messages=decision.messages,
        now=now,
        due_from=now,
        send_at=decision.notify_at,
        policy=policy,
        links=links,
    )
    log.info(
        "request filed",
        extra={
            "request": request_id,
            "dispatch": dispatch_id,
            "household": household.id,
            "routed_to": decision.routed_to,
            "due_at": decision.due_at.isoformat(),
        },
    )
    return FiledRequest(request_id, dispatch_id, decision.routed_to, decision.due_at)


class AlreadyHandled(Exception):
    """Another supervisor assigned or closed this text first."""


def assign_request(
    session: Session,
    request_id: int,
    household: Household,
    *,
    by: str,
    now: dt.datetime,
    policy: EscalationPolicy,
    links: LinkSigner,
) -> int:
    """A text from an unknown number, matched by a supervisor to ``household``: it becomes the
    household's request as if it had been matched on arrival (routed to the caregiver, told in
    office hours), due one working day after it *arrived*; returns the dispatch id.

    The row is taken with an UPDATE conditional on it still waiting, so of two supervisors
    assigning at once one wins and the other gets :class:`AlreadyHandled`.
    """
    row = session.get(ServiceRequest, request_id)
    if row is None:
        raise LookupError(f"no request {request_id}")
    taken = session.execute(
        update(ServiceRequest)
        .where(
            ServiceRequest.id == request_id,
            ServiceRequest.handled_at.is_(None),
            ServiceRequest.household_id.is_(None),
        )
        .values(
            household_id=household.id,
            handled_at=now,
            handled_by=by[:100],
            handled_note=f"→ {household.id}",
        )
        .execution_options(synchronize_session=False)
    )
    if cast(CursorResult[Any], taken).rowcount != 1:
        raise AlreadyHandled(f"request {request_id} was handled already")
    decision = decide_request(
        household_view(household),
        policy.effective_book.contacts_for(household.district),
        staff=policy.staff,
        channel=row.channel,
        request_ref=row.message_id[:12],
        now=row.received_at,
        calendar=policy.calendar,
    )
    dispatch_id = _open_dispatch(
        session,
        request_id,
        household,
        text=row.text,
        messages=decision.messages,
        now=now,
        due_from=row.received_at,
        send_at=max(decision.notify_at, now),
        policy=policy,
        links=links,
    )
    log.info(
        "request assigned to a household",
        extra={"request": request_id, "dispatch": dispatch_id, "household": household.id},
    )
    return dispatch_id


def _open_dispatch(
    session: Session,
    request_id: int,
    household: Household,
    *,
    text: str,
    messages: tuple[Message, ...],
    now: dt.datetime,
    due_from: dt.datetime,
    send_at: dt.datetime,
    policy: EscalationPolicy,
    links: LinkSigner,
) -> int:
    """The request's dispatch (its chain counted from ``due_from``), linked to the request row,
    and its notifications from ``send_at``; returns the dispatch id."""
    dispatch = open_dispatch(
        session,
        household,
        reason=DispatchReason.REQUEST,
        priority=Priority.NORMAL,
        now=now,
        next_escalation_at=policy.first_due_at(household.district, "request", due_from),
        messages=messages,
        links=links,
        note=text[:2000] or None,
        send_at=send_at,
    )
    session.execute(
        update(ServiceRequest)
        .where(ServiceRequest.id == request_id)
        .values(dispatch_id=dispatch.id)
        .execution_options(synchronize_session=False)
    )
    return dispatch.id


def mark_handled(
    session: Session, request_id: int, *, by: str, note: str, now: dt.datetime
) -> None:
    """A text that needs no household (a wrong number, advertising, answered by phone)."""
    taken = session.execute(
        update(ServiceRequest)
        .where(ServiceRequest.id == request_id, ServiceRequest.handled_at.is_(None))
        .values(handled_at=now, handled_by=by[:100], handled_note=note[:500])
        .execution_options(synchronize_session=False)
    )
    if cast(CursorResult[Any], taken).rowcount != 1:
        raise AlreadyHandled(f"request {request_id} was handled already")


def escalate_unanswered_texts(
    session: Session, *, now: dt.datetime, policy: EscalationPolicy, limit: int = 100
) -> int:
    """Tell the district's supervisor about each text from an unknown number whose working day
    passed with nobody matching or closing it; once per text (a conditional UPDATE on
    ``escalated_at``, so of several collectors one tells). Returns how many messages it queued."""
    overdue = session.scalars(
        select(ServiceRequest)
        .where(
            ServiceRequest.household_id.is_(None),
            ServiceRequest.handled_at.is_(None),
            ServiceRequest.escalated_at.is_(None),
            ServiceRequest.due_at <= now,
        )
        .order_by(ServiceRequest.due_at, ServiceRequest.id)
        .limit(limit)
    ).all()
    queued = 0
    for row in overdue:
        taken = session.execute(
            update(ServiceRequest)
            .where(
                ServiceRequest.id == row.id,
                ServiceRequest.escalated_at.is_(None),
                ServiceRequest.handled_at.is_(None),
                ServiceRequest.household_id.is_(None),
            )
            .values(escalated_at=now)
            .execution_options(synchronize_session=False)
        )
        if cast(CursorResult[Any], taken).rowcount != 1:
            continue  # another collector told them, or a supervisor just handled it
        told, messages = unanswered_text(
            policy.effective_book.contacts_for(row.district),
            staff=policy.staff,
            text_ref=str(row.id),
            received_at=row.received_at,
            due_at=row.due_at,
            texts_url=f"{policy.dashboard_url.rstrip('/')}/texts",
        )
        queued += add_notifications(session, None, messages, now, None, service_request_id=row.id)
        log.warning(
            "text from an unknown number unanswered past its working day",
            extra={"request": row.id, "district": row.district, "told": told},
        )
    return queued
