"""Fast fault case: a real agent cut off from the broker (pausable proxy) while its resident
presses SOS. Nothing arrives during the cut; after it, exactly one SOS, one dispatch, one e-mail.
The full report with longer cuts and more homes is ``bench/faults.py``."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from collector.store.db import Database
from collector.store.models import Dispatch, EventRecord
from tests.e2e.processes import Proc, agent_config, drive, start_agent, wait_until
from tests.e2e.test_sos_end_to_end import BUTTON, count, device_online
from tests.support.mosquitto import Broker
from tests.support.smtp import SmtpServer
from tests.support.tcp_proxy import TcpProxy

CUT_S = 3.0


def test_an_sos_pressed_during_a_network_cut_arrives_once_after_it(
    tmp_path: Path,
    broker: Broker,
    database: Database,
    collector: Proc,
    smtp_server: SmtpServer,
) -> None:
    with TcpProxy(broker.host, broker.port) as proxy:
        behind = dataclasses.replace(broker, port=proxy.port, _process=None)
        config = agent_config(tmp_path / "agent.toml", behind, "dev-1", "h-1")
        control = tmp_path / "gpio.sock"
        agent = start_agent(config, control, tmp_path / "agent.log")
        try:
            wait_until(lambda: device_online(database, "dev-1"), 15, "device online")
            proxy.pause()
            drive(control, f"press {BUTTON}", f"release {BUTTON}")
            time.sleep(CUT_S)
            assert count(database, EventRecord, EventRecord.kind == "sos") == 0
            assert smtp_server.received == []

            proxy.resume()
            wait_until(lambda: count(database, Dispatch) == 1, 60, "the dispatch")  # loaded CI
            [mail] = smtp_server.wait_for(1, timeout=10)
            assert "긴급 SOS" in str(mail.message["Subject"])
            time.sleep(2.0)  # the agent re-sends every second until acked: no duplicate may land
            assert count(database, EventRecord, EventRecord.kind == "sos") == 1
            assert count(database, Dispatch) == 1
            assert len(smtp_server.received) == 1
        finally:
            agent.stop()
