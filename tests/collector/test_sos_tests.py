"""Test SOS through the service (SQLite and PostgreSQL) and the API: recorded, acknowledged,
counted apart, no dispatch, no notification; staff mark a real SOS dispatch as a test."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from collector.store.db import Database
from collector.store.models import Dispatch, EventRecord, Notification
from firmware_config.messages import SosAck, SosEvent
from firmware_config.topics import Channel
from tests.collector.helpers import NOW
from tests.collector.test_service import ADDR, service


def count(db: Database, model: type, *where: object) -> int:
    with db.session() as s:
        return int(s.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def test_sos(seq: int = 1) -> SosEvent:
    return SosEvent(device_ts=NOW.timestamp(), seq=seq, source="button", test=True)


test_sos.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test


def test_a_test_sos_is_recorded_and_acked_but_dispatches_nobody(database: Database) -> None:
    svc = service(database)
    event = test_sos()
    out = svc.handle(ADDR.topic(Channel.SOS), event.to_payload(), NOW)
    assert out.kind == "sos_test" and not out.notify and out.dispatch_id is None
    [(address, ack)] = out.commands
    assert address == ADDR and isinstance(ack, SosAck) and ack.sos_id == event.message_id
    assert count(database, Dispatch) == 0
    assert count(database, Notification) == 0
    assert count(database, EventRecord, EventRecord.kind == "sos_test") == 1
    assert count(database, EventRecord, EventRecord.kind == "sos") == 0
    assert svc.counts == {"sos_test": 1}

    # Redelivered (the ack was lost): acked again with the same ids, nothing else happens.
    again = svc.handle(ADDR.topic(Channel.SOS), event.to_payload(), NOW)
    assert again.kind == "duplicate"
    [(_, second)] = again.commands
    assert isinstance(second, SosAck)
    assert (second.sos_id, second.dispatch_id) == (ack.sos_id, ack.dispatch_id)
    assert count(database, EventRecord) == 1 and count(database, Dispatch) == 0


def test_a_real_sos_still_dispatches(database: Database) -> None:
    svc = service(database)
    real = SosEvent(device_ts=NOW.timestamp(), seq=2, source="button")
    assert real.test is False
    out = svc.handle(ADDR.topic(Channel.SOS), real.to_payload(), NOW)
    assert out.kind == "sos" and out.dispatch_id is not None and out.notify


def test_staff_see_test_sos_and_counts_apart(database: Database, client: TestClient) -> None:
    svc = service(database)
    event = test_sos()
    svc.handle(ADDR.topic(Channel.SOS), event.to_payload(), NOW)
    real = SosEvent(device_ts=NOW.timestamp(), seq=2, source="voice", phrase="살려줘")
    dispatch_id = svc.handle(ADDR.topic(Channel.SOS), real.to_payload(), NOW).dispatch_id

    listed = client.get("/api/v1/sos-tests", params={"device_id": ADDR.device})
    assert listed.status_code == 200
    [item] = listed.json()
    assert item["message_id"] == event.message_id and item["dispatched"] is False
    assert client.get("/api/v1/sos-tests", params={"device_id": "other"}).json() == []

    report = client.get("/api/v1/reports/sos").json()
    assert report["sos_events"] == 1 and report["test_sos_events"] == 1
    assert report["sos_dispatches"] == 1 and report["sos_dispatches_marked_test"] == 0

    marked = client.post(f"/api/v1/dispatches/{dispatch_id}/mark-test", json={"by": "구청"})
    assert marked.status_code == 200, marked.text
    body = marked.json()
    assert (body["status"], body["outcome"], body["acknowledged_by"]) == (
        "resolved",
        "test",
        "구청",
    )
    with database.session() as s:
        stored = s.get(Dispatch, dispatch_id)
        assert stored is not None and stored.next_escalation_at is None  # escalation stopped
    again = client.post(f"/api/v1/dispatches/{dispatch_id}/mark-test", json={})
    assert again.status_code == 200 and again.json()["resolved_at"] == body["resolved_at"]

    report = client.get("/api/v1/reports/sos").json()
    assert report["sos_dispatches_marked_test"] == 1 and report["sos_dispatches_real"] == 0
    assert (
        client.get("/api/v1/reports/sos", params={"district": "elsewhere"}).json()["sos_events"]
        == 0
    )
    assert client.post("/api/v1/dispatches/9999/mark-test", json={}).status_code == 404
