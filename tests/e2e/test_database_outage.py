"""Fast fault case: PostgreSQL stopped under a running collector process while SOS come in.

A real agent presses twice during a 5 s outage (``pg_ctl stop -m fast``, then started again on
the same port and data directory). During it the collector holds the SOS unacknowledged and its
``/health`` answers 503; after it both SOS are stored and confirmed to the agent, one dispatch is
opened, one e-mail per SOS sent, and ``/health`` is back to 200 — nobody restarted the collector.
The full report with 1- and 5-minute outages is ``bench/faults.py``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from collector.store.db import Database
from collector.store.models import Dispatch, EventRecord
from tests.collector.helpers import register_homes
from tests.e2e.processes import (
    Proc,
    agent_config,
    collector_env,
    drive,
    free_port,
    start_agent,
    start_collector,
    wait_until,
)
from tests.e2e.test_sos_end_to_end import BUTTON, count, device_online
from tests.support.mosquitto import Broker
from tests.support.postgres import PostgresServer, PostgresUnavailable, start_postgres
from tests.support.sms_gateway import SmsGateway
from tests.support.smtp import SmtpServer

pytestmark = pytest.mark.slow

OUTAGE_S = 5.0


@pytest.fixture
def postgres() -> Iterator[PostgresServer]:
    try:
        server = start_postgres()
    except PostgresUnavailable as exc:
        pytest.skip(str(exc))
    try:
        yield server
    finally:
        server.stop()


def health_code(url: str) -> int:
    try:
        return httpx.get(url, timeout=2).status_code
    except httpx.HTTPError:
        return 0


def test_sos_pressed_while_postgresql_is_down_are_dispatched_once_after_it_returns(
    tmp_path: Path,
    broker: Broker,
    postgres: PostgresServer,
    smtp_server: SmtpServer,
    sms_gateway: SmsGateway,
) -> None:
    db = Database(postgres.create_database("outage"))
    register_homes(db)
    port = free_port()
    health = f"http://127.0.0.1:{port}/health"
    collector: Proc = start_collector(
        collector_env(db.url, broker, smtp_server, sms_gateway, port), tmp_path / "collector.log"
    )
    config = agent_config(tmp_path / "agent.toml", broker, "dev-1", "h-1")
    control = tmp_path / "gpio.sock"
    agent = start_agent(config, control, tmp_path / "agent.log")
    try:
        wait_until(lambda: device_online(db, "dev-1"), 15, "device online")
        postgres.pause()
        started = time.monotonic()
        drive(control, f"press {BUTTON}", f"release {BUTTON}")
        time.sleep(0.7)
        drive(control, f"press {BUTTON}", f"release {BUTTON}")
        wait_until(lambda: health_code(health) == 503, OUTAGE_S, "/health to say 503")
        time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - started)))
        assert smtp_server.received == [], "nothing can be dispatched without the database"
        assert "sos confirmed" not in agent.text(), "nothing is acknowledged while it is away"
        assert collector.popen.poll() is None, "the collector rides the outage out"

        postgres.start()
        wait_until(lambda: agent.text().count('"sos confirmed"') >= 2, 30, "both SOS confirmed")
        smtp_server.wait_for(2, timeout=20)
        wait_until(lambda: health_code(health) == 200, 20, "/health back to 200")
        time.sleep(2.0)  # the agent re-sends every second until acked: no duplicate may land
        assert count(db, EventRecord, EventRecord.kind == "sos") == 2
        assert count(db, Dispatch) == 1
        # one e-mail per SOS: the first opens the dispatch, the second is told as a repeat
        subjects = [str(m.message["Subject"]) for m in smtp_server.received]
        assert sorted(subjects) == ["[안부] SOS 반복: 가구 h-1", "[안부] 긴급 SOS: 가구 h-1"]
        assert collector.popen.poll() is None
        assert "database unavailable: holding messages unacknowledged" in collector.text()
    finally:
        agent.stop()
        collector.stop()
        db.dispose()
