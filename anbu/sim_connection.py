"""The simulator's moving parts: one MQTT connection and the scheduler serving its homes.

:class:`Connection` owns one paho MQTT v5 client (its network thread) and one scheduler thread
that takes a slice of the homes from a heap of due times: heartbeats (coalesced while the link is
down or backed up, as the agent does), SOS (held and re-sent until ``cmd/sos_ack``), retained
states, and answers to ``cmd/checkin`` (:func:`anbu.activity.checkin_reply` decides whether the
resident answers; the answer, or the "nobody answered" the agent sends when its listening ends,
goes out that many simulated seconds after the request). :mod:`anbu.sim` builds the connections
and adds them up; see its docstring for the rules.
"""

from __future__ import annotations

import heapq
import logging
import random
import secrets
import ssl
import threading
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from anbu import __version__
from anbu.activity import Counts, Resident, checkin_reply, counts_between
from firmware_config.errors import ContractError
from firmware_config.messages import (
    CheckinAnswer,
    CheckinRequest,
    Heartbeat,
    SosAck,
    SosEvent,
    State,
    decode_command,
)
from firmware_config.topics import PREFIX, Command, DeviceAddress, parse

if TYPE_CHECKING:
    from anbu.sim import SimSettings

log = logging.getLogger("anbu.sim")

Source = Literal["button", "voice"]

AGENT_VERSION = f"sim-{__version__}"
_HEARTBEAT, _SOS = 0, 1
_EVENTS_PER_TICK = 500
_REBOOTS_PER_DAY = 1 / 30
_OVERRUNS_PER_HEARTBEAT = 0.002


@dataclass(slots=True)
class Home:
    number: int
    address: DeviceAddress
    resident: Resident
    heartbeat_topic: str
    sos_topic: str
    state_topic: str
    checkin_answer_topic: str
    seq: int
    boot_at: float
    last_heartbeat_at: float
    overruns: int = 0
    button_presses: int = 0
    held: Counts = field(default_factory=Counts)
    held_since: float | None = None
    coalesced: int = 0
    sos_pending: int = 0


@dataclass(slots=True)
class PendingSos:
    home: Home
    message_id: str
    payload: bytes
    first_sent: float
    next_resend: float
    resends: int = 0


@dataclass(slots=True)
class DueAnswer:
    """A check-in answer the resident gives (or the agent's "nobody answered") at ``due``."""

    due: float
    """Monotonic seconds."""
    home: Home
    request: CheckinRequest
    reply_s: float | None
    """Seconds after the prompt the resident answered; None: nobody did."""
    expired: bool = False


@dataclass(slots=True)
class Counters:
    heartbeats_sent: int = 0
    heartbeats_coalesced: int = 0
    states_sent: int = 0
    puback: int = 0
    publish_refused: int = 0
    sos_sent: int = 0
    sos_resent: int = 0
    sos_acked: int = 0
    connects: int = 0
    disconnects: int = 0
    bad_commands: int = 0
    checkins_received: int = 0
    checkins_answered: int = 0
    checkins_unanswered: int = 0
    checkins_expired: int = 0
    latencies_s: list[float] = field(default_factory=list)


class SimClock:
    """Simulated time: ``start_s`` at ``origin`` on the monotonic clock, ``multiplier`` faster."""

    def __init__(self, start_s: float, multiplier: float, origin: float) -> None:
        self.start_s = start_s
        self.multiplier = multiplier
        self.origin = origin

    def at(self, monotonic_s: float) -> float:
        return self.start_s + (monotonic_s - self.origin) * self.multiplier

    def real_delay(self, sim_s: float) -> float:
        """Real seconds until simulated time ``sim_s`` is reached, from a sim-time difference."""
        return sim_s / self.multiplier


class Connection:
    """One paho client and one scheduler thread serving a slice of the homes."""

    def __init__(
        self,
        index: int,
        homes: list[Home],
        settings: SimSettings,
        clock: SimClock,
        phrases: Sequence[str],
        *,
        checkin_phrases: Sequence[str] = ("네",),
        monotonic: Callable[[], float],
        wall: Callable[[], float],
    ) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.index = index
        self.homes = homes
        self.by_household = {h.address.household: h for h in homes}
        self.settings = settings
        self.clock = clock
        self.phrases = phrases
        self.checkin_phrases = checkin_phrases
        self._monotonic = monotonic
        self._wall = wall
        self._rng = random.Random(f"anbu-sim-connection:{settings.seed}:{homes[0].number}")  # noqa: S311
        # Message ids from a generator seeded once from the OS: uuid4's os.urandom per message
        # was a third of the simulator's time, and ids must differ between runs of one seed.
        self._ids = random.Random(secrets.randbits(128))  # noqa: S311
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        # Guarded by self._lock:
        self.counters = Counters()
        self._connected = False
        self._births_due = False
        self._outstanding = 0  # QoS 1 publishes awaiting PUBACK
        self._pending: dict[str, PendingSos] = {}
        self._presses: list[tuple[Home, Source]] = []  # (home, source) from press_sos
        self._checkins: list[tuple[Home, CheckinRequest]] = []  # received, not yet decided
        self._answers: list[DueAnswer] = []  # decided, waiting for their time
        self._heap: list[tuple[float, int, int]] = []  # (due sim time, home index, kind)
        self._refused_logged = -1e9
        self._connect_fail_logged = -1e9

        client_id = f"anbu-sim-{settings.district}-{homes[0].number}-{secrets.token_hex(3)}"
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
        )
        self.client.max_inflight_messages_set(settings.max_in_flight)
        self.client.reconnect_delay_set(min_delay=1, max_delay=30)
        if settings.tls:
            self.client.tls_set(
                ca_certs=None if settings.ca_file is None else str(settings.ca_file),
                certfile=None if settings.cert_file is None else str(settings.cert_file),
                keyfile=None if settings.key_file is None else str(settings.key_file),
            )
        if settings.username is not None:
            self.client.username_pw_set(settings.username, settings.password)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish
        self.client.on_message = self._on_message
        self.client.on_connect_fail = self._on_connect_fail
        self._thread = threading.Thread(target=self._run, name=f"anbu-sim-{index}", daemon=True)
        self._log = {"connection": index, "client_id": client_id}

    # --- lifecycle ---
    def start(self) -> None:
        self._schedule_first()
        try:
            self.client.connect_async(
                self.settings.host, self.settings.port, keepalive=self.settings.keepalive_s
            )
        except (OSError, ssl.SSLError) as exc:
            log.warning("cannot reach the broker", extra={**self._log, "error": str(exc)})
        self.client.loop_start()
        self._thread.start()

    def halt(self, deadline: float) -> None:
        """Stop the scheduler: no more heartbeats or SOS from here."""
        self._stopping.set()
        self._wake.set()
        self._thread.join(max(0.0, deadline - self._monotonic()))

    def close(self, deadline: float) -> None:
        """Publish the offline states (if connected) and disconnect."""
        if self.settings.publish_state and self.is_connected:
            infos = [
                self.client.publish(h.state_topic, self._state(h, "offline"), qos=1, retain=True)
                for h in self.homes
            ]
            for info in infos:
                try:
                    info.wait_for_publish(max(0.0, deadline - self._monotonic()))
                except (RuntimeError, ValueError):
                    break
        self.client.disconnect()
        self.client.loop_stop()

    @property
    def is_connected(self) -> bool:
        with self._lock:
            return self._connected

    # --- paho callbacks (network thread) ---
    def _on_connect(self, client: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            log.error(
                "broker refused the connection",
                extra={**self._log, "event": "connect_refused", "reason": str(reason)},
            )
            return
        client.subscribe(f"{PREFIX}/{self.settings.district}/+/+/cmd/+", qos=1)
        with self._lock:
            self._connected = True
            self._births_due = self.settings.publish_state
            self._outstanding = 0
            self.counters.connects += 1
            for pending in self._pending.values():  # re-send held SOS at once
                pending.next_resend = 0.0
        self._wake.set()
        log.info("connected", extra={**self._log, "event": "sim_connected"})

    def _on_disconnect(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        with self._lock:
            was = self._connected
            self._connected = False
            if was:
                self.counters.disconnects += 1
        if was and not self._stopping.is_set():
            log.warning(
                "disconnected",
                extra={**self._log, "event": "sim_disconnected", "reason": str(reason)},
            )

    def _on_publish(self, _c: Any, _u: Any, _mid: int, reason: Any, _p: Any) -> None:
        with self._lock:
            self._outstanding = max(0, self._outstanding - 1)
            self.counters.puback += 1
            if reason.is_failure:
                self.counters.publish_refused += 1
                now = self._monotonic()
                quiet = now - self._refused_logged < 10
                if not quiet:
                    self._refused_logged = now
            else:
                quiet = True
        if not quiet:
            log.error(
                "broker refused a publish: check the simulator user's ACL",
                extra={**self._log, "event": "publish_refused", "reason": str(reason)},
            )

    def _on_message(self, _c: Any, _u: Any, message: Any) -> None:
        # Every connection subscribes to the whole district's commands: only its own homes'
        # are its business (so a bad command is counted once, by the home's connection).
        try:
            topic = parse(message.topic)
        except ContractError as exc:
            if self.index == 0:
                self._bad_command(message.topic, str(exc))
            return
        if topic.command not in (Command.SOS_ACK, Command.CHECKIN):
            return
        home = self.by_household.get(topic.address.household)
        if home is None or home.address != topic.address:
            return
        try:
            command = decode_command(topic.command, message.payload)
        except ContractError as exc:
            self._bad_command(message.topic, str(exc))
            return
        if isinstance(command, CheckinRequest):
            with self._lock:
                self._checkins.append((home, command))
                self.counters.checkins_received += 1
            self._wake.set()
            return
        if not isinstance(command, SosAck):
            return
        ack = command
        now = self._monotonic()
        with self._lock:
            pending = self._pending.get(ack.sos_id)
            if pending is None:
                return  # an ack for a re-sent copy that was already acknowledged
            if pending.home is not home:
                wrong = True
            else:
                wrong = False
                del self._pending[ack.sos_id]
                home.sos_pending -= 1
                self.counters.sos_acked += 1
                self.counters.latencies_s.append(now - pending.first_sent)
        if wrong:  # a real device would never even see it: it reads only its own commands
            self._bad_command(message.topic, f"ack for {pending.home.address.device}'s SOS")

    def _bad_command(self, topic: str, error: str) -> None:
        with self._lock:
            self.counters.bad_commands += 1
        log.warning(
            "invalid command",
            extra={**self._log, "event": "bad_command", "topic": topic, "error": error},
        )

    def _on_connect_fail(self, _c: Any, _u: Any) -> None:
        now = self._monotonic()
        with self._lock:
            quiet = now - self._connect_fail_logged < 10
            if not quiet:
                self._connect_fail_logged = now
        if not quiet:
            log.warning(
                "cannot reach the broker; retrying",
                extra={**self._log, "event": "connect_failed", "broker": self.settings.broker_url},
            )

    # --- scheduling (thread anbu-sim-N) ---
    def _schedule_first(self) -> None:
        settings = self.settings
        start = self.clock.start_s
        rate_per_s = settings.sos_per_home_day / 86400
        for i, home in enumerate(self.homes):
            first = start + self._rng.uniform(0, settings.heartbeat_interval_s)
            home.last_heartbeat_at = first - settings.heartbeat_interval_s
            self._heap.append((first, i, _HEARTBEAT))
            if rate_per_s > 0:
                self._heap.append((start + self._rng.expovariate(rate_per_s), i, _SOS))
        heapq.heapify(self._heap)

    def press_sos(self, home: Home, source: Source) -> None:
        with self._lock:
            self._presses.append((home, source))
        self._wake.set()

    def _run(self) -> None:
        try:
            while not self._stopping.is_set():
                self._wake.clear()
                delay = self._tick()
                self._wake.wait(delay)
        except Exception:
            log.exception("simulator connection failed", extra={**self._log, "event": "sim_bug"})

    def _tick(self) -> float:
        """Do what is due; return the real seconds until something else is."""
        now = self._monotonic()
        with self._lock:
            connected, births = self._connected, self._births_due
            self._births_due = False
            presses, self._presses = self._presses, []
            checkins, self._checkins = self._checkins, []
        if births:
            self._publish_births()
        for home, pressed in presses:
            self._sos(home, pressed)
        for home, request in checkins:
            self._hear_checkin(home, request, now)
        self._answer_due(now, connected)
        self._resend_due(now)
        sim_now = self.clock.at(now)
        settings = self.settings
        rate_per_s = settings.sos_per_home_day / 86400
        handled = 0
        while self._heap and self._heap[0][0] <= sim_now and not self._stopping.is_set():
            due, i, kind = heapq.heappop(self._heap)
            home = self.homes[i]
            if kind == _HEARTBEAT:
                self._heartbeat(home, due, connected)
                step = settings.heartbeat_interval_s
                step *= 1 + self._rng.uniform(-settings.jitter, settings.jitter)
                heapq.heappush(self._heap, (due + step, i, _HEARTBEAT))
            else:
                self._sos(home, "button" if self._rng.random() < 0.7 else "voice")
                heapq.heappush(self._heap, (due + self._rng.expovariate(rate_per_s), i, _SOS))
            handled += 1
            if handled >= _EVENTS_PER_TICK:  # running behind: look at presses and re-sends first
                return 0.0
        waits = [1.0]
        if self._heap:
            waits.append(self.clock.real_delay(self._heap[0][0] - self.clock.at(self._monotonic())))
        with self._lock:
            if self._pending:
                next_resend = min(p.next_resend for p in self._pending.values())
                waits.append(next_resend - self._monotonic())
        if self._answers:
            waits.append(min(a.due for a in self._answers) - self._monotonic())
        return max(0.0, min(waits))

    def _publish(self, topic: str, payload: bytes, *, retain: bool = False) -> bool:
        from paho.mqtt.enums import MQTTErrorCode

        with self._lock:
            self._outstanding += 1
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
            with self._lock:
                self._outstanding -= 1
            return False
        return True

    def _message_id(self) -> str:
        return f"{self._ids.getrandbits(128):032x}"

    def _state(self, home: Home, state: Literal["online", "offline"]) -> bytes:
        home.seq += 1
        message = State(
            message_id=self._message_id(),
            state=state,
            agent_version=AGENT_VERSION,
            device_ts=self._wall(),
            seq=home.seq,
        )
        return message.to_payload()

    def _publish_births(self) -> None:
        for home in self.homes:
            if self._stopping.is_set() or not self.is_connected:
                return
            if self._publish(home.state_topic, self._state(home, "online"), retain=True):
                with self._lock:
                    self.counters.states_sent += 1

    def _heartbeat(self, home: Home, due: float, connected: bool) -> None:
        settings = self.settings
        counts = counts_between(self._rng, home.resident, home.last_heartbeat_at, due)
        if home.held_since is None:
            home.held_since = home.last_heartbeat_at
        home.held = home.held + counts
        home.last_heartbeat_at = due
        interval = settings.heartbeat_interval_s
        if self._rng.random() < _REBOOTS_PER_DAY * interval / 86400:
            home.boot_at, home.overruns = due - self._rng.uniform(0, interval), 0
        if self._rng.random() < _OVERRUNS_PER_HEARTBEAT:
            home.overruns += self._rng.randint(1, 5)
        with self._lock:
            backlog = self._outstanding > 10 * settings.max_in_flight
        if not connected or backlog:
            home.coalesced += 1
            with self._lock:
                self.counters.heartbeats_coalesced += 1
            return
        home.seq += 1
        message = Heartbeat(
            message_id=self._message_id(),
            device_ts=self._wall(),
            seq=home.seq,
            interval_s=round(due - home.held_since, 3),
            motion_count=home.held.motion_count,
            speech_s=home.held.speech_s,
            wake_word_count=home.held.wake_word_count,
            interactions=home.held.interactions,
            button_presses=home.button_presses,
            uptime_s=round(max(0.0, due - home.boot_at), 3),
            audio_overruns=home.overruns,
            outbox_depth=home.sos_pending,
            agent_version=AGENT_VERSION,
            coalesced=home.coalesced,
        )
        if self._publish(home.heartbeat_topic, message.to_payload()):
            home.held, home.held_since, home.coalesced, home.button_presses = Counts(), None, 0, 0
            with self._lock:
                self.counters.heartbeats_sent += 1

    def _sos(self, home: Home, source: Source) -> None:
        home.seq += 1
        phrase = self._rng.choice(self.phrases) if source == "voice" else None
        message = SosEvent(
            message_id=self._message_id(),
            device_ts=self._wall(),
            seq=home.seq,
            source=source,
            phrase=phrase,
            language="ko" if phrase else None,
        )
        if source == "button":
            home.button_presses += 1
        payload = message.to_payload()
        now = self._monotonic()
        pending = PendingSos(
            home, message.message_id, payload, now, now + self.settings.sos_resend_s
        )
        with self._lock:
            self._pending[message.message_id] = pending
            home.sos_pending += 1
            self.counters.sos_sent += 1
        self._publish(home.sos_topic, payload)
        log.info(
            "SOS sent",
            extra={
                **self._log,
                "event": "sim_sos",
                "household": home.address.household,
                "message_id": message.message_id,
                "source": source,
            },
        )

    def _hear_checkin(self, home: Home, request: CheckinRequest, now: float) -> None:
        """What the resident does with a check-in; the answer waits for its simulated time."""
        if self._wall() > request.expires_ts:  # delivered late: the agent never plays it
            self._answers.append(DueAnswer(now, home, request, None, expired=True))
            return
        listening_s = request.listen_s * request.repeats
        reply_s = checkin_reply(self._rng, home.resident, self.clock.at(now), listening_s)
        wait_s = listening_s if reply_s is None else reply_s
        self._answers.append(DueAnswer(now + self.clock.real_delay(wait_s), home, request, reply_s))

    def _answer_due(self, now: float, connected: bool) -> None:
        """Publish the check-in answers whose time has come (QoS 1, kept while offline)."""
        if not connected or not self._answers:
            return
        due = [a for a in self._answers if a.due <= now]
        if not due:
            return
        self._answers = [a for a in self._answers if a.due > now]
        for answer in due:
            home, answered = answer.home, answer.reply_s is not None
            home.seq += 1
            message = CheckinAnswer(
                message_id=self._message_id(),
                device_ts=self._wall(),
                seq=home.seq,
                checkin_id=answer.request.checkin_id,
                answered=answered,
                phrase=self._rng.choice(self.checkin_phrases) if answered else None,
                language="ko" if answered else None,
                heard_after_s=answer.reply_s,
                expired=answer.expired,
            )
            self._publish(home.checkin_answer_topic, message.to_payload())
            with self._lock:
                if answer.expired:
                    self.counters.checkins_expired += 1
                elif answered:
                    self.counters.checkins_answered += 1
                else:
                    self.counters.checkins_unanswered += 1

    def _resend_due(self, now: float) -> None:
        with self._lock:
            if not self._connected:
                return
            due = [p for p in self._pending.values() if p.next_resend <= now]
            for pending in due:
                pending.next_resend = now + self.settings.sos_resend_s
                pending.resends += 1
                self.counters.sos_resent += 1
        for pending in due:
            self._publish(pending.home.sos_topic, pending.payload)

    def snapshot(self) -> tuple[Counters, int]:
        with self._lock:
            c = self.counters
            copy = Counters(**{**asdict(c), "latencies_s": list(c.latencies_s)})
            return copy, len(self._pending)

    def pending_ids(self) -> list[str]:
        with self._lock:
            return list(self._pending)
