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

from collector.domain.dispatch import Contact, HouseholdView, Message, messages_for
from collector.domain.links import LINK_PLACEHOLDER

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
    tag = "미응답" if level == 1 else "긴급 미응답"
    subject = f"[안부] {tag} SOS: {household.resident_name}"
    body = (
        f"출동 #{dispatch.id}({household.resident_name}님, {household.address})이 "
        f"{waited}초 동안 확인되지 않았습니다. {LINK_PLACEHOLDER}"
    )
    messages = messages_for(people, f"escalation-{level}", subject, body)
    next_due = now + dt.timedelta(seconds=policy.repeat_after_s) if level < MAX_LEVEL else None
    return Escalation(dispatch.id, level, messages, next_due)
