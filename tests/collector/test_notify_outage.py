"""A channel down for longer than the old give-up time: nothing is lost, the staff are told, and
health says so. Real SMTP server (stopped and started again on its port), real SMS gateway, real
database; retry timings scaled down so the old limit (``max_attempts=3``: ~0.15 s) is far exceeded.
"""

from __future__ import annotations

import time
from pathlib import Path

from starlette.testclient import TestClient as StarletteClient

from collector.domain.dispatch import Contact
from collector.main import create_app
from collector.notify.base import Notifier
from collector.notify.undelivered import UndeliveredPolicy
from collector.runtime import Collector
from collector.settings import CollectorSettings
from collector.store.db import Database
from collector.store.models import NotificationStatus
from tests.collector.test_notify_worker import (
    EMAIL,
    Workers,
    notifiers,
    open_dispatch,
    queue,
    row,
    sms_gateway,
    smtp_server,
    wait_until,
    workers,
)
from tests.support.mosquitto import COLLECTOR_USER, Broker
from tests.support.sms_gateway import SmsGateway
from tests.support.smtp import SmtpServer

__all__ = ["notifiers", "sms_gateway", "smtp_server", "workers"]  # fixtures used below

STAFF = Contact("staff", "서대문구청", phone="010-9999-0000", email="welfare@example.org")
OUTAGE_S = 2.0
"""Far beyond the old give-up (3 attempts at 0.05/0.1 s backoff)."""


def test_an_open_dispatchs_email_outlives_an_smtp_outage_and_health_reports_it(
    database: Database,
    notifiers: dict[str, Notifier],
    smtp_server: SmtpServer,
    workers: Workers,
) -> None:
    smtp_server.stop()
    [nid] = queue(database, open_dispatch(database), "email", EMAIL)
    worker = workers(
        database, notifiers, max_attempts=3, undelivered=UndeliveredPolicy(escalate_after_s=1.0)
    )
    time.sleep(OUTAGE_S)
    waiting = row(database, nid)
    assert waiting.status in (NotificationStatus.PENDING, NotificationStatus.SENDING)
    assert waiting.attempts > 3  # the old worker would have marked it failed here
    health = worker.health()
    assert health["degraded"] is True
    assert health["failing_channels"] == ["email"]
    assert health["channels"]["email"]["consecutive_failures"] >= 3
    assert health["oldest_undelivered_age_s"] >= OUTAGE_S - 0.5

    with SmtpServer(port=smtp_server.port) as restarted:
        [mail] = restarted.wait_for(1, timeout=5)
        assert mail.rcpt_tos == [EMAIL]
        wait_until(lambda: row(database, nid).status == NotificationStatus.SENT)
    health = worker.health()
    assert health["degraded"] is False
    assert health["failing_channels"] == []
    assert health["oldest_undelivered_age_s"] is None


def test_the_staff_are_told_once_by_sms_when_a_caregivers_email_is_late(
    database: Database,
    notifiers: dict[str, Notifier],
    smtp_server: SmtpServer,
    sms_gateway: SmsGateway,
    workers: Workers,
) -> None:
    smtp_server.stop()
    dispatch_id = open_dispatch(database)
    [nid] = queue(database, dispatch_id, "email", EMAIL)
    policy = UndeliveredPolicy(escalate_after_s=0.5, staff=STAFF, dashboard_url="https://a.example")
    workers(database, notifiers, max_attempts=3, undelivered=policy)
    [warning] = sms_gateway.wait_for(1, timeout=5)
    assert warning.json["to"] == "+821099990000"
    text = warning.json["text"]
    assert f"출동 #{dispatch_id}" in text and "생활지원사 이메일" in text
    assert "박순자" not in text and "연희로" not in text  # no name, no address
    time.sleep(1.0)
    assert len(sms_gateway.requests) == 1  # once, not every poll
    assert row(database, nid).status != NotificationStatus.FAILED  # still being retried


def test_health_and_metrics_of_the_real_collector_report_a_failing_channel(
    tmp_path: Path, broker: Broker, smtp_server: SmtpServer
) -> None:
    smtp_server.stop()
    settings = CollectorSettings(
        database_url=f"sqlite:///{tmp_path / 'anbu.sqlite3'}",
        mqtt_url=broker.url,
        mqtt_username=COLLECTOR_USER,
        mqtt_password=broker.password(COLLECTOR_USER),
        smtp_host=smtp_server.host,
        smtp_port=smtp_server.port,
        smtp_starttls=False,
        smtp_timeout_s=2,
    )
    collector = Collector(settings)
    with StarletteClient(create_app(collector)) as http:  # the lifespan starts the collector
        assert collector.ingest.wait_connected(5)
        queue(collector.db, open_dispatch(collector.db), "email", EMAIL)
        collector.notifier.wake()
        wait_until(lambda: collector.health()["notification_delivery"]["failing_channels"] != [])
        response = http.get("/health")
        assert response.status_code == 503
        delivery = response.json()["notification_delivery"]
        assert delivery["failing_channels"] == ["email"]
        assert delivery["oldest_undelivered_age_s"] >= 0
        metrics = http.get("/metrics")
        assert metrics.status_code == 200
        assert 'anbu_notification_channel_failing{channel="email"} 1' in metrics.text
        assert 'anbu_notifications{status="pending"} 1' in metrics.text
        assert "anbu_health_ok 0" in metrics.text
