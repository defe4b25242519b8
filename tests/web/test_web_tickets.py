"""The technician tickets page: who sees which tickets, and closing one by hand (audited)."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient
from sqlalchemy import select

from collector.store.accounts import AuditEntry
from collector.store.db import Database
from collector.store.silence import TechnicianTicket
from tests.web.conftest import NOW, Seeded, csrf_of

Login = Callable[[str], TestClient]


def add_ticket(db: Database, household: str, kind: str = "offline") -> int:
    with db.session() as s:
        ticket = TechnicianTicket(
            device_id=f"d-{household}",
            household_id=household,
            kind=kind,
            detail="no heartbeat for 900 s",
            opened_at=NOW,
        )
        s.add(ticket)
        s.flush()
        return ticket.id


def test_scope_and_closing_a_ticket_by_hand(
    login: Login, database: Database, seeded: Seeded
) -> None:
    seo = add_ticket(database, "h-a1")
    mapo = add_ticket(database, "h-m1", "outbox_backlog")
    supervisor = login("sup-seo")
    page = supervisor.get("/tickets")
    assert page.status_code == 200
    assert f'id="ticket-{seo}"' in page.text and f'id="ticket-{mapo}"' not in page.text
    assert "기기 꺼짐" in page.text
    tech = login("tech")  # a technician without a district: every district, no resident
    page = tech.get("/tickets")
    assert f'id="ticket-{seo}"' in page.text and f'id="ticket-{mapo}"' in page.text
    assert "어르신" not in page.text
    assert login("care-a").get("/tickets").status_code == 403
    # Another district's ticket cannot be closed by this supervisor.
    refused = supervisor.post(
        f"/tickets/{mapo}/close",
        data={"csrf": csrf_of(supervisor.get("/tickets").text), "note": "x"},
    )
    assert refused.status_code == 404
    empty = tech.post(f"/tickets/{seo}/close", data={"csrf": csrf_of(page.text), "note": " "})
    assert empty.status_code == 400
    stale = tech.post(f"/tickets/{seo}/close", data={"csrf": "wrong", "note": "교체"})
    assert stale.status_code == 403
    done = tech.post(
        f"/tickets/{seo}/close",
        data={"csrf": csrf_of(page.text), "note": "전원 어댑터 교체"},
        follow_redirects=False,
    )
    assert (done.status_code, done.headers["location"]) == (303, "/tickets")
    with database.session() as s:
        ticket = s.get(TechnicianTicket, seo)
        assert ticket is not None and ticket.closed_at is not None
        assert ticket.close_detail == "tech: 전원 어댑터 교체"
        [entry] = s.scalars(select(AuditEntry).where(AuditEntry.action == "close_ticket")).all()
        assert entry.actor == "tech" and entry.household_id == "h-a1"
    assert f'id="ticket-{seo}"' not in tech.get("/tickets").text
    closed_too = tech.get("/tickets?closed=true").text
    assert f'id="ticket-{seo}"' in closed_too and "전원 어댑터 교체" in closed_too


def test_a_technician_lands_on_the_tickets(app: object, seeded: Seeded) -> None:
    from tests.web.conftest import log_in

    with TestClient(app) as client:  # type: ignore[arg-type]
        assert log_in(client, "tech").headers["location"] == "/tickets"
