"""The supervisor's office pages: texts that matched no household (``/texts``), and who looks
after which household (``/assignment``). Thin: the store work is in ``collector/web/office.py``."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from collector.api.deps import NowDep, SessionDep
from collector.web import audit, office
from collector.web.deps import FormDep, ViewerDep, render

router = APIRouter(include_in_schema=False)


def _back(path: str, district: str, viewer_district: str | None, **more: str) -> str:
    query = {k: v for k, v in more.items() if v}
    if district != viewer_district:
        query["district"] = district
    return path + (f"?{urlencode(query)}" if query else "")


@router.get("/texts")
def texts_page(
    request: Request,
    session: SessionDep,
    viewer: ViewerDep,
    now: NowDep,
    district: str | None = None,
    handled: bool = False,
    assigned: int | None = None,
) -> HTMLResponse:
    where = office.district_of(session, viewer, district)
    rows = office.texts(session, where, handled_too=handled)
    audit.record(
        session,
        viewer,
        "view_texts",
        now=now,
        district=where,
        detail=",".join(str(r.id) for r in rows)[:1000] or None,
    )
    return render(
        request,
        "texts.html",
        viewer=viewer,
        district=where,
        texts=rows,
        handled=handled,
        assigned=assigned,
        now=now,
        query="" if where == viewer.district else f"?district={where}",
    )


@router.post("/texts/{request_id}/assign")
def assign_text(
    request: Request,
    session: SessionDep,
    viewer: ViewerDep,
    now: NowDep,
    form: FormDep,
    request_id: int,
) -> RedirectResponse:
    dispatch_id = office.assign_text(
        session,
        viewer,
        request_id,
        form.get("household", ""),
        now=now,
        policy=request.app.state.escalation_policy,
        links=request.app.state.request_links,
    )
    district = form.get("district", "") or (viewer.district or "")
    target = _back("/texts", district, viewer.district, assigned=str(dispatch_id))
    return RedirectResponse(target, status_code=303)


@router.post("/texts/{request_id}/close")
def close_text(
    session: SessionDep, viewer: ViewerDep, now: NowDep, form: FormDep, request_id: int
) -> RedirectResponse:
    office.close_text(session, viewer, request_id, form.get("note", ""), now=now)
    district = form.get("district", "") or (viewer.district or "")
    return RedirectResponse(_back("/texts", district, viewer.district), status_code=303)


@router.get("/assignment")
def assignment_page(
    request: Request,
    session: SessionDep,
    viewer: ViewerDep,
    district: str | None = None,
    household: str | None = None,
    moved: int | None = None,
    unassigned: int | None = None,
    preview: bool = False,
) -> HTMLResponse:
    where = office.district_of(session, viewer, district)
    page = office.assignment_page(session, where, household_id=household)
    return render(
        request,
        "assignment.html",
        viewer=viewer,
        page=page,
        asked=household,
        moved=moved,
        unassigned=unassigned,
        preview=preview,
        district_field="" if where == viewer.district else where,
    )


@router.post("/assignment/pin")
def pin(session: SessionDep, viewer: ViewerDep, now: NowDep, form: FormDep) -> RedirectResponse:
    household = office.pin_household(
        session, viewer, form.get("household", ""), form.get("caregiver", ""), now=now
    )
    target = _back("/assignment", household.district, viewer.district, household=household.id)
    return RedirectResponse(target, status_code=303)


@router.post("/assignment/backup")
def backup(session: SessionDep, viewer: ViewerDep, now: NowDep, form: FormDep) -> RedirectResponse:
    district = office.district_of(session, viewer, form.get("district") or None)
    office.set_backup(
        session, viewer, district, form.get("caregiver", ""), form.get("backup", ""), now=now
    )
    return RedirectResponse(_back("/assignment", district, viewer.district), status_code=303)


@router.post("/assignment/run")
def run(session: SessionDep, viewer: ViewerDep, now: NowDep, form: FormDep) -> RedirectResponse:
    district = office.district_of(session, viewer, form.get("district") or None)
    dry_run = form.get("dry_run") == "1"
    result = office.run_assignment(session, viewer, district, now=now, dry_run=dry_run)
    target = _back(
        "/assignment",
        district,
        viewer.district,
        moved=str(result.moved),
        unassigned=str(len(result.unassigned)),
        preview="true" if dry_run else "",
    )
    return RedirectResponse(target, status_code=303)
