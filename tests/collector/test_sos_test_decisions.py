"""collector.domain.sos_test: test SOS are acknowledged only; dispatches marked as tests."""

from __future__ import annotations

import datetime as dt

import pytest

from collector.domain.lifecycle import Lifecycle, Outcome, Status
from collector.domain.sos_test import NotATest, incoming_sos, mark_as_test

T0 = dt.datetime(2026, 3, 2, 1, 0, tzinfo=dt.UTC)
NOW = T0 + dt.timedelta(minutes=5)


def test_a_test_sos_is_recorded_apart_acknowledged_and_dispatches_nobody() -> None:
    test = incoming_sos(test=True)
    assert (test.record_as, test.open_dispatch, test.notify, test.acknowledge) == (
        "sos_test",
        False,
        False,
        True,
    )
    real = incoming_sos(test=False)
    assert (real.record_as, real.open_dispatch, real.notify, real.acknowledge) == (
        "sos",
        True,
        True,
        True,
    )


@pytest.mark.parametrize("status", [Status.OPEN, Status.ACKNOWLEDGED])
def test_marking_an_unresolved_sos_resolves_it_as_a_test(status: Status) -> None:
    acked = status is Status.ACKNOWLEDGED
    before = Lifecycle(
        status=status,
        acknowledged_at=T0 if acked else None,
        acknowledged_by="김미영" if acked else None,
    )
    after = mark_as_test(before, reason="sos", by="구청 담당자", note="시범", now=NOW)
    assert after.status is Status.RESOLVED and after.outcome is Outcome.TEST
    assert after.resolved_at == NOW and after.note == "시범"
    assert not after.escalates
    if acked:
        assert (after.acknowledged_at, after.acknowledged_by) == (T0, "김미영")
    else:
        assert (after.acknowledged_at, after.acknowledged_by) == (NOW, "구청 담당자")


def test_marking_a_resolved_sos_relabels_it_and_keeps_what_was_recorded() -> None:
    before = Lifecycle(
        status=Status.RESOLVED,
        acknowledged_at=T0,
        acknowledged_by="김미영",
        resolved_at=T0 + dt.timedelta(minutes=1),
        outcome=Outcome.FALSE_ALARM,
        note="no one home",
    )
    after = mark_as_test(before, reason="sos", by=None, note=None, now=NOW)
    assert after.outcome is Outcome.TEST
    assert after.resolved_at == before.resolved_at and after.acknowledged_by == "김미영"
    assert after.note == "no one home | marked as a test; was resolved as false_alarm"


def test_marking_twice_changes_nothing() -> None:
    once = mark_as_test(Lifecycle(), reason="sos", by="x", note=None, now=NOW)
    assert mark_as_test(once, reason="sos", by="y", note="again", now=NOW) is once


def test_a_silence_alert_is_never_a_test() -> None:
    with pytest.raises(NotATest, match="only an SOS dispatch"):
        mark_as_test(Lifecycle(), reason="silence", by=None, note=None, now=NOW)


def test_now_must_be_timezone_aware() -> None:
    resolved = Lifecycle(status=Status.RESOLVED, outcome=Outcome.OTHER, resolved_at=T0)
    with pytest.raises(ValueError, match="timezone-aware"):
        mark_as_test(resolved, reason="sos", by=None, note=None, now=NOW.replace(tzinfo=None))
