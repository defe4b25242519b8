"""The office calendar: opening hours, weekends, holidays, one working day."""

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from collector.domain.office_hours import KST, OfficeCalendar

CAL = OfficeCalendar(holidays=frozenset({dt.date(2026, 12, 25)}))


def kst(day: int, hour: int, minute: int = 0, month: int = 12) -> dt.datetime:
    return dt.datetime(2026, month, day, hour, minute, tzinfo=KST)


def test_open_only_on_working_days_within_hours() -> None:
    assert CAL.is_open(kst(1, 9))  # Tuesday
    assert not CAL.is_open(kst(1, 8, 59))
    assert not CAL.is_open(kst(1, 18))
    assert not CAL.is_open(kst(5, 11))  # Saturday
    assert not CAL.is_open(kst(25, 11))  # Christmas, a Friday


def test_one_working_day_during_hours_is_the_same_time_next_working_day() -> None:
    assert CAL.add_working_days(kst(1, 14), 1) == kst(2, 14)
    # Thursday 24th at 14:00 → Christmas is off → Monday 28th at 14:00
    assert CAL.add_working_days(kst(24, 14), 1) == kst(28, 14)


def test_a_request_after_hours_waits_for_the_office_to_open() -> None:
    # Friday 4th at 20:00 → Monday 7th 09:00 + one working day → Monday 18:00
    assert CAL.next_open(kst(4, 20)) == kst(7, 9)
    assert CAL.add_working_days(kst(4, 20), 1) == kst(7, 18)
    assert CAL.add_working_days(kst(1, 7), 2) == kst(2, 18)


def test_bad_hours_and_workdays_are_refused() -> None:
    with pytest.raises(ValueError, match="closes"):
        OfficeCalendar(opens=dt.time(18), closes=dt.time(9))
    with pytest.raises(ValueError, match="workdays"):
        OfficeCalendar(workdays=frozenset({7}))


@given(st.datetimes(min_value=dt.datetime(2026, 1, 1), max_value=dt.datetime(2027, 12, 31)))
def test_a_deadline_is_in_office_hours_and_exactly_one_day_of_office_time_later(
    naive: dt.datetime,
) -> None:
    start = naive.replace(tzinfo=dt.UTC)
    due = CAL.add_working_days(start, 1)
    assert due > start
    # The office time between the start and the deadline, day by day, is exactly 9 h.
    assert CAL.is_open(due - dt.timedelta(microseconds=1))
    span = dt.timedelta(0)
    day = start.astimezone(KST).date()
    while day <= due.astimezone(KST).date():
        if CAL.is_working_day(day):
            opens = dt.datetime.combine(day, CAL.opens, KST)
            closes = dt.datetime.combine(day, CAL.closes, KST)
            span += max(dt.timedelta(0), min(closes, due) - max(opens, start))
        day += dt.timedelta(days=1)
    assert span == dt.timedelta(hours=9)
