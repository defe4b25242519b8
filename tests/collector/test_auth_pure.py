"""Password hashing, the login throttle, the scoping rules and the map's live state: pure parts."""

from __future__ import annotations

import datetime as dt

import pytest

from collector.auth.passwords import (
    DUMMY_HASH,
    WeakPassword,
    hash_password,
    needs_rehash,
    verify_password,
)
from collector.auth.throttle import LoginThrottle
from collector.domain.livestate import HomeSignals, LiveState, changed, live_state
from collector.store.accounts import Role
from collector.web.access import Viewer, may_see_household


def test_scrypt_hash_verifies_only_the_right_password_and_is_salted() -> None:
    a, b = hash_password("봄날의 햇살 2026", n=2**10), hash_password("봄날의 햇살 2026", n=2**10)
    assert a != b and a.startswith("scrypt$1024$8$1$")
    assert verify_password("봄날의 햇살 2026", a)
    assert not verify_password("봄날의 햇살 2025", a)
    assert needs_rehash(a)  # made cheaper than today's default


@pytest.mark.parametrize("stored", ["", "plain", "md5$x", "scrypt$x$8$1$AA$AA", DUMMY_HASH])
def test_a_malformed_or_dummy_hash_never_verifies(stored: str) -> None:
    assert not verify_password("anything at all", stored)


def test_short_passwords_are_refused() -> None:
    with pytest.raises(WeakPassword, match="at least 8"):
        hash_password("1234567")


def test_throttle_blocks_after_max_failures_until_the_window_passes() -> None:
    throttle = LoginThrottle(max_failures=3, window_s=60)
    keys = ("user:kim", "addr:1.2.3.4")
    for t in (0.0, 1.0, 2.0):
        assert throttle.retry_after_s(keys, now=t) == 0
        throttle.failed(keys, now=t)
    assert throttle.retry_after_s(keys, now=3.0) == pytest.approx(57.0)
    assert throttle.retry_after_s(("user:lee", "addr:1.2.3.4"), now=3.0) > 0  # same address
    assert throttle.retry_after_s(("user:lee", "addr:5.6.7.8"), now=3.0) == 0
    assert throttle.retry_after_s(keys, now=60.5) == 0  # the first failure left the window


def test_a_successful_login_clears_the_count() -> None:
    throttle = LoginThrottle(max_failures=2, window_s=60)
    throttle.failed(("user:kim",), now=0)
    throttle.succeeded(("user:kim",))
    throttle.failed(("user:kim",), now=1)
    assert throttle.retry_after_s(("user:kim",), now=2) == 0


def viewer(role: Role, district: str | None = None, caregiver_id: int | None = None) -> Viewer:
    return Viewer(1, "u", "U", role, district, caregiver_id, "ko")


@pytest.mark.parametrize(
    ("who", "district", "caregiver_id", "allowed"),
    [
        (viewer(Role.ADMIN), "mapo", 9, True),
        (viewer(Role.SUPERVISOR, "seodaemun"), "seodaemun", 9, True),
        (viewer(Role.SUPERVISOR, "seodaemun"), "mapo", 9, False),
        (viewer(Role.SUPERVISOR, None), "mapo", 9, False),
        (viewer(Role.CAREGIVER, "seodaemun", 3), "seodaemun", 3, True),
        (viewer(Role.CAREGIVER, "seodaemun", 3), "seodaemun", 4, False),
        (viewer(Role.CAREGIVER, "seodaemun", None), "seodaemun", None, False),
        (viewer(Role.TECHNICIAN), "seodaemun", 3, False),
    ],
)
def test_scoping_rules(who: Viewer, district: str, caregiver_id: int | None, allowed: bool) -> None:
    assert may_see_household(who, district=district, caregiver_id=caregiver_id) is allowed


NOW = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("reasons", "online", "quiet_h", "expected"),
    [
        ({"sos", "silence"}, (False,), 100, LiveState.SOS),
        ({"silence"}, (True,), 0, LiveState.SILENT),
        (set(), (True,), 49, LiveState.SILENT),
        (set(), (True,), 47, LiveState.OK),
        (set(), (True, False), 1, LiveState.OFFLINE),
        (set(), (), None, LiveState.OFFLINE),
        (set(), (True,), None, LiveState.OK),
    ],
)
def test_live_state_first_rule_wins(
    reasons: set[str], online: tuple[bool, ...], quiet_h: float | None, expected: LiveState
) -> None:
    life = None if quiet_h is None else NOW - dt.timedelta(hours=quiet_h)
    assert live_state(HomeSignals(frozenset(reasons), online, life, 48.0), now=NOW) is expected


def test_changed_lists_new_and_different_households_only() -> None:
    before = {"h1": ("red", "ok"), "h2": ("blue", "ok")}
    after = {"h1": ("red", "sos"), "h2": ("blue", "ok"), "h3": ("orange", "ok")}
    assert sorted(changed(before, after)) == ["h1", "h3"]
