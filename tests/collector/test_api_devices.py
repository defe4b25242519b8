"""Devices: register for a household, list, get."""

from __future__ import annotations

from fastapi.testclient import TestClient


def setup_household(client: TestClient, household_id: str = "h0001") -> None:
    caregiver = {
        "name": "김미영",
        "phone": "010-0000-1001",
        "email": "miyoung@example.org",
        "district": "seodaemun",
    }
    client.post("/api/v1/caregivers", json=caregiver)
    body = {"id": household_id, "district": "seodaemun", "resident_name": "박순자"}
    assert client.post("/api/v1/households", json=body).status_code == 201


def test_register_get_and_list(client: TestClient) -> None:
    setup_household(client)
    setup_household(client, "h0002")
    created = client.post("/api/v1/devices", json={"id": "d0001", "household_id": "h0001"})
    assert created.status_code == 201
    device = created.json()
    assert device["household_id"] == "h0001"
    assert device["online"] is False
    assert device["last_seen_at"] is None
    client.post("/api/v1/devices", json={"id": "d0002", "household_id": "h0002"})

    assert client.get("/api/v1/devices/d0001").json() == device
    assert client.get("/api/v1/devices").json()["count"] == 2
    mine = client.get("/api/v1/devices", params={"household_id": "h0001"}).json()
    assert mine["data"] == [device]
    assert [d["id"] for d in client.get("/api/v1/households/h0001").json()["devices"]] == ["d0001"]


def test_register_for_unknown_household_is_404(client: TestClient) -> None:
    response = client.post("/api/v1/devices", json={"id": "d0001", "household_id": "h9999"})
    assert response.status_code == 404
    assert response.json() == {"detail": "household 'h9999' not found"}


def test_register_twice_is_409(client: TestClient) -> None:
    setup_household(client)
    client.post("/api/v1/devices", json={"id": "d0001", "household_id": "h0001"})
    response = client.post("/api/v1/devices", json={"id": "d0001", "household_id": "h0001"})
    assert response.status_code == 409
    assert response.json() == {"detail": "device 'd0001' is already registered"}


def test_unknown_device_is_404(client: TestClient) -> None:
    assert client.get("/api/v1/devices/d0404").status_code == 404


def test_device_ids_must_fit_mqtt_topics_and_unknown_fields_are_refused(
    client: TestClient,
) -> None:
    response = client.post("/api/v1/devices", json={"id": "d/1", "household_id": "h0001"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "id"]
    response = client.post(
        "/api/v1/devices", json={"id": "d1", "household_id": "h0001", "online": True}
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "online"]
