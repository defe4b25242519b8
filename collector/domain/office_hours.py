"""The welfare office's hours: when a non-urgent request is worked on, and its answer deadline.

A **working day** is the office's opening hours of one working day (09:00-18:00 KST by default,
Monday to Friday, minus the configured public holidays). "Answered within one working day" means
within that many office hours of working time: a request made on Monday at 14:00 is due on
Tuesday at 14:00; one made on Friday at 20:00 waits for Monday 09:00 and is due Monday at 18:00.

Pure: times are arguments, holidays are data (Korea's change every year: lunar new year,
Chuseok, substitute and election days), nothing is looked up.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

KST = dt.timezone(dt.timedelta(hours=9), "KST")


@dataclass(frozen=True, slots=True)
class OfficeCalendar:
    opens: dt.time = dt.time(9, 0)
    closes: dt.time = dt.time(18, 0)
    workdays: frozenset[int] = frozenset(range(5))
    """``date.weekday()`` numbers the office works (0 = Monday)."""
    holidays: frozenset[dt.date] = field(default_factory=frozenset)
    tz: dt.tzinfo = KST

    def __post_init__(self) -> None:
        if self.closes <= self.opens:
            raise ValueError(f"closes={self.closes} must be after opens={self.opens}")
        if not self.workdays or not self.workdays <= frozenset(range(7)):
            raise ValueError(f"workdays={sorted(self.workdays)} must be some of 0..6")

    @property
    def day_s(self) -> float:
        """Length of one working day in seconds of office time."""
        start = dt.datetime.combine(dt.date(2000, 1, 1), self.opens)
        return (dt.datetime.combine(dt.date(2000, 1, 1), self.closes) - start).total_seconds()

    def is_working_day(self, day: dt.date) -> bool:
        return day.weekday() in self.workdays and day not in self.holidays

    def _bounds(self, day: dt.date) -> tuple[dt.datetime, dt.datetime]:
        return (
            dt.datetime.combine(day, self.opens, self.tz),
            dt.datetime.combine(day, self.closes, self.tz),
        )

    def is_open(self, at: dt.datetime) -> bool:
        local = at.astimezone(self.tz)
        start, end = self._bounds(local.date())
        return self.is_working_day(local.date()) and start <= local < end

    def next_open(self, at: dt.datetime) -> dt.datetime:
        """``at`` if the office is open then, else when it next opens (in UTC)."""
        local = at.astimezone(self.tz)
        day = local.date()
        for _ in range(400):  # a year of holidays in a row would be a configuration error
            start, end = self._bounds(day)
            if self.is_working_day(day) and local < end:
                return max(local, start).astimezone(dt.UTC)
            day += dt.timedelta(days=1)
        raise ValueError("no working day within 400 days: check the holidays")

    def add_office_time(self, start: dt.datetime, seconds: float) -> dt.datetime:
        """The moment ``seconds`` of office time after ``start`` (in UTC)."""
        at = self.next_open(start).astimezone(self.tz)
        left = seconds
        while True:
            _, end = self._bounds(at.date())
            room = (end - at).total_seconds()
            if left <= room:
                return (at + dt.timedelta(seconds=left)).astimezone(dt.UTC)
            left -= room
            at = self.next_open(end).astimezone(self.tz)

    def add_working_days(self, start: dt.datetime, days: int) -> dt.datetime:
        """The deadline ``days`` working days after ``start``."""
        return self.add_office_time(start, days * self.day_s)
