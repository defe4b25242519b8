"""Monthly figures per district for supervisors: a page with charts, and the same as CSV."""

from __future__ import annotations

import csv
import io

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from collector.api.deps import NowDep, SessionDep
from collector.domain import reports
from collector.domain.lifecycle import Outcome
from collector.web import records
from collector.web.access import check, may_read_audit
from collector.web.deps import ViewerDep, render

router = APIRouter(include_in_schema=False)
OUTCOMES = [o.value for o in Outcome]


def _month(text: str | None, now: NowDep) -> reports.Month:
    if not text:
        return reports.Month.of(now)
    try:
        return reports.Month.parse(text)
    except reports.BadMonth as exc:
        raise records.BadForm(str(exc)) from exc


@router.get("/reports")
def reports_page(
    request: Request, session: SessionDep, viewer: ViewerDep, now: NowDep, month: str | None = None
) -> HTMLResponse:
    check(may_read_audit(viewer), "reports are for supervisors")
    chosen = _month(month, now)
    rows = records.monthly_reports(session, viewer, chosen)
    return render(request, "reports.html", viewer=viewer, rows=rows, month=chosen)


@router.get("/reports.csv")
def reports_csv(
    session: SessionDep, viewer: ViewerDep, now: NowDep, month: str | None = None
) -> Response:
    check(may_read_audit(viewer), "reports are for supervisors")
    chosen = _month(month, now)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([*reports.CSV_COLUMNS, *(f"outcome_{name}" for name in OUTCOMES)])
    for row in records.monthly_reports(session, viewer, chosen):
        writer.writerow(reports.csv_row(row, OUTCOMES))
    # A byte-order mark so that spreadsheet programs read the Korean district names as UTF-8.
    return Response(
        "\ufeff" + out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="anbu-{chosen}.csv"'},
    )
