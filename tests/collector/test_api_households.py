"""Households: create (with caregiver assignment), list, get with devices and dispatches."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from collector.domain.assignment import CAPACITY
from collector.store.db import Database
from collector.store.models import Household
from tests.collector.helpers import NOW


def add_caregiver(client: TestClient, district: str = "seodaemun", **extra: Any) -> int:
    body = {
        "name": "김미영",
        "phone": "010-0000-1001",
        "email": f"cg{district}@example.org",
        "district": district,
    }
    response = client.post("/api/v1/caregivers", json=body | extra)
    assert response.status_code == 201, response.text
    caregiver_id: int = response.json()["id"]
    return caregiver_id


def household(id: str = "h0001", **overrides: Any) -> dict[str, Any]:
    body = {
        "id": id,
        "district": "seodaemun",
        "resident_name": "박순자",
        "address": "서울특별시 서대문구 연희로 12",
        "latitude": 37.57,
        "longitude": 126.93,
        "guardian_name": "박민수",
        "guardian_phone": "010-0000-2001",
        "guardian_email": "minsu@example.org",
        "silence_period_h": 36,
        "risk_level": "orange",
    }
    return body | overrides


def fill(database: Database, caregiver_id: int, count: int, district: str = "seodaemun") -> None:
    """Give ``caregiver_id`` ``count`` households straight in the database."""
    with database.session() as session:
        session.add_all(
            Household(
                id=f"full-{caregiver_id}-{n}",
                district=district,
                resident_name="이말순",
                caregiver_id=caregiver_id,
                created_at=NOW,
            )
            for n in range(count)
        )


def test_the_residents_consent_to_tell_the_guardian_is_stored_and_shown(
    client: TestClient,
) -> None:
    caregiver_id = add_caregiver(client)
    body = household(caregiver_id=caregiver_id, guardian_opt_in=True)
    assert client.post("/api/v1/households", json=body).json()["guardian_opt_in"] is True
    assert client.get("/api/v1/households/h0001").json()["guardian_opt_in"] is True


def test_create_with_explicit_caregiver_then_get(client: TestClient) -> None:
    caregiver_id = add_caregiver(client)
    created = client.post("/api/v1/households", json=household(caregiver_id=caregiver_id))
    assert created.status_code == 201
    body = created.json()
    assert body["caregiver_id"] == caregiver_id
    assert body["risk_level"] == "orange"
    assert body["guardian_opt_in"] is False  # a recorded guardian is not told until consent
    assert body["created_at"].endswith("Z") or body["created_at"].endswith("+00:00")

    detail = client.get("/api/v1/households/h0001").json()
    assert {k: detail[k] for k in body} == body
    assert detail["caregiver"]["id"] == caregiver_id
    assert detail["caregiver"]["household_count"] == 1
    assert detail["devices"] == []
    assert detail["recent_dispatches"] == []


def test_create_assigns_the_least_loaded_caregiver(client: TestClient, database: Database) -> None:
    busy = add_caregiver(client)
    free = add_caregiver(client, email="free@example.org")
    add_caregiver(client, district="mapo")  # another district's is never chosen
    fill(database, busy, 3)
    response = client.post("/api/v1/households", json=household())
    assert response.status_code == 201
    assert response.json()["caregiver_id"] == free


def test_inactive_caregivers_are_not_assigned(client: TestClient) -> None:
    add_caregiver(client, active=False)
    active = add_caregiver(client, email="active@example.org")
    assert client.post("/api/v1/households", json=household()).json()["caregiver_id"] == active


def test_create_is_409_when_every_caregiver_is_full(client: TestClient, database: Database) -> None:
    caregiver_id = add_caregiver(client)
    fill(database, caregiver_id, CAPACITY)
    response = client.post("/api/v1/households", json=household())
    assert response.status_code == 409
    assert "already look after 100 households" in response.json()["detail"]
    assert client.get("/api/v1/households/h0001").status_code == 404


def test_create_is_409_when_the_district_has_no_caregiver(client: TestClient) -> None:
    add_caregiver(client, district="mapo")
    response = client.post("/api/v1/households", json=household())
    assert response.status_code == 409
    assert "has no active caregiver" in response.json()["detail"]


def test_a_named_caregiver_may_go_over_capacity(client: TestClient, database: Database) -> None:
    caregiver_id = add_caregiver(client)
    fill(database, caregiver_id, CAPACITY)
    response = client.post("/api/v1/households", json=household(caregiver_id=caregiver_id))
    assert response.status_code == 201


def test_unknown_or_inactive_named_caregiver(client: TestClient) -> None:
    response = client.post("/api/v1/households", json=household(caregiver_id=999))
    assert response.status_code == 404
    assert response.json() == {"detail": "caregiver 999 not found"}
    inactive = add_caregiver(client, active=False)
    response = client.post("/api/v1/households", json=household(caregiver_id=inactive))
    assert response.status_code == 409


def test_duplicate_household_is_409(client: TestClient) -> None:
    add_caregiver(client)
    assert client.post("/api/v1/households", json=household()).status_code == 201
    response = client.post("/api/v1/households", json=household(resident_name="다른 분"))
    assert response.status_code == 409
    assert response.json() == {"detail": "household 'h0001' already exists"}


def test_unknown_household_is_404(client: TestClient) -> None:
    response = client.get("/api/v1/households/nobody")
    assert response.status_code == 404
    assert response.json() == {"detail": "household 'nobody' not found"}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("id", "H 1/#"),
        ("latitude", 91),
        ("silence_period_h", 0),
        ("risk_level", "purple"),
        ("guardian_email", "nobody"),
        ("caregiver_id", "someone"),
    ],
)
def test_bad_fields_are_422_and_named(client: TestClient, field: str, value: Any) -> None:
    response = client.post("/api/v1/households", json=household(**{field: value}))
    assert response.status_code == 422
    assert [e["loc"] for e in response.json()["detail"]] == [["body", field]]


def test_unknown_fields_are_refused(client: TestClient) -> None:
    response = client.post("/api/v1/households", json=household(caregiver="김미영"))
    assert response.status_code == 422
    assert response.json()["detail"][0]["type"] == "extra_forbidden"


def test_body_that_is_not_json_is_422(client: TestClient) -> None:
    response = client.post(
        "/api/v1/households", content=b"id=h1", headers={"Content-Type": "text/plain"}
    )
    assert response.status_code == 422


def test_list_filters_by_district_and_pages(client: TestClient) -> None:
    add_caregiver(client)
    add_caregiver(client, district="mapo")
    for n in range(5):
        client.post("/api/v1/households", json=household(f"h{n:04d}"))
    client.post("/api/v1/households", json=household("m0001", district="mapo"))

    everything = client.get("/api/v1/households").json()
    assert everything["count"] == 6

    page = client.get(
        "/api/v1/households", params={"district": "seodaemun", "limit": 2, "offset": 2}
    )
    body = page.json()
    assert (body["count"], body["limit"], body["offset"]) == (5, 2, 2)
    assert [h["id"] for h in body["data"]] == ["h0002", "h0003"]

    last = client.get("/api/v1/households", params={"district": "seodaemun", "offset": 4}).json()
    assert [h["id"] for h in last["data"]] == ["h0004"]


@pytest.mark.parametrize(
    "params", [{"limit": 501}, {"limit": 0}, {"offset": -1}, {"limit": "many"}]
)
def test_paging_limits_are_422(client: TestClient, params: dict[str, Any]) -> None:
    response = client.get("/api/v1/households", params=params)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", next(iter(params))]


def test_limit_500_is_allowed(client: TestClient) -> None:
    assert client.get("/api/v1/households", params={"limit": 500}).status_code == 200
