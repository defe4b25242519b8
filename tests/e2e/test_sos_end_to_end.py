"""The SOS path end to end, across real processes and servers.

gpiozero mock pin (in a real ``anbu agent`` process) → Mosquitto (passwords + ACL) → a real
``anbu collector`` process (SQLite) → an SMTP server (aiosmtpd) and an HTTP SMS gateway.
The only stand-in is the phone network behind the SMS gateway.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from collector.store.db import Database
from collector.store.models import Device, Dispatch, EventRecord
from tests.e2e.processes import (
    Proc,
    agent_config,
    drive,
    start_agent,
    wait_until,
)
from tests.support.mosquitto import Broker
from tests.support.sms_gateway import SmsGateway
from tests.support.smtp import SmtpServer

pytestmark = pytest.mark.slow

BUTTON = 17  # GpioConfig default (BCM)


def count(db: Database, model: type, *where: object) -> int:
    with db.session() as s:
        return int(s.scalar(select(func.count()).select_from(model).where(*where)) or 0)  # type: ignore[arg-type]


def device_online(db: Database, device: str) -> bool:
    with db.session() as s:
        row = s.get(Device, device)
        return bool(row and row.online)


def test_button_press_reaches_the_caregiver_by_email_and_sms(
    tmp_path: Path,
    broker: Broker,
    database: Database,
    collector: Proc,
    smtp_server: SmtpServer,
    sms_gateway: SmsGateway,
) -> None:
    config = agent_config(tmp_path / "agent.toml", broker, "dev-1", "h-1")
    control = tmp_path / "gpio.sock"
    agent = start_agent(config, control, tmp_path / "agent.log")
    try:
        wait_until(lambda: device_online(database, "dev-1"), 15, "device online")
        pressed = time.monotonic()
        drive(control, f"press {BUTTON}", f"release {BUTTON}")

        [mail] = smtp_server.wait_for(1, timeout=10)
        assert mail.rcpt_tos == ["jiwon@example.org"]
        subject = str(mail.message["Subject"])
        assert "긴급 SOS" in subject and "h-1" in subject and "박순자" not in subject
        sms = sms_gateway.wait_for(2, timeout=10)
        assert {r.json["to"] for r in sms} == {"+821011112222", "+821033334444"}
        assert all(r.headers["authorization"] == "Bearer test-token" for r in sms)
        assert mail.accepted_monotonic - pressed < 5

        # The collector confirmed the SOS back to the device, which told the resident.
        wait_until(lambda: "sos confirmed" in agent.text(), 10, "the agent to hear the ack")
        assert count(database, Dispatch) == 1
    finally:
        agent.stop()
    assert agent.popen.returncode == 0, agent.text()
    # A clean stop publishes the retained "offline" state.
    wait_until(lambda: not device_online(database, "dev-1"), 10, "device offline")


def outbox_items(path: Path) -> list[str]:
    with sqlite3.connect(path) as db:
        return [row[0] for row in db.execute("SELECT topic FROM outbox ORDER BY id")]


def test_sos_survives_broker_outage_and_kill_9_of_the_agent(
    tmp_path: Path,
    broker: Broker,
    database: Database,
    collector: Proc,
    smtp_server: SmtpServer,
) -> None:
    config = agent_config(tmp_path / "agent.toml", broker, "dev-1", "h-1")
    outbox = tmp_path / "dev-1-outbox.sqlite3"
    control = tmp_path / "gpio.sock"

    broker.kill()
    agent = start_agent(config, control, tmp_path / "agent.log")
    drive(control, f"press {BUTTON}", f"release {BUTTON}")
    wait_until(
        lambda: any(t.endswith("/event/sos") for t in outbox_items(outbox)), 10, "SOS on disk"
    )
    agent.kill9()

    broker.restart()
    agent = start_agent(config, control, tmp_path / "agent2.log")
    try:
        wait_until(lambda: count(database, Dispatch) == 1, 30, "the dispatch")
        smtp_server.wait_for(1, timeout=10)
        wait_until(
            lambda: not any(t.endswith("/event/sos") for t in outbox_items(outbox)),
            10,
            "outbox drained",
        )
        time.sleep(1.0)  # anything duplicated would have arrived by now
        assert count(database, Dispatch) == 1
        assert count(database, EventRecord, EventRecord.kind == "sos") == 1
    finally:
        agent.stop()
