"""Malformed payloads through the real broker: does anything stop ingestion or lose an SOS?

A device's own valid credentials (``dev-1``, on its own topics, through the field's broker rules)
send ``--cases`` generated payloads — mutations of valid messages (bytes flipped, cut, repeated;
values replaced by extremes: 1e308, 2**63, -1, NaN, Infinity, NUL and control characters, wrong
types; keys dropped or added) and pathological JSON (deep nesting, long numbers, invalid UTF-8) —
on every device channel, retained ``state`` included. Every ``--sentinel-every`` cases another
home (``dev-2``) sends a valid SOS, which must be acknowledged; at the end a last SOS and a last
heartbeat must land.

The collector is the real ingest (``collector.ingest.Ingest`` over ``collector.service``) on
SQLite in this process.

    python bench/ingest_fuzz.py [--cases 100000] [--seed 1]

Prints progress, then one JSON line: cases, ingestion_stopped, sos_not_dispatched, dead_letters,
and the conditions.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import paho.mqtt.client as mqtt
from sqlalchemy import func, select

from bench._load import machine
from collector.ingest import Ingest
from collector.service import Service
from collector.settings import CollectorSettings
from collector.store.db import Database
from collector.store.models import DeadLetter, Device
from firmware_config.messages import (
    MAX_PAYLOAD_BYTES,
    Heartbeat,
    MotionEvent,
    SosCancel,
    SosEvent,
    State,
)
from firmware_config.topics import Channel, DeviceAddress
from tests.collector.helpers import DISTRICT, register_homes
from tests.support.mosquitto import COLLECTOR_USER, anbu_acl, anbu_users, start_broker
from tests.support.mqtt_client import TestClient

FUZZED = DeviceAddress(DISTRICT, "h-1", "dev-1")
SENTINEL = DeviceAddress(DISTRICT, "h-2", "dev-2")
EXTREMES: list[Any] = [
    1e308,
    -1e308,
    2**31,
    2**63,
    2**64,
    -1,
    -(2**63),
    0,
    1e12,
    4.2e9,
    "x",
    "",
    None,
    True,
    [],
    {},
    "\u0000",
    "a\u0001b",
    "\ud800",
    "살려줘" * 30,
    1.5,
    "NaN",
]


def valid_examples() -> list[tuple[Channel, bytes]]:
    sos = SosEvent(device_ts=time.time(), seq=1, source="voice", phrase="살려줘", language="ko")
    return [
        (
            Channel.HEARTBEAT,
            Heartbeat(
                device_ts=time.time(),
                seq=2,
                interval_s=60,
                motion_count=1,
                speech_s=1.0,
                wake_word_count=0,
                interactions=0,
                uptime_s=9,
                audio_overruns=0,
                outbox_depth=0,
                agent_version="0.1.0",
            ).to_payload(),
        ),
        (Channel.SOS, sos.to_payload()),
        (
            Channel.SOS_CANCEL,
            SosCancel(
                device_ts=time.time(), seq=3, sos_id=sos.message_id, source="button"
            ).to_payload(),
        ),
        (Channel.MOTION, MotionEvent(device_ts=time.time(), seq=4).to_payload()),
        (Channel.STATE, State(device_ts=time.time(), seq=5, state="online").to_payload()),
    ]


def mutate(rng: random.Random, payload: bytes) -> bytes:
    choice = rng.randrange(10)
    if choice == 0:  # flip bytes
        data = bytearray(payload)
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        return bytes(data)
    if choice == 1:  # cut
        return payload[: rng.randrange(len(payload))]
    if choice == 2:  # repeat a slice
        a = rng.randrange(len(payload))
        return payload[:a] + payload[a : a + rng.randint(1, 40)] * rng.randint(2, 20) + payload[a:]
    if choice in (3, 4, 5):  # a value replaced by an extreme
        data = json.loads(payload)
        key = rng.choice(list(data))
        data[key] = rng.choice(EXTREMES)
        return json.dumps(data, allow_nan=True, ensure_ascii=rng.random() < 0.5).encode(
            "utf-8", "surrogatepass"
        )
    if choice == 6:  # a key dropped (message_id often)
        data = json.loads(payload)
        data.pop(rng.choice(["message_id", *list(data)]), None)
        return json.dumps(data).encode()
    if choice == 7:  # a key added
        data = json.loads(payload)
        data[rng.choice(["audio", "transcript", "x", "seq2"])] = rng.choice(EXTREMES)
        return json.dumps(data).encode()
    if choice == 8:  # pathological JSON
        depth = rng.randint(5, 2000)
        return rng.choice(
            [
                b"[" * depth,
                b'{"a":' * depth + b"1" + b"}" * depth,
                b"1" * rng.randint(100, 4000),
                b'"' + b"\\u0000" * rng.randint(1, 600) + b'"',
                b"\xff\xfe" * rng.randint(1, 100),
                b"",
            ]
        )[:MAX_PAYLOAD_BYTES]
    data = json.loads(payload)  # a fresh message id with a bad value elsewhere
    data["message_id"] = f"{rng.getrandbits(128):032x}"
    data[rng.choice(list(data))] = rng.choice(EXTREMES)
    return json.dumps(data, allow_nan=True).encode("utf-8", "surrogatepass")


def count(db: Database, model: type) -> int:
    with db.session() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--sentinel-every", type=int, default=5_000)
    parser.add_argument("--seed", type=int, default=1)
    opts = parser.parse_args()
    rng = random.Random(opts.seed)
    work = Path(tempfile.mkdtemp(prefix="anbu-bench-fuzz-"))
    broker = start_broker(work / "broker", users=anbu_users(), acl=anbu_acl(COLLECTOR_USER))
    db = Database(f"sqlite:///{work / 'fuzz.sqlite3'}")
    register_homes(db)
    settings = CollectorSettings(
        mqtt_url=broker.url,
        mqtt_username=COLLECTOR_USER,
        mqtt_password=broker.password(COLLECTOR_USER),
        database_url=db.url,
        ingest_receive_maximum=2000,
        ingest_bulk_process=False,  # both lanes in this process, whose counters are read
    )
    ingest = Ingest(settings, Service(db))
    bulk = ingest.bulk
    assert bulk is not None  # these settings keep the bulk lane in this process
    ingest.start()
    ingest.wait_connected(10)
    acked: set[str] = set()
    lock = threading.Lock()
    sentinel = TestClient(broker, "dev-2").connect()
    sentinel.subscribe(SENTINEL.command_filter)
    sentinel.client.on_message = lambda _c, _u, m: _record_ack(bytes(m.payload), acked, lock)
    fuzzer = TestClient(broker, "dev-1").connect()
    examples = valid_examples()
    sent_sos: list[str] = []
    pending: list[mqtt.MQTTMessageInfo] = []
    reconnects = 0
    started = time.monotonic()
    try:
        for case in range(opts.cases):
            channel, payload = examples[case % len(examples)]
            bad = mutate(rng, payload)
            # Oversize payloads are the broker's to refuse (and it drops the connection for
            # them): one in a thousand, the rest cut to the contract's limit.
            if case % 1000 != 999:
                bad = bad[:MAX_PAYLOAD_BYTES]
            if not fuzzer.is_connected:
                reconnects += 1
                fuzzer.close()
                fuzzer = TestClient(broker, "dev-1").connect()
            pending.append(
                fuzzer.client.publish(
                    FUZZED.topic(channel), bad, qos=1, retain=channel == Channel.STATE
                )
            )
            if len(pending) >= 500:  # the broker has each batch before the next is sent
                _wait_published(pending)
            if case % opts.sentinel_every == opts.sentinel_every - 1:
                sos = SosEvent(device_ts=time.time(), seq=case, source="button")
                sent_sos.append(sos.message_id)
                sentinel.client.publish(SENTINEL.topic(Channel.SOS), sos.to_payload(), qos=1)
                print(
                    json.dumps(
                        {
                            "progress": f"{case + 1}/{opts.cases}",
                            "dead_letters": bulk.dead_lettered + ingest.events.dead_lettered,
                            "sos_acked": len(acked),
                            "sos_sent": len(sent_sos),
                        }
                    ),
                    file=sys.stderr,
                )
        _wait_published(pending)
        last = SosEvent(device_ts=time.time(), seq=10**6, source="button")
        sent_sos.append(last.message_id)
        sentinel.client.publish(SENTINEL.topic(Channel.SOS), last.to_payload(), qos=1)
        final_hb = examples[0][1]
        sentinel.client.publish(
            SENTINEL.topic(Channel.HEARTBEAT),
            final_hb.replace(b'"seq":2,', b'"seq":999999,'),
            qos=1,
        )
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            with lock:
                done = set(sent_sos) <= acked
            if done and _final_heartbeat_landed(db):
                break
            time.sleep(0.2)
        elapsed = time.monotonic() - started
        with lock:
            missing = [m for m in sent_sos if m not in acked]
        stopped = not _final_heartbeat_landed(db) or last.message_id in missing
        result = {
            "figure": "generated malformed payloads through the real broker",
            "cases": opts.cases,
            "ingestion_stopped": int(stopped),
            "sos_not_dispatched": len(missing),
            "sos_sentinels": len(sent_sos),
            "dead_letters": count(db, DeadLetter),
            "fuzzer_reconnects": reconnects,
            "lanes": {"events": ingest.events.health(), "bulk": bulk.health()},
            "seconds": round(elapsed, 1),
            "conditions": {
                "seed": opts.seed,
                "database": "sqlite",
                "broker": "mosquitto, dynamic-security rules, the device's own credentials",
                **machine(),
            },
        }
    finally:
        fuzzer.close()
        sentinel.close()
        ingest.stop()
        broker.kill()
    print(json.dumps(result))
    return 0


def _wait_published(pending: list[mqtt.MQTTMessageInfo]) -> None:
    # A publish the broker refuses (0x87, 0x95) is answered too; one lost with a dropped
    # connection is given up on after a while.
    for info in pending:
        with contextlib.suppress(RuntimeError, ValueError):
            info.wait_for_publish(timeout=10)
    pending.clear()


def _record_ack(payload: bytes, acked: set[str], lock: threading.Lock) -> None:
    try:
        sos_id = json.loads(payload).get("sos_id")
    except ValueError:
        return
    if sos_id:
        with lock:
            acked.add(sos_id)


def _final_heartbeat_landed(db: Database) -> bool:
    # dev-2 sends only SOS sentinels until the end, then this one heartbeat
    with db.session() as s:
        device = s.get(Device, "dev-2")
        return device is not None and device.last_heartbeat_at is not None


if __name__ == "__main__":
    raise SystemExit(main())
