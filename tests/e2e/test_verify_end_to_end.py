"""``anbu agent verify`` against a real broker and a real collector process: the microphone is
the virtual ALSA device fed with test speech, the PIR and button are gpiozero mock pins driven
through ``--gpio-control`` when verify asks, and the test SOS must be acknowledged, recorded as a
test and dispatch nobody (no dispatch row, no notification, nothing at the SMTP or SMS server)."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from sqlalchemy import func, select

from collector.store.db import Database
from collector.store.models import Dispatch, EventRecord, Notification
from tests.e2e.processes import ANBU, Proc, collector_env, drive, free_port, start_collector
from tests.edge_agent.conftest import espeak_wav, sos_speech  # noqa: F401 - fixtures
from tests.support.mosquitto import Broker
from tests.support.sms_gateway import SmsGateway
from tests.support.smtp import SmtpServer
from tests.support.virtual_mic import VirtualMic

pytestmark = pytest.mark.slow
TOKEN = "changethis"  # the collector's development default


@pytest.fixture
def collector_url(
    tmp_path: Path,
    database: Database,
    broker: Broker,
    smtp_server: SmtpServer,
    sms_gateway: SmsGateway,
) -> Iterator[str]:
    port = free_port()
    proc: Proc = start_collector(
        collector_env(database.url, broker, smtp_server, sms_gateway, port),
        tmp_path / "collector.log",
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.stop()


def count(db: Database, model: type, *where: object) -> int:
    with db.session() as s:
        return int(s.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def test_verify_passes_and_its_test_sos_dispatches_nobody(
    tmp_path: Path,
    broker: Broker,
    database: Database,
    collector_url: str,
    smtp_server: SmtpServer,
    sms_gateway: SmsGateway,
    sos_speech: bytes,  # noqa: F811
) -> None:
    config = tmp_path / "agent.toml"
    config.write_text(
        f"""
district = "seodaemun"
household_id = "h-1"
device_id = "dev-1"
outbox_path = "{tmp_path / "outbox.sqlite3"}"
[broker]
url = "{broker.url}"
username = "dev-1"
password = "{broker.password("dev-1")}"
reconnect_min_s = 0.2
reconnect_max_s = 1.0
[audio]
device = "testmic"
""",
        encoding="utf-8",
    )
    control = tmp_path / "gpio.sock"
    quiet = np.random.default_rng(3).normal(0, 30, 8000).astype("<i2").tobytes()
    with VirtualMic(tmp_path / "mic") as mic:
        mic.play(quiet + sos_speech + quiet)
        env = mic.env({**os.environ, "GPIOZERO_PIN_FACTORY": "mock"})
        env["ANBU_VERIFY_API_TOKEN"] = TOKEN
        process = subprocess.Popen(
            [
                *ANBU,
                "agent",
                "verify",
                "--config",
                str(config),
                "--no-prompt",
                "--collector-url",
                collector_url,
                "--skip",
                "model",
                "--listen-s",
                "2",
                "--gpio-timeout-s",
                "10",
                "--gpio-control",
                str(control),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        lines: list[str] = []
        try:
            assert process.stdout is not None
            for line in process.stdout:
                lines.append(line.rstrip("\n"))
                if line.startswith("... Wave"):
                    time.sleep(0.3)
                    drive(control, "high 4")
                elif line.startswith("... Press"):
                    time.sleep(0.3)
                    drive(control, "press 17")
                    time.sleep(0.2)
                    drive(control, "release 17")
            stderr = process.stderr.read() if process.stderr else ""
            process.wait(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()

    report = "\n".join(lines)
    print(report)
    assert process.returncode == 0, report + "\n" + stderr
    status = {
        line[:12].strip(): line[12:].split(None, 1)[0] for line in lines[1:] if line[:3] != "..."
    }
    assert status == {
        "microphone": "PASS",
        "model": "SKIP",
        "pir": "PASS",
        "button": "PASS",
        "broker": "PASS",
        "heartbeat": "PASS",
        "test sos": "PASS",
        "result": "PASS",
    }, report
    assert "recorded as test" in report and "nobody dispatched" in report

    # Nobody was dispatched, nobody was told, and the SOS is counted as a test.
    assert count(database, Dispatch) == 0
    assert count(database, Notification) == 0
    assert count(database, EventRecord, EventRecord.kind == "sos_test") == 1
    assert count(database, EventRecord, EventRecord.kind == "sos") == 0
    time.sleep(1)
    assert sms_gateway.delivered == []
    sos_report = httpx.get(
        f"{collector_url}/api/v1/reports/sos", headers={"Authorization": f"Bearer {TOKEN}"}
    ).json()
    assert (sos_report["test_sos_events"], sos_report["sos_events"]) == (1, 0)
    health = httpx.get(f"{collector_url}/health").json()
    assert health["ingest"].get("sos_test") == 1 and "sos" not in health["ingest"]
