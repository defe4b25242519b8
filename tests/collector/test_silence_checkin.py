"""The check-in decision: ask first, close on an answer, dispatch below SOS urgency otherwise."""

from __future__ import annotations

import datetime as dt

import pytest

from collector.domain.dispatch import Contact, HouseholdView
from collector.domain.silence import LifeSignKind, decide_silence
from collector.domain.silence_checkin import (
    AskCheckin,
    CheckinPolicy,
    CloseFlag,
    DispatchForSilence,
    Ignore,
    LateAnswer,
    on_answer,
    on_flag,
    on_tick,
)

T0 = dt.datetime(2026, 3, 2, 1, 0, tzinfo=dt.UTC)
NOW = T0 + dt.timedelta(hours=14)
HOME = HouseholdView(
    "h1",
    "seodaemun",
    "김순자",
    "연희로 1",
    Contact("caregiver", "박", phone="010-1", email="c@x"),
    Contact("guardian", "김", phone="010-2"),
)
POLICY = CheckinPolicy(answer_window_min=10)
CID = "c" * 32


def flag():  # type: ignore[no-untyped-def]
    raised = decide_silence(
        "h1", last_sign_at=T0, last_kind=LifeSignKind.MOTION, period_h=14, routine=None, now=NOW
    )
    assert raised is not None
    return raised


def ask() -> AskCheckin:
    decision = on_flag(flag(), HOME, checkin_id=CID, device_online=True, now=NOW, policy=POLICY)
    assert isinstance(decision, AskCheckin)
    return decision


def test_an_online_home_is_asked_first() -> None:
    decision = ask()
    assert decision.pending.answer_due_at == NOW + dt.timedelta(minutes=10)
    assert decision.expires_at == NOW + dt.timedelta(minutes=5)


def test_an_answer_within_the_window_closes_the_flag_with_a_record() -> None:
    pending = ask().pending
    at = NOW + dt.timedelta(minutes=2)
    decision = on_answer(
        pending,
        HOME,
        checkin_id=CID,
        answered=True,
        phrase="괜찮아",
        dispatched=False,
        now=at,
        policy=POLICY,
    )
    assert isinstance(decision, CloseFlag)
    assert decision.answered_at == at and "괜찮아" in decision.record


@pytest.mark.parametrize("answered", [False, True])
def test_no_answer_or_too_late_dispatches_at_normal_priority(answered: bool) -> None:
    pending = ask().pending
    at = NOW + dt.timedelta(minutes=1 if not answered else 11)
    decision = on_answer(
        pending,
        HOME,
        checkin_id=CID,
        answered=answered,
        phrase="네" if answered else None,
        dispatched=False,
        now=at,
        policy=POLICY,
    )
    assert isinstance(decision, DispatchForSilence)
    assert decision.priority == "normal"  # an SOS is "urgent"
    assert {m.recipient for m in decision.messages} == {"010-1", "c@x", "010-2"}
    assert "14시간" in decision.messages[0].body


def test_the_window_running_out_dispatches() -> None:
    pending = ask().pending
    assert on_tick(pending, HOME, now=NOW + dt.timedelta(minutes=9), policy=POLICY) is None
    decision = on_tick(pending, HOME, now=NOW + dt.timedelta(minutes=10), policy=POLICY)
    assert isinstance(decision, DispatchForSilence) and "응답 없음" in decision.checkin


def test_offline_device_or_check_in_off_dispatches_at_once() -> None:
    offline = on_flag(flag(), HOME, checkin_id=CID, device_online=False, now=NOW, policy=POLICY)
    assert isinstance(offline, DispatchForSilence) and "기기" in offline.checkin
    off = CheckinPolicy(enabled=False)
    assert isinstance(
        on_flag(flag(), HOME, checkin_id=CID, device_online=True, now=NOW, policy=off),
        DispatchForSilence,
    )


def test_stale_and_late_answers() -> None:
    pending = ask().pending
    other = on_answer(
        pending,
        HOME,
        checkin_id="d" * 32,
        answered=True,
        phrase="네",
        dispatched=False,
        now=NOW,
        policy=POLICY,
    )
    assert isinstance(other, Ignore)
    assert isinstance(
        on_answer(
            None,
            HOME,
            checkin_id=CID,
            answered=True,
            phrase="네",
            dispatched=False,
            now=NOW,
            policy=POLICY,
        ),
        Ignore,
    )
    late = on_answer(
        pending,
        HOME,
        checkin_id=CID,
        answered=True,
        phrase="yes",
        dispatched=True,
        now=NOW + dt.timedelta(minutes=30),
        policy=POLICY,
    )
    assert isinstance(late, LateAnswer) and "yes" in late.record


def test_policy_refuses_a_request_that_outlives_its_window() -> None:
    with pytest.raises(ValueError, match="request_ttl_min"):
        CheckinPolicy(answer_window_min=3, request_ttl_min=5)
