"""Who is told about a notification that is not delivered in time (pure, clock passed in)."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from collector.domain.dispatch import Contact
from collector.notify.undelivered import (
    Undelivered,
    UndeliveredPolicy,
    fallback_messages,
    fallback_purpose,
)

NOW = dt.datetime(2026, 12, 1, 3, 0, tzinfo=dt.UTC)
STAFF = Contact("staff", "서대문구청", phone="010-9999-0000", email="welfare@example.org")
POLICY = UndeliveredPolicy(escalate_after_s=120, staff=STAFF, dashboard_url="https://anbu.example")
LATE = Undelivered(
    id=41,
    dispatch_id=7,
    channel="email",
    recipient_role="caregiver",
    recipient="jiwon@example.org",
    purpose="sos",
    created_at=NOW - dt.timedelta(seconds=121),
    dispatch_open=True,
)


def test_a_late_caregiver_email_reaches_the_staff_on_both_channels() -> None:
    messages = fallback_messages(LATE, now=NOW, policy=POLICY)
    assert {(m.channel, m.recipient) for m in messages} == {
        ("sms", "010-9999-0000"),
        ("email", "welfare@example.org"),
    }
    assert {m.purpose for m in messages} == {fallback_purpose(41)} == {"undelivered-41"}
    [sms] = [m for m in messages if m.channel == "sms"]
    assert "출동 #7" in sms.body and "생활지원사 이메일" in sms.body and "2분" in sms.body
    assert sms.body.endswith("https://anbu.example/dispatches/7")


def test_the_failing_channel_of_the_staff_themselves_is_not_used_again() -> None:
    own = dataclasses.replace(LATE, recipient_role="staff", recipient="welfare@example.org")
    assert [m.channel for m in fallback_messages(own, now=NOW, policy=POLICY)] == ["sms"]


@pytest.mark.parametrize(
    "change",
    [
        {"created_at": NOW - dt.timedelta(seconds=119)},  # not late yet
        {"dispatch_open": False},  # someone has the alarm
        {"purpose": "undelivered-3"},  # no warnings about warnings
    ],
)
def test_nothing_is_sent_when(change: dict[str, object]) -> None:
    notification = dataclasses.replace(LATE, **change)  # type: ignore[arg-type]
    assert fallback_messages(notification, now=NOW, policy=POLICY) == ()


def test_without_staff_nobody_can_be_told() -> None:
    policy = UndeliveredPolicy(escalate_after_s=120, staff=None)
    assert fallback_messages(LATE, now=NOW, policy=policy) == ()


def test_a_nonsense_escalation_time_is_refused() -> None:
    with pytest.raises(ValueError, match="escalate_after_s"):
        UndeliveredPolicy(escalate_after_s=0)
