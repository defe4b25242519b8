"""Monthly district figures: pure, records in and figures out."""

from __future__ import annotations

import datetime as dt

import pytest

from collector.domain.reports import (
    KST,
    BadMonth,
    DispatchRecord,
    Month,
    csv_row,
    district_month,
    spread,
)

DEC = Month(2026, 12)


def at(day: int, hour: int = 10, second: int = 0) -> dt.datetime:
    return dt.datetime(2026, 12, day, hour, 0, second, tzinfo=KST)


def rec(
    created: dt.datetime,
    ack_s: float | None = None,
    arrive_s: float | None = None,
    outcome: str | None = None,
    reason: str = "sos",
    district: str = "seodaemun",
) -> DispatchRecord:
    ack = created + dt.timedelta(seconds=ack_s) if ack_s is not None else None
    arrive = created + dt.timedelta(seconds=arrive_s) if arrive_s is not None else None
    return DispatchRecord(district, reason, created, ack, arrive, outcome)


def test_months_are_counted_in_korean_time() -> None:
    # 30 Nov 23:30 UTC is already 1 Dec in Seoul.
    late = dt.datetime(2026, 11, 30, 23, 30, tzinfo=dt.UTC)
    assert Month.of(late) == DEC
    assert DEC.start <= late < DEC.end
    assert str(Month.parse("2026-01")) == "2026-01"
    assert Month(2026, 12).end == dt.datetime(2027, 1, 1, tzinfo=KST)


@pytest.mark.parametrize("text", ["2026-13", "26-12", "2026/12", "", "december"])
def test_a_bad_month_says_how_to_write_it(text: str) -> None:
    with pytest.raises(BadMonth, match="YYYY-MM"):
        Month.parse(text)


def test_spread_uses_nearest_rank_and_handles_none_and_one() -> None:
    assert spread([]).median_s is None
    assert spread([30.0]) == spread([30.0])
    assert (spread([30.0]).median_s, spread([30.0]).p90_s) == (30.0, 30.0)
    assert spread([10, 20, 30, 40]).median_s == 25
    ten = spread([float(s) for s in range(1, 11)])
    assert (ten.count, ten.median_s, ten.p90_s) == (10, 5.5, 9.0)


def test_district_month_counts_only_that_district_and_month() -> None:
    records = [
        rec(at(1), ack_s=60, arrive_s=600, outcome="safe"),
        rec(at(2), ack_s=120, outcome="test"),
        rec(at(3), reason="silence", ack_s=3600, arrive_s=5400, outcome="help_given"),
        rec(at(4)),  # still open
        rec(at(5), ack_s=5, outcome="safe", district="mapo"),
        rec(dt.datetime(2026, 11, 30, 10, tzinfo=KST), ack_s=1, outcome="safe"),
    ]
    report = district_month("seodaemun", DEC, 250, records)
    assert (report.homes, report.sos, report.silence, report.visits, report.test_sos) == (
        250,
        3,
        1,
        2,
        1,
    )
    assert report.outcomes == {"help_given": 1, "safe": 1, "test": 1}
    assert (report.acknowledgement.count, report.acknowledgement.median_s) == (3, 120)
    assert report.acknowledgement.p90_s == 3600
    assert (report.arrival.count, report.arrival.median_s, report.arrival.p90_s) == (
        2,
        3000,
        5400,
    )
    row = csv_row(report, ["safe", "deceased"])
    assert row[:7] == ["seodaemun", "2026-12", "250", "3", "1", "2", "1"]
    assert row[-2:] == ["1", "0"]
