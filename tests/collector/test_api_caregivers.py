"""Caregivers: create and list, with how many households each looks after."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient


def caregiver(**overrides: Any) -> dict[str, Any]:
    body = {
        "name": "김미영",
        "phone": "010-0000-1001",
        "email": "miyoung@example.org",
        "district": "seodaemun",
    }
    return body | overrides


def test_create_then_list(client: TestClient) -> None:
    created = client.post("/api/v1/caregivers", json=caregiver(name="  김미영 "))
    assert created.status_code == 201
    body = created.json()
    assert body["name"] == "김미영"
    assert body["active"] is True
    assert body["household_count"] == 0
    listed = client.get("/api/v1/caregivers").json()
    assert listed == {"data": [body], "count": 1, "limit": 100, "offset": 0, "next_cursor": None}


def test_list_by_district_counts_households(client: TestClient) -> None:
    first = client.post("/api/v1/caregivers", json=caregiver()).json()
    client.post("/api/v1/caregivers", json=caregiver(district="mapo", email="b@example.org"))
    household = {"id": "h0001", "district": "seodaemun", "resident_name": "박순자"}
    assert client.post("/api/v1/households", json=household).status_code == 201
    page = client.get("/api/v1/caregivers", params={"district": "seodaemun"}).json()
    assert page["count"] == 1
    assert page["data"][0]["id"] == first["id"]
    assert page["data"][0]["household_count"] == 1


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("email", "not-an-address"),
        ("phone", "call me"),
        ("district", "서대문구"),
        ("name", "   "),
    ],
)
def test_bad_fields_are_422_and_named(client: TestClient, field: str, value: str) -> None:
    response = client.post("/api/v1/caregivers", json=caregiver(**{field: value}))
    assert response.status_code == 422
    assert [e["loc"] for e in response.json()["detail"]] == [["body", field]]


def test_missing_and_unknown_fields_are_422(client: TestClient) -> None:
    body = caregiver(mobile="010-1234-5678")
    del body["phone"]
    response = client.post("/api/v1/caregivers", json=body)
    assert response.status_code == 422
    errors = {(e["type"], e["loc"][-1]) for e in response.json()["detail"]}
    assert errors == {("missing", "phone"), ("extra_forbidden", "mobile")}
