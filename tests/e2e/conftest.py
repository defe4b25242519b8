"""End-to-end fixtures: the SMTP and SMS servers, a registered district, a collector process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from collector.store.db import Database
from tests.collector.helpers import register_homes
from tests.e2e.processes import Proc, collector_env, free_port, start_collector
from tests.support.fixtures import sms_gateway, smtp_server  # noqa: F401
from tests.support.mosquitto import Broker
from tests.support.sms_gateway import SmsGateway
from tests.support.smtp import SmtpServer


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    db = Database(f"sqlite:///{tmp_path / 'collector.sqlite3'}")
    register_homes(db)
    yield db
    db.dispose()


@pytest.fixture
def collector(
    tmp_path: Path,
    database: Database,
    broker: Broker,
    smtp_server: SmtpServer,  # noqa: F811
    sms_gateway: SmsGateway,  # noqa: F811
) -> Iterator[Proc]:
    env = collector_env(database.url, broker, smtp_server, sms_gateway, free_port())
    proc = start_collector(env, tmp_path / "collector.log")
    yield proc
    proc.stop()
