"""The supervisor's office pages over the real app and database (SQLite and PostgreSQL): texts
from unknown numbers (assign to a household, or close), and assignment (pins, backups, the
stable run). Scoped to the supervisor's district, CSRF-checked, audited."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from fastapi.testclient import TestClient
from sqlalchemy import select

from collector.domain.dispatch import Contact
from collector.domain.escalation import EscalationPolicy
from collector.domain.office_hours import OfficeCalendar
from collector.service import Service
from collector.store.accounts import AuditEntry
from collector.store.db import Database
from collector.store.models import (
    Caregiver,
    Dispatch,
    DispatchReason,
    Household,
    Notification,
    ServiceRequest,
)
from tests.web.conftest import NOW, Seeded, csrf_of

Login = Callable[[str], TestClient]
RECEIVED = NOW - dt.timedelta(hours=2)  # Tuesday 10:00 KST


def add_text(
    db: Database, district: str, text: str, *, household: str | None = None, sender: str = "0109"
) -> int:
    with db.session() as s:
        row = ServiceRequest(
            message_id=f"sms:{district}:{text}",
            channel="sms",
            household_id=household,
            district=district,
            sender=sender,
            text=text,
            received_at=RECEIVED,
            due_at=OfficeCalendar().add_working_days(RECEIVED, 1),
            routed_to="nobody" if household is None else "caregiver",
        )
        s.add(row)
        s.flush()
        return row.id


def actions(db: Database, action: str) -> list[AuditEntry]:
    with db.session() as s:
        rows = s.scalars(select(AuditEntry).where(AuditEntry.action == action)).all()
        s.expunge_all()
        return list(rows)


def test_texts_from_unknown_numbers_are_listed_assigned_and_closed(
    login: Login, database: Database, seeded: Seeded
) -> None:
    lost = add_text(database, "seodaemun", "어머니께 전화 부탁드립니다", sender="01055556666")
    spam = add_text(database, "seodaemun", "광고: 대출 상담")
    mapo = add_text(database, "mapo", "마포 문자")
    matched = add_text(database, "seodaemun", "이미 맞춘 문자", household="h-a1")
    supervisor = login("sup-seo")
    page = supervisor.get("/texts")
    assert page.status_code == 200
    assert f'id="text-{lost}"' in page.text and f'id="text-{spam}"' in page.text
    assert f'id="text-{mapo}"' not in page.text, "another district's text"
    assert f'id="text-{matched}"' not in page.text, "a text matched on arrival is a dispatch"
    assert 'href="tel:01055556666"' in page.text
    [view] = actions(database, "view_texts")
    assert view.district == "seodaemun" and view.detail == f"{lost},{spam}"
    assert login("care-a").get("/texts").status_code == 403
    assert login("tech").get("/texts").status_code == 403
    assert supervisor.get("/texts?district=mapo").status_code == 403
    csrf = csrf_of(page.text)
    # Refused: no CSRF token; another district's text; a household of another district; none.
    assert supervisor.post(f"/texts/{lost}/assign", data={"household": "h-a1"}).status_code == 403
    assert (
        supervisor.post(
            f"/texts/{mapo}/assign", data={"csrf": csrf, "household": "h-m1"}
        ).status_code
        == 404
    )
    wrong = supervisor.post(f"/texts/{lost}/assign", data={"csrf": csrf, "household": "h-m1"})
    assert wrong.status_code == 403
    none = supervisor.post(f"/texts/{lost}/assign", data={"csrf": csrf, "household": "h-zz"})
    assert none.status_code == 400
    assert actions(database, "assign_text") == []
    # Assigned to h-a1: a request dispatch for its caregiver, due a working day after arrival.
    done = supervisor.post(
        f"/texts/{lost}/assign",
        data={"csrf": csrf, "household": " h-a1 "},
        follow_redirects=False,
    )
    assert done.status_code == 303
    with database.session() as s:
        row = s.get(ServiceRequest, lost)
        assert row is not None and row.household_id == "h-a1" and row.handled_by == "sup-seo"
        assert row.dispatch_id is not None
        dispatch = s.get(Dispatch, row.dispatch_id)
        assert dispatch is not None and dispatch.reason is DispatchReason.REQUEST
        assert dispatch.caregiver_id == seeded.caregivers["care-a"]
        assert dispatch.note == "어머니께 전화 부탁드립니다"
        assert dispatch.next_escalation_at == OfficeCalendar().add_working_days(RECEIVED, 1)
        told = s.scalars(
            select(Notification.recipient_role).where(Notification.dispatch_id == dispatch.id)
        ).all()
        assert set(told) == {"caregiver"}
        dispatch_id = dispatch.id
    assert done.headers["location"] == f"/texts?assigned={dispatch_id}"
    [entry] = actions(database, "assign_text")
    assert (entry.actor, entry.household_id, entry.dispatch_id) == ("sup-seo", "h-a1", dispatch_id)
    # The caregiver finds it among their dispatches; a second assignment is refused.
    assert f"/care/dispatches/{dispatch_id}" in login("care-a").get("/care").text
    again = supervisor.post(f"/texts/{lost}/assign", data={"csrf": csrf, "household": "h-a2"})
    assert again.status_code == 409
    # Closed with a reason; an empty reason is refused.
    empty = supervisor.post(f"/texts/{spam}/close", data={"csrf": csrf, "note": "  "})
    assert empty.status_code == 400
    closed = supervisor.post(f"/texts/{spam}/close", data={"csrf": csrf, "note": "광고 문자"})
    assert closed.status_code == 200  # followed the redirect back to the list
    assert f'id="text-{spam}"' not in closed.text and f'id="text-{lost}"' not in closed.text
    history = supervisor.get("/texts?handled=true").text
    assert f'id="text-{spam}"' in history and "광고 문자" in history
    assert f'id="text-{lost}"' in history and f"#{dispatch_id}" in history
    [entry] = actions(database, "close_text")
    assert entry.detail == f"text {spam}" and entry.district == "seodaemun"
    # An admin picks the district.
    admin = login("admin")
    assert f'id="text-{mapo}"' in admin.get("/texts?district=mapo").text


def test_a_supervisor_pins_households_sets_backups_and_runs_the_assignment(
    login: Login, database: Database, seeded: Seeded
) -> None:
    a, b, m = (seeded.caregivers[k] for k in ("care-a", "care-b", "care-m"))
    supervisor = login("sup-seo")
    page = supervisor.get("/assignment")
    assert page.status_code == 200
    assert f'id="caregiver-{a}"' in page.text and f'id="caregiver-{b}"' in page.text
    assert f'id="caregiver-{m}"' not in page.text, "another district's caregiver"
    assert login("care-a").get("/assignment").status_code == 403
    assert supervisor.get("/assignment?district=mapo").status_code == 403
    looked = supervisor.get("/assignment?household=h-a1").text
    assert 'data-household="h-a1"' in looked and 'data-pinned="false"' in looked
    assert 'data-household="h-m1"' not in supervisor.get("/assignment?household=h-m1").text
    csrf = csrf_of(looked)
    # Pin h-a1 to 박정호: refused without CSRF, for a mapo caregiver, for a mapo household.
    assert supervisor.post("/assignment/pin", data={"household": "h-a1"}).status_code == 403
    other = supervisor.post(
        "/assignment/pin", data={"csrf": csrf, "household": "h-a1", "caregiver": str(m)}
    )
    assert other.status_code == 400
    foreign = supervisor.post(
        "/assignment/pin", data={"csrf": csrf, "household": "h-m1", "caregiver": str(a)}
    )
    assert foreign.status_code == 403
    pinned = supervisor.post(
        "/assignment/pin",
        data={"csrf": csrf, "household": "h-a1", "caregiver": str(b)},
        follow_redirects=False,
    )
    assert (pinned.status_code, pinned.headers["location"]) == (303, "/assignment?household=h-a1")
    with database.session() as s:
        home = s.get(Household, "h-a1")
        assert home is not None and home.caregiver_id == b and home.caregiver_pinned
    [entry] = actions(database, "pin_household")
    assert entry.household_id == "h-a1" and entry.detail == f"pinned to caregiver {b} (was {a})"
    assert 'id="pin-h-a1"' in supervisor.get("/assignment").text
    # Backups: 김지원 stands in for 박정호; nobody is their own backup.
    selfish = supervisor.post(
        "/assignment/backup", data={"csrf": csrf, "caregiver": str(b), "backup": str(b)}
    )
    assert selfish.status_code == 400
    saved = supervisor.post(
        "/assignment/backup", data={"csrf": csrf, "caregiver": str(b), "backup": str(a)}
    )
    assert saved.status_code == 200 and f'id="caregiver-{b}" data-backup="{a}"' in saved.text
    # The stable run keeps the pin and the backup; a preview saves nothing.
    preview = supervisor.post("/assignment/run", data={"csrf": csrf, "dry_run": "1"})
    assert preview.status_code == 200 and actions(database, "assign_district") == []
    run = supervisor.post("/assignment/run", data={"csrf": csrf, "dry_run": "0"})
    assert run.status_code == 200
    with database.session() as s:
        home = s.get(Household, "h-a1")
        assert home is not None and home.caregiver_id == b
        carer = s.get(Caregiver, b)
        assert carer is not None and carer.backup_id == a
    assert [e.district for e in actions(database, "assign_district")] == ["seodaemun"]
    # Releasing the pin.
    supervisor.post("/assignment/pin", data={"csrf": csrf, "household": "h-a1", "caregiver": ""})
    with database.session() as s:
        home = s.get(Household, "h-a1")
        assert home is not None and not home.caregiver_pinned
    assert 'id="pin-h-a1"' not in supervisor.get("/assignment").text
    # An admin may work on any district.
    assert f'id="caregiver-{m}"' in login("admin").get("/assignment?district=mapo").text


def test_a_text_left_waiting_past_its_day_shows_that_the_supervisor_was_told(
    login: Login, database: Database, seeded: Seeded
) -> None:
    waiting = add_text(database, "seodaemun", "연락 주세요")
    due = OfficeCalendar().add_working_days(RECEIVED, 1)
    staff = Contact("staff", "동주민센터", None, "staff@example.org")
    assert Service(database, escalation_policy=EscalationPolicy(staff=staff)).escalate_due(due) == 1
    page = login("sup-seo").get("/texts").text
    assert f'id="text-{waiting}"' in page
    assert "담당 과장에게 알림" in page
