"""Non-urgent requests for a call (by voice on the device, or by SMS to the district's number):
who gets them and by when. Pure: ``now`` and the office calendar are arguments.

Rules:

* Routed to the household's caregiver; a household with no caregiver (or an SMS from a number no
  household has) goes to the district's welfare department, else to the district staff.
* Queued for office hours: the notification is sent when the office next opens (at once during
  office hours), so nobody is woken at night for a request that is not an emergency.
* Answered within one working day: ``due_at``; the ``request`` escalation chain takes over when it
  passes unanswered (domain/escalation.py; by default the supervisor, department and staff).
* The message carries no name and no text of the request (an SMS passes the gateway operator):
  the caregiver reads it on the dispatch page.
* A text from a number no household has waits on the supervisor's ``/texts`` page with the same
  deadline; still waiting when the working day passes, it is escalated once to the district's
  supervisor (else its department, else the staff), with the page's address and no text.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from collector.domain import wording
from collector.domain.dispatch import Contact, HouseholdView, Message, messages_worded
from collector.domain.escalation import DistrictContacts
from collector.domain.office_hours import OfficeCalendar


@dataclass(frozen=True, slots=True)
class RequestDecision:
    routed_to: str  # "caregiver" | "department" | "staff" | "nobody"
    messages: tuple[Message, ...]
    notify_at: dt.datetime
    """When the messages go out: the next office opening (or now)."""
    due_at: dt.datetime
    """Answer by then: one working day."""


def decide_request(
    household: HouseholdView | None,
    contacts: DistrictContacts,
    *,
    staff: Contact | None,
    channel: str,
    request_ref: str,
    now: dt.datetime,
    calendar: OfficeCalendar,
) -> RequestDecision:
    """Who is told about a request made at ``now``, when, and by when it must be answered."""
    routed_to, person = "nobody", None
    if household is not None and household.caregiver is not None:
        routed_to, person = "caregiver", household.caregiver
    elif contacts.department is not None:
        routed_to, person = "department", contacts.department
    elif staff is not None:
        routed_to, person = "staff", staff
    due = calendar.add_working_days(now, 1)
    messages: tuple[Message, ...] = ()
    if person is not None:
        messages = messages_worded(
            [person],
            f"request-{request_ref}"[:32],
            lambda role: wording.request_text(
                role,
                household_id=None if household is None else household.id,
                channel=channel,
                now=now,
                due_at=due,
            ),
        )
    return RequestDecision(routed_to, messages, calendar.next_open(now), due)


def unanswered_text(
    contacts: DistrictContacts,
    *,
    staff: Contact | None,
    text_ref: str,
    received_at: dt.datetime,
    due_at: dt.datetime,
    texts_url: str,
) -> tuple[str, tuple[Message, ...]]:
    """Who is told that a text from an unknown number passed its working day unanswered, and
    the messages; ``("nobody", ())`` when the district has nobody to tell."""
    for role, person in (
        ("supervisor", contacts.supervisor),
        ("department", contacts.department),
        ("staff", staff),
    ):
        if person is not None:
            messages = messages_worded(
                [person],
                f"text-overdue-{text_ref}"[:32],
                lambda r: wording.unanswered_text_text(
                    r, received_at=received_at, due_at=due_at, texts_url=texts_url
                ),
            )
            return role, messages
    return "nobody", ()
