"""A home whose device stays offline gets a ``device_offline`` dispatch; its return closes it.

:class:`StoreOfflineDispatches` is the supervision runtime's adapter to the store (the decisions
are in :mod:`collector.domain.supervision`). Once per outage: the dispatch is linked to the home's
open ``offline`` technician tickets (``technician_tickets.dispatch_id``), written in the same
transaction with an UPDATE conditional on the link being empty, so of two collectors opening it at
once one commits and the other rolls back. After a restart the link is still there.

One home, one open dispatch for the same trouble (:data:`~collector.service.SAME_TROUBLE`): when
the outage is due its dispatch while the home's silence dispatch is still unresolved, the tickets
are linked to that dispatch and it gets a note instead; nobody is paged a second time, and its
escalation goes on.

When a device of the home comes back and its ticket closes, the linked dispatch is resolved as a
device problem by ``anbu`` if nobody had taken it (its escalation stops), or gets a note if a
caregiver has it or the home was also silent (a device back says nothing of the resident); the
people first told of the outage are told the device is back. Both leave a step and an audit-log
row, like a change made on the pages.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session

from collector.domain import lifecycle
from collector.domain.dispatch import Contact, device_back_messages, device_offline_messages
from collector.domain.escalation import EscalationPolicy
from collector.domain.links import LinkSigner
from collector.domain.supervision import TicketKind, WhenBack, when_device_back
from collector.service import (
    SYSTEM,
    add_notifications,
    add_system_note,
    household_view,
    open_dispatch,
    open_trouble,
)
from collector.store.models import (
    Dispatch,
    DispatchReason,
    Household,
    Priority,
)
from collector.store.silence import SilenceFlagRow, TechnicianTicket
from collector.store.trail import record_change, write_lifecycle

log = logging.getLogger("anbu.collector.supervision")


class LostRace(Exception):
    """Another collector linked the home's tickets first: roll this transaction back."""


class NotYet(Exception):
    """No open ``offline`` ticket for the home yet: nothing to link the dispatch to."""


class StoreOfflineDispatches:
    """Opens and settles ``device_offline`` dispatches on the ``dispatches`` table."""

    def __init__(
        self,
        escalation: EscalationPolicy | None = None,
        links: LinkSigner | None = None,
        staff: Contact | None = None,
    ) -> None:
        self.escalation = escalation or EscalationPolicy()
        # Without the collector's signer (tests) links are signed with a key nobody holds.
        self.links = links or LinkSigner(secrets.token_bytes(32), "http://127.0.0.1:8000")
        self.staff = staff

    def open_for(
        self, session: Session, household_id: str, since: dt.datetime, now: dt.datetime
    ) -> int | None:
        """Open the home's dispatch unless this outage has one; return its id if opened here,
        None if the outage already has its dispatch.

        Raises :class:`NotYet` when the home has no open ``offline`` ticket to link (its write
        failed; try again next tick) and :class:`LostRace` when another collector linked the
        tickets in between.
        """
        tickets = session.scalars(
            select(TechnicianTicket).where(
                TechnicianTicket.household_id == household_id,
                TechnicianTicket.kind == TicketKind.OFFLINE.value,
                TechnicianTicket.closed_at.is_(None),
            )
        ).all()
        if not tickets:
            raise NotYet(household_id)
        if any(t.dispatch_id is not None for t in tickets):
            return None  # this outage is dispatched
        household = session.get(Household, household_id)
        if household is None:
            return None  # deleted meanwhile: nobody to send
        unresolved = open_trouble(session, household_id)  # waits for a racing collector
        if unresolved is not None:
            # The outage's first ticket was closed by hand and a new one opened (same outage,
            # same dispatch), or the home is already dispatched as silent: the same trouble.
            self._link(session, tickets, unresolved.id)
            if unresolved.reason is DispatchReason.SILENCE:
                since_at = since.isoformat(timespec="seconds")
                add_system_note(
                    session, unresolved, household, f"기기 연결 끊김 ({since_at}부터)", now
                )
                log.warning(
                    "device offline added to the home's open silence dispatch",
                    extra={"household_id": household_id, "dispatch": unresolved.id},
                )
            return None
        dispatch = open_dispatch(
            session,
            household,
            reason=DispatchReason.DEVICE_OFFLINE,
            priority=Priority.NORMAL,
            now=now,
            next_escalation_at=self.escalation.first_due_at(
                household.district, DispatchReason.DEVICE_OFFLINE.value, now
            ),
            messages=device_offline_messages(
                household_view(household), since=since, staff=self.staff
            ),
            links=self.links,
        )
        self._link(session, tickets, dispatch.id)
        return dispatch.id

    @staticmethod
    def _link(session: Session, tickets: Sequence[TechnicianTicket], dispatch_id: int) -> None:
        linked = cast(
            CursorResult[Any],
            session.execute(
                update(TechnicianTicket)
                .where(
                    TechnicianTicket.id.in_([t.id for t in tickets]),
                    TechnicianTicket.dispatch_id.is_(None),
                )
                .values(dispatch_id=dispatch_id)
                .execution_options(synchronize_session=False)
            ),
        )
        if linked.rowcount != len(tickets):
            raise LostRace(tickets[0].household_id)

    def device_back(self, session: Session, ticket: TechnicianTicket, now: dt.datetime) -> bool:
        """The ticket is being closed: settle its dispatch, once per dispatch. True if a
        message was queued."""
        if ticket.dispatch_id is None:
            return False
        earlier = session.scalar(
            select(TechnicianTicket.id).where(
                TechnicianTicket.dispatch_id == ticket.dispatch_id,
                TechnicianTicket.id != ticket.id,
                TechnicianTicket.closed_at.is_not(None),
            )
        )
        if earlier is not None:
            return False  # another of the home's devices came back first and settled it
        dispatch = session.get(Dispatch, ticket.dispatch_id)
        if dispatch is None:
            return False
        silent_too = (
            dispatch.reason is not DispatchReason.DEVICE_OFFLINE
            or session.scalar(
                select(SilenceFlagRow.id).where(SilenceFlagRow.dispatch_id == dispatch.id).limit(1)
            )
            is not None
        )
        action = when_device_back(dispatch.status.value, silent_too=silent_too)
        if action is WhenBack.NOTHING:
            return False
        household = session.get(Household, dispatch.household_id)
        assert household is not None  # noqa: S101 - a dispatch's household exists
        note = f"기기 다시 연결됨 ({now.isoformat(timespec='seconds')})"
        if action is WhenBack.RESOLVE:
            before = lifecycle.Lifecycle(
                status=lifecycle.Status(dispatch.status.value),
                acknowledged_at=dispatch.acknowledged_at,
                acknowledged_by=dispatch.acknowledged_by,
                note=dispatch.note,
            )
            # Nobody answered: no acknowledgement is recorded (the reports count people's).
            event = lifecycle.Resolve(
                lifecycle.Outcome.DEVICE_PROBLEM, note, SYSTEM, by_itself=True
            )
            if not write_lifecycle(
                session, dispatch.id, before, lifecycle.apply(before, event, now=now)
            ):
                return False  # a caregiver acted at this very moment: theirs now
            record_change(
                session,
                dispatch_id=dispatch.id,
                household_id=household.id,
                district=household.district,
                event=event,
                by=SYSTEM,
                actor=SYSTEM,
                account_id=None,
                now=now,
            )
        else:
            add_system_note(session, dispatch, household, note, now)
        log.info(
            "device back: dispatch %s",
            "resolved" if action is WhenBack.RESOLVE else "noted",
            extra={"dispatch": dispatch.id, "household_id": household.id},
        )
        if dispatch.reason is not DispatchReason.DEVICE_OFFLINE:
            return False  # nobody was told of the outage: the note is enough
        messages = device_back_messages(
            household_view(household),
            at=now,
            dispatch_id=dispatch.id,
            closed=action is WhenBack.RESOLVE,
            staff=self.staff,
        )
        return add_notifications(session, dispatch.id, messages, now, self.links) > 0
