"""The monthly figures districts publish, computed from dispatch records: homes monitored, SOS,
silence flags, visits, outcomes, test SOS, and how long acknowledgement and arrival took (median
and 90th percentile).

Pure: records in, figures out. Months are calendar months in Korea's time zone (KST, UTC+9),
because that is how a district office counts them.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

KST = dt.timezone(dt.timedelta(hours=9), "KST")
_MONTH = re.compile(r"^(?P<y>20[0-9]{2})-(?P<m>0[1-9]|1[0-2])$")


class BadMonth(ValueError):
    """Not a month written as YYYY-MM."""


@dataclass(frozen=True, slots=True)
class Month:
    year: int
    month: int

    @classmethod
    def parse(cls, text: str) -> Month:
        match = _MONTH.match(text.strip())
        if match is None:
            raise BadMonth(f"month={text!r} must be written YYYY-MM, e.g. 2026-12")
        return cls(int(match["y"]), int(match["m"]))

    @classmethod
    def of(cls, moment: dt.datetime) -> Month:
        local = moment.astimezone(KST)
        return cls(local.year, local.month)

    @property
    def start(self) -> dt.datetime:
        """Midnight KST on the first day, as an aware datetime."""
        return dt.datetime(self.year, self.month, 1, tzinfo=KST)

    @property
    def end(self) -> dt.datetime:
        year, month = (self.year + 1, 1) if self.month == 12 else (self.year, self.month + 1)
        return dt.datetime(year, month, 1, tzinfo=KST)

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"


@dataclass(frozen=True, slots=True)
class DispatchRecord:
    """What the report needs of one dispatch."""

    district: str
    reason: str
    created_at: dt.datetime
    acknowledged_at: dt.datetime | None
    on_site_at: dt.datetime | None
    outcome: str | None


@dataclass(frozen=True, slots=True)
class Spread:
    """Seconds: how many were measured, their median and 90th percentile (None when none)."""

    count: int
    median_s: float | None
    p90_s: float | None


@dataclass(frozen=True, slots=True)
class DistrictMonth:
    district: str
    month: Month
    homes: int
    sos: int
    silence: int
    visits: int
    test_sos: int
    outcomes: dict[str, int] = field(default_factory=dict)
    acknowledgement: Spread = Spread(0, None, None)
    arrival: Spread = Spread(0, None, None)


def spread(seconds: Sequence[float]) -> Spread:
    """Median and 90th percentile by the nearest-rank method (no interpolation)."""
    if not seconds:
        return Spread(0, None, None)
    ordered = sorted(seconds)
    n = len(ordered)
    median = ordered[(n - 1) // 2] if n % 2 else (ordered[n // 2 - 1] + ordered[n // 2]) / 2
    p90 = ordered[max(0, math.ceil(0.9 * n) - 1)]
    return Spread(n, median, p90)


def district_month(
    district: str, month: Month, homes: int, dispatches: Iterable[DispatchRecord]
) -> DistrictMonth:
    """The figures of ``district`` for dispatches raised in ``month``."""
    mine = [
        d for d in dispatches if d.district == district and month.start <= d.created_at < month.end
    ]
    outcomes = Counter(d.outcome for d in mine if d.outcome)
    acks = [(d.acknowledged_at - d.created_at).total_seconds() for d in mine if d.acknowledged_at]
    arrivals = [(d.on_site_at - d.created_at).total_seconds() for d in mine if d.on_site_at]
    return DistrictMonth(
        district=district,
        month=month,
        homes=homes,
        sos=sum(d.reason == "sos" for d in mine),
        silence=sum(d.reason == "silence" for d in mine),
        visits=sum(d.on_site_at is not None for d in mine),
        test_sos=sum(d.reason == "sos" and d.outcome == "test" for d in mine),
        outcomes=dict(sorted(outcomes.items())),
        acknowledgement=spread(acks),
        arrival=spread(arrivals),
    )


CSV_COLUMNS = (
    "district",
    "month",
    "homes",
    "sos",
    "silence",
    "visits",
    "test_sos",
    "ack_count",
    "ack_median_s",
    "ack_p90_s",
    "arrival_count",
    "arrival_median_s",
    "arrival_p90_s",
)


def csv_row(report: DistrictMonth, outcome_names: Sequence[str]) -> list[str]:
    def number(value: float | None) -> str:
        return "" if value is None else f"{value:.0f}"

    return [
        report.district,
        str(report.month),
        str(report.homes),
        str(report.sos),
        str(report.silence),
        str(report.visits),
        str(report.test_sos),
        str(report.acknowledgement.count),
        number(report.acknowledgement.median_s),
        number(report.acknowledgement.p90_s),
        str(report.arrival.count),
        number(report.arrival.median_s),
        number(report.arrival.p90_s),
        *(str(report.outcomes.get(name, 0)) for name in outcome_names),
    ]
