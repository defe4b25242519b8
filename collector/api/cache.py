"""A micro-cache for list pages: the same page asked for again is served as is, until it changes.

Many staff screens poll the same first page of the same list; between two writes the answer is
the same bytes. With ``api_list_cache_s`` above 0 a page is kept, keyed by path and query string
(the token is checked before the cache is looked at) and by the tables it was read from, for at
most ``ttl_s``, and only while no write to those tables has happened in this process since it was
read: every write through the collector's engine (the API, the pages, ingest's new SOS dispatch,
escalation) is seen by :class:`collector.store.changes.TableChanges`, so a new dispatch or an
acknowledgement is in the very next page. Writes by *another* collector process on the same
database (and by the collector's own heartbeat child process) show up within ``ttl_s``: 1 s by
default; with 0 every list is read every time.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from collector.store.changes import TableChanges


@dataclass(frozen=True, slots=True)
class Reading:
    """What a page being read was read against: its tables, their generations, the time."""

    tables: frozenset[str]
    seen: tuple[int, ...] | None
    made_at: float


class PageCache:
    def __init__(
        self,
        ttl_s: float,
        *,
        changes: TableChanges | None = None,
        max_pages: int = 256,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl_s = ttl_s
        self.changes = changes if changes is not None else TableChanges()
        self.max_pages = max_pages
        self.clock = clock
        self._pages: OrderedDict[str, tuple[Reading, bytes]] = OrderedDict()
        self._lock = threading.Lock()
        self._cleared_at = float("-inf")
        self.hits = 0
        self.misses = 0
        self.inflight: dict[str, asyncio.Future[bytes]] = {}
        """Pages being read now, for requests that ask for them meanwhile (one event loop)."""

    @property
    def enabled(self) -> bool:
        return self.ttl_s > 0

    def get(self, key: str, tables: frozenset[str]) -> bytes | None:
        if not self.enabled:
            return None
        with self._lock:
            entry = self._pages.get(key)
            if entry is None or not self._fresh(entry[0], tables):
                self.misses += 1
                return None
            self.hits += 1
            return entry[1]

    def reading(self, tables: frozenset[str]) -> Reading:
        """Call before reading a page over ``tables``; give the result to :meth:`put`."""
        return Reading(tables, self.changes.snapshot(tables), self.clock())

    def put(self, key: str, body: bytes, reading: Reading) -> None:
        """Keep ``body`` if nothing it was read from changed while it was read."""
        if not self.enabled or not self.changes.unchanged(reading.tables, reading.seen):
            return
        with self._lock:
            if reading.made_at < self._cleared_at:
                return
            self._pages[key] = (reading, body)
            self._pages.move_to_end(key)
            while len(self._pages) > self.max_pages:
                self._pages.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._pages.clear()
            self._cleared_at = self.clock()

    def _fresh(self, reading: Reading, tables: frozenset[str]) -> bool:
        return (
            reading.tables == tables
            and self.clock() - reading.made_at < self.ttl_s
            and self.changes.unchanged(tables, reading.seen)
        )
