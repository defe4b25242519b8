"""The caregiver's pages, made for a phone: open dispatches, one dispatch, one household."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from collector.api.deps import NowDep, SessionDep
from collector.domain import lifecycle
from collector.web import audit, records
from collector.web.deps import FormDep, ViewerDep, render

router = APIRouter(prefix="/care", include_in_schema=False)


@router.get("")
def my_dispatches(
    request: Request, session: SessionDep, viewer: ViewerDep, now: NowDep
) -> HTMLResponse:
    items = records.open_dispatches(session, viewer)
    # The list shows names and addresses: it is a view of those records too.
    audit.record(
        session, viewer, "view_list", now=now, district=viewer.district,
        detail=",".join(str(d.id) for d in items)[:2000] or None,
    )  # fmt: skip
    return render(
        request, "care_list.html", viewer=viewer, dispatches=items,
        outcomes_list=lifecycle.PAGE_OUTCOMES,
    )  # fmt: skip


@router.get("/dispatches/{dispatch_id}")
def dispatch_detail(
    request: Request, session: SessionDep, viewer: ViewerDep, now: NowDep, dispatch_id: int
) -> HTMLResponse:
    page = records.dispatch_page(session, viewer, dispatch_id, now=now)
    return render(
        request, "care_dispatch.html", viewer=viewer, page=page,
        outcomes=lifecycle.PAGE_OUTCOMES,
    )  # fmt: skip


def _event(action: str, form: dict[str, str], by: str) -> lifecycle.Event:
    note = form.get("note", "")[:4000] or None
    if action == "acknowledge":
        return lifecycle.Acknowledge(by)
    if action == "on-site":
        return lifecycle.ArriveOnSite(by)
    if action == "resolve":
        try:
            outcome = lifecycle.Outcome(form.get("outcome", ""))
        except ValueError:
            raise records.BadForm("choose an outcome from the list") from None
        return lifecycle.Resolve(outcome, note, by)
    if action == "note":
        if not note or not note.strip():
            raise records.BadForm("the note is empty")
        return lifecycle.AddNote(note, by)
    raise records.Missing(f"no action {action!r}")


@router.post("/dispatches/{dispatch_id}/{action}")
def dispatch_action(
    request: Request,
    session: SessionDep,
    viewer: ViewerDep,
    now: NowDep,
    form: FormDep,
    dispatch_id: int,
    action: str,
) -> Response:
    """acknowledge | on-site | resolve (``outcome``, ``note``) | note; then back to the page."""
    event = _event(action, form, viewer.display_name)
    try:
        records.act(session, viewer, dispatch_id, event, now=now)
    except lifecycle.InvalidTransition as exc:
        # Someone else was quicker, or the page was stale: say who did what, change nothing.
        return render(
            request, "error.html", viewer=viewer, status_code=409, title_key="dispatch",
            message=str(exc), back=f"/care/dispatches/{dispatch_id}",
        )  # fmt: skip
    back = form.get("back", "")
    target = "/care" if back == "list" else f"/care/dispatches/{dispatch_id}"
    return RedirectResponse(target, status_code=303)


@router.get("/households/{household_id}")
def household_detail(
    request: Request, session: SessionDep, viewer: ViewerDep, now: NowDep, household_id: str
) -> HTMLResponse:
    page = records.household_page(session, viewer, household_id, now=now)
    return render(request, "care_household.html", viewer=viewer, page=page)


@router.post("/households/{household_id}/guardian-consent")
def guardian_consent(
    session: SessionDep, viewer: ViewerDep, now: NowDep, form: FormDep, household_id: str
) -> RedirectResponse:
    """``agreed`` = ``1`` (the resident agreed the guardian is told) or ``0`` (withdrawn)."""
    agreed = form.get("agreed", "")
    if agreed not in ("0", "1"):
        raise records.BadForm("agreed must be 1 or 0")
    records.set_guardian_consent(session, viewer, household_id, agreed == "1", now=now)
    return RedirectResponse(f"/care/households/{household_id}", status_code=303)


@router.post("/households/{household_id}/notes")
def add_note(
    session: SessionDep, viewer: ViewerDep, now: NowDep, form: FormDep, household_id: str
) -> RedirectResponse:
    try:
        records.add_household_note(session, viewer, household_id, form.get("text", ""), now=now)
    except ValueError as exc:
        raise records.BadForm(str(exc)) from exc
    return RedirectResponse(f"/care/households/{household_id}", status_code=303)
