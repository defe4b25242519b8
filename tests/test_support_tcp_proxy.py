"""The pausable proxy cuts traffic like a network does, through a real broker."""

from __future__ import annotations

import dataclasses

from tests.support.mosquitto import COLLECTOR_USER, Broker
from tests.support.mqtt_client import TestClient
from tests.support.tcp_proxy import TcpProxy

TOPIC = "anbu/v1/d/h/dev-1/heartbeat"


def test_a_paused_proxy_holds_messages_back_and_a_resumed_one_delivers_them(
    broker: Broker,
) -> None:
    with TcpProxy(broker.host, broker.port) as proxy:
        behind = dataclasses.replace(broker, port=proxy.port, _process=None)
        with TestClient(broker, COLLECTOR_USER) as collector, TestClient(behind, "dev-1") as dev:
            collector.subscribe(TOPIC)
            proxy.pause()
            dev.client.publish(TOPIC, b"during the cut", qos=1)
            assert collector.messages_within(0.5) == []
            proxy.resume()
            assert collector.next_message(timeout_s=5).payload == b"during the cut"


def test_a_reset_closes_the_clients_connection(broker: Broker) -> None:
    with TcpProxy(broker.host, broker.port) as proxy:
        behind = dataclasses.replace(broker, port=proxy.port, _process=None)
        device = TestClient(behind, "dev-1").connect()
        try:
            proxy.reset()
            assert device.wait_disconnected(5)
        finally:
            device.close()
