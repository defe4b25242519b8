"""The map's data, shared: one snapshot per scope (a district, a caregiver, everything) at most
every ``ttl_s``, however many supervisors and live streams ask.

At 10,000 households a snapshot takes ~0.2-0.5 s to build, so building it per request or per
stream would not scale. A stale snapshot is served while one background thread refreshes it
(stale-while-revalidate); only the very first request for a scope waits for the build.

Rebuilt only when something changed (``watch``): every ``ttl_s`` a cheap query of what the map
depends on (unresolved dispatches, devices' online state, households, and the life signs of the
homes shown silent) is compared with the one taken before the last build; the snapshot is
rebuilt when it differs, when a home's quiet time reaches its silence period (``valid_until``),
or after ``max_age_s`` whatever happened (for changes the query cannot see: a name changed to
one of the same length while another home's moved back by as much). A build at 10,000 homes
holds the process's GIL for most of a second, which every request then waits behind, so it is
done only when something changed. Each snapshot carries its JSON encoded once, gzip-compressed
once, and its ETag (a hash of the JSON), so a reader that has it already is answered 304 without
a body.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from collector.store.accounts import Role
from collector.web.access import Viewer

Homes = list[dict[str, Any]]
log = logging.getLogger("anbu.collector.web")


@dataclass(frozen=True, slots=True)
class Built:
    """What a build returns besides the homes: what to watch for a change."""

    homes: Homes
    silent_ids: frozenset[str] = frozenset()
    """Homes shown silent for lack of life signs (a life sign turns them back)."""
    silent_life: Hashable = None
    """The latest life sign among ``silent_ids`` at build time."""
    valid_until: dt.datetime | None = None
    """When the next home's quiet time reaches its silence period."""


class MapWatch(Protocol):
    def changes(self, viewer: Viewer) -> Hashable:
        """A cheap summary of the store that changes whenever the map's data may have."""

    def silent_life(self, viewer: Viewer, ids: frozenset[str]) -> Hashable:
        """The latest life sign among ``ids`` now (compared with ``Built.silent_life``)."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    homes: Homes
    body: bytes
    """``{"households": homes}`` as JSON, encoded once for every reader."""
    built_at: float
    """When the snapshot was built or last found unchanged (the ``ttl_s`` clock)."""
    gzipped: bytes = b""
    etag: str = ""
    """``"<hash of body>"``, quoted as HTTP wants it; the same bytes give the same tag on
    every collector."""
    created_at: float = 0.0
    changes: Hashable = None
    meta: Built | None = field(default=None, repr=False)


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
        build: Callable[[Viewer], Homes | Built],
        *,
        ttl_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        watch: MapWatch | None = None,
        max_age_s: float = 300.0,
        wall: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self._build = build
        self.ttl_s = ttl_s
        self._clock = clock
        self._watch = watch
        self.max_age_s = max_age_s
        self._wall = wall
        self.unchanged = 0
        """Refreshes that found nothing changed and kept the snapshot."""
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

    def current(self, viewer: Viewer) -> Snapshot | None:
        """The scope's snapshot without waiting (a stale one starts its refresh in the
        background, as :meth:`get` does); None before the first build, which only :meth:`get`
        makes. For the event loop, which must never wait for a build."""
        key = scope_of(viewer)
        with self._lock:
            if key not in self._snapshots:
                return None
        return self.get(viewer)

    def _background(self, key: tuple[str, str | None, int | None], viewer: Viewer) -> None:
        try:
            self._refresh(key, viewer)
        except Exception:  # the old snapshot stays; the next reader starts another refresh
            log.exception("map snapshot refresh failed", extra={"scope": str(key)})

    def _still_good(self, current: Snapshot | None, viewer: Viewer) -> Hashable:
        """The store's summary now, and whether ``current`` still shows it (None: unknown)."""
        if self._watch is None:
            return None
        return self._watch.changes(viewer)

    def _unchanged(self, current: Snapshot, viewer: Viewer, changes: Hashable) -> bool:
        meta = current.meta
        if self._watch is None or meta is None or changes != current.changes:
            return False
        if self._clock() - current.created_at >= self.max_age_s:
            return False
        if meta.valid_until is not None and self._wall() >= meta.valid_until:
            return False
        return self._watch.silent_life(viewer, meta.silent_ids) == meta.silent_life

    def _refresh(self, key: tuple[str, str | None, int | None], viewer: Viewer) -> Snapshot:
        try:
            with self._lock:
                current = self._snapshots.get(key)
            # Taken before the build, so a change during the build is seen at the next check.
            changes = self._still_good(current, viewer)
            if current is not None and self._unchanged(current, viewer, changes):
                kept = replace(current, built_at=self._clock())
                with self._lock:
                    self._snapshots[key] = kept
                    self.unchanged += 1
                return kept
            built = self._build(viewer)
            meta = built if isinstance(built, Built) else None
            homes = built.homes if isinstance(built, Built) else built
            body = json.dumps({"households": homes}, ensure_ascii=False).encode()
            now = self._clock()
            tag = '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'
            snapshot = Snapshot(
                homes, body, now, gzip.compress(body, compresslevel=5), tag, now, changes, meta
            )
            with self._lock:
                self._snapshots[key] = snapshot
                self.builds += 1
            return snapshot
        finally:
            with self._lock:
                self._refreshing.discard(key)
