"""Export and deletion of a resident's data through the API, recorded in the audit log.

Real database (SQLite and PostgreSQL); the rows come from the real ingest path (``Service``).
"""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from collector.store.db import Database
from collector.store.models import (
    Caregiver,
    Device,
    DeviceDay,
    Dispatch,
    DispatchStatus,
    EventRecord,
    HeartbeatRecord,
    Household,
    Notification,
)
from firmware_config.messages import Heartbeat
from firmware_config.topics import Channel
from tests.collector.helpers import NOW
from tests.collector.test_service import ADDR, service, sos


def home_with_history(database: Database) -> int:
    """h-1 with an SOS (dispatch, notifications, event) and a heartbeat; h-2 untouched."""
    svc = service(database)
    out = svc.handle(ADDR.topic(Channel.SOS), sos().to_payload(), NOW)
    beat = Heartbeat(
        device_ts=NOW.timestamp(),
        seq=2,
        interval_s=60,
        motion_count=1,
        speech_s=0,
        wake_word_count=0,
        interactions=0,
        uptime_s=1.0,
        audio_overruns=0,
        outbox_depth=0,
        agent_version="t",
    )
    svc.handle(ADDR.topic(Channel.HEARTBEAT), beat.to_payload(), NOW)
    assert out.dispatch_id is not None
    return out.dispatch_id


def resolve(database: Database, dispatch_id: int) -> None:
    with database.session() as s:
        dispatch = s.get(Dispatch, dispatch_id)
        assert dispatch is not None
        dispatch.status = DispatchStatus.RESOLVED


def count(database: Database, model: type, **where: object) -> int:
    with database.session() as s:
        query = select(func.count()).select_from(model).filter_by(**where)
        return int(s.scalar(query) or 0)


def test_export_returns_everything_about_the_household_and_is_recorded(
    client: TestClient, database: Database
) -> None:
    dispatch_id = home_with_history(database)
    response = client.get("/api/v1/households/h-1/export", params={"reason": "req-2026-001"})
    assert response.status_code == 200
    data = response.json()
    assert data["household"]["resident_name"] == "박순자1"
    assert data["household"]["address"] == "연희로 1"
    assert [d["id"] for d in data["devices"]] == ["dev-1"]
    assert [d["id"] for d in data["dispatches"]] == [dispatch_id]
    assert len(data["notifications"]) == 3 and len(data["events"]) == 1
    # heartbeats themselves live in the time series; the store keeps the day's rollup
    assert len(data["device_days"]) == 1 and data["heartbeats"] == []
    [entry] = client.get("/api/v1/audit").json()["data"]
    assert (entry["action"], entry["household_id"], entry["reason"]) == (
        "export",
        "h-1",
        "req-2026-001",
    )
    assert entry["details"]["rows"]["notifications"] == 3
    assert "박순자" not in str(entry)  # the audit log holds no personal data


def test_deletion_is_refused_while_a_dispatch_is_open(
    client: TestClient, database: Database
) -> None:
    home_with_history(database)
    response = client.delete("/api/v1/households/h-1/personal-data")
    assert response.status_code == 409
    assert count(database, Household, id="h-1") == 1
    assert client.get("/api/v1/audit").json()["count"] == 0


def test_deletion_removes_the_household_and_its_history_only(
    client: TestClient, database: Database
) -> None:
    resolve(database, home_with_history(database))
    response = client.delete("/api/v1/households/h-1/personal-data", params={"reason": "req-7"})
    assert response.status_code == 200
    assert response.json() == {
        "notifications": 3,
        "dispatch_steps": 0,
        "events": 1,
        "dispatches": 1,
        "heartbeats": 0,
        "device_days": 1,
        "household_notes": 0,
        "devices": 1,
        "households": 1,
    }
    assert count(database, Household, id="h-1") == 0
    assert count(database, Device, household_id="h-1") == 0
    for model in (Dispatch, Notification, EventRecord, HeartbeatRecord, DeviceDay):
        assert count(database, model) == 0, model
    # the neighbour and the caregiver (staff, not the resident's data) stay
    assert count(database, Household, id="h-2") == 1
    assert count(database, Device, id="dev-2") == 1
    assert count(database, Caregiver) == 1
    assert client.get("/api/v1/households/h-1/export").status_code == 404
    audit = client.get("/api/v1/audit", params={"household_id": "h-1"}).json()
    assert [e["action"] for e in audit["data"]] == ["delete"]
    assert audit["data"][0]["details"]["rows"]["households"] == 1


def test_unknown_households_are_404_and_not_recorded(client: TestClient) -> None:
    assert client.get("/api/v1/households/nobody/export").status_code == 404
    assert client.delete("/api/v1/households/nobody/personal-data").status_code == 404
    assert client.get("/api/v1/audit").json()["count"] == 0
