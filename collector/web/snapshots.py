"""The map's data, shared: one snapshot per scope (a district, a caregiver, everything) at most
every ``ttl_s``, however many supervisors and live streams ask.

At 10,000 households a snapshot takes ~0.2-0.5 s to build, so building it per request or per
stream would not scale. A stale snapshot is served while one background thread refreshes it
(stale-while-revalidate); only the very first request for a scope waits for the build.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from collector.store.accounts import Role
from collector.web.access import Viewer

Homes = list[dict[str, Any]]
log = logging.getLogger("anbu.collector.web")


@dataclass(frozen=True, slots=True)
class Snapshot:
    homes: Homes
    body: bytes
    """``{"households": homes}`` as JSON, encoded once for every reader."""
    built_at: float


def scope_of(viewer: Viewer) -> tuple[str, str | None, int | None]:
    """Viewers with the same scope see the same households (see ``records._scope``)."""
    if viewer.role is Role.ADMIN:
        return ("admin", None, None)
    if viewer.role is Role.SUPERVISOR:
        return ("supervisor", viewer.district, None)
    if viewer.role is Role.CAREGIVER:
        return ("caregiver", None, viewer.caregiver_id)
    return ("none", None, None)


class SnapshotCache:
    def __init__(
        self,
        build: Callable[[Viewer], Homes],
        *,
        ttl_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._build = build
        self.ttl_s = ttl_s
        self._clock = clock
        self._lock = threading.Lock()
        self._snapshots: dict[tuple[str, str | None, int | None], Snapshot] = {}
        self._refreshing: set[tuple[str, str | None, int | None]] = set()
        self.builds = 0

    def get(self, viewer: Viewer) -> Snapshot:
        key = scope_of(viewer)
        with self._lock:
            current = self._snapshots.get(key)
            stale = current is None or self._clock() - current.built_at >= self.ttl_s
            start = stale and current is not None and key not in self._refreshing
            if start:
                self._refreshing.add(key)
        if current is None:
            return self._refresh(key, viewer)
        if start:
            threading.Thread(target=self._background, args=(key, viewer), daemon=True).start()
        return current

    def _background(self, key: tuple[str, str | None, int | None], viewer: Viewer) -> None:
        try:
            self._refresh(key, viewer)
        except Exception:  # the old snapshot stays; the next reader starts another refresh
            log.exception("map snapshot refresh failed", extra={"scope": str(key)})

    def _refresh(self, key: tuple[str, str | None, int | None], viewer: Viewer) -> Snapshot:
        try:
            homes = self._build(viewer)
            body = json.dumps({"households": homes}, ensure_ascii=False).encode()
            snapshot = Snapshot(homes, body, self._clock())
            with self._lock:
                self._snapshots[key] = snapshot
                self.builds += 1
            return snapshot
        finally:
            with self._lock:
                self._refreshing.discard(key)
