"""SOS latency: button press → e-mail accepted by the SMTP server, over N SOS (default 100).

Real parts throughout: a private Mosquitto (passwords + ACL), an ``anbu collector serve``
process on SQLite, an ``anbu agent run`` process whose SOS button is gpiozero's Button on a mock
pin (pressed through the agent's test control socket), an aiosmtpd SMTP server and an HTTP SMS
gateway in this process. Each SOS opens a new dispatch (the previous one is resolved through the
API first).

The press time is taken just before the pin is driven; the acceptance time is when the SMTP server
accepted the DATA. Both are CLOCK_MONOTONIC readings on the same machine.

    python bench/sos_latency.py [--count 100]

Prints progress, then one JSON line with p50/p90/p99/max and the conditions.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from collector.store.db import Database
from tests.collector.helpers import register_homes
from tests.e2e.processes import (
    agent_config,
    collector_env,
    drive,
    free_port,
    start_agent,
    start_collector,
    wait_until,
)
from tests.support.mosquitto import COLLECTOR_USER, anbu_acl, anbu_users, start_broker
from tests.support.sms_gateway import SmsGateway
from tests.support.smtp import SmtpServer

BUTTON = 17


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="anbu-bench-sos-"))
    broker = start_broker(work / "broker", users=anbu_users(), acl=anbu_acl(COLLECTOR_USER))
    db = Database(f"sqlite:///{work / 'collector.sqlite3'}")
    register_homes(db)
    smtp = SmtpServer().start()
    sms = SmsGateway().start()
    port = free_port()
    env = collector_env(db.url, broker, smtp, sms, port)
    env["ANBU_SOS_ACK_TIMEOUT_S"] = "3600"  # no escalation e-mails during the run
    collector = start_collector(env, work / "collector.log")
    config = agent_config(work / "agent.toml", broker, "dev-1", "h-1")
    control = work / "gpio.sock"
    agent = start_agent(config, control, work / "agent.log")
    api = httpx.Client(
        base_url=f"http://127.0.0.1:{port}", headers={"Authorization": "Bearer changethis"}
    )
    latencies: list[float] = []
    try:
        wait_until(lambda: "connected to the broker" in agent.text(), 20, "agent connected")
        time.sleep(0.5)
        for i in range(args.count):
            before = len(smtp.received)
            pressed = time.monotonic()
            drive(control, f"press {BUTTON}", f"release {BUTTON}")
            mails = smtp.wait_for(before + 1, timeout=30)
            latencies.append(mails[before].accepted_monotonic - pressed)
            # resolve it, so the next SOS opens a fresh dispatch rather than joining this one
            items = api.get("/api/v1/dispatches", params={"status": "open"}).json()["data"]
            for d in items:
                api.post(f"/api/v1/dispatches/{d['id']}/resolve", json={"outcome": "false_alarm"})
            time.sleep(0.25)  # let the SMS and the acknowledgement settle before the next press
            if (i + 1) % 20 == 0:
                print(f"{i + 1}/{args.count} SOS, last {latencies[-1] * 1000:.0f} ms", flush=True)
    finally:
        agent.stop()
        collector.stop()
        smtp.stop()
        sms.stop()
        broker.kill()
        api.close()
    ms = [x * 1000 for x in latencies]
    result = {
        "benchmark": "sos_latency_button_to_smtp",
        "count": len(ms),
        "p50_ms": round(percentile(ms, 0.50), 1),
        "p90_ms": round(percentile(ms, 0.90), 1),
        "p99_ms": round(percentile(ms, 0.99), 1),
        "max_ms": round(max(ms), 1),
        "mean_ms": round(statistics.fmean(ms), 1),
        "goal_p99_ms": 1000,
        "met": percentile(ms, 0.99) <= 1000,
        "conditions": {
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "database": "sqlite",
            "broker": "mosquitto, passwords + ACL, loopback",
            "processes": "anbu agent + anbu collector + broker; SMTP/SMS servers in the bench",
            "pause_between_sos_s": 0.25,
        },
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
