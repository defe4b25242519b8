"""Every response carries the security headers: success, errors, 404s, health, metrics, docs.

The runtime behind the app is the shared ``FakeRuntime`` of tests/collector/conftest.py (HTTP
only; the headers do not depend on it).
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from collector.main import create_app
from collector.security_headers import CSP, HSTS
from collector.settings import CollectorSettings
from tests.collector.conftest import API_TOKEN, FakeRuntime

EXPECTED = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
}


@pytest.mark.parametrize(
    ("path", "token", "code"),
    [
        ("/health", False, 200),
        ("/metrics", False, 200),
        ("/api/v1/caregivers", True, 200),
        ("/api/v1/caregivers", False, 401),
        ("/api/v1/households/nobody", True, 404),
        ("/no/such/page", False, 404),
    ],
)
def test_every_response_carries_the_headers(
    anonymous: TestClient, path: str, token: bool, code: int
) -> None:
    headers = {"Authorization": f"Bearer {API_TOKEN}"} if token else {}
    response = anonymous.get(path, headers=headers)
    assert response.status_code == code
    for name, value in EXPECTED.items():
        assert response.headers[name] == value, name
    assert response.headers["content-security-policy"] == CSP
    assert "camera=()" in response.headers["permissions-policy"]
    assert "strict-transport-security" not in response.headers  # public_url is http here
    if path.startswith("/api/"):
        assert response.headers["cache-control"] == "no-store"


def test_a_refused_method_gets_the_headers_too(anonymous: TestClient) -> None:
    response = anonymous.request("PATCH", "/health")
    assert response.status_code == 405
    assert response.headers["x-frame-options"] == "DENY"


def test_the_docs_page_loads_swagger_ui_from_the_collector_only(anonymous: TestClient) -> None:
    response = anonymous.get("/docs")
    csp = response.headers["content-security-policy"]
    assert "script-src 'self';" in csp and "http" not in csp


def test_hsts_when_the_public_url_is_https(runtime: FakeRuntime) -> None:
    settings = CollectorSettings(
        _env_file=None,  # type: ignore[call-arg]
        api_token=API_TOKEN,
        database_url=runtime.db.url,
        public_url="https://anbu.example.org",
    )
    with TestClient(create_app(runtime, settings=settings)) as http:
        assert http.get("/health").headers["strict-transport-security"] == HSTS
