"""A blocking MQTT v5 client for tests: connect, publish-and-wait-for-PUBACK, collect messages.

    with TestClient(broker, "collector") as collector:
        collector.subscribe("anbu/v1/#")
        message = collector.next_message(timeout_s=2)

It is the test's view from the other side of the broker (a collector, another device); the code
under test uses its own client.
"""

from __future__ import annotations

import queue
import threading
import uuid
from types import TracebackType
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from tests.support.certs import ClientCert
from tests.support.mosquitto import Broker


class ConnectFailed(RuntimeError):
    """The broker refused the connection, or it never completed."""


class TestClient:
    """One paho client with its network loop in a background thread."""

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        broker: Broker,
        username: str | None = None,
        *,
        password: str | None = None,
        cert: ClientCert | None = None,
        tls: bool = False,
        client_id: str | None = None,
        clean_start: bool = True,
        session_expiry_s: int = 0,
    ) -> None:
        self.broker = broker
        self.username = username
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self._connected = threading.Event()
        self._disconnected = threading.Event()
        self.connect_reason: ReasonCode | None = None
        self.disconnect_reason: ReasonCode | None = None
        self._acks: dict[int, ReasonCode] = {}
        self._acks_cond = threading.Condition()
        self._cert = cert
        self._tls = tls or cert is not None
        self._clean_start = clean_start
        self._session_expiry_s = session_expiry_s
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            # the broker binds a device's client id to its id; anyone else gets a fresh one
            client_id=client_id
            or (username if username in broker.devices else f"test-{uuid.uuid4().hex[:12]}"),
            protocol=mqtt.MQTTv5,
            reconnect_on_failure=False,
        )
        if self._tls:
            self.client.tls_set(
                ca_certs=str(broker.ca_file),
                certfile=None if cert is None else str(cert.cert_file),
                keyfile=None if cert is None else str(cert.key_file),
            )
        if cert is None and username is not None:
            self.client.username_pw_set(
                username, password if password is not None else broker.users.get(username)
            )
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message

    # --- paho callbacks (network thread) ---
    def _on_connect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: ReasonCode, _p: Any) -> None:
        self.connect_reason = reason
        if not reason.is_failure:
            self._connected.set()

    def _on_disconnect(
        self, _c: mqtt.Client, _u: Any, _f: Any, reason: ReasonCode, _p: Any
    ) -> None:
        self.disconnect_reason = reason
        self._connected.clear()
        self._disconnected.set()

    def _on_publish(self, _c: mqtt.Client, _u: Any, mid: int, reason: ReasonCode, _p: Any) -> None:
        with self._acks_cond:
            self._acks[mid] = reason
            self._acks_cond.notify_all()

    def _on_subscribe(self, _c: mqtt.Client, _u: Any, mid: int, reasons: Any, _p: Any) -> None:
        with self._acks_cond:
            self._acks[mid] = reasons[0]
            self._acks_cond.notify_all()

    def _on_message(self, _c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        self.messages.put(message)

    # --- blocking API ---
    def connect(self, timeout_s: float = 5.0) -> TestClient:
        """Connect and wait for a successful CONNACK; raise :class:`ConnectFailed` otherwise."""
        port = self.broker.tls_port if self._tls else self.broker.port
        assert port is not None
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = self._session_expiry_s
        self._disconnected.clear()
        try:
            self.client.connect(
                self.broker.host,
                port,
                keepalive=30,
                clean_start=self._clean_start,
                properties=properties,
            )
        except OSError as exc:
            raise ConnectFailed(f"connect to {self.broker.host}:{port} failed: {exc}") from exc
        self.client.loop_start()
        deadline_hit = not self._wait_either(timeout_s)
        if not self._connected.is_set():
            self.client.loop_stop()
            why = (
                "timed out"
                if deadline_hit
                else f"connect={self.connect_reason} disconnect={self.disconnect_reason}"
            )
            raise ConnectFailed(f"{self.username or self._cert}: {why}")
        return self

    def _wait_either(self, timeout_s: float) -> bool:
        step = 0.01
        waited = 0.0
        while waited < timeout_s:
            if self._connected.is_set() or self._disconnected.is_set():
                return True
            self._connected.wait(step)
            waited += step
        return False

    @property
    def is_connected(self) -> bool:
        return self._connected.is_set()

    def wait_disconnected(self, timeout_s: float = 5.0) -> bool:
        return self._disconnected.wait(timeout_s)

    def _wait_ack(self, mid: int, timeout_s: float) -> ReasonCode:
        with self._acks_cond:
            if not self._acks_cond.wait_for(lambda: mid in self._acks, timeout_s):
                raise TimeoutError(f"no acknowledgement for mid {mid} within {timeout_s} s")
            return self._acks.pop(mid)

    def publish(
        self,
        topic: str,
        payload: bytes | str,
        *,
        qos: int = 1,
        retain: bool = False,
        timeout_s: float = 5.0,
    ) -> int:
        """Publish and, for QoS 1, return the PUBACK reason code (0x87 = not authorized)."""
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        if qos == 0:
            return 0
        return int(self._wait_ack(info.mid, timeout_s).value)

    def subscribe(self, topic_filter: str, *, qos: int = 1, timeout_s: float = 5.0) -> int:
        """Subscribe and return the SUBACK reason code (granted QoS, or >= 0x80)."""
        _rc, mid = self.client.subscribe(topic_filter, qos=qos)
        assert mid is not None
        return int(self._wait_ack(mid, timeout_s).value)

    def next_message(self, timeout_s: float = 5.0) -> mqtt.MQTTMessage:
        """The next message received; raise ``queue.Empty`` if none arrives in time."""
        return self.messages.get(timeout=timeout_s)

    def messages_within(self, period_s: float) -> list[mqtt.MQTTMessage]:
        """Every message that arrives within ``period_s`` (for asserting that nothing arrives)."""
        received = []
        try:
            while True:
                received.append(self.messages.get(timeout=period_s))
        except queue.Empty:
            return received

    def close(self) -> None:
        """Disconnect cleanly (no last will) and stop the network thread."""
        if self._connected.is_set():
            self.client.disconnect()
            self._disconnected.wait(2)
        self.client.loop_stop()

    def __enter__(self) -> TestClient:
        if not self._connected.is_set():
            self.connect()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
