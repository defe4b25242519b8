"""External life signs over the API reach the real silence runtime; staff read flags and tickets."""

from __future__ import annotations

import datetime as dt

from fastapi import FastAPI
from fastapi.testclient import TestClient

from collector.domain.silence import LifeSignKind
from collector.silence_runtime import SilenceRuntime, SilenceRuntimeSettings
from collector.store.db import Database
from collector.store.silence import TechnicianTicket
from tests.collector.helpers import NOW, register_homes

URL = "/api/v1/households/h-1/life-signs"


def test_a_phone_used_signal_restarts_the_quiet_stretch(
    app: FastAPI, client: TestClient, database: Database
) -> None:
    register_homes(database, ("dev-1",))
    silence = SilenceRuntime(
        database,
        on_flag=lambda *_: None,
        settings=SilenceRuntimeSettings(learn=False),
        clock=lambda: NOW,
    )
    silence.restore()
    app.state.silence = silence
    at = NOW.astimezone(dt.timezone(dt.timedelta(hours=9)))  # a feed in Korean time
    response = client.post(URL, json={"source": "telecom", "at": at.isoformat()})
    assert response.status_code == 202, response.text
    assert response.json()["kind"] == LifeSignKind.EXTERNAL.value
    deadline = silence.tracker.deadline("h-1")
    assert deadline is not None and deadline.due_s == (NOW + dt.timedelta(hours=48)).timestamp()


def test_bad_signals_are_refused_with_the_reason(
    app: FastAPI, client: TestClient, database: Database
) -> None:
    register_homes(database, ("dev-1",))
    app.state.silence = None  # a collector whose schedule is not running
    assert client.post(URL, json={"source": "telecom", "at": NOW.isoformat()}).status_code == 503
    app.state.silence = SilenceRuntime(database, on_flag=lambda *_: None)
    naive = client.post(URL, json={"source": "telecom", "at": "2026-11-24T03:00:00"})
    assert naive.status_code == 422 and "zone" in naive.text
    future = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    late = client.post(URL, json={"source": "smart_meter", "at": future.isoformat()})
    # a feed's clock ahead is overruled, not trusted: the sign counts at the receive time
    assert late.status_code == 202 and "future" in late.json()["corrected"]
    assert dt.datetime.fromisoformat(late.json()["at"]) < future
    unknown = client.post(
        "/api/v1/households/h-9/life-signs", json={"source": "other", "at": NOW.isoformat()}
    )
    assert unknown.status_code == 404
    assert client.post(URL, json={"source": "gps", "at": NOW.isoformat()}).status_code == 422


def test_the_token_is_required(anonymous: TestClient) -> None:
    assert anonymous.post(URL, json={"source": "telecom", "at": NOW.isoformat()}).status_code == 401


def test_staff_see_flags_with_their_reason_and_open_tickets(
    client: TestClient, database: Database
) -> None:
    register_homes(database, ("dev-1",))
    silence = SilenceRuntime(
        database,
        on_flag=lambda *_: None,
        settings=SilenceRuntimeSettings(learn=False),
        clock=lambda: NOW + dt.timedelta(hours=49),
    )
    silence.restore()
    assert len(silence.tick()) == 1
    with database.session() as s:
        s.add(
            TechnicianTicket(
                device_id="dev-1",
                household_id="h-1",
                kind="offline",
                detail="heartbeats stopped",
                opened_at=NOW,
            )
        )
    flags = client.get("/api/v1/silence-flags", params={"household_id": "h-1"}).json()
    assert flags["count"] == 1
    flag = flags["data"][0]
    assert (flag["limit"], flag["period_h"], flag["status"]) == ("period", 48.0, "open")
    assert "48시간" in flag["why"]
    assert client.get("/api/v1/silence-flags", params={"status": "closed"}).json()["count"] == 0
    tickets = client.get("/api/v1/technician-tickets").json()
    assert [t["kind"] for t in tickets["data"]] == ["offline"]


def add_ticket(database: Database, kind: str = "offline", device: str = "dev-1") -> int:
    with database.session() as s:
        ticket = TechnicianTicket(
            device_id=device,
            household_id=f"h-{device.split('-')[1]}",
            kind=kind,
            detail="heartbeats stopped",
            opened_at=NOW,
        )
        s.add(ticket)
        s.flush()
        return ticket.id


def test_staff_filter_and_close_tickets_by_hand(client: TestClient, database: Database) -> None:
    register_homes(database, ("dev-1", "dev-2"))
    first = add_ticket(database)
    add_ticket(database, "outbox_backlog", "dev-2")
    listed = client.get("/api/v1/technician-tickets", params={"kind": "outbox_backlog"}).json()
    assert [(t["device_id"], t["status"]) for t in listed["data"]] == [("dev-2", "open")]
    by_home = client.get("/api/v1/technician-tickets", params={"household_id": "h-1"}).json()
    assert [t["id"] for t in by_home["data"]] == [first]
    closed = client.post(
        f"/api/v1/technician-tickets/{first}/close",
        json={"by": "박기사", "note": "전원 어댑터 교체"},
    )
    assert closed.status_code == 200, closed.text
    body = closed.json()
    assert body["status"] == "closed" and body["close_detail"] == "박기사: 전원 어댑터 교체"
    assert body["closed_at"] is not None
    again = client.post(
        f"/api/v1/technician-tickets/{first}/close", json={"by": "박기사", "note": "다시"}
    )
    assert again.status_code == 409
    assert client.get(f"/api/v1/technician-tickets/{first}").json()["status"] == "closed"
    everything = client.get("/api/v1/technician-tickets", params={"open": "false"}).json()
    assert everything["count"] == 2
    assert client.get("/api/v1/technician-tickets").json()["count"] == 1  # open ones only


def test_bad_ticket_requests_are_refused(
    client: TestClient, anonymous: TestClient, database: Database
) -> None:
    register_homes(database, ("dev-1",))
    ticket = add_ticket(database)
    url = f"/api/v1/technician-tickets/{ticket}/close"
    assert anonymous.post(url, json={"by": "a", "note": "b"}).status_code == 401
    assert anonymous.get("/api/v1/technician-tickets").status_code == 401
    assert (
        client.post(
            "/api/v1/technician-tickets/999/close", json={"by": "a", "note": "b"}
        ).status_code
        == 404
    )
    assert client.get("/api/v1/technician-tickets/0").status_code == 422
    assert client.post(url, json={"by": "a"}).status_code == 422  # a note is required
    assert client.post(url, json={"by": "a", "note": "x" * 501}).status_code == 422
    assert client.post(url, json={"by": "a", "note": "b", "extra": 1}).status_code == 422
    assert client.get("/api/v1/technician-tickets", params={"kind": "bogus"}).status_code == 422
    assert client.get("/api/v1/technician-tickets", params={"device_id": "../x"}).status_code == 422
    assert client.get(f"/api/v1/technician-tickets/{ticket}").json()["status"] == "open"
