"""A caregiver acts on a dispatch through the pages: the signed link from the SMS, one tap per
step, the timeline, notes, and what two caregivers tapping at once get (SQLite and PostgreSQL)."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from collector.store.accounts import AuditEntry, DispatchStep
from collector.store.db import Database
from collector.store.models import Dispatch, Household, Notification
from tests.web.conftest import csrf_of, log_in, raise_sos

Login = Callable[[str], TestClient]


def sms_link(db: Database, dispatch_id: int) -> str:
    """The path of the link in the caregiver's SMS, as the collector queued it."""
    with db.session() as s:
        body = s.scalar(
            select(Notification.body).where(
                Notification.dispatch_id == dispatch_id,
                Notification.channel == "sms",
                Notification.recipient_role == "caregiver",
            )
        )
    assert body is not None and "http://testserver/l/" in body, body
    return "/l/" + body.split("http://testserver/l/")[1].split()[0]


def test_sms_link_asks_for_a_login_then_opens_the_dispatch(
    app: FastAPI, database: Database
) -> None:
    dispatch_id = raise_sos(database, "h-a1")
    link = sms_link(database, dispatch_id)
    with TestClient(app) as phone:
        first = phone.get(link, follow_redirects=False)
        assert first.status_code == 303
        assert first.headers["location"] == f"/login?next=/care/dispatches/{dispatch_id}"
        login_page = phone.get(first.headers["location"])
        assert f"출동 #{dispatch_id}을 열려면 로그인해 주세요" in login_page.text
        done = log_in(phone, "care-a", next_path=f"/care/dispatches/{dispatch_id}")
        assert done.headers["location"] == f"/care/dispatches/{dispatch_id}"
        # Logged in, the same link goes straight to the page.
        again = phone.get(link, follow_redirects=False)
        assert again.headers["location"] == f"/care/dispatches/{dispatch_id}"


def test_a_tampered_link_is_refused_with_a_page_that_says_why(
    app: FastAPI, database: Database
) -> None:
    dispatch_id = raise_sos(database, "h-a1")
    link = sms_link(database, dispatch_id)
    forged = link.replace(f"/l/{dispatch_id}.", f"/l/{dispatch_id + 1}.")
    with TestClient(app) as phone:
        page = phone.get(forged, follow_redirects=False)
    assert page.status_code == 400
    assert "not made by this collector" in page.text


def test_the_old_unsigned_address_no_longer_404s(app: FastAPI) -> None:
    with TestClient(app) as phone:
        page = phone.get("/dispatches/1", follow_redirects=False)
    assert (page.status_code, page.headers["location"]) == (303, "/care/dispatches/1")


def test_acknowledge_on_site_resolve_one_tap_each_with_timeline_and_audit(
    login: Login, database: Database
) -> None:
    dispatch_id = raise_sos(database, "h-a1")
    phone = login("care-a")
    page = phone.get(f"/care/dispatches/{dispatch_id}")
    assert 'data-stage="raised"' in page.text
    for action, status in [("acknowledge", "acknowledged"), ("on-site", "on_site")]:
        done = phone.post(
            f"/care/dispatches/{dispatch_id}/{action}", data={"csrf": csrf_of(page.text)}
        )
        assert done.status_code == 200 and f'data-status="{status}"' in done.text
        page = done
    done = phone.post(
        f"/care/dispatches/{dispatch_id}/resolve",
        data={"csrf": csrf_of(page.text), "outcome": "help_given", "note": "장 봐드림"},
    )
    assert 'data-status="resolved"' in done.text and "도움 필요, 지원함" in done.text
    for stage in ("raised", "acknowledged", "on_site", "resolved"):
        assert f'<li data-stage="{stage}">' in done.text
    with database.session() as s:
        dispatch = s.get(Dispatch, dispatch_id)
        assert dispatch is not None
        assert (dispatch.status, dispatch.outcome, dispatch.note, dispatch.acknowledged_by) == (
            "resolved",
            "help_given",
            "장 봐드림",
            "김지원",
        )
        assert dispatch.next_escalation_at is None
        steps = s.execute(
            select(DispatchStep.step, DispatchStep.by).order_by(DispatchStep.id)
        ).all()
        assert steps == [("acknowledged", "김지원"), ("on_site", "김지원"), ("resolved", "김지원")]
        changes = s.scalars(
            select(AuditEntry.action)
            .where(AuditEntry.dispatch_id == dispatch_id, ~AuditEntry.action.like("view_%"))
            .order_by(AuditEntry.id)
        ).all()
        assert changes == ["acknowledge", "on_site", "resolved"]


def test_the_second_caregiver_to_tap_is_told_who_was_first(
    login: Login, database: Database
) -> None:
    dispatch_id = raise_sos(database, "h-a1")
    kim = login("care-a")
    boss = login("sup-seo")
    stale = boss.get(f"/care/dispatches/{dispatch_id}")  # both pages show "open"
    page = kim.get(f"/care/dispatches/{dispatch_id}")
    kim.post(f"/care/dispatches/{dispatch_id}/acknowledge", data={"csrf": csrf_of(page.text)})
    late = boss.post(
        f"/care/dispatches/{dispatch_id}/acknowledge", data={"csrf": csrf_of(stale.text)}
    )
    assert late.status_code == 409
    assert "already acknowledged by 김지원" in late.text
    with database.session() as s:
        assert len(s.scalars(select(DispatchStep)).all()) == 1


def test_resolve_needs_an_outcome_from_the_list(login: Login, database: Database) -> None:
    dispatch_id = raise_sos(database, "h-a1")
    phone = login("care-a")
    page = phone.get(f"/care/dispatches/{dispatch_id}")
    bad = phone.post(
        f"/care/dispatches/{dispatch_id}/resolve",
        data={"csrf": csrf_of(page.text), "outcome": "nap"},
    )
    assert bad.status_code == 400 and "choose an outcome" in bad.text
    assert 'data-status="open"' in phone.get(f"/care/dispatches/{dispatch_id}").text


def test_list_is_most_urgent_then_newest_first_and_notes_are_kept(
    login: Login, database: Database
) -> None:
    first = raise_sos(database, "h-a1")
    second = raise_sos(database, "h-a2")
    phone = login("care-a")
    listing = phone.get("/care").text
    assert listing.index(f"dispatch-{second}") < listing.index(f"dispatch-{first}")
    page = phone.get("/care/households/h-a1")
    assert "010-3333-4444" in page.text and "geo:" in page.text
    phone.post(
        "/care/households/h-a1/notes", data={"csrf": csrf_of(page.text), "text": "열쇠는 경비실"}
    )
    page = phone.get("/care/households/h-a1")
    assert "열쇠는 경비실" in page.text


def test_english_is_chosen_per_account(login: Login) -> None:
    phone = login("care-a")
    page = phone.get("/care")
    assert "내 출동" in page.text
    phone.post("/me/language", data={"csrf": csrf_of(page.text), "language": "en", "next": "/care"})
    assert "My dispatches" in phone.get("/care").text
    assert "내 출동" in login("care-b").get("/care").text


def test_a_change_through_the_api_is_audited_and_shown_on_the_timeline(
    app: FastAPI, login: Login, database: Database
) -> None:
    from tests.web.conftest import API_TOKEN

    dispatch_id = raise_sos(database, "h-a1")
    with TestClient(app, headers={"Authorization": f"Bearer {API_TOKEN}"}) as api:
        reply = api.post(f"/api/v1/dispatches/{dispatch_id}/acknowledge", json={"by": "상황실"})
        assert reply.status_code == 200
    with database.session() as s:
        rows = s.execute(
            select(AuditEntry.actor, AuditEntry.action).where(AuditEntry.dispatch_id == dispatch_id)
        ).all()
    assert rows == [("api-token", "acknowledge")]
    page = login("care-a").get(f"/care/dispatches/{dispatch_id}")
    assert 'data-status="acknowledged"' in page.text and "상황실" in page.text


def test_the_signed_link_is_not_written_to_the_request_log(
    app: FastAPI, database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    dispatch_id = raise_sos(database, "h-a1")
    link = sms_link(database, dispatch_id)
    token = link.removeprefix("/l/")
    with caplog.at_level(logging.INFO, logger="collector.http"), TestClient(app) as phone:
        phone.get(link, follow_redirects=False)
    paths = [getattr(r, "path", "") for r in caplog.records if r.name == "collector.http"]
    assert "/l/…" in paths
    assert all(token not in (r.getMessage() + str(r.__dict__)) for r in caplog.records)


def test_bad_input_gets_a_clear_page_and_changes_nothing(login: Login, database: Database) -> None:
    dispatch_id = raise_sos(database, "h-a1")
    phone = login("care-a")
    csrf = csrf_of(phone.get("/care").text)
    unknown = phone.post(f"/care/dispatches/{dispatch_id}/teleport", data={"csrf": csrf})
    assert unknown.status_code == 404 and "no action &#39;teleport&#39;" in unknown.text
    missing = phone.post("/care/dispatches/999/acknowledge", data={"csrf": csrf})
    assert missing.status_code == 404 and "dispatch 999 not found" in missing.text
    empty = phone.post(f"/care/dispatches/{dispatch_id}/note", data={"csrf": csrf, "note": "  "})
    assert empty.status_code == 400 and "the note is empty" in empty.text
    long_note = phone.post("/care/households/h-a1/notes", data={"csrf": csrf, "text": "가" * 4001})
    assert long_note.status_code == 400 and "at most 4000 characters" in long_note.text
    with database.session() as s:
        assert s.scalars(select(DispatchStep)).all() == []
    assert 'data-status="open"' in phone.get(f"/care/dispatches/{dispatch_id}").text


def test_the_guardians_consent_is_shown_changed_and_audited_on_the_household_page(
    login: Login, database: Database
) -> None:
    phone = login("care-a")
    page = phone.get("/care/households/h-a1")
    assert 'data-agreed="true"' in page.text and "예 (어르신 동의)" in page.text
    withdrawn = phone.post(
        "/care/households/h-a1/guardian-consent",
        data={"csrf": csrf_of(page.text), "agreed": "0"},
        follow_redirects=False,
    )
    assert withdrawn.status_code == 303
    page = phone.get("/care/households/h-a1")
    assert 'data-agreed="false"' in page.text and "아니오 (동의 없음)" in page.text
    # Another caregiver's household is not theirs to change.
    other = login("care-b")
    refused = other.post(
        "/care/households/h-a1/guardian-consent",
        data={"csrf": csrf_of(other.get("/care").text), "agreed": "1"},
        follow_redirects=False,
    )
    assert refused.status_code == 403
    with database.session() as s:
        home = s.get(Household, "h-a1")
        assert home is not None and home.guardian_opt_in is False
        entries = s.scalars(select(AuditEntry).where(AuditEntry.action == "guardian_consent")).all()
        assert [(e.actor, e.household_id, e.detail) for e in entries] == [
            ("care-a", "h-a1", "no (was yes)")
        ]
    # With no consent an SOS tells the caregiver, not the guardian.
    dispatch_id = raise_sos(database, "h-a1")
    with database.session() as s:
        roles = s.scalars(
            select(Notification.recipient_role).where(Notification.dispatch_id == dispatch_id)
        ).all()
        assert set(roles) == {"caregiver"}
