"""Shared parts of the ingest benchmarks: a broker with a load user, a seeded district, publishers.

The load user ``loadgen`` may publish for every home (one connection per publisher process,
like ``anbu sim``); the collector's own user and ACL are the field's
(:func:`firmware_config.acl.broker_acl`).
"""

from __future__ import annotations

import datetime as dt
import json
import multiprocessing as mp
import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import insert

from collector.store.db import Database
from collector.store.models import Caregiver, Device, Household
from firmware_config.acl import simulator_acls
from firmware_config.topics import PREFIX, Channel, DeviceAddress
from tests.support.mosquitto import COLLECTOR_USER, Broker, anbu_acl, anbu_users, start_broker

DISTRICT = "bench"
LOAD_USER = "loadgen"
WATCH_USER = "watch"


def start_bench_broker(workdir: Path) -> Broker:
    """The field's rules (dynamic security) plus ``loadgen`` (publishes for every home, reads
    every command, like ``anbu sim``), ``bare`` (the reference subscriber) and ``watch`` (sees
    every event as the broker passes it on, to time the broker apart from the collector)."""
    users = {
        **anbu_users(),
        LOAD_USER: "loadgen-secret",
        "bare": "bare-secret",
        WATCH_USER: "watch-secret",
    }
    bare = [
        {"acltype": "subscribePattern", "topic": f"$share/bare/{PREFIX}/#", "allow": True},
        {"acltype": "publishClientReceive", "topic": f"{PREFIX}/#", "allow": True},
    ]
    watch = [
        {"acltype": "subscribePattern", "topic": f"{PREFIX}/+/+/+/event/#", "allow": True},
        {"acltype": "publishClientReceive", "topic": f"{PREFIX}/+/+/+/event/#", "allow": True},
    ]
    rules = anbu_acl(
        COLLECTOR_USER, extra={LOAD_USER: simulator_acls(), "bare": bare, WATCH_USER: watch}
    )
    return start_broker(workdir, users=users, acl=rules, max_queued_messages=1_000_000)


def address(n: int) -> DeviceAddress:
    return DeviceAddress(DISTRICT, f"h{n:06d}", f"d{n:06d}")


def seed(db: Database, homes: int) -> None:
    """``homes`` households with one device each and a caregiver per 100, in bulk."""
    db.create_schema()
    now = dt.datetime.now(dt.UTC)
    with db.session() as s:
        s.execute(
            insert(Caregiver),
            [
                {
                    "id": c + 1,
                    "name": f"cg{c}",
                    "phone": "010-0000-0000",
                    "email": f"cg{c}@example.org",
                    "district": DISTRICT,
                }
                for c in range(max(1, homes // 100))
            ],
        )
        s.execute(
            insert(Household),
            [
                {
                    "id": address(n).household,
                    "district": DISTRICT,
                    "resident_name": f"r{n}",
                    "address": "",
                    "caregiver_id": n // 100 + 1,
                    "created_at": now,
                }
                for n in range(homes)
            ],
        )
        s.execute(
            insert(Device),
            [{"id": address(n).device, "household_id": address(n).household} for n in range(homes)],
        )


def heartbeat_payload(seq: int, device_ts: float) -> bytes:
    """A contract-valid heartbeat, built without pydantic so the publisher is not the bottleneck."""
    return json.dumps(
        {
            "schema_version": 1,
            "message_id": uuid.uuid4().hex,
            "device_ts": device_ts,
            "seq": seq,
            "kind": "heartbeat",
            "interval_s": 60,
            "motion_count": seq % 3,
            "speech_s": 0.5,
            "wake_word_count": 0,
            "interactions": 0,
            "button_presses": 0,
            "uptime_s": 60.0 * seq,
            "audio_overruns": 0,
            "outbox_depth": 0,
            "agent_version": "0.1.0",
            "coalesced": 0,
        },
        separators=(",", ":"),
    ).encode()


def publish_heartbeats(
    url_host: str,
    port: int,
    homes: range,
    seconds: float,
    start_at: float,
    seq_base: int,
    sent: Any,
    rate_per_s: float = 0.0,
) -> None:
    """A publisher process: QoS 1 heartbeats round-robin over ``homes`` until ``seconds`` pass."""
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"loadgen-{os.getpid()}", protocol=mqtt.MQTTv5
    )
    client.username_pw_set(LOAD_USER, "loadgen-secret")
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect(url_host, port)
    client.loop_start()
    # Formatted directly (what ``address(n).topic`` gives, checked on the first): a million
    # validated addresses take longer than the lead the benchmarks allow.
    channel = Channel.HEARTBEAT.value
    topics = [f"{PREFIX}/{DISTRICT}/h{n:06d}/d{n:06d}/{channel}" for n in homes]
    if topics and topics[0] != address(homes[0]).topic(Channel.HEARTBEAT):
        raise RuntimeError(f"heartbeat topic {topics[0]!r} is not where the device publishes")
    while time.time() < start_at:
        time.sleep(0.005)
    end = start_at + seconds
    count = 0
    seq = seq_base
    while True:
        now = time.time()
        if now >= end:
            break
        seq += 1
        for topic in topics[:200] if rate_per_s else topics:
            client.publish(topic, heartbeat_payload(seq, now), qos=1)
            count += 1
            if count % 200 == 0 and time.time() >= end:
                break
        if rate_per_s:
            topics = topics[200:] + topics[:200]
            # paced: 200 messages per slot
            time.sleep(max(0.0, 200 / rate_per_s - (time.time() - now)))
    sent.value += count
    client.loop_stop()
    client.disconnect()


def run_publishers(
    broker: Broker,
    homes: int,
    publishers: int,
    seconds: float,
    seq_base: int,
    rate_per_s: float = 0.0,
    start_at: float | None = None,
) -> tuple[Callable[[], int], list[mp.Process], float]:
    """Start ``publishers`` processes at ``start_at`` (default: in 1 s).

    Returns a function giving the count sent (known once they end), the processes, the start.
    """
    sent = mp.Value("q", 0)
    start_at = time.time() + 1.0 if start_at is None else start_at
    host, port = "127.0.0.1", int(broker.url.rsplit(":", 1)[1])
    share = homes // publishers
    procs = [
        mp.Process(
            target=publish_heartbeats,
            args=(
                host,
                port,
                range(i * share, (i + 1) * share),
                seconds,
                start_at,
                seq_base,
                sent,
                rate_per_s / publishers if rate_per_s else 0.0,
            ),
        )
        for i in range(publishers)
    ]
    for p in procs:
        p.start()
    return (lambda: int(sent.value)), procs, start_at


def machine() -> dict[str, Any]:
    import platform

    return {
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }
