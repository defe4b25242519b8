"""The map snapshot is rebuilt only when its data changed (SQLite and PostgreSQL): an SOS, a
device going offline, a silent home's life sign, a home's quiet time running out; otherwise the
same bytes are served (also gzip-compressed)."""

from __future__ import annotations

import datetime as dt
import gzip
import json

from collector.store.accounts import Role
from collector.store.db import Database
from collector.store.models import Device, Household
from collector.web import records
from collector.web.access import Viewer
from collector.web.snapshots import SnapshotCache
from tests.web.conftest import NOW, Seeded, raise_sos

SUP = Viewer(1, "sup-seo", "S", Role.SUPERVISOR, "seodaemun", None, "ko")


def make_cache(database: Database, clock: list[float], wall: list[dt.datetime]) -> SnapshotCache:
    def build(viewer: Viewer) -> records.Built:
        with database.session() as session:
            return records.map_built(session, viewer, now=wall[0])

    return SnapshotCache(
        build,
        ttl_s=1.0,
        clock=lambda: clock[0],
        watch=records.StoreMapWatch(database.session),
        max_age_s=60.0,
        wall=lambda: wall[0],
    )


def refresh(cache: SnapshotCache, clock: list[float]) -> None:
    """Let the ttl pass and run the refresh in this thread (the cache's background step)."""
    clock[0] += 1.5
    cache._refresh(("supervisor", "seodaemun", None), SUP)


def states(cache: SnapshotCache) -> dict[str, str]:
    return {h["id"]: h["state"] for h in cache.get(SUP).homes}


def test_nothing_changed_means_no_rebuild_and_each_change_rebuilds(
    database: Database, seeded: Seeded
) -> None:
    del seeded
    clock, wall = [0.0], [NOW]
    with database.session() as s:
        for device in s.query(Device).all():
            device.last_life_sign_at = NOW - dt.timedelta(hours=47)  # silent at 48 h
    cache = make_cache(database, clock, wall)
    first = cache.get(SUP)
    assert cache.builds == 1 and states(cache) == {"h-a1": "ok", "h-a2": "ok", "h-b1": "ok"}
    assert json.loads(gzip.decompress(first.gzipped)) == json.loads(first.body)
    meta = first.meta
    assert meta is not None and meta.valid_until == NOW + dt.timedelta(hours=1)

    for _ in range(3):
        refresh(cache, clock)
    assert (cache.builds, cache.unchanged) == (1, 3)
    assert cache.get(SUP).body is first.body

    raise_sos(database, "h-a1", when=NOW)  # a new unresolved dispatch
    refresh(cache, clock)
    assert cache.builds == 2 and states(cache)["h-a1"] == "sos"

    with database.session() as s:
        device = s.get(Device, "d-h-b1")
        assert device is not None
        device.online, device.state_changed_at = False, NOW
    refresh(cache, clock)
    assert cache.builds == 3

    wall[0] = NOW + dt.timedelta(hours=1)  # h-a2 and h-b1 reach 48 h of quiet
    refresh(cache, clock)
    assert cache.builds == 4 and states(cache)["h-a2"] == "silent"
    refresh(cache, clock)
    assert cache.builds == 4  # nothing new since

    with database.session() as s:
        device = s.get(Device, "d-h-a2")
        assert device is not None
        device.last_life_sign_at = wall[0]  # the silent home is heard again
    refresh(cache, clock)
    assert cache.builds == 5 and states(cache)["h-a2"] == "ok"

    with database.session() as s:  # a marker moved on the map: no dispatch, no device
        home = s.get(Household, "h-b1")
        assert home is not None and home.latitude is not None
        home.latitude += 0.001
    refresh(cache, clock)
    assert cache.builds == 6
    with database.session() as s:
        home = s.get(Household, "h-b1")
        assert home is not None
        home.resident_name += "님"
    refresh(cache, clock)
    assert cache.builds == 7 and cache.get(SUP).homes[2]["name"].endswith("님")


def test_a_snapshot_is_rebuilt_after_max_age_whatever_happened(
    database: Database, seeded: Seeded
) -> None:
    del seeded
    clock, wall = [0.0], [NOW]
    cache = make_cache(database, clock, wall)
    cache.get(SUP)
    clock[0] += 61
    cache._refresh(("supervisor", "seodaemun", None), SUP)
    assert cache.builds == 2
