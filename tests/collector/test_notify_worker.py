"""The notification worker end to end: a real database (SQLite file, and PostgreSQL where it can
run), a real SMTP server and a real HTTP SMS gateway."""

from __future__ import annotations

import datetime as dt
import itertools
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import select

from collector.notify.base import Notifier
from collector.notify.email import SmtpNotifier
from collector.notify.sms import HttpSmsNotifier
from collector.notify.worker import NotificationWorker, notification_reference
from collector.store.db import Database
from collector.store.models import (
    Dispatch,
    DispatchReason,
    DispatchStatus,
    Household,
    Notification,
    NotificationStatus,
    Priority,
    ServiceRequest,
)
from tests.support import fixtures
from tests.support.sms_gateway import SmsGateway
from tests.support.smtp import SmtpServer

smtp_server = fixtures.smtp_server
sms_gateway = fixtures.sms_gateway

SUBJECT = "[긴급] 박순자 님이 도움을 요청했습니다"
BODY = "박순자 님(서대문구 연희로 1)이 '살려줘'라고 말했습니다. 바로 확인해 주세요."
EMAIL, PHONE = "jiwon@example.org", "010-1111-2222"
_purposes = itertools.count(1)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Clock:
    """A clock the test moves by hand (aware UTC), for backoff and lease timing."""

    def __init__(self, start: dt.datetime | None = None) -> None:
        self.now = start or utcnow()

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


def open_dispatch(db: Database) -> int:
    """A household and an open SOS dispatch for notifications to hang from."""
    with db.session() as s:
        household = s.get(Household, "h-1")
        if household is None:
            s.add(
                Household(
                    id="h-1", district="seodaemun", resident_name="박순자", created_at=utcnow()
                )
            )
            s.flush()
        dispatch = Dispatch(
            household_id="h-1",
            reason=DispatchReason.SOS,
            priority=Priority.URGENT,
            status=DispatchStatus.OPEN,
            created_at=utcnow(),
        )
        s.add(dispatch)
        s.flush()
        return dispatch.id


def closed_dispatch(db: Database) -> int:
    """A dispatch someone resolved: its notifications have ``max_attempts``, no more."""
    dispatch_id = open_dispatch(db)
    with db.session() as s:
        found = s.get(Dispatch, dispatch_id)
        assert found is not None
        found.status = DispatchStatus.RESOLVED
    return dispatch_id


def queue(
    db: Database,
    dispatch_id: int | None,
    channel: str,
    recipient: str,
    *,
    count: int = 1,
    now: dt.datetime | None = None,
    **fields: Any,
) -> list[int]:
    """``count`` pending notifications, due now, in creation order."""
    now = now or utcnow()
    values: dict[str, Any] = {
        "status": NotificationStatus.PENDING,
        "attempts": 0,
        "next_attempt_at": now,
        "recipient_role": "caregiver",
        "subject": SUBJECT,
        "body": BODY,
    } | fields
    ids = []
    with db.session() as s:
        for n in range(count):
            row = Notification(
                dispatch_id=dispatch_id,
                channel=channel,
                purpose=f"sos-{next(_purposes)}",
                recipient=recipient,
                created_at=now + dt.timedelta(microseconds=n),
                **values,
            )
            s.add(row)
            s.flush()
            ids.append(row.id)
    return ids


def row(db: Database, notification_id: int) -> Notification:
    with db.session() as s:
        found = s.get(Notification, notification_id)
        assert found is not None
        return found


def wait_until(check: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s} s")
        time.sleep(0.01)


def status_of(db: Database, notification_id: int) -> Callable[[], NotificationStatus]:
    return lambda: row(db, notification_id).status


def email_notifier(server: SmtpServer) -> SmtpNotifier:
    return SmtpNotifier(server.host, server.port, sender="안부 <anbu@example.org>", timeout_s=5)


def sms_notifier(gateway: SmsGateway, timeout_s: float = 5.0) -> HttpSmsNotifier:
    return HttpSmsNotifier(
        gateway.url, token=gateway.token, sender="0212345678", timeout_s=timeout_s
    )


@pytest.fixture
def notifiers(smtp_server: SmtpServer, sms_gateway: SmsGateway) -> Iterator[dict[str, Notifier]]:
    email, sms = email_notifier(smtp_server), sms_notifier(sms_gateway)
    yield {"email": email, "sms": sms}
    email.close()
    sms.close()


class Workers:
    """Starts workers with test-friendly timings and always stops them."""

    def __init__(self) -> None:
        self.started: list[NotificationWorker] = []

    def __call__(
        self, db: Database, notifiers: dict[str, Notifier], **kwargs: Any
    ) -> NotificationWorker:
        options: dict[str, Any] = {
            "max_attempts": 5,
            "clock": utcnow,
            "poll_interval_s": 0.05,
            "first_retry_delay_s": 0.05,
            "max_retry_delay_s": 0.2,
        } | kwargs
        worker = NotificationWorker(db, notifiers, **options)
        worker.start()
        self.started.append(worker)
        return worker


@pytest.fixture
def workers() -> Iterator[Workers]:
    made = Workers()
    yield made
    for worker in made.started:
        worker.stop()


def test_email_is_delivered_with_korean_intact_and_marked_sent(
    database: Database,
    notifiers: dict[str, Notifier],
    smtp_server: SmtpServer,
    workers: Workers,
) -> None:
    dispatch_id = open_dispatch(database)
    [nid] = queue(database, dispatch_id, "email", EMAIL)
    workers(database, notifiers)
    [mail] = smtp_server.wait_for(1)
    assert mail.message["Subject"] == SUBJECT
    assert mail.message.get_content().strip() == BODY
    assert mail.rcpt_tos == [EMAIL]
    reference = notification_reference(dispatch_id, nid)
    assert mail.message["X-Anbu-Reference"] == reference
    wait_until(lambda: status_of(database, nid)() == NotificationStatus.SENT)
    sent = row(database, nid)
    assert sent.attempts == 1 and sent.sent_at is not None and sent.last_error is None


def test_sms_is_posted_as_json_with_the_bearer_token(
    database: Database, notifiers: dict[str, Notifier], sms_gateway: SmsGateway, workers: Workers
) -> None:
    dispatch_id = open_dispatch(database)
    [nid] = queue(database, dispatch_id, "sms", PHONE)
    workers(database, notifiers)
    [request] = sms_gateway.wait_for(1)
    assert request.headers["authorization"] == f"Bearer {sms_gateway.token}"
    assert request.json == {
        "to": "+821011112222",
        "from": "0212345678",
        "text": f"{SUBJECT}\n{BODY}",
        "reference": notification_reference(dispatch_id, nid),
    }
    wait_until(lambda: status_of(database, nid)() == NotificationStatus.SENT)


def test_transient_failures_are_retried_then_delivered(
    database: Database, notifiers: dict[str, Notifier], sms_gateway: SmsGateway, workers: Workers
) -> None:
    sms_gateway.fail_next(2, status=503, error="carrier busy")
    [nid] = queue(database, open_dispatch(database), "sms", PHONE)
    workers(database, notifiers)
    requests = sms_gateway.wait_for(3)
    assert [r.status for r in requests] == [503, 503, 200]
    assert len({r.json["reference"] for r in requests}) == 1
    wait_until(lambda: status_of(database, nid)() == NotificationStatus.SENT)
    sent = row(database, nid)
    assert sent.attempts == 3
    assert sent.last_error is not None and "503" in sent.last_error  # kept as history


def test_a_transient_failure_is_scheduled_with_backoff(
    database: Database, notifiers: dict[str, Notifier], sms_gateway: SmsGateway, workers: Workers
) -> None:
    clock = Clock()
    sms_gateway.fail_next(1, status=500)
    [nid] = queue(database, open_dispatch(database), "sms", PHONE, now=clock.now)
    workers(database, notifiers, clock=clock, first_retry_delay_s=2.0, max_retry_delay_s=300.0)
    wait_until(lambda: row(database, nid).attempts == 1 and status_of(database, nid)() == "pending")
    waiting = row(database, nid)
    assert waiting.next_attempt_at == clock.now + dt.timedelta(seconds=2)
    assert waiting.last_error is not None and "500" in waiting.last_error
    time.sleep(0.2)  # several polls: not due yet, so nothing is sent
    assert len(sms_gateway.requests) == 1
    clock.advance(2)
    wait_until(lambda: status_of(database, nid)() == NotificationStatus.SENT)
    assert [r.status for r in sms_gateway.requests] == [500, 200]


def test_a_permanent_failure_is_recorded_and_not_retried(
    database: Database, notifiers: dict[str, Notifier], sms_gateway: SmsGateway, workers: Workers
) -> None:
    sms_gateway.fail_next(1, status=400, error="unknown destination")
    [nid] = queue(database, open_dispatch(database), "sms", PHONE)
    workers(database, notifiers)
    wait_until(lambda: status_of(database, nid)() == NotificationStatus.FAILED)
    failed = row(database, nid)
    assert failed.attempts == 1 and failed.sent_at is None
    assert failed.last_error == "sms gateway answered 400: unknown destination"
    time.sleep(0.2)
    assert len(sms_gateway.requests) == 1


def test_a_malformed_recipient_fails_without_being_sent(
    database: Database,
    notifiers: dict[str, Notifier],
    smtp_server: SmtpServer,
    sms_gateway: SmsGateway,
    workers: Workers,
) -> None:
    dispatch_id = open_dispatch(database)
    [bad_mail] = queue(database, dispatch_id, "email", "jiwon at example.org")
    [bad_phone] = queue(database, dispatch_id, "sms", "02-123-4567")
    workers(database, notifiers)
    wait_until(lambda: status_of(database, bad_mail)() == NotificationStatus.FAILED)
    wait_until(lambda: status_of(database, bad_phone)() == NotificationStatus.FAILED)
    assert "malformed e-mail address" in (row(database, bad_mail).last_error or "")
    assert "not a Korean mobile number" in (row(database, bad_phone).last_error or "")
    assert smtp_server.received == [] and sms_gateway.requests == []


def test_attempts_run_out_once_the_dispatch_is_closed(
    database: Database, notifiers: dict[str, Notifier], sms_gateway: SmsGateway, workers: Workers
) -> None:
    sms_gateway.fail_next(10, status=500, error="down")
    [nid] = queue(database, closed_dispatch(database), "sms", PHONE)
    workers(database, notifiers, max_attempts=3)
    wait_until(lambda: status_of(database, nid)() == NotificationStatus.FAILED)
    failed = row(database, nid)
    assert failed.attempts == 3
    assert failed.last_error == "gave up after 3 attempts: sms gateway answered 500: down"
    time.sleep(0.3)
    assert len(sms_gateway.requests) == 3


def test_a_channel_without_a_notifier_fails_with_the_reason(
    database: Database, sms_gateway: SmsGateway, workers: Workers
) -> None:
    dispatch_id = open_dispatch(database)
    [mail] = queue(database, dispatch_id, "email", EMAIL)
    [text] = queue(database, dispatch_id, "sms", PHONE)
    with sms_notifier(sms_gateway) as sms:
        worker = workers(database, {"sms": sms})  # no SMTP host configured
        wait_until(lambda: status_of(database, mail)() == NotificationStatus.FAILED)
        wait_until(lambda: status_of(database, text)() == NotificationStatus.SENT)
        worker.stop()
    assert row(database, mail).last_error == "no e-mail notifier configured"
    assert row(database, mail).attempts == 0


def test_no_notifiers_at_all_fails_every_channel_with_its_reason(
    database: Database, workers: Workers
) -> None:
    dispatch_id = open_dispatch(database)
    [mail] = queue(database, dispatch_id, "email", EMAIL)
    [text] = queue(database, dispatch_id, "sms", PHONE)
    workers(database, {})
    wait_until(lambda: status_of(database, text)() == NotificationStatus.FAILED)
    wait_until(lambda: status_of(database, mail)() == NotificationStatus.FAILED)
    assert row(database, text).last_error == "no SMS notifier configured"


def test_wake_delivers_without_waiting_for_the_poll(
    database: Database, notifiers: dict[str, Notifier], smtp_server: SmtpServer, workers: Workers
) -> None:
    dispatch_id = open_dispatch(database)
    worker = workers(database, notifiers, poll_interval_s=30.0)
    time.sleep(0.3)  # the first poll (at start) has found nothing; the next is 30 s away
    queue(database, dispatch_id, "email", EMAIL)
    time.sleep(0.3)
    assert smtp_server.received == []
    woken = time.monotonic()
    worker.wake()
    [mail] = smtp_server.wait_for(1, timeout=1.0)
    assert mail.accepted_monotonic - woken < 0.5


def test_an_email_does_not_wait_behind_a_slow_sms(
    database: Database, smtp_server: SmtpServer, workers: Workers
) -> None:
    dispatch_id = open_dispatch(database)
    with SmsGateway(delay_s=1.0) as slow_gateway, sms_notifier(slow_gateway) as sms:
        email = email_notifier(smtp_server)
        queue(database, dispatch_id, "sms", PHONE, count=3)  # older than the e-mail
        queue(database, dispatch_id, "email", EMAIL)
        started = time.monotonic()
        worker = workers(database, {"sms": sms, "email": email}, threads=1)
        [mail] = smtp_server.wait_for(1, timeout=2.0)
        assert mail.accepted_monotonic - started < 0.5
        worker.stop()
        email.close()


def test_a_notification_abandoned_by_a_crashed_collector_is_sent_after_its_lease(
    database: Database, notifiers: dict[str, Notifier], smtp_server: SmtpServer, workers: Workers
) -> None:
    clock = Clock()
    dispatch_id = open_dispatch(database)
    # Claimed by another collector that died mid-send: its lease runs 30 s from now.
    [nid] = queue(
        database,
        dispatch_id,
        "email",
        EMAIL,
        now=clock.now,
        status=NotificationStatus.SENDING,
        attempts=1,
        next_attempt_at=clock.now + dt.timedelta(seconds=30),
    )
    workers(database, notifiers, clock=clock)
    time.sleep(0.2)
    assert smtp_server.received == [], "a live lease must be respected"
    clock.advance(31)
    smtp_server.wait_for(1)
    wait_until(lambda: status_of(database, nid)() == NotificationStatus.SENT)
    assert row(database, nid).attempts == 2


def test_an_abandoned_last_attempt_is_failed_not_resent(
    database: Database, notifiers: dict[str, Notifier], smtp_server: SmtpServer, workers: Workers
) -> None:
    clock = Clock()
    [nid] = queue(
        database,
        closed_dispatch(database),
        "email",
        EMAIL,
        now=clock.now - dt.timedelta(minutes=5),
        status=NotificationStatus.SENDING,
        attempts=5,
    )
    workers(database, notifiers, clock=clock, max_attempts=5)
    wait_until(lambda: status_of(database, nid)() == NotificationStatus.FAILED)
    assert "lease expired" in (row(database, nid).last_error or "")
    assert smtp_server.received == []


def test_counts_every_status(
    database: Database, notifiers: dict[str, Notifier], sms_gateway: SmsGateway
) -> None:
    dispatch_id = open_dispatch(database)
    queue(database, dispatch_id, "sms", PHONE, count=2)
    queue(database, dispatch_id, "sms", PHONE, status=NotificationStatus.SENT)
    queue(database, dispatch_id, "sms", PHONE, status=NotificationStatus.FAILED)
    worker = NotificationWorker(database, notifiers, max_attempts=3, clock=utcnow)
    assert worker.counts() == {"pending": 2, "sending": 0, "sent": 1, "failed": 1}


def test_deliveries_start_in_creation_order(
    database: Database, sms_gateway: SmsGateway, workers: Workers
) -> None:
    dispatch_id = open_dispatch(database)
    ids = queue(database, dispatch_id, "sms", PHONE, count=6)
    with sms_notifier(sms_gateway) as sms:
        worker = workers(database, {"sms": sms}, threads=1)
        requests = sms_gateway.wait_for(6)
        worker.stop()
    assert [r.json["reference"] for r in requests] == [
        notification_reference(dispatch_id, nid) for nid in ids
    ]


def test_the_worker_refuses_a_naive_clock(
    database: Database, notifiers: dict[str, Notifier]
) -> None:
    worker = NotificationWorker(
        database, notifiers, max_attempts=3, clock=lambda: dt.datetime(2026, 11, 24, 3, 0)
    )
    with pytest.raises(ValueError, match="UTC"):
        worker.start()


def test_two_workers_on_one_database_never_send_the_same_notification_twice(
    database: Database,
    smtp_server: SmtpServer,
    sms_gateway: SmsGateway,
    workers: Workers,
) -> None:
    dispatch_id = open_dispatch(database)
    queue(database, dispatch_id, "email", EMAIL, count=25)
    queue(database, dispatch_id, "sms", PHONE, count=25)
    second = Database(database.url)  # the other collector: its own engine and connections
    with (
        email_notifier(smtp_server) as email_a,
        email_notifier(smtp_server) as email_b,
        sms_notifier(sms_gateway) as sms_a,
        sms_notifier(sms_gateway) as sms_b,
    ):
        barrier = threading.Barrier(2)

        def start(db: Database, notifiers: dict[str, Notifier]) -> None:
            barrier.wait()
            workers(db, notifiers, poll_interval_s=0.01)

        racers = [
            threading.Thread(target=start, args=(database, {"email": email_a, "sms": sms_a})),
            threading.Thread(target=start, args=(second, {"email": email_b, "sms": sms_b})),
        ]
        for racer in racers:
            racer.start()
        for racer in racers:
            racer.join()
        mails = smtp_server.wait_for(25, timeout=15)
        texts = sms_gateway.wait_for(25, timeout=15)
        time.sleep(0.5)  # a duplicate would arrive about now
        for worker in workers.started:
            worker.stop()
    second.dispose()
    assert len(smtp_server.received) == 25 and len(sms_gateway.requests) == 25
    references = [m.message["X-Anbu-Reference"] for m in mails] + [
        t.json["reference"] for t in texts
    ]
    assert len(set(references)) == 50
    with database.session() as s:
        rows = s.scalars(select(Notification)).all()
    assert Counter(r.status for r in rows) == {NotificationStatus.SENT: 50}
    assert {r.attempts for r in rows} == {1}


def unanswered_text(db: Database) -> int:
    """A text from an unknown number, kept without a household or dispatch."""
    now = utcnow()
    with db.session() as s:
        text = ServiceRequest(
            message_id="gw-1", channel="sms", district="seodaemun", text="?", received_at=now,
            due_at=now, routed_to="nobody",
        )  # fmt: skip
        s.add(text)
        s.flush()
        return text.id


def test_a_texts_notification_without_a_dispatch_is_sent_and_given_up_like_any(
    database: Database, notifiers: dict[str, Notifier], sms_gateway: SmsGateway, workers: Workers
) -> None:
    request_id = unanswered_text(database)
    sms_gateway.fail_next(1, status=503, error="carrier busy")
    [failing] = queue(database, None, "sms", "010-2222-3333", service_request_id=request_id)
    workers(database, notifiers, max_attempts=1)
    # No dispatch is open for it, so max_attempts counts: given up after one failure.
    wait_until(lambda: status_of(database, failing)() == NotificationStatus.FAILED)
    assert "503" in (row(database, failing).last_error or "")
    [sent] = queue(database, None, "sms", PHONE, service_request_id=request_id)
    wait_until(lambda: status_of(database, sent)() == NotificationStatus.SENT)
    references = [r.json["reference"] for r in sms_gateway.wait_for(2)]
    assert references == [f"text.notification-{failing}", f"text.notification-{sent}"]
