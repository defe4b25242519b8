"""The two lanes between the broker and the store, and what they do when things go wrong.

paho's network thread only appends each message to a lane's queue (``Lane.offer``); a worker
thread per lane takes them from there, so keepalives keep flowing whatever the database does.

* The **event lane** (SOS, cancels) applies one message per transaction, as soon as it arrives,
  and never waits behind a heartbeat: it has its own MQTT connection, queue and thread.
* The **bulk lane** (heartbeats, states, motion) takes up to ``batch_max`` messages or whatever
  arrived within ``batch_wait_s`` and applies them in one transaction.

A message is acknowledged to the broker (PUBACK) only after its effect, or its dead letter, is
committed. When a transaction fails:

* if the database is unreachable or locked, nothing is acknowledged; the lane waits (backing off
  to ``max_backoff_s``) and tries the same messages again, so the broker keeps the rest; health
  says since when and why; ingestion resumes by itself when the database answers;
* otherwise one of the messages is poison: the batch is split in halves until the message that
  fails is found; it is dead-lettered with the reason and acknowledged, and the others are
  applied. No input can stop ingestion.

A lane's queue never holds more than ``capacity`` messages (the receive maximum times the
connections feeding it). The MQTT v5 receive maximum each connection announces should bound it on
its own, but three things get past it, so the lane bounds itself:

* Mosquitto 2.0.11 keeps to the receive maximum only until PUBACKs flow: then it was seen to have
  several times as many messages out to one connection (391 with a receive maximum of 50, in
  ``tests/collector/test_ingest_bound.py``'s set-up). When the queue is full, ``offer`` therefore
  waits on paho's network thread, so nothing more is read from the socket until the worker has
  made room (it only waits while acknowledgements flow: without them the broker sends nothing);
* a reconnect: the broker sends every unacknowledged message again on the new connection, while
  the old copies still wait in the queue, where they can never be acknowledged (a packet id
  belongs to its connection). When the broker resumes the session, the connection drops its
  stale copies from the queue (:meth:`Lane.drop_stale`); when it does not (the session is gone),
  they are kept and applied;
* QoS 0 messages, which the receive maximum does not count: one that finds the queue full is
  dropped and counted (``dropped_qos0``). The agents publish at QoS 1, so only a misbehaving
  device meets this.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from collector.service import BulkResult, Decoded, Outcome, Rejected, Service
from firmware_config.checkin import CHECKIN_ANSWER
from firmware_config.messages import SosAck, SosEvent
from firmware_config.topics import DeviceAddress

log = logging.getLogger("anbu.collector.pipeline")


def _digest(payload: bytes) -> bytes:
    return hashlib.blake2b(payload, digest_size=16).digest()


def _never() -> bool:
    return False


@dataclass(slots=True)
class Inbound:
    """One message as the broker delivered it; ``ack()`` sends its PUBACK.

    ``stale()`` says the connection it came on is gone (its copy can no longer be acknowledged).
    """

    topic: str
    payload: bytes
    received_at: dt.datetime
    ack: Callable[[], None]
    qos: int = 1
    stale: Callable[[], bool] = _never


class Inbox:
    """A lane's FIFO queue, never longer than ``capacity``.

    ``put`` of a QoS 1/2 message waits (on paho's network thread, so nothing more is read from
    the broker's socket) while the queue is full; a QoS 0 message finds it full and is refused.
    Unlike ``queue.SimpleQueue`` it can also drop stale copies.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: deque[Inbound] = deque()
        self._cond = threading.Condition(threading.Lock())
        self.waits = 0  # how often a put waited for room

    def put(self, item: Inbound, stopping: threading.Event) -> bool:
        """Append ``item``; False if it was refused (QoS 0 and the queue full)."""
        with self._cond:
            if len(self._items) >= self.capacity:
                if item.qos == 0:
                    return False
                self.waits += 1
                while len(self._items) >= self.capacity and not stopping.is_set():
                    self._cond.wait(0.2)
            self._items.append(item)
            self._cond.notify_all()
            return True

    def _pop(self) -> Inbound:
        item = self._items.popleft()
        self._cond.notify_all()  # a put may be waiting for room
        return item

    def get(self, timeout_s: float) -> Inbound | None:
        """The oldest message, waiting up to ``timeout_s`` for one; None if none came."""
        with self._cond:
            if not self._items:
                self._cond.wait(timeout_s)
            return self._pop() if self._items else None

    def get_nowait(self) -> Inbound | None:
        with self._cond:
            return self._pop() if self._items else None

    def qsize(self) -> int:
        return len(self._items)

    def drop(self, doomed: Callable[[Inbound], bool]) -> int:
        """Remove every queued message for which ``doomed`` is true; return how many."""
        with self._cond:
            kept = [i for i in self._items if not doomed(i)]
            dropped = len(self._items) - len(kept)
            if dropped:
                self._items = deque(kept)
                self._cond.notify_all()
            return dropped


class DatabaseUnavailable(Exception):
    """The database cannot take writes now; the messages are kept and tried again."""


def is_outage(exc: BaseException) -> bool:
    """Whether ``exc`` says the database is away (rather than that a message is bad)."""
    if isinstance(exc, OperationalError | InterfaceError | PoolTimeout | ConnectionError):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


class Lane:
    """A queue and the worker thread that drains it; see the module docstring."""

    def __init__(
        self,
        name: str,
        service: Service,
        *,
        clock: Callable[[], dt.datetime],
        batch_max: int = 1,
        batch_wait_s: float = 0.0,
        max_backoff_s: float = 5.0,
        capacity: int = 5000,
    ) -> None:
        self.name = name
        self.service = service
        self.clock = clock
        self.batch_max = batch_max
        self.batch_wait_s = batch_wait_s
        self.max_backoff_s = max_backoff_s
        self.queue = Inbox(capacity)
        self.received = 0
        self.dropped_qos0 = 0
        self.dropped_stale = 0
        self.applied = 0
        self.dead_lettered = 0
        self.batches = 0
        self.store_failures = 0
        self.outage_since: dt.datetime | None = None
        self.last_error: str | None = None
        self._stop = threading.Event()
        self._no_wait = threading.Event()  # set: a full queue no longer holds paho's thread
        self._thread = threading.Thread(target=self._run, name=f"anbu-{name}", daemon=True)

    # -- called from paho's thread: nothing but an append ----------------------------------

    def offer(self, item: Inbound) -> None:
        self.received += 1
        if not self.queue.put(item, self._no_wait):
            self.dropped_qos0 += 1  # nobody waits for a QoS 0 message: the bound holds

    def drop_stale(self) -> int:
        """Forget queued copies from connections that are gone (the broker sends them again)."""
        dropped = self.queue.drop(lambda item: item.stale())
        self.dropped_stale += dropped
        return dropped

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stop_waiting(self) -> None:
        """Let a connection that is stopping out of a wait for room (the lane may be stuck in
        a database outage, and its connections are stopped first)."""
        self._no_wait.set()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._no_wait.set()
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=timeout_s)

    def health(self) -> dict[str, Any]:
        return {
            "queued": self.queue.qsize(),
            "received": self.received,
            "dropped_qos0": self.dropped_qos0,
            "dropped_stale": self.dropped_stale,
            "waited_full": self.queue.waits,
            "applied": self.applied,
            "dead_lettered": self.dead_lettered,
            "batches": self.batches,
            "store_failures": self.store_failures,
            "database_outage_since": None
            if self.outage_since is None
            else self.outage_since.isoformat(),
            "last_error": self.last_error,
        }

    # -- the worker --------------------------------------------------------------------

    def _take(self) -> list[Inbound]:
        first = self.queue.get(0.2)
        if first is None:
            return []
        batch = [first]
        deadline = time.monotonic() + self.batch_wait_s
        while len(batch) < self.batch_max:
            item = self.queue.get_nowait()
            if item is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                item = self.queue.get(left)
                if item is None:
                    break
            batch.append(item)
        return batch

    def _run(self) -> None:
        while not self._stop.is_set():
            batch = self._take()
            if batch:
                self.settle(batch)

    def settle(self, batch: Sequence[Inbound]) -> None:
        """Apply ``batch`` (retrying through outages), then acknowledge every message in it."""
        backoff = 0.25
        while True:
            try:
                self._apply(batch)
                break
            except DatabaseUnavailable as exc:
                self.store_failures += 1
                cause = exc.__cause__ or exc
                self.last_error = f"{type(cause).__name__}: {cause}"[:300]
                if self.outage_since is None:
                    self.outage_since = self.clock()
                    log.error(
                        "database unavailable: holding messages unacknowledged",
                        extra={"lane": self.name, "error": self.last_error},
                    )
                if self._stop.wait(backoff):
                    return  # stopping: unacknowledged, so the broker sends them again
                backoff = min(self.max_backoff_s, backoff * 2)
        if self.outage_since is not None:
            log.warning(
                "database available again",
                extra={"lane": self.name, "since": self.outage_since.isoformat()},
            )
            self.outage_since = None
        self.batches += 1
        for item in batch:
            item.ack()

    def _apply(self, batch: Sequence[Inbound]) -> None:
        raise NotImplementedError

    def _unavailable_or_none(self, exc: BaseException) -> DatabaseUnavailable | None:
        """``DatabaseUnavailable`` if the database is away, None if the input is to blame."""
        if is_outage(exc):
            return DatabaseUnavailable(str(exc))
        try:
            self.service.db.ping()
        except Exception as ping_error:  # the database went away during the batch
            return DatabaseUnavailable(str(ping_error))
        return None

    def _decode(self, batch: Sequence[Inbound]) -> list[Decoded | Rejected]:
        try:
            return self.service.decode([(i.topic, i.payload, i.received_at) for i in batch])
        except Exception as exc:  # the registry asks the store about unknown devices
            unavailable = self._unavailable_or_none(exc)
            if unavailable is not None:
                raise unavailable from exc
            log.exception("decoding failed", extra={"lane": self.name})
            return [
                Rejected(i.topic, i.payload, i.received_at, f"internal error: {exc!r}"[:300])
                for i in batch
            ]

    def _dead_letter(self, item: Decoded | Rejected, reason: str) -> None:
        try:
            self.service.dead_letter(item.topic, item.payload, reason, item.received_at)
            self.dead_lettered += 1
        except Exception as exc:
            # A database that answers but cannot store even a dead letter (a missing table, a
            # full disk) is as good as away: hold the message rather than drop it.
            raise DatabaseUnavailable(f"cannot store a dead letter: {exc}") from exc


class BulkLane(Lane):
    """Heartbeats, states and motion: a batch per transaction, poison found by halving."""

    def __init__(
        self,
        service: Service,
        *,
        clock: Callable[[], dt.datetime],
        batch_max: int,
        batch_wait_s: float,
        after_commit: Callable[[BulkResult], None] = lambda result: None,
        max_backoff_s: float = 5.0,
        capacity: int = 5000,
    ) -> None:
        super().__init__(
            "bulk",
            service,
            clock=clock,
            batch_max=batch_max,
            batch_wait_s=batch_wait_s,
            max_backoff_s=max_backoff_s,
            capacity=capacity,
        )
        self.after_commit = after_commit

    def _apply(self, batch: Sequence[Inbound]) -> None:
        self._apply_isolating(self._decode(batch))

    def _apply_isolating(self, items: Sequence[Decoded | Rejected]) -> None:
        try:
            result = self.service.apply_bulk(items)
        except Exception as exc:
            unavailable = self._unavailable_or_none(exc)
            if unavailable is not None:
                raise unavailable from exc
            if len(items) == 1:
                self._dead_letter(items[0], f"store refused: {type(exc).__name__}: {exc}"[:2000])
                return
            half = len(items) // 2
            self._apply_isolating(items[:half])
            self._apply_isolating(items[half:])
            return
        self.applied += len(items)
        self.dead_lettered += result.counts.get("dead_letter", 0)
        try:
            self.after_commit(result)
        except Exception:  # a sink's trouble must never hold back acknowledgements
            log.exception("after-commit hook failed", extra={"lane": self.name})


class EventLane(Lane):
    """SOS and cancels: one per transaction; commands back to the device after the commit.

    It takes what has queued up (up to ``batch_max``) at once, applies the valid events first,
    one transaction each, and then dead-letters the rejected ones together: a flood of garbage
    on the event topics costs one transaction per batch and never holds an SOS behind it.
    """

    def __init__(
        self,
        service: Service,
        *,
        clock: Callable[[], dt.datetime],
        on_outcome: Callable[[Outcome], None],
        max_backoff_s: float = 5.0,
        batch_max: int = 500,
        on_checkin_answer: Callable[[str, bytes, dt.datetime], None] | None = None,
        capacity: int = 5000,
        remember_s: float = 600.0,
        remember_max: int = 20_000,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(
            "events",
            service,
            clock=clock,
            max_backoff_s=max_backoff_s,
            batch_max=batch_max,
            capacity=capacity,
        )
        self.on_outcome = on_outcome
        self.on_checkin_answer = on_checkin_answer
        self.remember_s = remember_s
        self.remember_max = remember_max
        self.monotonic = monotonic
        self.collapsed = 0
        self.answered_from_memory = 0
        # (device, message id) -> (forget at, dispatch id, address), oldest first
        self._acked: OrderedDict[tuple[str, str], tuple[float, int, DeviceAddress]] = OrderedDict()
        # (topic, digest of the copy's bytes) -> (device, message id): a byte-identical copy is
        # not even decoded (a digest, so 20,000 remembered SOS cost ~2 MB whatever their size)
        self._raw: OrderedDict[tuple[str, bytes], tuple[str, str]] = OrderedDict()

    def health(self) -> dict[str, Any]:
        return {
            **super().health(),
            "collapsed": self.collapsed,
            "answered_from_memory": self.answered_from_memory,
        }

    # -- re-sent SOS copies: answered without a transaction ---------------------------------

    def _remember(self, item: Decoded, key: tuple[str, str], outcome: Outcome) -> None:
        """After the commit: an SOS whose dispatch is known is remembered, so its copies (an
        agent re-sends until it hears the ack) need no transaction, nor even decoding, of their
        own."""
        message = item.message
        if not isinstance(message, SosEvent) or message.test or outcome.dispatch_id is None:
            return
        expires_at = self.monotonic() + self.remember_s
        self._acked[key] = (expires_at, outcome.dispatch_id, item.address)
        self._acked.move_to_end(key)
        raw = (item.topic, _digest(item.payload))
        self._raw[raw] = key
        self._raw.move_to_end(raw)
        while len(self._acked) > self.remember_max:
            self._acked.popitem(last=False)
        while len(self._raw) > self.remember_max:
            self._raw.popitem(last=False)

    def _answer_from_memory(self, key: tuple[str, str]) -> bool:
        """Answer a copy of a remembered SOS as the store would (a duplicate: the ack again)."""
        known = self._acked.get(key)
        if known is None:
            return False
        expires_at, dispatch_id, address = known
        if self.monotonic() > expires_at:
            del self._acked[key]
            return False
        now = self.clock()
        ack = SosAck(device_ts=now.timestamp(), seq=0, sos_id=key[1], dispatch_id=dispatch_id)
        self.answered_from_memory += 1
        self.service.count("duplicate")
        try:
            self.on_outcome(Outcome("duplicate", [(address, ack)], dispatch_id=dispatch_id))
        except Exception:
            log.exception("publishing an event's outcome failed", extra={"lane": self.name})
        return True

    def _without_known_copies(self, batch: Sequence[Inbound]) -> list[Inbound]:
        """The batch less byte-identical copies: of each other (the first answers for them) and
        of remembered SOS (answered from memory). After an outage these are most of the queue."""
        fresh: list[Inbound] = []
        raw_seen: set[tuple[str, bytes]] = set()
        for item in batch:
            raw = (item.topic, item.payload)
            if raw in raw_seen:
                self.collapsed += 1
                continue
            raw_seen.add(raw)
            key = self._raw.get((item.topic, _digest(item.payload)))
            if key is not None and self._answer_from_memory(key):
                self.collapsed += 1
                continue
            fresh.append(item)
        return fresh

    def _apply(self, batch: Sequence[Inbound]) -> None:
        if self.on_checkin_answer is not None:
            answers = [i for i in batch if i.topic.endswith("/" + CHECKIN_ANSWER)]
            for answer in answers:
                try:
                    self.on_checkin_answer(answer.topic, answer.payload, answer.received_at)
                except Exception as exc:
                    unavailable = self._unavailable_or_none(exc)
                    if unavailable is not None:
                        raise unavailable from exc
                    log.exception("check-in answer refused", extra={"topic": answer.topic[:200]})
            batch = [i for i in batch if not i.topic.endswith("/" + CHECKIN_ANSWER)]
        decoded = self._decode(self._without_known_copies(batch))
        rejected = [i for i in decoded if isinstance(i, Rejected)]
        seen: set[tuple[str, str]] = set()
        for item in decoded:
            if isinstance(item, Rejected):
                continue
            key = (item.address.device, item.message.message_id)
            if key in seen:  # a re-sent copy in the same batch: its first copy answers for it
                self.collapsed += 1
                continue
            seen.add(key)
            if self._answer_from_memory(key):  # the same SOS in other bytes
                self.collapsed += 1
                continue
            try:
                outcome = self.service.apply_event(item)
            except Exception as exc:
                unavailable = self._unavailable_or_none(exc)
                if unavailable is not None:
                    raise unavailable from exc
                log.exception("event refused by the store", extra={"topic": item.topic[:200]})
                self._dead_letter(item, f"store refused: {type(exc).__name__}: {exc}"[:2000])
                continue
            self.applied += 1
            if outcome.kind == "dead_letter":
                self.dead_lettered += 1
            self._remember(item, key, outcome)
            try:
                self.on_outcome(outcome)
            except Exception:
                log.exception("publishing an event's outcome failed", extra={"lane": self.name})
        if rejected:
            try:
                self.service.dead_letters(rejected)
                self.dead_lettered += len(rejected)
            except Exception as exc:
                unavailable = self._unavailable_or_none(exc)
                if unavailable is not None:
                    raise unavailable from exc
                for item in rejected:  # find the one the store refuses
                    self._dead_letter(item, item.reason)
