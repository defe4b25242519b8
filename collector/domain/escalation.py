"""When an open dispatch nobody acknowledged must be pushed further.

Ladder (``level`` counts escalations already done):

=====  =========================================  ===========================================
level  who is told                                 next step after
=====  =========================================  ===========================================
0 → 1  the guardian and the district staff         ``repeat_after_s``
1 → 2  the district staff again, marked critical   no further automatic step
=====  =========================================  ===========================================

A dispatch that was acknowledged or resolved is never escalated. Pure: ``now`` is an argument.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from collector.domain import wording
from collector.domain.dispatch import Contact, HouseholdView, Message, messages_worded

MAX_LEVEL = 2


@dataclass(frozen=True, slots=True)
class EscalationPolicy:
    repeat_after_s: float = 300.0
    staff: Contact | None = None
    dashboard_url: str = "http://localhost:8000"


@dataclass(frozen=True, slots=True)
class DispatchState:
    id: int
    status: str  # "open" | "acknowledged" | "resolved"
    level: int
    due_at: dt.datetime | None
    created_at: dt.datetime


@dataclass(frozen=True, slots=True)
class Escalation:
    dispatch_id: int
    new_level: int
    messages: tuple[Message, ...]
    next_due_at: dt.datetime | None


def decide_escalation(
    dispatch: DispatchState, household: HouseholdView, *, now: dt.datetime, policy: EscalationPolicy
) -> Escalation | None:
    """The escalation due for ``dispatch`` at ``now``, or None."""
    if dispatch.status != "open" or dispatch.due_at is None or now < dispatch.due_at:
        return None
    if dispatch.level >= MAX_LEVEL:
        return None
    level = dispatch.level + 1
    waited = int((now - dispatch.created_at).total_seconds())
    people: list[Contact] = []
    if level == 1 and household.guardian is not None:
        people.append(household.guardian)
    if policy.staff is not None:
        people.append(policy.staff)
    messages = messages_worded(
        people,
        f"escalation-{level}",
        lambda role: wording.escalation_text(
            role,
            household_id=household.id,
            level=level,
            waited_s=waited,
            dispatch_id=dispatch.id,
            dashboard_url=policy.dashboard_url,
        ),
    )
    next_due = now + dt.timedelta(seconds=policy.repeat_after_s) if level < MAX_LEVEL else None
    return Escalation(dispatch.id, level, messages, next_due)
