"""A micro-cache for list pages: the same page asked for again within ``ttl_s`` is served as is.

Many staff screens poll the same first page of the same list; within a second the answer is the
same bytes. With ``api_list_cache_s`` above 0 a page is kept that long, keyed by path and query
string (the token is checked before the cache is looked at), and every write through this API
empties the cache at once, so staff see their own acknowledgements immediately. Changes made by
ingest (a new SOS dispatch) show up within ``ttl_s``. Off (0) by default: lists are then exact.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import OrderedDict
from collections.abc import Callable


class PageCache:
    def __init__(
        self, ttl_s: float, *, max_pages: int = 256, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl_s = ttl_s
        self.max_pages = max_pages
        self.clock = clock
        self._pages: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        self.inflight: dict[str, asyncio.Future[bytes]] = {}
        """Pages being read now, for requests that ask for them meanwhile (one event loop)."""

    @property
    def enabled(self) -> bool:
        return self.ttl_s > 0

    def get(self, key: str) -> bytes | None:
        if not self.enabled:
            return None
        with self._lock:
            entry = self._pages.get(key)
            if entry is None or self.clock() - entry[0] >= self.ttl_s:
                self.misses += 1
                return None
            self.hits += 1
            return entry[1]

    def put(self, key: str, body: bytes, *, made_at: float) -> None:
        """Keep ``body``, read from the database at ``made_at`` (before any write since)."""
        if not self.enabled:
            return
        with self._lock:
            if made_at < self._cleared_at:
                return  # a write landed while this page was being read: it may be stale
            self._pages[key] = (made_at, body)
            self._pages.move_to_end(key)
            while len(self._pages) > self.max_pages:
                self._pages.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._pages.clear()
            self._cleared_at = self.clock()

    _cleared_at = float("-inf")
