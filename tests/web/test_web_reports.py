"""The reports page and its CSV, over dispatches made through the real ingest path and acted on
through the same code as the pages (SQLite and PostgreSQL)."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Callable

from fastapi.testclient import TestClient

from collector.domain import lifecycle
from collector.store.accounts import Role
from collector.store.db import Database
from collector.web.access import Viewer
from collector.web.records import act
from tests.web.conftest import Seeded, raise_sos

Login = Callable[[str], TestClient]
T0 = dt.datetime(2026, 12, 3, 1, 0, tzinfo=dt.UTC)


def test_report_counts_medians_and_csv(login: Login, database: Database, seeded: Seeded) -> None:
    kim = Viewer(
        0, "care-a", "김지원", Role.CAREGIVER, "seodaemun", seeded.caregivers["care-a"], "ko"
    )
    first = raise_sos(database, "h-a1", when=T0)
    second = raise_sos(database, "h-a2", when=T0 + dt.timedelta(hours=1))
    raise_sos(database, "h-m1", when=T0)  # another district
    with database.session() as s:
        act(s, kim, first, lifecycle.Acknowledge("김지원"), now=T0 + dt.timedelta(seconds=90))
        act(s, kim, first, lifecycle.ArriveOnSite("김지원"), now=T0 + dt.timedelta(minutes=12))
        act(
            s,
            kim,
            first,
            lifecycle.Resolve(lifecycle.Outcome.SAFE),
            now=T0 + dt.timedelta(minutes=20),
        )
        act(
            s, kim, second, lifecycle.Resolve(lifecycle.Outcome.TEST, None, "김지원"),
            now=T0 + dt.timedelta(hours=1, seconds=30),
        )  # fmt: skip
    client = login("sup-seo")
    page = client.get("/reports?month=2026-12")
    assert page.status_code == 200
    assert 'data-district="seodaemun"' in page.text and 'data-district="mapo"' not in page.text
    assert '<td data-figure="sos">2</td>' in page.text
    assert '<td data-figure="visits">1</td>' in page.text
    assert '<td data-figure="test_sos">1</td>' in page.text
    # Acknowledgement: 90 s and (resolving implies it) 30 s: median 60 s.
    assert "60초" in page.text

    reply = client.get("/reports.csv?month=2026-12")
    assert reply.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(reply.text.lstrip("\ufeff"))))
    assert [r["district"] for r in rows] == ["seodaemun"]
    row = rows[0]
    assert (row["homes"], row["sos"], row["visits"], row["test_sos"]) == ("3", "2", "1", "1")
    assert (row["ack_median_s"], row["arrival_median_s"]) == ("60", "720")
    assert (row["outcome_safe"], row["outcome_test"]) == ("1", "1")
    assert login("admin").get("/reports.csv?month=2026-12").text.count("\n") == 3  # 2 districts


def test_reports_are_for_supervisors_and_a_bad_month_is_explained(login: Login) -> None:
    assert login("care-a").get("/reports").status_code == 403
    bad = login("sup-seo").get("/reports?month=2026-13")
    assert bad.status_code == 400 and "YYYY-MM" in bad.text
