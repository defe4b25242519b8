"""The bulk lane in a child process (``ingest_bulk_process``), through a real Mosquitto broker."""

from __future__ import annotations

import datetime as dt
import os
import signal
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from collector.bulk_process import restart_delay
from collector.ingest import Ingest
from collector.service import BulkResult, Service
from collector.settings import CollectorSettings
from collector.store.db import Database
from collector.store.models import Device
from firmware_config.messages import Heartbeat, SosEvent
from firmware_config.topics import Channel, DeviceAddress
from tests.collector.helpers import DISTRICT, register_homes
from tests.collector.test_ingest import dispatches, wait_until
from tests.support.mosquitto import COLLECTOR_USER, Broker
from tests.support.mqtt_client import TestClient

ADDR = DeviceAddress(DISTRICT, "h-1", "dev-1")


def heartbeat(seq: int, device_ts: float | None = None) -> bytes:
    return Heartbeat(
        device_ts=time.time() if device_ts is None else device_ts,
        seq=seq,
        interval_s=60,
        motion_count=2,
        speech_s=0,
        wake_word_count=0,
        interactions=0,
        uptime_s=60.0 * seq,
        audio_overruns=0,
        outbox_depth=seq * 10,
        agent_version="0.1.0",
    ).to_payload()


class Signs:
    """What the main process hears from the bulk child after each commit."""

    def __init__(self) -> None:
        self.life_signs: list[tuple[str, str, dt.datetime]] = []
        self.outbox_depths: list[tuple[str, int]] = []

    def __call__(self, result: BulkResult) -> None:
        self.life_signs.extend(result.life_signs)
        assert not result.heartbeats, "the child keeps the heartbeats themselves"
        assert result.supervised is not None
        self.outbox_depths.extend((a.device, f.outbox_depth) for a, _at, f in result.supervised)


def bulk_settings(broker: Broker, database: Database, client_id: str) -> CollectorSettings:
    """The collector's settings with heartbeats ingested in the child process."""
    return CollectorSettings(
        mqtt_url=broker.url,
        mqtt_username=COLLECTOR_USER,
        mqtt_password=broker.password(COLLECTOR_USER),
        database_url=database.url,
        mqtt_client_id=client_id,
        ingest_bulk_process=True,
    )


@pytest.fixture
def signs() -> Signs:
    return Signs()


@pytest.fixture
def ingest(broker: Broker, database: Database, signs: Signs) -> Iterator[Ingest]:
    register_homes(database)
    settings = bulk_settings(broker, database, "bulk-process-test")
    ing = Ingest(settings, Service(database), after_bulk=signs)
    assert ing.bulk is None and ing.bulk_process is not None
    ing.start()
    wait_until(lambda: ing.connected, timeout_s=30)  # the child reports once a second
    yield ing
    ing.stop()


def last_seq(db: Database) -> int | None:
    with db.session() as s:
        return s.scalar(select(Device.last_seq).where(Device.id == "dev-1"))


def test_heartbeats_are_stored_by_the_child_and_life_signs_reach_the_main_process(
    ingest: Ingest, broker: Broker, database: Database, signs: Signs
) -> None:
    with TestClient(broker, "dev-1").connect() as device:
        for seq in range(1, 4):
            assert device.publish(ADDR.topic(Channel.HEARTBEAT), heartbeat(seq)) == 0
        wait_until(lambda: last_seq(database) == 3, timeout_s=10)
    wait_until(lambda: any(h == "h-1" for h, _k, _at in signs.life_signs))
    # what device supervision reads of each heartbeat crosses too
    wait_until(lambda: sorted(signs.outbox_depths) == [("dev-1", 10), ("dev-1", 20), ("dev-1", 30)])
    wait_until(lambda: ingest.bulk_health().get("applied") == 3, timeout_s=5)
    health = ingest.health()
    assert health["bulk"]["process"]["alive"] is True
    assert health["bulk"]["process"]["pid"] != os.getpid()
    assert health["mqtt_connected"] is True


class FixedClock:
    """A clock that pickles (it crosses into the spawned child): always ``at``."""

    def __init__(self, at: dt.datetime) -> None:
        self.at = at

    def __call__(self) -> dt.datetime:
        return self.at


def test_the_child_stamps_what_it_receives_with_the_collectors_clock(
    broker: Broker, database: Database, signs: Signs
) -> None:
    """The soak's accelerated clock reaches the child: its receive times are the injected ones."""
    register_homes(database)
    settings = bulk_settings(broker, database, "bulk-clock-test")
    at = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(days=3)
    ing = Ingest(settings, Service(database), after_bulk=signs, clock=FixedClock(at))
    ing.start()
    try:
        wait_until(lambda: ing.connected, timeout_s=30)
        with TestClient(broker, "dev-1").connect() as device:
            # a device on the same (accelerated) clock: on the wall clock it would be three days
            # ahead, overruled to the wall-clock receive time
            payload = heartbeat(1, device_ts=at.timestamp())
            assert device.publish(ADDR.topic(Channel.HEARTBEAT), payload) == 0
            wait_until(lambda: any(h == "h-1" for h, _k, _at in signs.life_signs), timeout_s=10)
    finally:
        ing.stop()
    assert {when for h, _k, when in signs.life_signs if h == "h-1"} == {at}
    with database.session() as s:
        device_row = s.get(Device, "dev-1")
        assert device_row is not None and device_row.clock_offset_s == 0


def test_a_killed_child_is_started_again_and_an_sos_never_waits_for_it(
    ingest: Ingest, broker: Broker, database: Database
) -> None:
    process = ingest.bulk_process
    assert process is not None and process.pid is not None
    first_pid = process.pid
    os.kill(first_pid, signal.SIGKILL)
    with TestClient(broker, "dev-1").connect() as device:
        # The SOS lane lives in this process: the dead child does not hold it up.
        sos = SosEvent(device_ts=time.time(), seq=1, source="button")
        device.publish(ADDR.topic(Channel.SOS), sos.to_payload())
        wait_until(lambda: dispatches(database) == 1, timeout_s=5)
        wait_until(lambda: process.restarts == 1 and process.pid != first_pid, timeout_s=15)
        wait_until(lambda: ingest.connected, timeout_s=30)
        device.publish(ADDR.topic(Channel.HEARTBEAT), heartbeat(7))
        wait_until(lambda: last_seq(database) == 7, timeout_s=15)
    assert ingest.health()["bulk"]["process"]["restarts"] == 1


def test_a_child_that_keeps_dying_at_once_is_restarted_ever_more_slowly() -> None:
    waits, previous = [], 0.0
    for _ in range(7):
        previous = restart_delay(lived_s=2.0, previous_s=previous, base_s=1.0)
        waits.append(previous)
    assert waits == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    # after a steady run the next death is answered at once again
    assert restart_delay(lived_s=600.0, previous_s=30.0, base_s=1.0) == 1.0
