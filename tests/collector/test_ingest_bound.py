"""A lane's queue stays bounded by the receive maximum, through a real Mosquitto, however it is
flooded: reconnects under load and QoS 0 messages (neither counted by the receive maximum)."""

from __future__ import annotations

import datetime as dt
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence

import pytest

from collector.ingest import MqttIntake
from collector.pipeline import Inbound, Lane
from collector.service import Service
from collector.settings import CollectorSettings
from firmware_config.topics import Channel, DeviceAddress, collector_bulk_subscriptions
from tests.collector.helpers import DISTRICT
from tests.support.mosquitto import COLLECTOR_USER, Broker
from tests.support.mqtt_client import TestClient

ADDR = DeviceAddress(DISTRICT, "h-1", "dev-1")
RECEIVE_MAXIMUM = 50


def wait_until(check: Callable[[], bool], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


class StuckLane(Lane):
    """A lane whose store is stuck until ``release`` is set: nothing is acknowledged meanwhile,
    as in the soak's overloaded bulk lane. It records what it applied."""

    def __init__(self) -> None:
        super().__init__(
            "bound-test",
            Service.__new__(Service),  # never touched: _apply is ours
            clock=lambda: dt.datetime.now(dt.UTC),
            batch_max=10,
            capacity=RECEIVE_MAXIMUM,
        )
        self.release = threading.Event()
        self.payloads: set[bytes] = set()
        self.high_water = 0

    def offer(self, item: Inbound) -> None:
        super().offer(item)
        self.high_water = max(self.high_water, self.queue.qsize())

    def _apply(self, batch: Sequence[Inbound]) -> None:
        while not self.release.wait(0.05):
            if self._stop.is_set():
                raise RuntimeError("stopped")
        self.payloads.update(i.payload for i in batch)
        time.sleep(0.002)  # a store slower than the broker: Mosquitto then oversends


@pytest.fixture
def lane() -> Iterator[StuckLane]:
    instance = StuckLane()
    instance.start()
    yield instance
    instance.release.set()
    instance.stop()


@pytest.fixture
def intake(broker: Broker, lane: StuckLane) -> Iterator[MqttIntake]:
    settings = CollectorSettings(
        mqtt_url=broker.url,
        mqtt_username=COLLECTOR_USER,
        mqtt_password=broker.password(COLLECTOR_USER),
        database_url="sqlite://",
        mqtt_client_id="bound-test",
    )
    connection = MqttIntake(
        settings,
        client_id="bound-test-bulk-1",
        subscriptions=collector_bulk_subscriptions(settings.mqtt_share_group, with_state=False),
        lane=lane,
        receive_maximum=RECEIVE_MAXIMUM,
        clock=lambda: dt.datetime.now(dt.UTC),
    )
    connection.start()
    assert connection.connected.wait(10)
    yield connection
    connection.stop()


def drop_connection(intake: MqttIntake) -> None:
    """Cut the collector's TCP connection under paho, as a lost link does; paho reconnects."""
    generation = intake.connects
    sock = intake.client.socket()
    assert isinstance(sock, socket.socket)
    sock.shutdown(socket.SHUT_RDWR)
    wait_until(lambda: intake.connects > generation and intake.connected.is_set())


def test_reconnects_under_a_flood_do_not_stack_receive_maxima_in_the_queue(
    broker: Broker, lane: StuckLane, intake: MqttIntake
) -> None:
    sent = 8 * RECEIVE_MAXIMUM
    with TestClient(broker, "dev-1").connect() as device:
        for n in range(sent):
            assert device.publish(ADDR.topic(Channel.HEARTBEAT), b"hb-%d" % n) == 0
    wait_until(lambda: lane.queue.qsize() >= RECEIVE_MAXIMUM - lane.batch_max)
    for _ in range(6):
        drop_connection(intake)
        # the broker sends the unacknowledged messages again on the new connection
        wait_until(lambda: lane.received >= RECEIVE_MAXIMUM * (intake.connects - 1))
        time.sleep(0.5)
    assert lane.high_water <= RECEIVE_MAXIMUM, lane.health()
    assert lane.dropped_stale > 0
    # nothing is lost by dropping the stale copies: once the store moves, every message is applied
    lane.release.set()
    wait_until(lambda: len(lane.payloads) == sent, timeout_s=60)
    assert lane.high_water <= RECEIVE_MAXIMUM, lane.health()


def test_a_qos0_flood_is_bounded_and_counted(
    broker: Broker, lane: StuckLane, intake: MqttIntake
) -> None:
    sent = 6 * RECEIVE_MAXIMUM
    with TestClient(broker, "dev-1").connect() as device:
        for n in range(sent):
            device.publish(ADDR.topic(Channel.HEARTBEAT), b"q0-%d" % n, qos=0)
        # a QoS 1 message after the flood still gets through
        assert device.publish(ADDR.topic(Channel.HEARTBEAT), b"qos1") == 0
    wait_until(lambda: lane.received == sent + 1)
    assert lane.high_water <= RECEIVE_MAXIMUM, lane.health()
    assert lane.dropped_qos0 >= sent - RECEIVE_MAXIMUM - lane.batch_max
    assert lane.health()["dropped_qos0"] == lane.dropped_qos0
    lane.release.set()
    wait_until(lambda: b"qos1" in lane.payloads)


def test_the_queue_stays_bounded_while_acknowledgements_flow(
    broker: Broker, lane: StuckLane, intake: MqttIntake
) -> None:
    """Mosquitto 2.0.11 keeps to the receive maximum only until PUBACKs come back; the lane
    keeps to it anyway, and loses nothing."""
    sent = 30 * RECEIVE_MAXIMUM
    with TestClient(broker, "dev-1").connect() as device:
        for n in range(sent):
            assert device.publish(ADDR.topic(Channel.HEARTBEAT), b"hb-%d" % n) == 0
    lane.release.set()
    wait_until(lambda: len(lane.payloads) == sent, timeout_s=120)
    assert lane.high_water <= RECEIVE_MAXIMUM, lane.health()


def test_a_connection_waiting_for_room_in_a_stuck_lane_still_stops(
    broker: Broker, lane: StuckLane, intake: MqttIntake
) -> None:
    """The lane stuck (its database away) with a full queue: stopping the collector, which stops
    the connections before the lanes, must not hang on paho's waiting thread."""
    lane.queue.capacity = 5  # full at once: paho's thread waits for room
    with TestClient(broker, "dev-1").connect() as device:
        for n in range(20):
            assert device.publish(ADDR.topic(Channel.HEARTBEAT), b"hb-%d" % n) == 0
    wait_until(lambda: lane.queue.waits > 0)
    stopper = threading.Thread(target=intake.stop)
    stopper.start()
    stopper.join(timeout=15)
    hung = stopper.is_alive()
    lane.release.set()  # so that a hung stop ends and the fixtures can clean up
    stopper.join(timeout=15)
    assert not hung, "stopping hung on a full queue"
