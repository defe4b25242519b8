"""The HTTP SMS notifier against a real local HTTP gateway (docs/sms-gateway.md)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from collector.notify.base import NotifyError
from collector.notify.sms import HttpSmsNotifier, sms_text
from collector.settings import CollectorSettings
from tests.support import fixtures
from tests.support.sms_gateway import SmsGateway
from tests.support.smtp import free_port

sms_gateway = fixtures.sms_gateway


@pytest.fixture
def sms(sms_gateway: SmsGateway) -> Iterator[HttpSmsNotifier]:
    with HttpSmsNotifier(
        sms_gateway.url, token=sms_gateway.token, sender="0212345678", timeout_s=2
    ) as notifier:
        yield notifier


def send(sms: HttpSmsNotifier, to: str = "010-1234-5678") -> None:
    sms.send(
        to,
        "[긴급] 박순자 님 SOS",
        "연희로 1 — 바로 가 주세요",
        reference="dispatch-7.notification-2",
    )


def test_the_request_is_json_with_a_bearer_token(
    sms: HttpSmsNotifier, sms_gateway: SmsGateway
) -> None:
    send(sms)
    [request] = sms_gateway.wait_for(1)
    assert request.method == "POST"
    assert request.path == "/v1/messages"
    assert request.headers["authorization"] == "Bearer test-sms-token"
    assert request.headers["content-type"] == "application/json"
    assert request.json == {
        "to": "+821012345678",
        "from": "0212345678",
        "text": "[긴급] 박순자 님 SOS\n연희로 1 — 바로 가 주세요",
        "reference": "dispatch-7.notification-2",
    }


def test_the_connection_is_kept_and_sends_are_fast(
    sms: HttpSmsNotifier, sms_gateway: SmsGateway
) -> None:
    send(sms)
    started = time.monotonic()
    for _ in range(20):
        send(sms)
    assert (time.monotonic() - started) / 20 < 0.05
    assert len(sms_gateway.wait_for(21)) == 21


def test_no_token_means_no_authorization_header(sms_gateway: SmsGateway) -> None:
    with HttpSmsNotifier(sms_gateway.url, token=None, sender="0212345678") as sms:
        send(sms)
    assert "authorization" not in sms_gateway.wait_for(1)[0].headers


@pytest.mark.parametrize("status", [500, 502, 503, 408])
def test_server_errors_are_transient(
    sms: HttpSmsNotifier, sms_gateway: SmsGateway, status: int
) -> None:
    sms_gateway.fail_next(1, status=status, error="upstream down")
    with pytest.raises(NotifyError) as caught:
        send(sms)
    assert not caught.value.permanent
    assert str(status) in caught.value.message and "upstream down" in caught.value.message
    send(sms)
    assert len(sms_gateway.wait_for(1, delivered=True)) == 1


def test_429_is_transient_and_carries_retry_after(
    sms: HttpSmsNotifier, sms_gateway: SmsGateway
) -> None:
    sms_gateway.fail_next(1, status=429, error="slow down", headers={"Retry-After": "7"})
    with pytest.raises(NotifyError) as caught:
        send(sms)
    assert not caught.value.permanent
    assert caught.value.retry_after_s == 7.0


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_other_client_errors_are_permanent(
    sms: HttpSmsNotifier, sms_gateway: SmsGateway, status: int
) -> None:
    sms_gateway.fail_next(1, status=status, error="invalid destination")
    with pytest.raises(NotifyError) as caught:
        send(sms)
    assert caught.value.permanent
    assert f"answered {status}: invalid destination" in caught.value.message


@pytest.mark.parametrize("number", ["02-123-4567", "010-1234", "not a number", ""])
def test_malformed_numbers_are_permanent_and_never_posted(
    sms: HttpSmsNotifier, sms_gateway: SmsGateway, number: str
) -> None:
    with pytest.raises(NotifyError) as caught:
        send(sms, number)
    assert caught.value.permanent
    time.sleep(0.05)
    assert sms_gateway.requests == []


def test_connection_refused_is_transient() -> None:
    with (
        HttpSmsNotifier(f"http://127.0.0.1:{free_port()}/", token="t", sender="0212345678") as sms,
        pytest.raises(NotifyError) as caught,
    ):
        send(sms)
    assert not caught.value.permanent


def test_a_timeout_is_transient() -> None:
    with (
        SmsGateway(delay_s=1.0) as slow,
        HttpSmsNotifier(slow.url, token="t", sender="0212345678", timeout_s=0.2) as sms,
        pytest.raises(NotifyError) as caught,
    ):
        send(sms)
    assert not caught.value.permanent
    assert "timed out" in caught.value.message


def test_subject_becomes_the_first_line() -> None:
    assert sms_text("[긴급] SOS", "본문") == "[긴급] SOS\n본문"
    assert sms_text("", "본문") == "본문"
    assert sms_text("제목", "") == "제목"


def test_from_settings() -> None:
    settings = CollectorSettings(
        _env_file=None,  # type: ignore[call-arg]
        sms_gateway_url="https://sms.example.org/v1/messages",
        sms_gateway_token="tok",
        sms_sender="0212345678",
        sms_timeout_s=4.0,
    )
    with HttpSmsNotifier.from_settings(settings) as sms:
        assert (sms.url, sms.sender) == ("https://sms.example.org/v1/messages", "0212345678")
    with pytest.raises(ValueError, match="sms_gateway_url"):
        HttpSmsNotifier.from_settings(CollectorSettings(_env_file=None))  # type: ignore[call-arg]
