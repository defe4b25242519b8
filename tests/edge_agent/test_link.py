"""The link against a real broker: order, PUBACK-only deletion, outages, ACL refusals, TLS, will."""

from __future__ import annotations

import json
import logging
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from edge_agent.link import Link, ReconnectBackoff
from edge_agent.outbox import Outbox
from firmware_config.device import BrokerConfig
from firmware_config.messages import CommandMessage, SosAck, new_message_id
from firmware_config.topics import Channel, Command, DeviceAddress
from tests.support.mosquitto import Broker
from tests.support.mqtt_client import TestClient

REPO_ROOT = Path(__file__).resolve().parents[2]
DEV1 = DeviceAddress("gangnam", "h-001", "dev-1")
DEV2 = DeviceAddress("gangnam", "h-002", "dev-2")
SOS_TOPIC = DEV1.topic(Channel.SOS)


def wait_until(predicate: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s} s")
        time.sleep(0.01)


def password_config(broker: Broker, user: str = "dev-1") -> BrokerConfig:
    return BrokerConfig(
        url=broker.url,
        username=user,
        password=broker.password(user),
        reconnect_min_s=0.05,
        reconnect_max_s=0.2,
    )


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    box = Outbox(tmp_path / "outbox.sqlite3")
    yield box
    box.close()


class LinkHarness:
    """Builds links whose commands and connection changes the test can inspect."""

    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox
        self.commands: list[CommandMessage] = []
        self.connection_changes: list[bool] = []
        self.links: list[Link] = []

    def link(self, config: BrokerConfig, **kwargs: Any) -> Link:
        link = Link(
            config,
            DEV1,
            self.outbox,
            client_id="dev-1",
            agent_version="0.1.0-test",
            on_command=self.commands.append,
            on_connection=self.connection_changes.append,
            **kwargs,
        )
        self.links.append(link)
        return link

    def stop_all(self) -> None:
        for link in self.links:
            link.stop(2)


@pytest.fixture
def harness(outbox: Outbox) -> Iterator[LinkHarness]:
    h = LinkHarness(outbox)
    yield h
    h.stop_all()


def put_events(outbox: Outbox, count: int, topic: str = SOS_TOPIC, start: int = 0) -> list[bytes]:
    payloads = [f"event-{n}".encode() for n in range(start, start + count)]
    for payload in payloads:
        outbox.put(topic, payload)
    return payloads


def receive(client: TestClient, count: int, timeout_s: float = 5.0) -> list[bytes]:
    return [bytes(client.next_message(timeout_s).payload) for _ in range(count)]


def test_items_arrive_in_order_at_qos_1_and_leave_the_outbox(
    broker: Broker, outbox: Outbox, harness: LinkHarness
) -> None:
    with TestClient(broker, "collector") as collector:
        collector.subscribe("anbu/v1/+/+/+/event/#")
        sent = put_events(outbox, 300)
        link = harness.link(password_config(broker), max_in_flight=10)
        link.start()
        messages = [collector.next_message(5) for _ in range(300)]
    assert [m.payload for m in messages] == sent
    assert {m.qos for m in messages} == {1}
    wait_until(lambda: outbox.depth() == 0)
    assert link.published_count == 300


def test_items_wait_for_their_puback(broker: Broker, outbox: Outbox, harness: LinkHarness) -> None:
    link = harness.link(password_config(broker), max_in_flight=5)
    link.start()
    wait_until(lambda: link.is_connected)
    assert broker.pid is not None
    with TestClient(broker, "collector") as collector:
        collector.subscribe(SOS_TOPIC)
        os.kill(broker.pid, signal.SIGSTOP)  # the broker reads nothing and acknowledges nothing
        try:
            sent = put_events(outbox, 30)
            link.wake()
            time.sleep(0.3)
            assert outbox.depth() == 30
            assert link.published_count == 0
        finally:
            os.kill(broker.pid, signal.SIGCONT)
        assert receive(collector, 30) == sent
    wait_until(lambda: outbox.depth() == 0)


def test_items_stay_while_the_broker_is_down(
    broker: Broker, outbox: Outbox, harness: LinkHarness
) -> None:
    broker.kill()
    link = harness.link(password_config(broker))
    link.start()
    put_events(outbox, 5)
    link.wake()
    time.sleep(0.4)  # several reconnect attempts
    assert not link.is_connected
    assert outbox.depth() == 5
    assert harness.connection_changes == []


def test_outbox_drains_in_order_after_a_broker_restart(
    broker: Broker, outbox: Outbox, harness: LinkHarness
) -> None:
    def collector() -> TestClient:
        return TestClient(
            broker, "collector", client_id="collector-1", clean_start=False, session_expiry_s=300
        )

    with collector() as first:
        first.subscribe(SOS_TOPIC)
    link = harness.link(password_config(broker))
    link.start()
    before = put_events(outbox, 10)
    link.wake()
    wait_until(lambda: link.published_count == 10)

    broker.stop()  # saves the collector's session and its subscription
    wait_until(lambda: not link.is_connected)
    during = put_events(outbox, 20, start=10)
    link.wake()
    time.sleep(0.2)
    assert outbox.depth() == 20
    broker.start()
    wait_until(lambda: outbox.depth() == 0)

    with collector() as second:
        received = receive(second, 30)
        assert second.messages_within(0.1) == []
    assert received == before + during
    assert harness.connection_changes == [True, False, True]


def test_unacknowledged_items_are_sent_again_after_the_broker_is_killed(
    broker: Broker, outbox: Outbox, harness: LinkHarness
) -> None:
    put_events(outbox, 400)
    config = BrokerConfig(
        url=broker.url,
        username="dev-1",
        password=broker.password("dev-1"),
        reconnect_min_s=0.5,  # time for the collector below to subscribe first
        reconnect_max_s=0.6,
    )
    link = harness.link(config, max_in_flight=5)
    link.start()
    wait_until(lambda: link.published_count >= 20)
    broker.kill()  # with items in flight
    wait_until(lambda: not link.is_connected)
    remaining = [item.payload for item in outbox.pending(1000)]
    assert remaining, "the whole outbox drained before the kill; make it bigger"
    broker.start()
    with TestClient(broker, "collector") as collector:
        collector.subscribe(SOS_TOPIC)
        assert receive(collector, len(remaining)) == remaining
    wait_until(lambda: outbox.depth() == 0)


def test_refused_publish_stays_in_the_outbox_and_is_retried(
    broker: Broker, outbox: Outbox, harness: LinkHarness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="edge_agent.link")
    with TestClient(broker, "collector") as collector:
        collector.subscribe("anbu/v1/#")
        outbox.put(DEV2.topic(Channel.SOS), b"not mine")  # the ACL refuses this (0x87)
        outbox.put(SOS_TOPIC, b"mine")
        link = harness.link(password_config(broker), refused_retry_s=0.1)
        link.start()
        payloads = [m.payload for m in collector.messages_within(0.5)]
    assert b"mine" in payloads
    assert b"not mine" not in payloads
    assert [i.payload for i in outbox.pending(10)] == [b"not mine"]
    assert link.published_count == 1
    refusals = [r for r in caplog.records if getattr(r, "event", None) == "publish_refused"]
    assert len(refusals) >= 2  # retried after refused_retry_s, refused again
    assert {getattr(r, "reason_code", None) for r in refusals} == {0x87}


def test_client_certificate_connection(
    tls_broker: Broker, outbox: Outbox, harness: LinkHarness
) -> None:
    assert tls_broker.certs is not None
    cert = tls_broker.certs.client("dev-1")
    config = BrokerConfig(
        url=tls_broker.tls_url,
        ca_file=tls_broker.ca_file,
        cert_file=cert.cert_file,
        key_file=cert.key_file,
        reconnect_min_s=0.05,
        reconnect_max_s=0.2,
    )
    with TestClient(tls_broker, "collector") as collector:
        collector.subscribe(SOS_TOPIC)
        sent = put_events(outbox, 5)
        link = harness.link(config)
        link.start()
        assert receive(collector, 5) == sent
    wait_until(lambda: outbox.depth() == 0)


def retained_state(broker: Broker) -> dict[str, Any]:
    with TestClient(broker, "collector") as collector:
        collector.subscribe(DEV1.topic(Channel.STATE))
        message = collector.next_message(2)
        assert message.retain
        state: dict[str, Any] = json.loads(message.payload)
        return state


def test_birth_and_clean_stop_publish_retained_states(
    broker: Broker, outbox: Outbox, harness: LinkHarness
) -> None:
    link = harness.link(password_config(broker))
    link.start()
    wait_until(lambda: link.is_connected)
    wait_until(lambda: retained_state(broker)["state"] == "online", 2)
    online = retained_state(broker)
    assert online["agent_version"] == "0.1.0-test"
    link.stop(2)
    offline = retained_state(broker)
    assert offline["state"] == "offline"
    assert offline["seq"] > online["seq"]
    assert harness.connection_changes == [True, False]


def test_last_will_is_retained_after_the_agent_is_killed(broker: Broker, tmp_path: Path) -> None:
    child = textwrap.dedent(
        f"""
        import time
        from pathlib import Path
        from edge_agent.link import Link
        from edge_agent.outbox import Outbox
        from firmware_config.device import BrokerConfig
        from firmware_config.topics import DeviceAddress

        config = BrokerConfig(url={broker.url!r}, username="dev-1",
                              password={broker.password("dev-1")!r})
        link = Link(config, DeviceAddress("gangnam", "h-001", "dev-1"),
                    Outbox(Path({str(tmp_path / "child.sqlite3")!r})),
                    client_id="dev-1", agent_version="child", on_command=print)
        link.start()
        while not link.is_connected:
            time.sleep(0.01)
        print("ok", flush=True)
        time.sleep(60)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-c", child], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ok"
        wait_until(lambda: retained_state(broker)["state"] == "online", 2)
        online = retained_state(broker)
        process.send_signal(signal.SIGKILL)
        process.wait(5)
    finally:
        process.kill()
        process.wait()
    wait_until(lambda: retained_state(broker)["state"] == "offline", 2)
    will = retained_state(broker)
    assert will["agent_version"] == "child"
    assert will["seq"] > online["seq"]  # a collector ordering by seq must not ignore the will


def sos_ack(seq: int = 1) -> SosAck:
    return SosAck(sos_id=new_message_id(), dispatch_id=7, device_ts=time.time(), seq=seq)


def test_commands_arrive_decoded_and_bad_ones_are_dropped(
    broker: Broker, outbox: Outbox, harness: LinkHarness
) -> None:
    link = harness.link(password_config(broker))
    link.start()
    wait_until(lambda: link.is_connected)
    time.sleep(0.1)  # the SUBACK
    ack = sos_ack()
    with TestClient(broker, "collector") as collector:
        collector.publish(DEV1.command_topic(Command.SOS_ACK), b"not json")
        collector.publish(DEV1.command_topic(Command.CANCEL_ACK), ack.to_payload())  # wrong kind
        collector.publish(DEV1.command_topic(Command.SOS_ACK), ack.to_payload())
    wait_until(lambda: len(harness.commands) == 1)
    assert harness.commands == [ack]
    assert link.is_connected


def test_a_failing_command_handler_does_not_stop_the_link(broker: Broker, outbox: Outbox) -> None:
    received: list[CommandMessage] = []

    def handler(command: CommandMessage) -> None:
        received.append(command)
        raise RuntimeError("speaker unplugged")

    link = Link(
        password_config(broker),
        DEV1,
        outbox,
        client_id="dev-1",
        agent_version="t",
        on_command=handler,
    )
    link.start()
    try:
        wait_until(lambda: link.is_connected)
        time.sleep(0.1)
        with TestClient(broker, "collector") as collector:
            for seq in (1, 2):
                collector.publish(DEV1.command_topic(Command.SOS_ACK), sos_ack(seq).to_payload())
        wait_until(lambda: len(received) == 2)
        outbox.put(SOS_TOPIC, b"still working")
        link.wake()
        wait_until(lambda: outbox.depth() == 0)
    finally:
        link.stop(2)


def test_commands_sent_while_offline_arrive_after_reconnecting(
    broker: Broker, outbox: Outbox, harness: LinkHarness
) -> None:
    first = harness.link(password_config(broker))
    first.start()
    wait_until(lambda: first.is_connected)
    time.sleep(0.1)  # the SUBACK
    first.stop(2)
    ack = sos_ack()
    with TestClient(broker, "collector") as collector:
        collector.publish(DEV1.command_topic(Command.SOS_ACK), ack.to_payload())
    assert harness.commands == []
    second = harness.link(password_config(broker))
    second.start()
    wait_until(lambda: harness.commands == [ack])


def test_connects_once_the_broker_comes_up(
    broker: Broker, outbox: Outbox, harness: LinkHarness
) -> None:
    broker.kill()
    sent = put_events(outbox, 3)
    link = harness.link(password_config(broker))
    link.start()
    time.sleep(0.2)
    broker.start()
    wait_until(lambda: outbox.depth() == 0)
    assert link.published_count == len(sent)


def test_wrong_password_keeps_retrying_without_losing_items(
    broker: Broker, outbox: Outbox, harness: LinkHarness
) -> None:
    config = BrokerConfig(
        url=broker.url,
        username="dev-1",
        password="wrong",
        reconnect_min_s=0.05,
        reconnect_max_s=0.1,
    )
    put_events(outbox, 2)
    link = harness.link(config)
    link.start()
    time.sleep(0.4)
    assert not link.is_connected
    assert outbox.depth() == 2
    assert broker.log_text().count("not authorised") >= 2


def test_backoff_grows_exponentially_with_jitter_within_bounds() -> None:
    backoff = ReconnectBackoff(1.0, 30.0, random.Random(7))
    delays = [backoff.next_delay_s() for _ in range(12)]
    assert all(1.0 <= d <= 30.0 for d in delays)
    ceilings = [min(30.0, 2.0 ** (n + 1)) for n in range(12)]
    assert all(d <= c for d, c in zip(delays, ceilings, strict=True))
    assert len(set(delays)) == len(delays)  # jittered, not lock-step
    assert max(delays[6:]) > 8.0  # it did grow
    backoff.reset()
    assert backoff.next_delay_s() <= 2.0


def test_backoff_with_max_below_min_stays_at_max() -> None:
    backoff = ReconnectBackoff(5.0, 2.0, random.Random(1))
    assert {backoff.next_delay_s() for _ in range(5)} == {2.0}
