"""The durable outbox: every event waits here, on disk, until the broker has acknowledged it.

paho keeps its outgoing queue in memory, so an SOS taken while the network is down would die with
the process. Here a :meth:`Outbox.put` that returned has been committed to SQLite in WAL mode with
``synchronous=FULL`` (the WAL is fsynced on every commit): it survives ``kill -9`` and power loss.

Rules:

* Items leave in insertion order (``pending``) and are deleted only by :meth:`Outbox.ack`, which
  the link calls on a successful PUBACK.
* Heartbeats are ``droppable``: when more than ``max_droppable`` of them wait, the oldest are
  deleted and counted, so the next heartbeat can report ``coalesced``. SOS and cancels are never
  dropped.
* A broker's PUBACK is not the end for an SOS: a broker can acknowledge a message that no
  collector is subscribed to receive (after a restart, before the collector is back). So SOS and
  cancel messages are also *held* (:meth:`Outbox.put_held`) until the collector acknowledges them
  (:meth:`Outbox.release`); the agent re-sends what is still held (same message id: the collector
  de-duplicates).
* :meth:`Outbox.next_seq` hands out the device's message sequence numbers, strictly increasing
  across restarts.

Example::

    outbox = Outbox(Path("/var/lib/anbu/outbox.sqlite3"))
    outbox.put(address.topic(Channel.SOS), sos.to_payload())
    for item in outbox.pending(10):
        ...publish, then on PUBACK: outbox.ack(item.id)
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- AUTOINCREMENT: ids are never reused, order is total
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    droppable INTEGER NOT NULL,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS outbox_droppable ON outbox (droppable, id);
CREATE TABLE IF NOT EXISTS counters (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
INSERT OR IGNORE INTO counters (name, value) VALUES ('seq', 0), ('dropped', 0);
CREATE TABLE IF NOT EXISTS held (
    key TEXT PRIMARY KEY,   -- what the collector's acknowledgement names (an SOS id)
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    created_at REAL NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """One message waiting for the broker."""

    id: int
    """Position in the outbox; increasing in insertion order, never reused."""
    topic: str
    payload: bytes
    droppable: bool
    created_at: float
    """Wall-clock seconds since the epoch when it was put."""


class Outbox:
    """A thread-safe, crash-safe FIFO of MQTT messages on SQLite."""

    def __init__(self, path: Path, *, max_droppable: int = 100) -> None:
        if max_droppable < 1:
            raise ValueError(f"max_droppable={max_droppable} must be at least 1")
        self.path = Path(path)
        self.max_droppable = max_droppable
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        # isolation_level=None: autocommit; multi-statement changes use explicit BEGIN IMMEDIATE.
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(_SCHEMA)

    def put(self, topic: str, payload: bytes, *, droppable: bool = False) -> int:
        """Store a message durably and return its id; may drop the oldest droppable items."""
        with self._lock, self._transaction():
            cursor = self._db.execute(
                "INSERT INTO outbox (topic, payload, droppable, created_at) VALUES (?, ?, ?, ?)",
                (topic, payload, int(droppable), time.time()),
            )
            item_id = int(cursor.lastrowid or 0)
            if droppable:
                (waiting,) = self._db.execute(
                    "SELECT COUNT(*) FROM outbox WHERE droppable = 1"
                ).fetchone()
                excess = waiting - self.max_droppable
                if excess > 0:
                    self._db.execute(
                        "DELETE FROM outbox WHERE id IN "
                        "(SELECT id FROM outbox WHERE droppable = 1 ORDER BY id LIMIT ?)",
                        (excess,),
                    )
                    self._db.execute(
                        "UPDATE counters SET value = value + ? WHERE name = 'dropped'", (excess,)
                    )
            return item_id

    def put_held(self, key: str, topic: str, payload: bytes) -> int:
        """Put a message and hold a copy until :meth:`release` ``(key)``, in one transaction."""
        with self._lock, self._transaction():
            cursor = self._db.execute(
                "INSERT INTO outbox (topic, payload, droppable, created_at) VALUES (?, ?, 0, ?)",
                (topic, payload, time.time()),
            )
            self._db.execute(
                "INSERT OR REPLACE INTO held (key, topic, payload, created_at) VALUES (?, ?, ?, ?)",
                (key, topic, payload, time.time()),
            )
            return int(cursor.lastrowid or 0)

    def release(self, key: str) -> bool:
        """The collector acknowledged ``key``: stop holding it. False if it was not held."""
        with self._lock:
            cursor = self._db.execute("DELETE FROM held WHERE key = ?", (key,))
            return cursor.rowcount > 0

    def held(self) -> list[tuple[str, str, bytes]]:
        """``(key, topic, payload)`` of every message still awaiting the collector, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT key, topic, payload FROM held ORDER BY created_at, key"
            ).fetchall()
        return [(r[0], r[1], bytes(r[2])) for r in rows]

    def resend_held(self) -> int:
        """Queue again every held message that is not already waiting; returns how many."""
        with self._lock, self._transaction():
            rows = self._db.execute(
                "SELECT topic, payload FROM held h WHERE NOT EXISTS "
                "(SELECT 1 FROM outbox o WHERE o.payload = h.payload) ORDER BY created_at, key"
            ).fetchall()
            self._db.executemany(
                "INSERT INTO outbox (topic, payload, droppable, created_at) VALUES (?, ?, 0, ?)",
                [(topic, payload, time.time()) for topic, payload in rows],
            )
            return len(rows)

    def pending(self, limit: int = 100, *, after_id: int = 0) -> list[OutboxItem]:
        """Up to ``limit`` waiting items with an id above ``after_id``, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, topic, payload, droppable, created_at FROM outbox "
                "WHERE id > ? ORDER BY id LIMIT ?",
                (after_id, limit),
            ).fetchall()
        return [OutboxItem(r[0], r[1], bytes(r[2]), bool(r[3]), r[4]) for r in rows]

    def ack(self, item_id: int) -> bool:
        """Delete an item the broker has acknowledged; False if it was already gone."""
        with self._lock:
            cursor = self._db.execute("DELETE FROM outbox WHERE id = ?", (item_id,))
            return cursor.rowcount > 0

    def depth(self) -> int:
        """How many items wait."""
        with self._lock:
            (count,) = self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()
        return int(count)

    def dropped_since_last(self) -> int:
        """How many droppable items were dropped since the previous call (then reset to 0)."""
        with self._lock, self._transaction():
            (dropped,) = self._db.execute(
                "SELECT value FROM counters WHERE name = 'dropped'"
            ).fetchone()
            if dropped:
                self._db.execute("UPDATE counters SET value = 0 WHERE name = 'dropped'")
        return int(dropped)

    def next_seq(self) -> int:
        """The next message sequence number: strictly increasing, also across restarts."""
        with self._lock:
            (seq,) = self._db.execute(
                "UPDATE counters SET value = value + 1 WHERE name = 'seq' RETURNING value"
            ).fetchone()
        return int(seq)

    def close(self) -> None:
        """Close the database; the outbox must not be used afterwards."""
        with self._lock:
            self._db.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """BEGIN IMMEDIATE ... COMMIT (ROLLBACK on error); the connection itself autocommits."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")
