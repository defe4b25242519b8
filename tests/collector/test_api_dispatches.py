"""Dispatches over HTTP: list and filter, detail with notifications, acknowledge and resolve."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from collector.api import crud
from collector.api.deps import utc_now
from collector.domain.lifecycle import Acknowledge, InvalidTransition, Outcome, Resolve
from collector.store.db import Database
from collector.store.models import (
    Caregiver,
    Dispatch,
    DispatchReason,
    DispatchStatus,
    Household,
    Notification,
    NotificationStatus,
    Priority,
)

T0 = dt.datetime(2026, 3, 2, 1, 0, tzinfo=dt.UTC)
NOW = T0 + dt.timedelta(minutes=2)


@pytest.fixture
def pinned(app: FastAPI) -> Iterator[None]:
    """The API's clock reads ``NOW``."""
    app.dependency_overrides[utc_now] = lambda: NOW
    yield
    app.dependency_overrides.clear()


def add_dispatch(
    database: Database,
    household_id: str = "h0001",
    *,
    district: str = "seodaemun",
    created_at: dt.datetime = T0,
    status: DispatchStatus = DispatchStatus.OPEN,
    notifications: int = 0,
) -> int:
    """A household (made if missing) and one urgent SOS dispatch for it, due to escalate."""
    with database.session() as session:
        if session.get(Household, household_id) is None:
            caregiver = Caregiver(
                name="김미영", phone="010-0000-1001", email="my@example.org", district=district
            )
            session.add(caregiver)
            session.flush()
            session.add(
                Household(
                    id=household_id,
                    district=district,
                    resident_name="박순자",
                    caregiver_id=caregiver.id,
                    created_at=T0,
                )
            )
        dispatch = Dispatch(
            household_id=household_id,
            reason=DispatchReason.SOS,
            priority=Priority.URGENT,
            status=status,
            created_at=created_at,
            next_escalation_at=created_at + dt.timedelta(seconds=60),
        )
        session.add(dispatch)
        session.flush()
        for n in range(notifications):
            session.add(
                Notification(
                    dispatch_id=dispatch.id,
                    channel="sms",
                    purpose="sos",
                    recipient_role="caregiver",
                    recipient=f"010-0000-{n:04d}",
                    subject="[안부] 긴급 SOS",
                    body="박순자님이 도움을 요청했습니다",
                    status=NotificationStatus.SENT,
                    attempts=1,
                    created_at=created_at + dt.timedelta(seconds=n),
                    next_attempt_at=created_at,
                )
            )
        dispatch_id: int = dispatch.id
        return dispatch_id


def acknowledge(client: TestClient, dispatch_id: int, by: str = "김미영") -> Any:
    return client.post(f"/api/v1/dispatches/{dispatch_id}/acknowledge", json={"by": by})


def resolve(client: TestClient, dispatch_id: int, **body: Any) -> Any:
    return client.post(f"/api/v1/dispatches/{dispatch_id}/resolve", json=body)


def test_list_is_newest_first_and_filters(client: TestClient, database: Database) -> None:
    old = add_dispatch(database, created_at=T0)
    new = add_dispatch(database, created_at=T0 + dt.timedelta(hours=1))
    other = add_dispatch(database, "m0001", district="mapo", created_at=T0 + dt.timedelta(hours=2))
    done = add_dispatch(database, status=DispatchStatus.RESOLVED, created_at=T0 - dt.timedelta(1))

    def ids(**params: Any) -> list[int]:
        page = client.get("/api/v1/dispatches", params=params).json()
        assert page["count"] == len(page["data"]) or "limit" in params
        return [d["id"] for d in page["data"]]

    assert ids() == [other, new, old, done]
    assert ids(status="open") == [other, new, old]
    assert ids(district="seodaemun") == [new, old, done]
    assert ids(status="open", district="seodaemun") == [new, old]
    assert ids(status="resolved") == [done]
    assert ids(household_id="m0001") == [other]
    assert ids(limit=2, offset=1) == [new, old]


def test_list_items_name_the_household(client: TestClient, database: Database) -> None:
    add_dispatch(database)
    (item,) = client.get("/api/v1/dispatches").json()["data"]
    assert (item["household_id"], item["district"], item["resident_name"]) == (
        "h0001",
        "seodaemun",
        "박순자",
    )
    assert item["status"] == "open"
    assert item["created_at"] == "2026-03-02T01:00:00Z"


def test_unknown_status_filter_is_422(client: TestClient) -> None:
    response = client.get("/api/v1/dispatches", params={"status": "closed"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "status"]


def test_detail_has_the_notifications_oldest_first(client: TestClient, database: Database) -> None:
    dispatch_id = add_dispatch(database, notifications=3)
    detail = client.get(f"/api/v1/dispatches/{dispatch_id}").json()
    assert [n["recipient"] for n in detail["notifications"]] == [
        "010-0000-0000",
        "010-0000-0001",
        "010-0000-0002",
    ]
    assert detail["notifications"][0]["status"] == "sent"


def test_household_detail_shows_recent_dispatches(client: TestClient, database: Database) -> None:
    first = add_dispatch(database)
    second = add_dispatch(database, created_at=T0 + dt.timedelta(hours=1))
    detail = client.get("/api/v1/households/h0001").json()
    assert [d["id"] for d in detail["recent_dispatches"]] == [second, first]


def test_unknown_dispatch_is_404_everywhere(client: TestClient) -> None:
    assert client.get("/api/v1/dispatches/77").json() == {"detail": "dispatch 77 not found"}
    assert acknowledge(client, 77).status_code == 404
    assert resolve(client, 77, outcome="visited_ok").status_code == 404


@pytest.mark.usefixtures("pinned")
def test_acknowledge_records_who_when_and_stops_escalation(
    client: TestClient, database: Database
) -> None:
    dispatch_id = add_dispatch(database)
    response = acknowledge(client, dispatch_id, by=" 김미영 ")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "acknowledged"
    assert body["acknowledged_by"] == "김미영"
    assert body["acknowledged_at"] == "2026-03-02T01:02:00Z"
    assert body["next_escalation_at"] is None
    assert body["notifications"] == []
    with database.session() as session:
        stored = session.get(Dispatch, dispatch_id)
        assert stored is not None
        assert stored.status is DispatchStatus.ACKNOWLEDGED
        assert stored.next_escalation_at is None


@pytest.mark.usefixtures("pinned")
def test_second_acknowledge_is_409_naming_who_has_it(
    client: TestClient, database: Database
) -> None:
    dispatch_id = add_dispatch(database)
    acknowledge(client, dispatch_id, by="김미영")
    response = acknowledge(client, dispatch_id, by="박정호")
    assert response.status_code == 409
    assert response.json()["detail"] == (
        "cannot acknowledge this dispatch: it was already acknowledged by 김미영 "
        "at 2026-03-02T01:02:00+00:00"
    )


@pytest.mark.usefixtures("pinned")
def test_resolve_after_acknowledge(client: TestClient, database: Database) -> None:
    dispatch_id = add_dispatch(database)
    acknowledge(client, dispatch_id)
    response = resolve(client, dispatch_id, outcome="visited_ok", note="괜찮으심, 약 챙겨드림")
    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["outcome"], body["note"]) == (
        "resolved",
        "visited_ok",
        "괜찮으심, 약 챙겨드림",
    )
    assert body["acknowledged_by"] == "김미영"
    assert body["resolved_at"] == "2026-03-02T01:02:00Z"
    listed = client.get("/api/v1/dispatches", params={"status": "resolved"}).json()
    assert [d["id"] for d in listed["data"]] == [dispatch_id]


@pytest.mark.usefixtures("pinned")
def test_resolve_from_open_acknowledges_too(client: TestClient, database: Database) -> None:
    dispatch_id = add_dispatch(database)
    body = resolve(client, dispatch_id, outcome="false_alarm", by="박정호").json()
    assert body["status"] == "resolved"
    assert (body["acknowledged_by"], body["acknowledged_at"]) == ("박정호", "2026-03-02T01:02:00Z")
    assert body["next_escalation_at"] is None
    assert body["note"] is None


def test_resolved_is_final(client: TestClient, database: Database) -> None:
    dispatch_id = add_dispatch(database)
    resolve(client, dispatch_id, outcome="phoned_ok")
    again = resolve(client, dispatch_id, outcome="other")
    assert again.status_code == 409
    assert "already resolved (phoned_ok)" in again.json()["detail"]
    late = acknowledge(client, dispatch_id)
    assert late.status_code == 409
    assert late.json()["detail"].startswith("cannot acknowledge this dispatch")


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("acknowledge", {}, "by"),
        ("acknowledge", {"by": "  "}, "by"),
        ("acknowledge", {"by": "김미영", "when": "now"}, "when"),
        ("resolve", {"outcome": "fine"}, "outcome"),
        ("resolve", {"note": "괜찮음"}, "outcome"),
        ("resolve", {"outcome": "visited_ok", "status": "resolved"}, "status"),
        ("resolve", {"outcome": "visited_ok", "note": "x" * 4001}, "note"),
    ],
)
def test_bad_transition_bodies_are_422(
    client: TestClient, database: Database, path: str, body: dict[str, Any], field: str
) -> None:
    dispatch_id = add_dispatch(database)
    response = client.post(f"/api/v1/dispatches/{dispatch_id}/{path}", json=body)
    assert response.status_code == 422
    assert [e["loc"] for e in response.json()["detail"]] == [["body", field]]
    assert client.get(f"/api/v1/dispatches/{dispatch_id}").json()["status"] == "open"


def test_every_outcome_is_accepted(client: TestClient, database: Database) -> None:
    spec = client.get("/openapi.json").json()
    outcomes = spec["components"]["schemas"]["Outcome"]["enum"]
    assert "taken_to_hospital" in outcomes
    for outcome in outcomes:
        dispatch_id = add_dispatch(database)
        assert resolve(client, dispatch_id, outcome=outcome).json()["outcome"] == outcome


def test_two_people_acknowledging_at_once_one_wins(database: Database) -> None:
    dispatch_id = add_dispatch(database)
    with database.session() as slow:
        # Held, so the slow session keeps this stale copy (its identity map is weak).
        stale = crud.get_dispatch(slow, dispatch_id)
        assert stale.status is DispatchStatus.OPEN
        with database.session() as fast:
            crud.transition_dispatch(fast, dispatch_id, Acknowledge("김미영"), now=NOW)
        with pytest.raises(InvalidTransition, match="already acknowledged by 김미영"):
            crud.transition_dispatch(slow, dispatch_id, Acknowledge("박정호"), now=NOW)
        assert stale.acknowledged_by == "김미영"


def test_resolving_a_dispatch_someone_just_acknowledged_keeps_their_name(
    database: Database,
) -> None:
    dispatch_id = add_dispatch(database)
    with database.session() as slow:
        stale = crud.get_dispatch(slow, dispatch_id)
        assert stale.status is DispatchStatus.OPEN
        with database.session() as fast:
            crud.transition_dispatch(fast, dispatch_id, Acknowledge("김미영"), now=T0)
        event = Resolve(Outcome.PHONED_OK, None, "박정호")
        resolved = crud.transition_dispatch(slow, dispatch_id, event, now=NOW)
        assert resolved is stale
        assert (resolved.status, resolved.acknowledged_by) == (DispatchStatus.RESOLVED, "김미영")
