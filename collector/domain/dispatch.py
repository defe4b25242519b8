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
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from collector.domain.links import LINK_PLACEHOLDER


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


def _local(ts: dt.datetime) -> str:
    kst = dt.timezone(dt.timedelta(hours=9), "KST")
    return ts.astimezone(kst).strftime("%m-%d %H:%M:%S KST")


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
    how = "버튼" if source == "button" else f"음성 '{phrase}'" if phrase else "음성"
    people = _recipients(household, policy)
    if open_sos is not None:
        subject = f"[안부] SOS 반복: {household.resident_name}"
        body = (
            f"{household.resident_name}님({household.address})이 다시 도움을 요청했습니다 "
            f"({how}, {_local(now)}). 출동 #{open_sos.id}. "
            f"{LINK_PLACEHOLDER}"
        )
        return SosDecision(
            open_new=False,
            existing_dispatch_id=open_sos.id,
            messages=messages_for(people, f"sos-repeat-{message_id[:12]}", subject, body),
            escalate_at=None,
        )
    subject = f"[안부] 긴급 SOS: {household.resident_name}"
    body = (
        f"{household.resident_name}님({household.address})이 도움을 요청했습니다 "
        f"({how}, {_local(now)}). 확인 후 응답해 주세요: "
        f"{LINK_PLACEHOLDER}"
    )
    return SosDecision(
        open_new=True,
        existing_dispatch_id=None,
        messages=messages_for(people, "sos", subject, body),
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
) -> CancelDecision:
    """Decide what a resident's cancel changes: mark the dispatch and tell the same people."""
    if dispatch_for_sos is None:
        return CancelDecision(None)
    how = "버튼 길게 누름" if source == "button" else "음성"
    subject = f"[안부] SOS 취소: {household.resident_name}"
    body = (
        f"{household.resident_name}님이 도움 요청을 취소했습니다 ({how}, {_local(now)}). "
        f"출동 #{dispatch_for_sos.id}은 닫히지 않았습니다: 전화로 안부를 확인해 주세요. "
        f"{LINK_PLACEHOLDER}"
    )
    people = _recipients(household, policy)
    return CancelDecision(dispatch_for_sos.id, messages_for(people, "cancel", subject, body))
