"""Who may call the API, /health, the lifespan and the published docs."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

if TYPE_CHECKING:
    from tests.collector.conftest import FakeRuntime


def test_api_without_a_token_is_401_and_says_what_to_send(anonymous: TestClient) -> None:
    response = anonymous.get("/api/v1/households")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert "Authorization: Bearer" in response.json()["detail"]


@pytest.mark.parametrize(
    "header",
    ["Bearer {token}x", "Bearer ", "Basic {token}", "{token}"],
    ids=["wrong", "empty", "basic", "no-scheme"],
)
def test_api_with_a_wrong_token_is_401(anonymous: TestClient, api_token: str, header: str) -> None:
    authorization = header.format(token=api_token)
    response = anonymous.get("/api/v1/caregivers", headers={"Authorization": authorization})
    assert response.status_code == 401
    assert "token" in response.json()["detail"]


def test_every_api_route_needs_the_token(app: FastAPI, anonymous: TestClient) -> None:
    paths = anonymous.get("/openapi.json").json()["paths"]
    checked = 0
    for path, operations in paths.items():
        if not path.startswith("/api/"):
            continue
        concrete = path.replace("{household_id}", "h1").replace("{device_id}", "d1")
        concrete = concrete.replace("{dispatch_id}", "1")
        for method in operations:
            assert anonymous.request(method, concrete).status_code == 401, (method, path)
            checked += 1
    assert checked >= 11


def test_right_token_is_accepted(client: TestClient) -> None:
    assert client.get("/api/v1/caregivers").status_code == 200


def test_health_needs_no_token_and_reports_the_runtime(anonymous: TestClient) -> None:
    response = anonymous.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": True, "mqtt_connected": True}


def test_health_is_503_when_degraded(anonymous: TestClient, runtime: FakeRuntime) -> None:
    runtime.mqtt_connected = False
    response = anonymous.get("/health")
    assert response.status_code == 503
    assert response.json()["status"] == "degraded"
    assert response.json()["mqtt_connected"] is False


def test_health_is_503_when_the_check_itself_fails(
    anonymous: TestClient, runtime: FakeRuntime
) -> None:
    def broken() -> dict[str, object]:
        raise RuntimeError("database gone")

    runtime.health = broken  # type: ignore[method-assign]
    response = anonymous.get("/health")
    assert response.status_code == 503
    assert response.json() == {"status": "degraded", "error": "RuntimeError: database gone"}


def test_lifespan_starts_and_stops_the_runtime(app: FastAPI, runtime: FakeRuntime) -> None:
    assert (runtime.started, runtime.stopped) == (0, 0)
    with TestClient(app):
        assert (runtime.started, runtime.stopped) == (1, 0)
    assert (runtime.started, runtime.stopped) == (1, 1)


def test_openapi_docs_are_served_with_the_bearer_scheme(anonymous: TestClient) -> None:
    assert anonymous.get("/docs").status_code == 200
    spec = anonymous.get("/openapi.json").json()
    assert spec["components"]["securitySchemes"]["ApiToken"]["scheme"] == "bearer"


def test_create_app_needs_settings(runtime: FakeRuntime) -> None:
    from collector.main import create_app

    del runtime.settings
    with pytest.raises(TypeError, match="settings"):
        create_app(runtime)


def test_requests_are_logged_as_structured_fields(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("INFO", logger="collector.http"):
        client.get("/api/v1/households?district=seodaemun")
    (record,) = [r for r in caplog.records if r.name == "collector.http"]
    assert record.__dict__["method"] == "GET"
    assert record.__dict__["path"] == "/api/v1/households"
    assert record.__dict__["status"] == 200
    assert record.__dict__["duration_ms"] >= 0
