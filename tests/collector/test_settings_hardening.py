"""Production refuses weak secrets and clear-text connections to other hosts (settings, pure)."""

from __future__ import annotations

import secrets
from typing import Any

import pytest
from pydantic import ValidationError

from collector.secret_strength import weakness
from collector.settings import CollectorSettings

STRONG = secrets.token_urlsafe(32)


def production(**fields: Any) -> CollectorSettings:
    values: dict[str, Any] = {
        "environment": "production",
        "api_token": STRONG,
        "mqtt_password": secrets.token_urlsafe(24),
        "link_secret": secrets.token_urlsafe(32),
    } | fields
    return CollectorSettings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("", "is empty"),
        ("a", "fewer than 16"),
        ("CHANGETHIS", "fewer than 16"),
        ("changethis-changethis", "placeholder word 'changethis'"),
        ("change-me-collector-api-token-0123456789", "placeholder word 'change-me'"),
        ("MySuperSecretToken2026", "placeholder word 'secret'"),
        ("a" * 40, "only 1 different"),
        ("abcdefgh" * 3, "repeated"),
        ("a" * 30 + "bcdefghij", "too predictable"),
    ],
)
def test_weak_api_tokens_are_refused_in_production(value: str, reason: str) -> None:
    assert reason in (weakness(value) or "")
    with pytest.raises(ValidationError, match=f"api_token .*{reason}"):
        production(api_token=value)


# (fixed ids: the values are random, and pytest-xdist's workers must collect the same tests)
@pytest.mark.parametrize(
    "value",
    [STRONG, secrets.token_hex(16), "Tr0ub4dor&3-horse-battery"],
    ids=["token_urlsafe", "token_hex", "passphrase"],
)
def test_random_secrets_are_accepted(value: str) -> None:
    assert weakness(value) is None
    assert production(api_token=value).api_token == value


@pytest.mark.parametrize(
    ("fields", "name"),
    [
        ({"mqtt_password": "s3cret"}, "mqtt_password"),
        (
            {"smtp_host": "127.0.0.1", "smtp_username": "anbu", "smtp_password": "x"},
            "smtp_password",
        ),
        (
            {"sms_gateway_url": "https://sms.example", "sms_gateway_token": "tok"},
            "sms_gateway_token",
        ),
        ({"influx_url": "http://127.0.0.1:8086", "influx_token": None}, "influx_token"),
    ],
)
def test_every_credential_in_use_is_checked(fields: dict[str, Any], name: str) -> None:
    with pytest.raises(ValidationError, match=name):
        production(**fields)


def test_development_accepts_weak_secrets_and_plain_remote_connections() -> None:
    settings = CollectorSettings(  # type: ignore[call-arg]
        _env_file=None, api_token="a", mqtt_url="mqtt://broker.example:1883"
    )
    assert settings.api_token == "a"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"mqtt_url": "mqtt://broker.example.org:1883"}, "use mqtts://"),
        ({"database_url": "postgresql+psycopg://anbu:pw@db.example.org/anbu"}, "sslmode=unset"),
        (
            {"database_url": "postgresql+psycopg://anbu:pw@db.example.org/anbu?sslmode=prefer"},
            "sslmode=prefer",
        ),
        ({"smtp_host": "smtp.example.org", "smtp_starttls": False}, "smtp_starttls is off"),
        ({"sms_gateway_url": "http://sms.example.org/send"}, "use https://"),
    ],
)
def test_clear_text_to_another_host_is_refused_in_production(
    fields: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        production(**fields)


@pytest.mark.parametrize(
    "fields",
    [
        {"mqtt_url": "mqtts://broker.example.org:8883"},
        {"mqtt_url": "mqtt://127.0.0.1:1883"},
        {"mqtt_url": "mqtt://[::1]:1883"},
        {"database_url": "postgresql+psycopg://anbu:pw@db.example.org/anbu?sslmode=verify-full"},
        {"database_url": "postgresql+psycopg://anbu:pw@localhost/anbu"},
        {"database_url": "postgresql+psycopg:///anbu?host=/run/postgresql"},
        {"smtp_host": "smtp.example.org"},
        {"smtp_host": "127.0.0.1", "smtp_starttls": False},
        {"sms_gateway_url": "https://sms.example.org/send"},
        {"sms_gateway_url": "http://127.0.0.1:9000/send"},
    ],
)
def test_protected_or_local_connections_are_accepted(fields: dict[str, Any]) -> None:
    production(**fields)


def test_starttls_is_on_by_default_except_on_loopback() -> None:
    assert production(smtp_host="smtp.example.org").smtp_use_starttls is True
    assert production(smtp_host="127.0.0.1").smtp_use_starttls is False
    assert production(smtp_host="localhost", smtp_starttls=True).smtp_use_starttls is True
