"""MQTT ingest: a paho subscriber that hands every message to :class:`collector.service.Service`.

The collector joins a shared subscription (``$share/<group>/...``), so several collectors split the
devices' traffic; each also subscribes plainly to ``state`` because retained states are not
delivered to shared subscriptions.

Delivery: messages are acknowledged to the broker (PUBACK) only after they are stored. A database
failure is retried briefly; if it persists the message is left unacknowledged and the connection
is dropped, so the broker redelivers it from the persistent session on reconnect.
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

from collector.service import Outcome, Service
from collector.settings import CollectorSettings
from collector.startup import first_line
from firmware_config.messages import command_of
from firmware_config.topics import collector_subscriptions

log = logging.getLogger("anbu.collector.ingest")

SESSION_EXPIRY_S = 24 * 3600


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Ingest:
    """Subscribes, validates through the service, acknowledges SOS back to devices."""

    def __init__(
        self,
        settings: CollectorSettings,
        service: Service,
        *,
        on_notify: Callable[[], None] = lambda: None,
        clock: Callable[[], dt.datetime] = utcnow,
        store_retries: int = 5,
    ) -> None:
        self.settings = settings
        self.service = service
        self.on_notify = on_notify
        self.clock = clock
        self.store_retries = store_retries
        self.connected = threading.Event()
        self.received = 0
        self.store_failures = 0
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=settings.mqtt_client_id,
            protocol=mqtt.MQTTv5,
        )
        self.client.manual_ack_set(True)
        self.client.max_inflight_messages_set(100)
        self.client.max_queued_messages_set(0)
        if settings.mqtt_username:
            self.client.username_pw_set(settings.mqtt_username, settings.mqtt_password)
        if settings.mqtt_tls:
            self.client.tls_set(
                ca_certs=str(settings.mqtt_ca_file) if settings.mqtt_ca_file else None,
                certfile=str(settings.mqtt_cert_file) if settings.mqtt_cert_file else None,
                keyfile=str(settings.mqtt_key_file) if settings.mqtt_key_file else None,
                tls_version=ssl.PROTOCOL_TLS_CLIENT,
            )
        self.client.reconnect_delay_set(min_delay=1, max_delay=30)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_connect_fail = self._on_connect_fail
        self.client.on_message = self._on_message

    def start(self) -> None:
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = SESSION_EXPIRY_S
        self.client.connect_async(
            self.settings.mqtt_host,
            self.settings.mqtt_port,
            keepalive=30,
            clean_start=False,
            properties=props,
        )
        self.client.loop_start()

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def wait_connected(self, timeout_s: float) -> bool:
        return self.connected.wait(timeout_s)

    def _on_connect(
        self, client: mqtt.Client, _u: Any, _f: Any, reason: ReasonCode, _p: Any
    ) -> None:
        if reason.is_failure:
            log.error("mqtt connect refused", extra={"reason": str(reason)})
            return
        client.subscribe([(f, 1) for f in collector_subscriptions(self.settings.mqtt_share_group)])
        self.connected.set()
        log.info(
            "mqtt connected",
            extra={"host": self.settings.mqtt_host, "port": self.settings.mqtt_port},
        )

    def _on_connect_fail(self, _c: mqtt.Client, _u: Any) -> None:
        # paho retries by itself (reconnect_delay_set); without this line nothing is logged.
        log.warning(
            "mqtt broker unreachable, retrying",
            extra={"host": self.settings.mqtt_host, "port": self.settings.mqtt_port},
        )

    def _on_disconnect(
        self, _c: mqtt.Client, _u: Any, _f: Any, reason: ReasonCode, _p: Any
    ) -> None:
        self.connected.clear()
        log.warning("mqtt disconnected", extra={"reason": str(reason)})

    def _on_message(self, client: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        self.received += 1
        outcome: Outcome | None = None
        for attempt in range(self.store_retries):
            try:
                outcome = self.service.handle(msg.topic, bytes(msg.payload), self.clock())
                break
            except Exception as exc:
                self.store_failures += 1
                # One line, no traceback: a database that is down repeats this for every message.
                log.error(
                    "storing a message failed",
                    extra={"topic": msg.topic, "attempt": attempt, "error": first_line(exc)},
                )
                time.sleep(min(2.0, 0.1 * 2**attempt))
        if outcome is None:
            # Leave it unacknowledged; reconnecting makes the broker send it again.
            client.disconnect()
            return
        if msg.qos > 0:
            client.ack(msg.mid, msg.qos)
        for address, command in outcome.commands:
            client.publish(address.command_topic(command_of(command)), command.to_payload(), qos=1)
        if outcome.notify:
            self.on_notify()
