"""Fast fault case: a device whose wall clock jumps hours forward, then weeks back.

The agent runs under tests/support/clock_skew.py (its ``time.time`` shifted by a number in a
file; the monotonic clock untouched, as with a real clock step). Each SOS pressed after a jump
is stored once, at the collector's receive time rather than the device's impossible one, joins
the one open dispatch, and the device's clock offset is recorded.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import select

from collector.store.db import Database
from collector.store.models import Device, Dispatch, EventRecord
from tests.e2e.processes import Proc, agent_config, drive, start_agent, wait_until
from tests.e2e.test_sos_end_to_end import BUTTON, count, device_online
from tests.support import clock_skew
from tests.support.mosquitto import Broker
from tests.support.smtp import SmtpServer

pytestmark = pytest.mark.slow

SIX_HOURS_S = 6 * 3600.0
FORTY_FIVE_DAYS_S = 45 * 86400.0


def stored_sos(db: Database) -> list[tuple[float, float]]:
    """(device_ts, received_at) of every stored SOS, as Unix seconds."""
    with db.session() as s:
        rows = s.execute(
            select(EventRecord.device_ts, EventRecord.received_at)
            .where(EventRecord.kind == "sos")
            .order_by(EventRecord.id)
        ).all()
    return [(ts.timestamp(), at.timestamp()) for ts, at in rows]


def clock_offset(db: Database) -> float | None:
    with db.session() as s:
        device = s.get(Device, "dev-1")
        return None if device is None else device.clock_offset_s


def test_sos_after_clock_jumps_are_stored_once_at_the_receive_time(
    tmp_path: Path,
    broker: Broker,
    database: Database,
    collector: Proc,
    smtp_server: SmtpServer,
) -> None:
    offset_file = tmp_path / "clock"
    clock_skew.set_offset(offset_file, 0.0)
    config = agent_config(tmp_path / "agent.toml", broker, "dev-1", "h-1")
    control = tmp_path / "gpio.sock"
    agent = start_agent(
        config, control, tmp_path / "agent.log", command=clock_skew.command(offset_file)
    )
    try:
        wait_until(lambda: device_online(database, "dev-1"), 15, "device online")

        clock_skew.set_offset(offset_file, SIX_HOURS_S)
        time.sleep(0.5)
        drive(control, f"press {BUTTON}", f"release {BUTTON}")
        wait_until(lambda: len(stored_sos(database)) == 1, 15, "the first SOS")
        offset = clock_offset(database)
        assert offset is not None and abs(offset - SIX_HOURS_S) < 60

        clock_skew.set_offset(offset_file, -FORTY_FIVE_DAYS_S)
        time.sleep(0.5)
        drive(control, f"press {BUTTON}", f"release {BUTTON}")
        wait_until(lambda: len(stored_sos(database)) == 2, 15, "the second SOS")
        offset = clock_offset(database)
        assert offset is not None and abs(offset + FORTY_FIVE_DAYS_S) < 60

        smtp_server.wait_for(2, timeout=10)
        wait_until(lambda: agent.text().count('"sos confirmed"') == 2, 10, "both confirmed")
        time.sleep(2.0)  # re-sends of either would have landed by now
        sos = stored_sos(database)
        assert len(sos) == 2
        for device_ts, received_at in sos:
            # overruled: far outside [received - 30 days, received + 5 min]
            assert abs(device_ts - received_at) < 60
            assert abs(received_at - time.time()) < 120
        assert count(database, Dispatch) == 1
        subjects = sorted(str(m.message["Subject"]) for m in smtp_server.received)
        assert subjects == ["[안부] SOS 반복: 가구 h-1", "[안부] 긴급 SOS: 가구 h-1"]
    finally:
        agent.stop()
