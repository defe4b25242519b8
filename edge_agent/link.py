"""The device's MQTT link: drains the durable outbox to the broker and receives commands.

Rules this module keeps:

* One paho client per connection attempt. paho's own outgoing queue lives in memory and would
  re-send old messages on reconnect; here the :class:`~edge_agent.outbox.Outbox` is the only queue,
  and after every (re)connect everything still in it is sent again, oldest first.
* An outbox item is deleted only on its successful PUBACK (reason code < 0x80). A refused publish
  (0x87 not authorised, quota exceeded...) is logged as an error and retried after
  ``refused_retry_s``; it is never deleted and never holds back the items behind it.
* At most ``max_in_flight`` items await their PUBACK at any time.
* Presence: the last will is a retained ``State(offline)`` at QoS 1; after each connect a retained
  ``State(online)`` is published; :meth:`Link.stop` publishes ``offline`` itself, then disconnects.
* A persistent session (``clean_start=False`` and a session expiry) so commands sent while the
  device was offline are delivered when it returns.
* Reconnects wait an exponentially growing, jittered delay between ``reconnect_min_s`` and
  ``reconnect_max_s`` (:class:`ReconnectBackoff`), so a fleet does not reconnect in lock-step
  after a broker restart.

Example::

    outbox = Outbox(config.outbox_path)
    link = Link(config.broker, config.address, outbox, client_id=config.device_id,
                agent_version="0.1.0", on_command=print)
    link.start()
    outbox.put(config.address.topic(Channel.SOS), sos.to_payload())
    link.wake()
    ...
    link.stop(timeout_s=5)
"""

from __future__ import annotations

import logging
import random
import secrets
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any, Literal

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from edge_agent.outbox import Outbox, OutboxItem
from firmware_config.checkin import CheckinRequest, checkin_command_topic, decode_checkin_request
from firmware_config.device import BrokerConfig
from firmware_config.errors import ContractError
from firmware_config.messages import CommandMessage, State, decode_command
from firmware_config.topics import Channel, DeviceAddress, parse

logger = logging.getLogger(__name__)

_CONTROL = -1
"""Stands for a message that is not an outbox item (birth, offline state) in the in-flight map."""


class ReconnectBackoff:
    """Delays between reconnect attempts: exponential growth with full jitter, bounded.

    Attempt ``n`` (from 0) waits a uniformly random time between ``min_s`` and
    ``min(max_s, min_s * 2 ** (n + 1))``; :meth:`reset` after a successful connection.
    """

    def __init__(self, min_s: float, max_s: float, rng: random.Random | None = None) -> None:
        self.min_s = min(min_s, max_s)
        self.max_s = max_s
        self._rng = rng if rng is not None else secrets.SystemRandom()
        self._attempt = 0

    def next_delay_s(self) -> float:
        ceiling = min(self.max_s, self.min_s * 2 ** min(self._attempt + 1, 32))
        self._attempt += 1
        return self._rng.uniform(self.min_s, ceiling)

    def reset(self) -> None:
        self._attempt = 0


class Link:
    """Keeps one device connected to the broker and its outbox drained."""

    def __init__(
        self,
        broker: BrokerConfig,
        address: DeviceAddress,
        outbox: Outbox,
        *,
        client_id: str,
        agent_version: str,
        on_command: Callable[[CommandMessage], None],
        on_connection: Callable[[bool], None] | None = None,
        on_checkin: Callable[[CheckinRequest], None] | None = None,
        max_in_flight: int = 20,
        session_expiry_s: int = 24 * 3600,
        refused_retry_s: float = 30.0,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        if max_in_flight < 1:
            raise ValueError(f"max_in_flight={max_in_flight} must be at least 1")
        self.broker = broker
        self.address = address
        self.outbox = outbox
        self.client_id = client_id
        self.agent_version = agent_version
        self.max_in_flight = max_in_flight
        self.session_expiry_s = session_expiry_s
        self.refused_retry_s = refused_retry_s
        self._on_command = on_command
        self._on_connection = on_connection
        self._on_checkin = on_checkin
        self._checkin_topic = checkin_command_topic(address)
        self._clock = clock
        self._backoff = ReconnectBackoff(broker.reconnect_min_s, broker.reconnect_max_s, rng)
        self._state_topic = address.topic(Channel.STATE)
        self._log = {"device": address.device, "client_id": client_id}

        self._cond = threading.Condition()
        self._stopping = threading.Event()
        # Everything below is guarded by self._cond.
        self._attempt_client: mqtt.Client | None = None  # the client of the current attempt
        self._client: mqtt.Client | None = None  # set while connected (CONNACK received)
        self._connack_received = False  # since the last backoff reset
        self._generation = 0  # bumped on every connect and disconnect
        self._in_flight: dict[int, int] = {}  # paho mid -> outbox item id (or _CONTROL)
        self._early_acks: dict[int, ReasonCode] = {}  # PUBACKs that beat publish() returning
        self._sent_upto = 0  # highest outbox id published on this connection
        self._dirty = False  # the outbox may hold items not yet published on this connection
        self._retry_refused_at: float | None = None  # monotonic time to re-send refused items
        self._published = 0
        self._threads: list[threading.Thread] = []

    # --- public API ---
    @property
    def is_connected(self) -> bool:
        """True between a successful CONNACK and the loss of that connection."""
        with self._cond:
            return self._client is not None

    @property
    def published_count(self) -> int:
        """Outbox items the broker has acknowledged since :meth:`start`."""
        with self._cond:
            return self._published

    def start(self) -> None:
        """Start connecting (in the background) and draining the outbox."""
        if self._threads:
            raise RuntimeError("Link.start() called twice")
        self._threads = [
            threading.Thread(target=self._connection_loop, name="anbu-link-connect", daemon=True),
            threading.Thread(target=self._drain_loop, name="anbu-link-drain", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def wake(self) -> None:
        """Tell the link a new item is in the outbox."""
        with self._cond:
            self._dirty = True
            self._cond.notify_all()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Publish ``offline`` (if connected), disconnect cleanly and stop the threads.

        Items still in the outbox stay there for the next start.
        """
        deadline = time.monotonic() + timeout_s
        self._stopping.set()
        with self._cond:
            client, attempt = self._client, self._attempt_client
            self._cond.notify_all()
        if client is not None:
            info = client.publish(self._state_topic, self._state("offline"), qos=1, retain=True)
            try:
                info.wait_for_publish(max(0.0, deadline - time.monotonic()))
            except (RuntimeError, ValueError) as exc:
                logger.warning(
                    "could not publish the offline state before disconnecting",
                    extra={**self._log, "event": "offline_state_failed", "error": str(exc)},
                )
        if attempt is not None:
            attempt.disconnect()
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        logger.info("link stopped", extra={**self._log, "event": "link_stopped"})

    # --- connection management (thread "anbu-link-connect") ---
    def _connection_loop(self) -> None:
        while not self._stopping.is_set():
            client = self._new_client()
            with self._cond:
                self._attempt_client = client
            if self._stopping.is_set():
                break
            try:
                client.connect(
                    self.broker.host,
                    self.broker.port,
                    keepalive=self.broker.keepalive_s,
                    clean_start=False,
                    properties=self._connect_properties(),
                )
            except (OSError, ssl.SSLError) as exc:
                logger.warning(
                    "cannot reach the broker",
                    extra={**self._log, "event": "connect_failed", "error": str(exc)},
                )
            else:
                if self._stopping.is_set():  # stop() ran while connect() was blocking
                    client.disconnect()
                try:
                    client.loop_forever()  # returns when this connection ends
                except Exception:
                    logger.exception(
                        "MQTT network loop failed", extra={**self._log, "event": "loop_failed"}
                    )
            self._connection_lost(client, None)
            if self._stopping.is_set():
                break
            with self._cond:
                if self._connack_received:  # a connection was made: start the backoff afresh
                    self._connack_received = False
                    self._backoff.reset()
            delay_s = self._backoff.next_delay_s()
            logger.info(
                "reconnecting after a delay",
                extra={**self._log, "event": "reconnect_wait", "delay_s": round(delay_s, 3)},
            )
            self._stopping.wait(delay_s)
        with self._cond:
            self._attempt_client = None

    def _new_client(self) -> mqtt.Client:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=mqtt.MQTTv5,
            reconnect_on_failure=False,
        )
        client.max_inflight_messages_set(self.max_in_flight + 2)  # + birth and offline states
        if self.broker.tls:
            client.tls_set(
                ca_certs=str(self.broker.ca_file),
                certfile=None if self.broker.cert_file is None else str(self.broker.cert_file),
                keyfile=None if self.broker.key_file is None else str(self.broker.key_file),
            )
        if self.broker.username is not None:
            client.username_pw_set(self.broker.username, self.broker.password)
        # The birth takes its seq before the will, so a will that fires later is never older.
        client.user_data_set(self._state("online"))
        client.will_set(self._state_topic, self._state("offline"), qos=1, retain=True)
        client.on_connect = self._handle_connect
        client.on_disconnect = self._handle_disconnect
        client.on_publish = self._handle_publish
        client.on_message = self._handle_message
        return client

    def _connect_properties(self) -> Properties:
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = self.session_expiry_s
        return properties

    def _state(self, state: Literal["online", "offline"]) -> bytes:
        message = State(
            state=state,
            agent_version=self.agent_version,
            device_ts=self._clock(),
            seq=self.outbox.next_seq(),
        )
        return message.to_payload()

    def _handle_connect(
        self,
        client: mqtt.Client,
        birth: bytes,
        flags: mqtt.ConnectFlags,
        reason: ReasonCode,
        _properties: Properties | None,
    ) -> None:
        if reason.is_failure:
            logger.error(
                "broker refused the connection",
                extra={
                    **self._log,
                    "event": "connect_refused",
                    "reason_code": reason.value,
                    "reason": str(reason),
                },
            )
            return
        with self._cond:
            self._reset_connection_state()
        # Published from the network thread, so its PUBACK cannot be handled before it is recorded;
        # the birth goes out before any outbox item because the drain waits for self._client.
        info = client.publish(self._state_topic, birth, qos=1, retain=True)
        client.subscribe(self.address.command_filter, qos=1)
        with self._cond:
            self._in_flight[info.mid] = _CONTROL
            self._client = client
            self._connack_received = True
            self._dirty = True
            self._cond.notify_all()
        logger.info(
            "connected to the broker",
            extra={
                **self._log,
                "event": "connected",
                "session_present": flags.session_present,
                "outbox_depth": self.outbox.depth(),
            },
        )
        self._notify_connection(True)

    def _handle_disconnect(
        self,
        client: mqtt.Client,
        _userdata: Any,
        _flags: mqtt.DisconnectFlags,
        reason: ReasonCode,
        _properties: Properties | None,
    ) -> None:
        self._connection_lost(client, reason)

    def _connection_lost(self, client: mqtt.Client, reason: ReasonCode | None) -> None:
        with self._cond:
            if client is not self._client:
                return
            self._client = None
            self._reset_connection_state()
            self._cond.notify_all()
        level = logging.INFO if self._stopping.is_set() else logging.WARNING
        logger.log(
            level,
            "disconnected from the broker",
            extra={
                **self._log,
                "event": "disconnected",
                "reason": None if reason is None else str(reason),
            },
        )
        self._notify_connection(False)

    def _reset_connection_state(self) -> None:
        """Forget what was in flight: the next connection re-sends the whole outbox (lock held)."""
        self._generation += 1
        self._in_flight.clear()
        self._early_acks.clear()
        self._sent_upto = 0
        self._retry_refused_at = None

    def _notify_connection(self, connected: bool) -> None:
        if self._on_connection is None:
            return
        try:
            self._on_connection(connected)
        except Exception:
            logger.exception(
                "on_connection handler failed", extra={**self._log, "event": "handler_failed"}
            )

    # --- acknowledgements and commands (paho's network thread) ---
    def _handle_publish(
        self,
        client: mqtt.Client,
        _userdata: Any,
        mid: int,
        reason: ReasonCode,
        _properties: Properties | None,
    ) -> None:
        with self._cond:
            if client is not self._client:
                return
            item_id = self._in_flight.pop(mid, None)
            if item_id is None:
                self._early_acks[mid] = reason
                return
            self._settle(item_id, reason)

    def _settle(self, item_id: int, reason: ReasonCode) -> None:
        """An item's PUBACK arrived: delete it, or keep it for a later retry (lock held)."""
        if item_id == _CONTROL:
            if reason.is_failure:
                logger.error(
                    "broker refused a state message",
                    extra={
                        **self._log,
                        "event": "state_refused",
                        "reason_code": reason.value,
                        "reason": str(reason),
                    },
                )
            return
        if reason.is_failure:
            logger.error(
                "broker refused an outbox item; keeping it for a retry",
                extra={
                    **self._log,
                    "event": "publish_refused",
                    "item_id": item_id,
                    "reason_code": reason.value,
                    "reason": str(reason),
                    "retry_in_s": self.refused_retry_s,
                },
            )
            if self._retry_refused_at is None:
                self._retry_refused_at = time.monotonic() + self.refused_retry_s
        else:
            self.outbox.ack(item_id)
            self._published += 1
        self._cond.notify_all()

    def _handle_message(self, _client: mqtt.Client, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        if msg.topic == self._checkin_topic and self._on_checkin is not None:
            self._handle_checkin(bytes(msg.payload))
            return
        try:
            parsed = parse(msg.topic)
            if parsed.command is None or parsed.address != self.address:
                raise ContractError(f"topic {msg.topic!r} is not a command for this device")
            command = decode_command(parsed.command, bytes(msg.payload))
        except (ContractError, UnicodeDecodeError) as exc:
            logger.warning(
                "dropping a malformed command",
                extra={
                    **self._log,
                    "event": "command_rejected",
                    "topic": msg.topic,
                    "error": str(exc),
                },
            )
            return
        logger.info(
            "command received",
            extra={
                **self._log,
                "event": "command_received",
                "command": parsed.command.value,
                "message_id": command.message_id,
            },
        )
        try:
            self._on_command(command)
        except Exception:
            logger.exception(
                "command handler failed",
                extra={**self._log, "event": "handler_failed", "command": parsed.command.value},
            )

    # --- draining (thread "anbu-link-drain") ---

    def _handle_checkin(self, payload: bytes) -> None:
        """``cmd/checkin`` (firmware_config/checkin.py): hand the request to the agent."""
        assert self._on_checkin is not None  # noqa: S101 - checked by the caller
        try:
            request = decode_checkin_request(payload)
        except ContractError as exc:
            logger.warning(
                "dropping a malformed check-in request",
                extra={**self._log, "event": "command_rejected", "error": str(exc)},
            )
            return
        logger.info(
            "check-in requested",
            extra={**self._log, "event": "checkin_received", "checkin_id": request.checkin_id},
        )
        try:
            self._on_checkin(request)
        except Exception:
            logger.exception(
                "check-in handler failed", extra={**self._log, "event": "handler_failed"}
            )

    def _drain_loop(self) -> None:
        while True:
            with self._cond:
                work = self._wait_for_work()
                if work is None:
                    return
                client, generation, after_id, room = work
                in_flight = set(self._in_flight.values())
            items = self.outbox.pending(room + len(in_flight), after_id=after_id)
            batch = [item for item in items if item.id not in in_flight][:room]
            with self._cond:
                if len(batch) == room:
                    self._dirty = True  # there may be more behind this batch
            for item in batch:
                if not self._publish_item(client, generation, item):
                    break

    def _wait_for_work(self) -> tuple[mqtt.Client, int, int, int] | None:
        """Block until there is something to send and room for it (lock held)."""
        while not self._stopping.is_set():
            now = time.monotonic()
            retry_due = self._retry_refused_at is not None and now >= self._retry_refused_at
            if retry_due:
                self._retry_refused_at = None
                self._sent_upto = 0  # walk the outbox from the start again
                self._dirty = True
            room = self.max_in_flight - sum(1 for i in self._in_flight.values() if i != _CONTROL)
            if self._client is not None and self._dirty and room > 0:
                self._dirty = False
                return self._client, self._generation, self._sent_upto, room
            timeout = 1.0
            if self._retry_refused_at is not None:
                timeout = max(0.0, min(timeout, self._retry_refused_at - now))
            self._cond.wait(timeout)
        return None

    def _publish_item(self, client: mqtt.Client, generation: int, item: OutboxItem) -> bool:
        """Publish one item at QoS 1 and record it as in flight; False if the connection went."""
        info = client.publish(item.topic, item.payload, qos=1)
        with self._cond:
            if generation != self._generation:
                return False
            if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                logger.warning(
                    "publish failed locally",
                    extra={
                        **self._log,
                        "event": "publish_failed",
                        "item_id": item.id,
                        "error": mqtt.error_string(info.rc),
                    },
                )
                return False
            self._sent_upto = max(self._sent_upto, item.id)
            early = self._early_acks.pop(info.mid, None)
            if early is None:
                self._in_flight[info.mid] = item.id
            else:
                self._settle(item.id, early)
        return True
