"""Fleet simulator as a load generator: heartbeats per second it can publish from one process.

Each repetition, against one private Mosquitto (passwords, the Anbu ACL plus the simulator user):

* reference: one bare paho MQTT v5 client publishing one ready-made heartbeat payload at QoS 1,
  as fast as its in-flight window allows, for ``--seconds``;
* simulator: ``Simulator(...).run(--seconds)`` with ``--homes`` homes and a rate multiplier far
  beyond what it can deliver, so it runs flat out (heartbeats it cannot send in time are
  coalesced, as the agent does, and counted); the figure counts PUBACKed heartbeats.

Both publish with nobody subscribed, so the figure is the publisher's (and the broker's), not a
collector's.

    python bench/sim_load.py [--homes 10000 --seconds 10 --repeat 3 --connections 0]

Prints one JSON line last: min/median/max of each over the repetitions, the ratio simulator /
bare publisher, and the conditions.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from anbu.sim import SimSettings, Simulator
from firmware_config.acl import simulator_acls
from firmware_config.messages import Heartbeat
from firmware_config.topics import Channel, DeviceAddress
from tests.support.mosquitto import COLLECTOR_USER, anbu_acl, anbu_users, start_broker

USER, PASSWORD = "simulator", "bench-simulator"


def bare_publisher(port: int, seconds: float, max_in_flight: int) -> float:
    """Messages per second PUBACKed for one paho client publishing one payload in a loop."""
    topic = DeviceAddress("seodaemun", "h0001", "d0001").topic(Channel.HEARTBEAT)
    payload = Heartbeat(
        device_ts=time.time(), seq=1, interval_s=60, motion_count=3, speech_s=12.5,
        wake_word_count=0, interactions=0, uptime_s=3600, audio_overruns=0, outbox_depth=0,
        agent_version="bench",
    ).to_payload()  # fmt: skip
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.username_pw_set(USER, PASSWORD)
    client.max_inflight_messages_set(max_in_flight)
    window = threading.Semaphore(max_in_flight)
    acked = 0

    def on_publish(*_args: object) -> None:
        nonlocal acked
        acked += 1
        window.release()

    client.on_publish = on_publish
    client.connect("127.0.0.1", port)
    client.loop_start()
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        if window.acquire(timeout=1):
            client.publish(topic, payload, qos=1)
    elapsed = time.perf_counter() - started
    done = acked
    client.disconnect()
    client.loop_stop()
    return done / elapsed


def spread(values: list[float]) -> dict[str, float]:
    return {
        "min": round(min(values), 2),
        "median": round(statistics.median(values), 2),
        "max": round(max(values), 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--homes", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--connections", type=int, default=0, help="0: the simulator's default")
    parser.add_argument("--max-in-flight", type=int, default=200)
    args = parser.parse_args()

    reference, simulated, sent, coalesced, connections = [], [], [], [], 0
    with tempfile.TemporaryDirectory(prefix="anbu-bench-sim-") as tmp:
        broker = start_broker(
            Path(tmp) / "broker",
            users={**anbu_users(), USER: PASSWORD},
            acl=anbu_acl(COLLECTOR_USER, extra={USER: simulator_acls()}),
            persistence=False,
        )
        try:
            for rep in range(args.repeat):
                reference.append(bare_publisher(broker.port, args.seconds, args.max_in_flight))
                sim = Simulator(
                    SimSettings(
                        homes=args.homes, broker_url=broker.url, username=USER,
                        password=PASSWORD, connections=args.connections,
                        rate_multiplier=100_000, publish_state=False,
                        max_in_flight=args.max_in_flight, progress_s=3600,
                    )
                )  # fmt: skip
                summary = sim.run(args.seconds)
                connections = summary.connections
                # PUBACKed heartbeats, like the reference (no states are published here)
                simulated.append(summary.puback / summary.seconds)
                sent.append(summary.heartbeats_sent / summary.seconds)
                coalesced.append(summary.heartbeats_coalesced)
                if summary.publish_refused:
                    raise SystemExit(f"broker refused {summary.publish_refused} publishes")
                print(
                    f"rep {rep + 1}: bare {reference[-1]:.0f}/s, simulator {simulated[-1]:.0f}/s",
                    file=sys.stderr,
                )
        finally:
            broker.kill()

    result = {
        "bench": "sim_load",
        "heartbeats_per_s": spread(simulated),
        "heartbeats_sent_per_s": spread(sent),
        "bare_publisher_per_s": spread(reference),
        "ratio": spread([s / r for s, r in zip(simulated, reference, strict=True)]),
        "heartbeats_coalesced": spread([float(c) for c in coalesced]),
        "conditions": {
            "homes": args.homes,
            "connections": connections,
            "seconds": args.seconds,
            "repeat": args.repeat,
            "qos": 1,
            "max_in_flight": args.max_in_flight,
            "subscribers": 0,
            "broker": "mosquitto (Debian), loopback, no persistence",
            "load_average_1m": round(os.getloadavg()[0], 2),
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
        },
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
