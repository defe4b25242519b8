"""Start real ``anbu collector`` and ``anbu agent`` processes for end-to-end tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support.mosquitto import COLLECTOR_USER, Broker
from tests.support.sms_gateway import SmsGateway
from tests.support.smtp import SmtpServer

ANBU = [sys.executable, "-m", "anbu"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_until(check: Callable[[], object], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


@dataclass
class Proc:
    popen: subprocess.Popen[bytes]
    log: Path

    def text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()

    def kill9(self) -> None:
        self.popen.kill()
        self.popen.wait()


def start(args: list[str], env: dict[str, str], log: Path, *, command: list[str] = ANBU) -> Proc:
    """Run ``command args`` (``python -m anbu`` unless told otherwise) logging to ``log``."""
    handle = log.open("ab")
    popen = subprocess.Popen([*command, *args], env=env, stdout=handle, stderr=subprocess.STDOUT)
    handle.close()
    return Proc(popen, log)


def collector_env(
    database_url: str, broker: Broker, smtp: SmtpServer, sms: SmsGateway, http_port: int
) -> dict[str, str]:
    return {
        **os.environ,
        "ANBU_DATABASE_URL": database_url,
        "ANBU_HTTP_PORT": str(http_port),
        "ANBU_MQTT_URL": broker.url,
        "ANBU_MQTT_USERNAME": COLLECTOR_USER,
        "ANBU_MQTT_PASSWORD": broker.password(COLLECTOR_USER),
        "ANBU_MQTT_CLIENT_ID": f"collector-{http_port}",
        "ANBU_SMTP_HOST": smtp.host,
        "ANBU_SMTP_PORT": str(smtp.port),
        "ANBU_SMS_GATEWAY_URL": sms.url,
        "ANBU_SMS_GATEWAY_TOKEN": "test-token",
        "ANBU_SCHEDULER_INTERVAL_S": "0.2",
        # These tests' homes were registered a week before "now" and never showed a life sign,
        # which the silence schedule rightly flags at start; the SOS path is what they test.
        # Silent homes are tested through their own runtime and flow (tests/collector).
        "ANBU_SILENCE_ENABLED": "false",
        # The production shape (the Ansible role sets it too): heartbeats in a child process.
        "ANBU_INGEST_BULK_PROCESS": "true",
    }


def start_collector(env: dict[str, str], log: Path, timeout_s: float = 60) -> Proc:
    # 60 s: on a loaded machine the ingest's first MQTT connect can fail and retry after 30 s,
    # and the bulk process takes a while to start.
    proc = start(["collector", "serve"], env, log)
    url = f"http://127.0.0.1:{env['ANBU_HTTP_PORT']}/health"

    def healthy() -> bool:
        if proc.popen.poll() is not None:
            raise AssertionError(f"collector exited:\n{proc.text()}")
        try:
            return httpx.get(url, timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until(healthy, timeout_s, "collector health")
    except BaseException:
        proc.kill9()  # never leave a half-started collector behind
        raise
    return proc


def agent_config(
    path: Path, broker: Broker, device: str, household: str, *, heartbeat_s: float = 60
) -> Path:
    path.write_text(
        f"""
district = "seodaemun"
household_id = "{household}"
device_id = "{device}"
heartbeat_interval_s = {heartbeat_s}
cancel_window_s = 30
sos_resend_s = 1
outbox_path = "{path.parent / (device + "-outbox.sqlite3")}"
[broker]
url = "{broker.url}"
username = "{device}"
password = "{broker.password(device)}"
reconnect_min_s = 0.2
reconnect_max_s = 1.0
[audio]
enabled = false
""",
        encoding="utf-8",
    )
    return path


def start_agent(
    config: Path, control: Path, log: Path, *, command: list[str] = ANBU, timeout_s: float = 20
) -> Proc:
    """An agent with mock GPIO driven through ``control``; ``command`` may wrap ``anbu``
    (tests/support/clock_skew.py runs it with a wall clock that jumps)."""
    env = {**os.environ, "GPIOZERO_PIN_FACTORY": "mock"}
    control.unlink(missing_ok=True)
    proc = start(
        ["agent", "run", "--config", str(config), "--no-audio", "--gpio-control", str(control)],
        env,
        log,
        command=command,
    )

    def ready() -> bool:
        if proc.popen.poll() is not None:
            raise AssertionError(f"agent exited:\n{proc.text()}")
        return control.exists()

    wait_until(ready, timeout_s, "agent control socket")
    return proc


def drive(control: Path, *commands: str) -> None:
    """Send mock-pin commands to a running agent (see edge_agent/gpio_control.py)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(str(control))
        stream = s.makefile("rw", encoding="utf-8")
        for command in commands:
            stream.write(command + "\n")
            stream.flush()
            reply = stream.readline().strip()
            assert reply == "ok", reply
