"""The SMTP notifier against a real SMTP server (aiosmtpd on 127.0.0.1)."""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest

from collector.notify.base import NotifyError
from collector.notify.email import SmtpNotifier, check_address, message_id_for
from collector.settings import CollectorSettings
from tests.support import fixtures
from tests.support.smtp import SmtpServer, free_port

smtp_server = fixtures.smtp_server

SUBJECT = "[긴급] 박순자 님 SOS — 연희로 1"
BODY = "박순자 님(연희로 1)이 '살려줘'라고 했습니다.\n확인: http://localhost:8000/d/7"


def notifier(server: SmtpServer, **kwargs: Any) -> SmtpNotifier:
    return SmtpNotifier(
        server.host, server.port, sender="안부 알림 <anbu@example.org>", timeout_s=5, **kwargs
    )


def test_korean_subject_and_body_arrive_intact(smtp_server: SmtpServer) -> None:
    with notifier(smtp_server) as email:
        email.send("jiwon@example.org", SUBJECT, BODY, reference="dispatch-7.notification-1")
    [mail] = smtp_server.wait_for(1)
    assert mail.message["Subject"] == SUBJECT
    assert mail.message.get_content() == BODY + "\n"
    assert mail.message.get_content_charset() == "utf-8"
    assert mail.message["From"].addresses[0].display_name == "안부 알림"
    assert mail.mail_from == "anbu@example.org"
    assert mail.rcpt_tos == ["jiwon@example.org"]
    assert mail.message["Message-ID"] == "<anbu.dispatch-7.notification-1@example.org>"
    assert mail.message["X-Anbu-Reference"] == "dispatch-7.notification-1"
    assert mail.message["Auto-Submitted"] == "auto-generated"
    assert mail.raw.isascii(), "headers and body must be 7-bit clean (RFC 2047, base64)"


def test_a_retried_message_carries_the_same_message_id(smtp_server: SmtpServer) -> None:
    with notifier(smtp_server) as email:
        for _ in range(2):
            email.send("jiwon@example.org", SUBJECT, BODY, reference="dispatch-7.notification-1")
        email.send("jiwon@example.org", SUBJECT, BODY, reference="dispatch-7.notification-2")
    ids = [m.message["Message-ID"] for m in smtp_server.wait_for(3)]
    assert ids[0] == ids[1] != ids[2]


def test_connection_is_reused_and_fast(smtp_server: SmtpServer) -> None:
    with notifier(smtp_server) as email:
        email.send("a@example.org", "1", "one", reference="r1")
        started = time.monotonic()
        for n in range(20):
            email.send("a@example.org", "n", "again", reference=f"r-{n}")
        per_message_s = (time.monotonic() - started) / 20
    assert len(smtp_server.wait_for(21)) == 21
    assert per_message_s < 0.05


def test_a_restarted_server_is_reconnected_to(smtp_server: SmtpServer) -> None:
    email = notifier(smtp_server, noop_after_s=0.0)
    email.send("a@example.org", "before", "x", reference="r1")
    smtp_server.stop()
    with SmtpServer(port=smtp_server.port) as restarted:
        email.send("a@example.org", "after", "y", reference="r2")
        [mail] = restarted.wait_for(1)
    assert mail.message["Subject"] == "after"
    email.close()


def test_a_stale_pooled_connection_is_retried_once_on_a_fresh_one(
    smtp_server: SmtpServer, caplog: pytest.LogCaptureFixture
) -> None:
    # noop_after_s large: the pooled connection is trusted without a probe, and the send finds
    # it dead; the notifier must reconnect rather than report a failure.
    caplog.set_level(logging.INFO, logger="collector.notify")
    email = notifier(smtp_server, noop_after_s=60.0)
    email.send("a@example.org", "before", "x", reference="r1")
    smtp_server.stop()
    with SmtpServer(port=smtp_server.port) as restarted:
        email.send("a@example.org", "after", "y", reference="r2")
        assert restarted.wait_for(1)[0].message["Subject"] == "after"
    email.close()
    assert [r.event for r in caplog.records if hasattr(r, "event")] == ["smtp_reconnect"]


def test_login_is_used_when_configured() -> None:
    with SmtpServer(users={"anbu": "s3cret"}) as server:
        with notifier(server, username="anbu", password="s3cret") as email:
            email.send("a@example.org", "s", "b", reference="r")
        assert server.wait_for(1)[0].authenticated_as == "anbu"


def test_a_refused_login_is_transient() -> None:
    with (
        SmtpServer(users={"anbu": "s3cret"}) as server,
        notifier(server, username="anbu", password="wrong") as email,
        pytest.raises(NotifyError) as caught,
    ):
        email.send("a@example.org", "s", "b", reference="r")
    assert not caught.value.permanent
    assert "SMTPAuthenticationError" in caught.value.message


def test_starttls_with_a_trusted_certificate() -> None:
    with SmtpServer(starttls=True) as server:
        context = server.client_ssl_context()
        with notifier(server, starttls=True, ssl_context=context) as email:
            email.send("a@example.org", "암호화", "본문", reference="r")
        [mail] = server.wait_for(1)
    assert mail.over_tls
    assert mail.message["Subject"] == "암호화"


def test_starttls_with_an_untrusted_certificate_is_transient() -> None:
    with SmtpServer(starttls=True) as server, notifier(server, starttls=True) as email:
        with pytest.raises(NotifyError) as caught:
            email.send("a@example.org", "s", "b", reference="r")
        assert server.received == []
    assert not caught.value.permanent


@pytest.mark.parametrize(
    "address",
    ["", "jiwon", "jiwon@", "@example.org", "ji won@example.org", "a@b@example.org",
     "jiwon@example..org", "jiwon@example.org\r\nBcc: x@example.org", "김지원@example.org"],
)  # fmt: skip
def test_malformed_addresses_are_permanent_and_never_sent(
    smtp_server: SmtpServer, address: str
) -> None:
    with notifier(smtp_server) as email, pytest.raises(NotifyError) as caught:
        email.send(address, "s", "b", reference="r")
    assert caught.value.permanent
    time.sleep(0.05)
    assert smtp_server.received == []


def test_accepted_addresses() -> None:
    for address in ("jiwon@example.org", "ji.won+sos@mail.example.co.kr", "root@localhost"):
        assert check_address(address) == address


def test_a_5xx_for_the_recipient_is_permanent(smtp_server: SmtpServer) -> None:
    smtp_server.refuse_recipient("gone@example.org")
    with notifier(smtp_server) as email:
        with pytest.raises(NotifyError) as caught:
            email.send("gone@example.org", "s", "b", reference="r")
        assert caught.value.permanent
        assert "550" in caught.value.message
        # The next recipient is not affected.
        email.send("jiwon@example.org", "s", "b", reference="r2")
    assert smtp_server.wait_for(1)[0].rcpt_tos == ["jiwon@example.org"]


def test_a_4xx_for_the_recipient_is_transient(smtp_server: SmtpServer) -> None:
    smtp_server.refuse_recipient("busy@example.org", "450 4.2.1 mailbox busy")
    with notifier(smtp_server) as email, pytest.raises(NotifyError) as caught:
        email.send("busy@example.org", "s", "b", reference="r")
    assert not caught.value.permanent


def test_a_4xx_after_data_is_transient_and_the_retry_goes_through(
    smtp_server: SmtpServer,
) -> None:
    smtp_server.fail_next(1, "451 4.3.0 try again later")
    with notifier(smtp_server) as email:
        with pytest.raises(NotifyError) as caught:
            email.send("a@example.org", "s", "b", reference="r")
        assert not caught.value.permanent
        email.send("a@example.org", "s", "b", reference="r")
    assert len(smtp_server.wait_for(1)) == 1


def test_a_5xx_after_data_is_permanent(smtp_server: SmtpServer) -> None:
    smtp_server.fail_next(1, "554 5.7.1 message rejected")
    with notifier(smtp_server) as email, pytest.raises(NotifyError) as caught:
        email.send("a@example.org", "s", "b", reference="r")
    assert caught.value.permanent


def test_connection_refused_is_transient() -> None:
    email = SmtpNotifier("127.0.0.1", free_port(), sender="anbu@example.org", timeout_s=2)
    started = time.monotonic()
    with pytest.raises(NotifyError) as caught:
        email.send("a@example.org", "s", "b", reference="r")
    assert not caught.value.permanent
    assert time.monotonic() - started < 1.0


def test_from_settings() -> None:
    settings = CollectorSettings(
        _env_file=None,  # type: ignore[call-arg]
        smtp_host="mail.example.org",
        smtp_port=587,
        smtp_username="anbu",
        smtp_password="pw",
        smtp_starttls=True,
        smtp_from="Anbu <anbu@example.org>",
        smtp_timeout_s=3.0,
    )
    email = SmtpNotifier.from_settings(settings)
    assert (email.host, email.port, email.starttls, email.timeout_s) == (
        "mail.example.org", 587, True, 3.0,
    )  # fmt: skip
    assert email.sender_address == "anbu@example.org"
    with pytest.raises(ValueError, match="smtp_host"):
        SmtpNotifier.from_settings(CollectorSettings(_env_file=None))  # type: ignore[call-arg]


def test_message_id_is_safe_for_any_reference() -> None:
    assert message_id_for("a b<c>@d", "x@example.org") == "<anbu.a-b-c--d@example.org>"
