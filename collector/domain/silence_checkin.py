"""Before a caregiver is sent for silence, ask the home's speaker; then close or dispatch.

Rules:

==========================================  =================================================
situation                                   decision
==========================================  =================================================
silence flag, device online, check-in on    :class:`AskCheckin` (send ``cmd/checkin``), answer
                                            due ``answer_window_min`` later
silence flag, device offline or check-in    :class:`DispatchForSilence` at once
off
answer "yes" within the window              :class:`CloseFlag` with a record; the answer is
                                            also a life sign (``checkin_answer``)
answer "nobody answered" / "expired"        :class:`DispatchForSilence`
no answer by the window's end               :class:`DispatchForSilence`
answer for another or unknown check-in      :class:`Ignore` (stale or duplicate)
"yes" after the dispatch was opened         :class:`LateAnswer`: the dispatch stays open, the
                                            caregiver is told the resident answered
==========================================  =================================================

A silence dispatch goes through the same path as an SOS but at ``priority = "normal"``
(an SOS is ``"urgent"``): the caregiver is asked to visit or phone, not to drop everything.

Pure: no clock, no I/O.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from collector.domain.dispatch import Contact, HouseholdView, Message, messages_for
from collector.domain.silence import SilenceFlag, SilenceReason
from collector.domain.wording import dispatch_link, household_ref

SILENCE_PRIORITY = "normal"


@dataclass(frozen=True, slots=True)
class CheckinPolicy:
    enabled: bool = True
    answer_window_min: float = 10.0
    """Minutes from sending the request to giving up on an answer."""
    listen_s: float = 60.0
    """How long the speaker listens after each prompt."""
    repeats: int = 2
    """Times the prompt is played (1–5)."""
    request_ttl_min: float = 5.0
    """A request not played within this (device reconnecting) is not played at all."""
    staff: Contact | None = None
    dashboard_url: str = "http://localhost:8000"

    def __post_init__(self) -> None:
        if self.answer_window_min <= 0 or self.request_ttl_min <= 0:
            raise ValueError("answer_window_min and request_ttl_min must be > 0")
        if not 1 <= self.repeats <= 5:
            raise ValueError("repeats must be 1..5")
        if self.request_ttl_min > self.answer_window_min:
            raise ValueError("request_ttl_min must not exceed answer_window_min")


@dataclass(frozen=True, slots=True)
class PendingCheckin:
    """A check-in sent and not settled yet (kept in the store with the flag)."""

    checkin_id: str
    flag: SilenceFlag
    asked_at: dt.datetime
    answer_due_at: dt.datetime


@dataclass(frozen=True, slots=True)
class AskCheckin:
    pending: PendingCheckin
    expires_at: dt.datetime
    listen_s: float


@dataclass(frozen=True, slots=True)
class DispatchForSilence:
    household_id: str
    priority: str
    reason: SilenceReason
    checkin: str
    """What became of the check-in: "not asked (device offline)", "no answer by 10:42" …"""
    messages: tuple[Message, ...]


@dataclass(frozen=True, slots=True)
class CloseFlag:
    household_id: str
    checkin_id: str
    answered_at: dt.datetime
    record: str


@dataclass(frozen=True, slots=True)
class LateAnswer:
    household_id: str
    checkin_id: str
    record: str


@dataclass(frozen=True, slots=True)
class Ignore:
    why: str


def _kst(at: dt.datetime) -> str:
    return at.astimezone(dt.timezone(dt.timedelta(hours=9), "KST")).strftime("%m-%d %H:%M KST")


def _dispatch(
    flag: SilenceFlag, household: HouseholdView, checkin: str, policy: CheckinPolicy
) -> DispatchForSilence:
    # The minimum each recipient needs to act (collector/domain/wording.py): no name or
    # address; the caregiver's link is signed at storing, the guardian gets no link.
    responders: list[Contact] = []
    if household.caregiver is not None:
        responders.append(household.caregiver)
    elif policy.staff is not None:
        responders.append(policy.staff)
    ref = household_ref(household.id)
    subject = f"[안부] 무활동 확인 요청: {ref}"
    body = (
        f"{ref}에서 생활 신호가 없습니다. {flag.reason.describe()}. 음성 확인: {checkin}. "
        f"방문 또는 전화로 확인해 주세요: {dispatch_link(policy.dashboard_url, ref)}"
    )
    guardians = [household.guardian] if household.guardian is not None else []
    guardian_body = (
        f"{ref}에서 생활 신호가 없어 담당 생활지원사에게 확인을 요청했습니다. 음성 확인: {checkin}."
    )
    messages = messages_for(responders, "silence", subject, body) + messages_for(
        guardians, "silence", "[안부] 무활동 확인 안내", guardian_body
    )
    return DispatchForSilence(
        flag.household_id,
        SILENCE_PRIORITY,
        flag.reason,
        checkin,
        messages,
    )


def on_flag(
    flag: SilenceFlag,
    household: HouseholdView,
    *,
    checkin_id: str,
    device_online: bool,
    now: dt.datetime,
    policy: CheckinPolicy,
) -> AskCheckin | DispatchForSilence:
    """A silence flag was raised: ask the speaker first when that is possible."""
    if not policy.enabled:
        return _dispatch(flag, household, "사용 안 함", policy)
    if not device_online:
        return _dispatch(flag, household, "기기 꺼짐으로 묻지 못함", policy)
    due = now + dt.timedelta(minutes=policy.answer_window_min)
    pending = PendingCheckin(checkin_id, flag, now, due)
    return AskCheckin(pending, now + dt.timedelta(minutes=policy.request_ttl_min), policy.listen_s)


def on_answer(
    pending: PendingCheckin | None,
    household: HouseholdView,
    *,
    checkin_id: str,
    answered: bool,
    phrase: str | None,
    dispatched: bool,
    now: dt.datetime,
    policy: CheckinPolicy,
) -> CloseFlag | DispatchForSilence | LateAnswer | Ignore:
    """A device answered check-in ``checkin_id`` at ``now``.

    ``dispatched`` says whether the window already ran out and a dispatch was opened.
    """
    if pending is None or pending.checkin_id != checkin_id:
        return Ignore(f"no pending check-in {checkin_id}")
    household_id = pending.flag.household_id
    if dispatched:
        if answered:
            return LateAnswer(household_id, checkin_id, f"출동 후 응답: '{phrase}' ({_kst(now)})")
        return Ignore("already dispatched")
    if answered and now <= pending.answer_due_at:
        return CloseFlag(household_id, checkin_id, now, f"음성 확인 응답 '{phrase}' ({_kst(now)})")
    if answered:  # after the window but before the tick that would have dispatched
        return _dispatch(pending.flag, household, f"기한 후 응답 '{phrase}' ({_kst(now)})", policy)
    return _dispatch(pending.flag, household, f"응답 없음 ({_kst(now)})", policy)


def on_tick(
    pending: PendingCheckin, household: HouseholdView, *, now: dt.datetime, policy: CheckinPolicy
) -> DispatchForSilence | None:
    """The answer window ran out with nothing heard: dispatch."""
    if now < pending.answer_due_at:
        return None
    return _dispatch(
        pending.flag, household, f"{_kst(pending.answer_due_at)}까지 응답 없음", policy
    )
