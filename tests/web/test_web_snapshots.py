"""The shared map snapshot: built once per scope, served stale while one refresh runs."""

from __future__ import annotations

import threading

from collector.store.accounts import Role
from collector.web.access import Viewer
from collector.web.snapshots import SnapshotCache, scope_of

SEO = Viewer(1, "a", "A", Role.SUPERVISOR, "seodaemun", None, "ko")
SEO_2 = Viewer(2, "b", "B", Role.SUPERVISOR, "seodaemun", None, "en")
MAPO = Viewer(3, "c", "C", Role.SUPERVISOR, "mapo", None, "ko")


def test_same_scope_shares_one_build_until_it_is_stale() -> None:
    now = [0.0]
    built: list[str | None] = []
    release = threading.Event()

    def build(viewer: Viewer) -> list[dict[str, object]]:
        if built:  # refreshes wait until the test lets them finish
            release.wait(5)
        built.append(viewer.district)
        return [{"id": f"{viewer.district}-{len(built)}"}]

    cache = SnapshotCache(build, ttl_s=1.0, clock=lambda: now[0])
    first = cache.get(SEO)
    assert first.homes == [{"id": "seodaemun-1"}]
    assert cache.get(SEO_2) is first  # same district: same snapshot, no second build
    assert scope_of(SEO) == scope_of(SEO_2) != scope_of(MAPO)

    now[0] = 1.5  # stale: the old snapshot is served while one refresh runs
    assert cache.get(SEO) is first
    assert cache.get(SEO) is first
    release.set()
    for _ in range(200):
        if cache.builds == 2:
            break
        threading.Event().wait(0.01)
    assert cache.builds == 2
    assert cache.get(SEO).homes == [{"id": "seodaemun-2"}]
    assert b'"seodaemun-2"' in cache.get(SEO).body


def test_a_failed_refresh_keeps_the_old_snapshot_and_retries() -> None:
    now = [0.0]
    calls = [0]

    def build(viewer: Viewer) -> list[dict[str, object]]:
        calls[0] += 1
        if calls[0] == 2:
            raise RuntimeError("database went away")
        return [{"n": calls[0]}]

    cache = SnapshotCache(build, ttl_s=1.0, clock=lambda: now[0])
    first = cache.get(SEO)
    now[0] = 2.0
    assert cache.get(SEO) is first  # refresh 2 fails in the background
    for _ in range(200):
        if calls[0] == 2 and not cache._refreshing:
            break
        threading.Event().wait(0.01)
    assert cache.get(SEO) is first  # still served; this call starts refresh 3
    for _ in range(200):
        if cache.builds == 2:
            break
        threading.Event().wait(0.01)
    assert cache.get(SEO).homes == [{"n": 3}]
