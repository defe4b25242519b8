"""What to do when a resident asks for help, or takes it back.

Rules:

* An SOS opens an **urgent dispatch** for the household's caregiver, who is told by SMS and
  e-mail at once; the guardian (if any) is told by SMS and e-mail too. A household without a
  caregiver goes to the district's staff address instead, so nobody's SOS falls on the floor.
* A second SOS while that household's SOS dispatch is still open opens no second dispatch: the
  caregiver is told again ("repeated"), which matters more than a tidy inbox.
* A cancel never deletes a dispatch: it marks when the resident cancelled and tells the same
  people, so the caregiver can decide to call instead of rushing over.
* Every dispatch is due for escalation ``ack_timeout_s`` after it opens (see escalation.py).
* No message names the resident or gives the address; each role gets its own wording
  (wording.py).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

from collector.domain import wording


@dataclass(frozen=True, slots=True)
class Contact:
    role: str  # "caregiver" | "guardian" | "staff"
    name: str
    phone: str | None = None
    email: str | None = None


@dataclass(frozen=True, slots=True)
class HouseholdView:
    id: str
    district: str
    resident_name: str
    address: str
    caregiver: Contact | None
    guardian: Contact | None
    backup: Contact | None = None
    """The caregiver who stands in for ``caregiver`` (escalation chains reach them)."""


@dataclass(frozen=True, slots=True)
class OpenDispatchView:
    id: int
    reason: str
    created_at: dt.datetime


@dataclass(frozen=True, slots=True)
class Message:
    """One notification to one recipient on one channel."""

    channel: str  # "sms" | "email"
    recipient_role: str
    recipient: str
    purpose: str
    subject: str
    body: str


@dataclass(frozen=True, slots=True)
class SosDecision:
    open_new: bool
    """True: open a new urgent dispatch. False: attach to ``existing_dispatch_id``."""
    existing_dispatch_id: int | None
    messages: tuple[Message, ...]
    escalate_at: dt.datetime | None


@dataclass(frozen=True, slots=True)
class DispatchPolicy:
    ack_timeout_s: float = 60.0
    """An SOS nobody acknowledged within this is escalated (UK telecare answers within 60 s)."""
    staff: Contact | None = None
    """Who gets an SOS from a household with no caregiver, and escalations."""
    dashboard_url: str = "http://localhost:8000"


def _recipients(household: HouseholdView, policy: DispatchPolicy) -> list[Contact]:
    people: list[Contact] = []
    if household.caregiver is not None:
        people.append(household.caregiver)
    elif policy.staff is not None:
        people.append(policy.staff)
    if household.guardian is not None:
        people.append(household.guardian)
    return people


def messages_for(
    people: list[Contact], purpose: str, subject: str, body: str
) -> tuple[Message, ...]:
    """An SMS to everyone with a phone and an e-mail to everyone with an address."""
    out: list[Message] = []
    for person in people:
        if person.phone:
            out.append(Message("sms", person.role, person.phone, purpose, subject, body))
        if person.email:
            out.append(Message("email", person.role, person.email, purpose, subject, body))
    return tuple(out)


def messages_worded(
    people: list[Contact], purpose: str, text_for: Callable[[str], tuple[str, str]]
) -> tuple[Message, ...]:
    """Like :func:`messages_for`, with subject and body chosen per recipient role."""
    out: list[Message] = []
    for person in people:
        subject, body = text_for(person.role)
        out += messages_for([person], purpose, subject, body)
    return tuple(out)


def decide_sos(
    household: HouseholdView,
    open_sos: OpenDispatchView | None,
    *,
    source: str,
    phrase: str | None,
    message_id: str,
    now: dt.datetime,
    policy: DispatchPolicy,
) -> SosDecision:
    """Decide the dispatch and messages for an SOS from ``household`` received at ``now``."""
    del phrase  # which phrase was heard stays in the event record, out of the messages
    people = _recipients(household, policy)

    def text(repeated: bool, dispatch_ref: str) -> Callable[[str], tuple[str, str]]:
        return lambda role: wording.sos_text(
            role,
            household_id=household.id,
            source=source,
            now=now,
            dispatch_ref=dispatch_ref,
            dashboard_url=policy.dashboard_url,
            repeated=repeated,
        )

    if open_sos is not None:
        return SosDecision(
            open_new=False,
            existing_dispatch_id=open_sos.id,
            messages=messages_worded(
                people, f"sos-repeat-{message_id[:12]}", text(True, str(open_sos.id))
            ),
            escalate_at=None,
        )
    return SosDecision(
        open_new=True,
        existing_dispatch_id=None,
        messages=messages_worded(people, "sos", text(False, wording.NEW_DISPATCH)),
        escalate_at=now + dt.timedelta(seconds=policy.ack_timeout_s),
    )


@dataclass(frozen=True, slots=True)
class CancelDecision:
    dispatch_id: int | None
    """The dispatch to mark as cancelled by the resident (never deleted); None if none is open."""
    messages: tuple[Message, ...] = field(default=())


def decide_cancel(
    household: HouseholdView,
    dispatch_for_sos: OpenDispatchView | None,
    *,
    source: str,
    now: dt.datetime,
    policy: DispatchPolicy,
    message_id: str = "",
) -> CancelDecision:
    """Decide what a resident's cancel changes: mark the dispatch and tell the same people.

    Each cancel message is told once (``purpose`` carries its id), so SOS, cancel, SOS, cancel
    from one home tells the caregiver of both cancels.
    """
    if dispatch_for_sos is None:
        return CancelDecision(None)
    dispatch_id = dispatch_for_sos.id
    people = _recipients(household, policy)
    messages = messages_worded(
        people,
        f"cancel-{message_id[:12]}" if message_id else "cancel",
        lambda role: wording.cancel_text(
            role,
            household_id=household.id,
            source=source,
            now=now,
            dispatch_id=dispatch_id,
            dashboard_url=policy.dashboard_url,
        ),
    )
    return CancelDecision(dispatch_id, messages)


def _caregiver_or_staff(household: HouseholdView, staff: Contact | None) -> list[Contact]:
    if household.caregiver is not None:
        return [household.caregiver]
    return [staff] if staff is not None else []


def device_offline_messages(
    household: HouseholdView, *, since: dt.datetime, staff: Contact | None
) -> tuple[Message, ...]:
    """The caregiver (or, for a home without one, staff) is told the home's device is off.
    Guardians are not: a device fault is the office's business, and its chain may reach them."""
    return messages_worded(
        _caregiver_or_staff(household, staff),
        "device_offline",
        lambda role: wording.device_offline_text(
            role, household_id=household.id, since=since, dispatch_ref=wording.NEW_DISPATCH
        ),
    )


def device_back_messages(
    household: HouseholdView,
    *,
    at: dt.datetime,
    dispatch_id: int,
    closed: bool,
    staff: Contact | None,
) -> tuple[Message, ...]:
    """The same people are told the device is back (so nobody sets out for nothing)."""
    return messages_worded(
        _caregiver_or_staff(household, staff),
        "device_back",
        lambda role: wording.device_back_text(
            role, household_id=household.id, at=at, dispatch_id=dispatch_id, closed=closed
        ),
    )
