"""The contract's broker rules, enforced by a real Mosquitto: every refusal with its reason code."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from firmware_config.acl import MAX_PACKET_BYTES, DeviceGrant, dynsec_config
from firmware_config.errors import ContractError
from firmware_config.messages import MAX_PAYLOAD_BYTES
from firmware_config.topics import Channel, Command, DeviceAddress
from tests.support.certs import make_cert_bundle
from tests.support.mosquitto import COLLECTOR_USER, Broker, anbu_acl, anbu_users, start_broker
from tests.support.mqtt_client import ConnectFailed, TestClient

NOT_AUTHORIZED = 0x87
NO_SUBSCRIBERS = 0x10
GRANTED_QOS1 = 0x01

DEV1 = DeviceGrant("dev-1", "gangnam", "h-001")
DEV2 = DeviceGrant("dev-2", "gangnam", "h-002")
BASE1 = "anbu/v1/gangnam/h-001/dev-1"
BASE2 = "anbu/v1/gangnam/h-002/dev-2"


@pytest.fixture
def pinned(tmp_path: Path) -> Iterator[Broker]:
    """A broker whose devices are pinned to their homes, with password and certificate listeners."""
    certs = make_cert_bundle(tmp_path / "certs", (COLLECTOR_USER, "dev-1", "dev-2", "dev-3"))
    # dev-3 has a password but is not in the rules: it may log in and do nothing.
    instance = start_broker(
        tmp_path / "broker",
        users=anbu_users(),
        acl=anbu_acl(COLLECTOR_USER, [DEV1, DEV2]),
        tls=certs,
    )
    try:
        yield instance
    finally:
        instance.kill()


# --- the document itself ----------------------------------------------------------------------


def test_each_device_gets_its_own_role_and_bound_client_id() -> None:
    config = dynsec_config("anbu.collector", [DEV1, DEV2])
    clients = {c["username"]: c for c in config["clients"]}
    assert clients["dev-1"]["clientid"] == "dev-1"
    assert "clientid" not in clients["anbu.collector"]  # several collectors share one account
    assert not any("password" in c for c in config["clients"])  # secrets stay in password_file
    roles = {r["rolename"]: r["acls"] for r in config["roles"]}
    assert {a["topic"] for a in roles["device-dev-1"]} == {f"{BASE1}/#", f"{BASE1}/cmd/#"}
    assert config["defaultACLAccess"]["subscribe"] is False


@pytest.mark.parametrize(
    ("devices", "message"),
    [
        ([DEV1, DeviceGrant("dev-1", "gangnam", "h-009")], "listed twice"),
        ([DeviceGrant("anbu-collector")], "collector's username"),
    ],
)
def test_inconsistent_device_lists_are_refused(devices: list[DeviceGrant], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        dynsec_config("anbu-collector", devices)


def test_a_grant_refuses_ids_outside_the_contract() -> None:
    with pytest.raises(ContractError):
        DeviceGrant("dev/1", "gangnam", "h-001")
    with pytest.raises(ContractError):
        DeviceGrant("dev-1", "#", "h-001")


# --- subscriptions: refused in SUBACK -----------------------------------------------------------


@pytest.mark.parametrize(
    "topic_filter",
    [
        "$share/anbu-collectors/anbu/v1/+/+/+/event/sos",
        f"$share/anbu-collectors/{BASE2}/event/sos",
        f"$share/anbu-collectors/{BASE1}/cmd/#",
        "#",
        "anbu/v1/#",
        f"{BASE2}/cmd/#",
        "anbu/v1/+/+/dev-2/cmd/+",
        f"{BASE1}/event/sos",
        "$SYS/#",
    ],
)
def test_a_device_is_refused_every_subscription_but_its_commands(
    pinned: Broker, topic_filter: str
) -> None:
    with TestClient(pinned, "dev-1") as device:
        assert device.subscribe(topic_filter) == NOT_AUTHORIZED
        assert device.subscribe(f"{BASE1}/cmd/+") == GRANTED_QOS1


def test_a_device_with_a_certificate_is_refused_the_share_group(pinned: Broker) -> None:
    assert pinned.certs is not None
    with TestClient(pinned, cert=pinned.certs.client("dev-1")) as device:
        assert device.subscribe("$share/anbu-collectors/anbu/v1/#") == NOT_AUTHORIZED
        assert device.subscribe(f"{BASE1}/cmd/#") == GRANTED_QOS1


def test_no_device_takes_a_share_of_another_homes_sos(pinned: Broker) -> None:
    """The attack from the issue: with the device refused, the collector gets every SOS."""
    group = "$share/anbu-collectors/anbu/v1/+/+/+/event/sos"
    with (
        TestClient(pinned, COLLECTOR_USER) as collector,
        TestClient(pinned, "dev-1") as intruder,
        TestClient(pinned, "dev-2") as home,
    ):
        assert collector.subscribe(group) == GRANTED_QOS1
        assert intruder.subscribe(group) == NOT_AUTHORIZED
        for n in range(20):
            assert home.publish(f"{BASE2}/event/sos", f"sos-{n}") == 0
        received = [collector.next_message(timeout_s=5).payload for _ in range(20)]
        assert sorted(received) == sorted(f"sos-{n}".encode() for n in range(20))
        assert intruder.messages_within(0.3) == []


# --- publications: refused in PUBACK ------------------------------------------------------------


def test_a_device_publishes_only_its_own_households_device_topics(pinned: Broker) -> None:
    with TestClient(pinned, "dev-1") as device:
        assert device.publish(f"{BASE1}/heartbeat", b"{}") == NO_SUBSCRIBERS
        assert device.publish(f"{BASE1}/event/sos", b"{}") == NO_SUBSCRIBERS
        # its own id in another household, another district, another device, its own commands
        assert device.publish("anbu/v1/gangnam/h-002/dev-1/event/sos", b"{}") == NOT_AUTHORIZED
        assert device.publish("anbu/v1/mapo/h-001/dev-1/event/sos", b"{}") == NOT_AUTHORIZED
        assert device.publish(f"{BASE2}/event/sos", b"{}") == NOT_AUTHORIZED
        assert device.publish(f"{BASE1}/cmd/sos_ack", b"{}") == NOT_AUTHORIZED
        assert device.publish("elsewhere", b"{}") == NOT_AUTHORIZED


def test_every_channel_and_command_of_the_layout_is_covered_by_the_rules(pinned: Broker) -> None:
    """Check-in included: each Channel its own device's only, each Command the collector's only."""
    own, other = (
        DeviceAddress("gangnam", "h-001", "dev-1"),
        DeviceAddress("gangnam", "h-002", "dev-2"),
    )
    with (
        TestClient(pinned, "dev-1") as device,
        TestClient(pinned, COLLECTOR_USER) as collector,
    ):
        for channel in Channel:
            assert device.publish(own.topic(channel), b"{}") == NO_SUBSCRIBERS, channel
            assert device.publish(other.topic(channel), b"{}") == NOT_AUTHORIZED, channel
            assert collector.publish(own.topic(channel), b"{}") == NOT_AUTHORIZED, channel
        for command in Command:
            assert device.subscribe(own.command_topic(command)) == GRANTED_QOS1, command
            assert device.subscribe(other.command_topic(command)) == NOT_AUTHORIZED, command
            assert device.publish(own.command_topic(command), b"{}") == NOT_AUTHORIZED, command
            assert collector.publish(own.command_topic(command), b"{}") in (
                0,  # dev-1 subscribed to it above
                NO_SUBSCRIBERS,
            ), command


def test_the_collector_publishes_only_commands(pinned: Broker) -> None:
    with TestClient(pinned, COLLECTOR_USER) as collector:
        assert collector.publish(f"{BASE1}/cmd/sos_ack", b"{}") == NO_SUBSCRIBERS
        assert collector.publish(f"{BASE1}/event/sos", b"{}") == NOT_AUTHORIZED


def test_a_device_missing_from_the_rules_may_do_nothing(pinned: Broker) -> None:
    with TestClient(pinned, "dev-3", client_id="dev-3") as stranger:
        assert stranger.publish("anbu/v1/gangnam/h-003/dev-3/heartbeat", b"{}") == NOT_AUTHORIZED
        assert stranger.subscribe("anbu/v1/gangnam/h-003/dev-3/cmd/#") == NOT_AUTHORIZED


# --- client ids bound to identities -----------------------------------------------------------


def test_a_device_cannot_log_in_under_another_devices_client_id(pinned: Broker) -> None:
    with TestClient(pinned, "dev-2") as victim:
        impostor = TestClient(pinned, "dev-1", client_id="dev-2")
        with pytest.raises(ConnectFailed):
            impostor.connect(timeout_s=3)
        assert impostor.connect_reason is not None
        assert impostor.connect_reason.value == NOT_AUTHORIZED
        time.sleep(0.2)
        assert victim.is_connected
        assert victim.publish(f"{BASE2}/heartbeat", b"{}") == NO_SUBSCRIBERS


def test_a_certificate_device_keeps_its_own_client_id_whatever_it_asks_for(pinned: Broker) -> None:
    assert pinned.certs is not None
    with (
        TestClient(pinned, cert=pinned.certs.client("dev-2")) as victim,
        TestClient(pinned, cert=pinned.certs.client("dev-1"), client_id="dev-2") as other,
    ):
        time.sleep(0.3)
        assert victim.is_connected and other.is_connected
        assert "as dev-1 " in pinned.log_text()


def test_collectors_share_one_account_with_their_own_client_ids(pinned: Broker) -> None:
    with TestClient(pinned, COLLECTOR_USER) as first, TestClient(pinned, COLLECTOR_USER) as second:
        time.sleep(0.2)
        assert first.is_connected and second.is_connected


# --- sizes ------------------------------------------------------------------------------------


def test_payloads_above_the_contracts_limit_are_dropped_by_the_broker(pinned: Broker) -> None:
    with TestClient(pinned, COLLECTOR_USER) as collector, TestClient(pinned, "dev-1") as device:
        collector.subscribe(f"{BASE1}/#")
        assert device.publish(f"{BASE1}/heartbeat", b"x" * MAX_PAYLOAD_BYTES) == 0
        assert len(collector.next_message(timeout_s=5).payload) == MAX_PAYLOAD_BYTES
        device.publish(f"{BASE1}/heartbeat", b"y" * (MAX_PAYLOAD_BYTES + 1), qos=0)
        # At QoS 1 mosquitto 2.0.11 answers 0x95, a code MQTT v5 does not allow in PUBACK, so
        # paho drops the connection as a protocol error: either way nothing is delivered.
        with pytest.raises(TimeoutError):
            device.publish(f"{BASE1}/heartbeat", b"z" * (MAX_PAYLOAD_BYTES + 1), timeout_s=1)
        assert device.wait_disconnected(2)
        assert collector.messages_within(0.5) == []


def test_the_broker_config_carries_the_limits(pinned: Broker) -> None:
    conf = pinned.config_file.read_text()
    assert f"\nmessage_size_limit {MAX_PAYLOAD_BYTES}\n" in conf
    assert f"\nmax_packet_size {MAX_PACKET_BYTES}\n" in conf
    assert "acl_file" not in conf  # it would grant every subscription
    rules = json.loads((pinned.workdir / "dynsec.json").read_text())
    assert {c["username"] for c in rules["clients"]} == {COLLECTOR_USER, "dev-1", "dev-2"}
