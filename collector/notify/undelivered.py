"""Who else to tell when a notification is not delivered in time. Pure: ``now`` is an argument.

A caregiver's SMS that the gateway keeps refusing is retried (retry.py), but the resident cannot
wait for the gateway to come back. Once a notification of an open dispatch has gone undelivered for
``escalate_after_s``, the district staff are told through every channel they have, except the one
that is failing for this very message (same channel and same address). The warning names the
dispatch, the role and channel that failed and how long: no resident's name or address.

Nothing is sent for a notification that was sent, that is younger than ``escalate_after_s``, that
is itself such a warning (no warnings about warnings: it keeps being retried and /health shows its
age), or whose dispatch is no longer open (someone has the alarm). Otherwise one message per staff
channel, once: the purpose ``undelivered-<id>`` makes it unique in the store.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from collector.domain.dispatch import Contact, Message, messages_for

FALLBACK_PREFIX = "undelivered-"
_CHANNEL_NAMES = {"email": "이메일", "sms": "문자"}
_ROLE_NAMES = {"caregiver": "생활지원사", "guardian": "보호자", "staff": "담당 공무원"}


@dataclass(frozen=True, slots=True)
class UndeliveredPolicy:
    escalate_after_s: float = 120.0
    """A notification of an open dispatch undelivered this long is escalated to the staff."""
    staff: Contact | None = None
    """Who is told; None: nobody can be (health still reports the age)."""
    dashboard_url: str = "http://localhost:8000"

    def __post_init__(self) -> None:
        if self.escalate_after_s <= 0:
            raise ValueError(f"escalate_after_s={self.escalate_after_s} must be positive")


@dataclass(frozen=True, slots=True)
class Undelivered:
    """What the decision needs to know about one notification that is not sent yet."""

    id: int
    dispatch_id: int
    channel: str
    recipient_role: str
    recipient: str
    purpose: str
    created_at: dt.datetime
    dispatch_open: bool


def fallback_purpose(notification_id: int) -> str:
    return f"{FALLBACK_PREFIX}{notification_id}"


def is_fallback(purpose: str) -> bool:
    return purpose.startswith(FALLBACK_PREFIX)


def fallback_messages(
    notification: Undelivered, *, now: dt.datetime, policy: UndeliveredPolicy
) -> tuple[Message, ...]:
    """The staff warnings due for ``notification`` at ``now`` (empty: none)."""
    if policy.staff is None or not notification.dispatch_open:
        return ()
    if is_fallback(notification.purpose):
        return ()
    waited_s = (now - notification.created_at).total_seconds()
    if waited_s < policy.escalate_after_s:
        return ()
    role = _ROLE_NAMES.get(notification.recipient_role, notification.recipient_role)
    channel = _CHANNEL_NAMES.get(notification.channel, notification.channel)
    minutes = max(1, int(waited_s // 60))
    subject = f"[안부] 알림 전달 실패: 출동 #{notification.dispatch_id}"
    body = (
        f"출동 #{notification.dispatch_id}의 {role} {channel} 알림이 {minutes}분 넘게 "
        f"전달되지 않았습니다. 직접 확인해 주세요. "
        f"{policy.dashboard_url}/dispatches/{notification.dispatch_id}"
    )
    messages = messages_for([policy.staff], fallback_purpose(notification.id), subject, body)
    return tuple(
        m
        for m in messages
        if not (m.channel == notification.channel and m.recipient == notification.recipient)
    )
