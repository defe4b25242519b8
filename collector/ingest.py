"""MQTT ingest: paho connections that hand every message to a lane (``collector/pipeline.py``).

The collector joins shared subscriptions (``$share/<group>/...``), so several collectors split the
devices' traffic, over separate connections per lane:

* ``…-events``: ``event/sos`` and ``event/sos_cancel`` only, so an SOS never queues behind a flood
  of heartbeats at the broker either;
* ``…-bulk-N``: heartbeats and motion (shared) and ``state`` (plain, because retained states are
  not delivered to shared subscriptions).

Each connection announces an MQTT v5 *receive maximum*: the broker never has more unacknowledged
messages out to it than that, which bounds the lane's queue; under overload the broker holds (and,
past its own queue limit, drops) heartbeats, while events travel on their own connection. On a
reconnect into a resumed session the connection first drops its stale copies from the lane (the
broker sends them all again), so reconnects do not stack receive maxima in the queue.
Acknowledgements (PUBACK) are sent by the lanes after the commit. The connections reconnect by
themselves, forever, with back-off; nothing here ever disconnects on bad input.
"""

from __future__ import annotations

import datetime as dt
import logging
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from collector.bulk_process import BulkProcess
from collector.pipeline import BulkLane, EventLane, Inbound, Lane
from collector.service import BulkResult, Outcome, Service
from collector.settings import CollectorSettings
from firmware_config.checkin import checkin_answer_subscription
from firmware_config.messages import command_of
from firmware_config.topics import collector_bulk_subscriptions, collector_event_subscriptions

log = logging.getLogger("anbu.collector.ingest")

SESSION_EXPIRY_S = 24 * 3600
_LOG_EVERY_S = 30.0


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class MqttIntake:
    """One paho connection feeding one lane; ``publish()`` sends commands back to devices."""

    def __init__(
        self,
        settings: CollectorSettings,
        *,
        client_id: str,
        subscriptions: list[str],
        lane: Lane,
        receive_maximum: int,
        clock: Callable[[], dt.datetime],
    ) -> None:
        self.settings = settings
        self.client_id = client_id
        self.subscriptions = subscriptions
        self.lane = lane
        self.receive_maximum = receive_maximum
        self.clock = clock
        self.connected = threading.Event()
        self.connects = 0
        self.last_problem: str | None = None
        self._generation = 0
        self._last_logged = 0.0
        self._stopping = False
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        client.manual_ack_set(True)
        client.max_inflight_messages_set(100)
        client.max_queued_messages_set(0)
        if settings.mqtt_username:
            client.username_pw_set(settings.mqtt_username, settings.mqtt_password)
        if settings.mqtt_tls:
            client.tls_set(
                ca_certs=str(settings.mqtt_ca_file) if settings.mqtt_ca_file else None,
                certfile=str(settings.mqtt_cert_file) if settings.mqtt_cert_file else None,
                keyfile=str(settings.mqtt_key_file) if settings.mqtt_key_file else None,
                tls_version=ssl.PROTOCOL_TLS_CLIENT,
            )
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        self.client = client

    def start(self) -> None:
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = SESSION_EXPIRY_S
        props.ReceiveMaximum = self.receive_maximum
        self.client.connect_async(
            self.settings.mqtt_host,
            self.settings.mqtt_port,
            keepalive=30,
            clean_start=False,
            properties=props,
        )
        self.client.loop_start()

    def stop(self) -> None:
        self._stopping = True
        self.lane.stop_waiting()  # paho's thread may be waiting for room in a stuck lane
        self.client.disconnect()
        self.client.loop_stop()

    def publish(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=1)

    def _problem(self, message: str, **extra: object) -> None:
        # The broker being away is logged at once, then every 30 s while it lasts.
        self.last_problem = message
        now = time.monotonic()
        if now - self._last_logged >= _LOG_EVERY_S:
            self._last_logged = now
            log.error(
                message,
                extra={
                    "client_id": self.client_id,
                    "host": self.settings.mqtt_host,
                    "port": self.settings.mqtt_port,
                    **extra,
                },
            )

    def _on_connect(
        self, client: mqtt.Client, _u: Any, flags: Any, reason: ReasonCode, _p: Any
    ) -> None:
        if reason.is_failure:
            self._problem("mqtt connect refused", reason=str(reason))
            return
        self._generation += 1
        if flags.session_present:
            # The broker resumed the session and sends every unacknowledged message again, on
            # this connection: the copies still queued from the old one can never be
            # acknowledged, and kept they would let each reconnect add another receive maximum.
            # (Without a session nothing comes again, so they are kept and applied.)
            dropped = self.lane.drop_stale()
            if dropped:
                log.info(
                    "dropped queued copies from the previous connection",
                    extra={"client_id": self.client_id, "dropped": dropped},
                )
        self.connects += 1
        self.last_problem = None
        self._last_logged = 0.0
        client.subscribe([(f, 1) for f in self.subscriptions])
        self.connected.set()
        log.info(
            "mqtt connected",
            extra={
                "client_id": self.client_id,
                "host": self.settings.mqtt_host,
                "port": self.settings.mqtt_port,
            },
        )

    def _on_connect_fail(self, _c: mqtt.Client, _u: Any) -> None:
        self._problem("mqtt broker unreachable, retrying")

    def _on_disconnect(
        self, _c: mqtt.Client, _u: Any, _f: Any, reason: ReasonCode, _p: Any
    ) -> None:
        self.connected.clear()
        if not self._stopping:
            self._problem("mqtt disconnected", reason=str(reason))

    def _on_message(self, client: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        mid, qos, generation = msg.mid, msg.qos, self._generation

        def ack() -> None:
            # A packet id belongs to one connection: after a reconnect the broker sends the
            # message again, and that copy is acknowledged instead.
            if qos > 0 and generation == self._generation:
                client.ack(mid, qos)

        def stale() -> bool:
            return qos > 0 and generation != self._generation

        self.lane.offer(
            Inbound(msg.topic, bytes(msg.payload), self.clock(), ack, qos=qos, stale=stale)
        )


def bulk_intakes(
    settings: CollectorSettings, lane: Lane, clock: Callable[[], dt.datetime]
) -> list[MqttIntake]:
    """The connections feeding the bulk lane; the first also takes the retained states."""
    return [
        MqttIntake(
            settings,
            client_id=f"{settings.mqtt_client_id}-bulk-{n}",
            subscriptions=collector_bulk_subscriptions(
                settings.mqtt_share_group, with_state=n == 1
            ),
            lane=lane,
            receive_maximum=settings.ingest_receive_maximum,
            clock=clock,
        )
        for n in range(1, settings.ingest_bulk_clients + 1)
    ]


class Ingest:
    """The collector's MQTT side: an event lane, a bulk lane and their connections.

    With ``ingest_bulk_process`` the bulk lane and its connections run in a child process
    (``collector/bulk_process.py``) and ``bulk`` is None.
    """

    def __init__(
        self,
        settings: CollectorSettings,
        service: Service,
        *,
        on_notify: Callable[[], None] = lambda: None,
        after_bulk: Callable[[BulkResult], None] = lambda result: None,
        after_event: Callable[[Outcome], None] = lambda outcome: None,
        on_checkin_answer: Callable[[str, bytes, dt.datetime], None] | None = None,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.settings = settings
        self.service = service
        self.on_notify = on_notify
        self.after_event = after_event
        self.events = EventLane(
            service,
            clock=clock,
            on_outcome=self._after_event,
            on_checkin_answer=on_checkin_answer,
            capacity=settings.ingest_receive_maximum,
        )
        self.bulk: BulkLane | None = None
        self.bulk_process: BulkProcess | None = None
        bulk_connections: list[MqttIntake] = []
        if settings.ingest_bulk_process:
            # the wall clock crosses the spawn as None; any other must pickle
            self.bulk_process = BulkProcess(
                settings, after_bulk=after_bulk, clock=None if clock is utcnow else clock
            )
        else:
            self.bulk = BulkLane(
                service,
                clock=clock,
                batch_max=settings.ingest_batch_max,
                batch_wait_s=settings.ingest_batch_wait_ms / 1000,
                after_commit=after_bulk,
                capacity=settings.ingest_receive_maximum * settings.ingest_bulk_clients,
            )
            bulk_connections = bulk_intakes(settings, self.bulk, clock)
        base = settings.mqtt_client_id
        group = settings.mqtt_share_group
        self.event_intake = MqttIntake(
            settings,
            client_id=f"{base}-events",
            subscriptions=[
                *collector_event_subscriptions(group),
                *([checkin_answer_subscription(group)] if on_checkin_answer else []),
            ],
            lane=self.events,
            receive_maximum=settings.ingest_receive_maximum,
            clock=clock,
        )
        self.bulk_intakes = bulk_connections
        self.intakes = [self.event_intake, *self.bulk_intakes]

    def _after_event(self, outcome: Outcome) -> None:
        for address, command in outcome.commands:
            self.event_intake.publish(
                address.command_topic(command_of(command)), command.to_payload()
            )
        if outcome.notify:
            self.on_notify()
        self.after_event(outcome)

    @property
    def connected(self) -> bool:
        bulk_ok = self.bulk_process is None or self.bulk_process.connected
        return bulk_ok and all(i.connected.is_set() for i in self.intakes)

    def bulk_health(self) -> dict[str, Any]:
        if self.bulk is not None:
            return self.bulk.health()
        return self.bulk_process.lane_health() if self.bulk_process is not None else {}

    @property
    def received(self) -> int:
        return self.events.received + int(self.bulk_health().get("received", 0))

    @property
    def store_failures(self) -> int:
        return self.events.store_failures + int(self.bulk_health().get("store_failures", 0))

    def prepare(self) -> None:
        """Start what takes long to start (the bulk process), ahead of :meth:`start`."""
        if self.bulk_process is not None:
            self.bulk_process.spawn_early()

    def start(self) -> None:
        self.events.start()
        if self.bulk is not None:
            self.bulk.start()
        if self.bulk_process is not None:
            self.bulk_process.start()
        for intake in self.intakes:
            intake.start()

    def stop(self) -> None:
        for intake in self.intakes:
            intake.stop()
        self.events.stop()
        if self.bulk is not None:
            self.bulk.stop()
        if self.bulk_process is not None:
            self.bulk_process.stop()

    def wait_connected(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        for intake in self.intakes:
            if not intake.connected.wait(max(0.0, deadline - time.monotonic())):
                return False
        while self.bulk_process is not None and not self.bulk_process.connected:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        return True

    def health(self) -> dict[str, Any]:
        return {
            "mqtt_connected": self.connected,
            "mqtt_problems": {
                **{i.client_id: i.last_problem for i in self.intakes if i.last_problem},
                **(self.bulk_process.problems() if self.bulk_process is not None else {}),
            },
            "events": self.events.health(),
            "bulk": self.bulk_health(),
        }
