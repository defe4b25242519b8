"""The test broker enforces what production relies on: the Anbu ACL and client certificates."""

from __future__ import annotations

from pathlib import Path

import pytest

from firmware_config.topics import Channel, Command, DeviceAddress
from tests.support.certs import make_cert_bundle
from tests.support.mosquitto import Broker
from tests.support.mqtt_client import ConnectFailed, TestClient

NOT_AUTHORIZED = 0x87
DEV1 = DeviceAddress("gangnam", "h-001", "dev-1")
DEV2 = DeviceAddress("gangnam", "h-002", "dev-2")


def test_device_publishes_on_its_own_topics_and_the_collector_receives(broker: Broker) -> None:
    with TestClient(broker, "collector") as collector, TestClient(broker, "dev-1") as device:
        collector.subscribe("anbu/v1/#")
        assert device.publish(DEV1.topic(Channel.HEARTBEAT), b"{}") < 0x80
        message = collector.next_message(2)
        assert message.topic == DEV1.topic(Channel.HEARTBEAT)


def test_device_cannot_publish_on_another_devices_topic(broker: Broker) -> None:
    with TestClient(broker, "collector") as collector, TestClient(broker, "dev-1") as device:
        collector.subscribe("anbu/v1/#")
        assert device.publish(DEV2.topic(Channel.SOS), b"{}") == NOT_AUTHORIZED
        # a device id in the household position does not fool the pattern either
        spoof = "anbu/v1/gangnam/dev-1/dev-2/event/sos"
        assert device.publish(spoof, b"{}") == NOT_AUTHORIZED
        assert collector.messages_within(0.3) == []


def test_device_cannot_publish_outside_the_anbu_tree(broker: Broker) -> None:
    with TestClient(broker, "dev-1") as device:
        assert device.publish("other/dev-1/x", b"{}") == NOT_AUTHORIZED


def test_device_receives_only_its_own_commands(broker: Broker) -> None:
    with (
        TestClient(broker, "collector") as collector,
        TestClient(broker, "dev-1") as dev1,
        TestClient(broker, "dev-2") as dev2,
    ):
        dev2.subscribe(DEV2.command_filter)
        # the broker grants this SUBACK but must never deliver dev-2's commands to dev-1
        dev1.subscribe(DEV2.command_filter)
        dev1.subscribe("anbu/v1/#")
        assert collector.publish(DEV2.command_topic(Command.SOS_ACK), b"{}") < 0x80
        assert dev2.next_message(2).topic == DEV2.command_topic(Command.SOS_ACK)
        assert dev1.messages_within(0.3) == []


def test_device_cannot_send_commands_to_another_device(broker: Broker) -> None:
    with TestClient(broker, "dev-1") as dev1:
        assert dev1.publish(DEV2.command_topic(Command.SOS_ACK), b"{}") == NOT_AUTHORIZED


def test_collector_cannot_publish_device_events(broker: Broker) -> None:
    with TestClient(broker, "collector") as collector:
        assert collector.publish(DEV1.topic(Channel.SOS), b"{}") == NOT_AUTHORIZED


def test_wrong_password_is_refused(broker: Broker) -> None:
    with pytest.raises(ConnectFailed):
        TestClient(broker, "dev-1", password="wrong").connect(2)
    with pytest.raises(ConnectFailed):
        TestClient(broker).connect(2)  # anonymous


def test_client_certificate_identity_is_the_username(tls_broker: Broker) -> None:
    assert tls_broker.certs is not None
    with (
        TestClient(tls_broker, "collector") as collector,
        TestClient(tls_broker, cert=tls_broker.certs.client("dev-1")) as device,
    ):
        collector.subscribe("anbu/v1/#")
        assert device.publish(DEV1.topic(Channel.STATE), b"{}") < 0x80
        assert collector.next_message(2).topic == DEV1.topic(Channel.STATE)
        assert device.publish(DEV2.topic(Channel.STATE), b"{}") == NOT_AUTHORIZED
        assert collector.messages_within(0.2) == []


def test_tls_listener_refuses_a_client_without_certificate(tls_broker: Broker) -> None:
    # TLS 1.3: the handshake seems to succeed, then the broker drops the connection before CONNACK
    with pytest.raises(ConnectFailed):
        TestClient(tls_broker, "dev-1", tls=True).connect(3)


def test_tls_listener_refuses_a_certificate_from_another_ca(
    tls_broker: Broker, tmp_path: Path
) -> None:
    stranger = make_cert_bundle(tmp_path / "other-ca", ["dev-1"]).client("dev-1")
    with pytest.raises(ConnectFailed):
        TestClient(tls_broker, cert=stranger).connect(3)


def test_restart_keeps_ports_and_retained_messages(broker: Broker) -> None:
    with TestClient(broker, "dev-1") as device:
        device.publish(DEV1.topic(Channel.STATE), b"online", retain=True)
    port = broker.port
    broker.restart()
    assert broker.port == port
    with TestClient(broker, "collector") as collector:
        collector.subscribe(DEV1.topic(Channel.STATE))
        assert collector.next_message(2).payload == b"online"
