"""The silence runtime on a real database (SQLite and PostgreSQL), with a fake clock."""

from __future__ import annotations

import datetime as dt
import signal
import subprocess
import sys
import tracemalloc
from pathlib import Path

from sqlalchemy import select

from collector.domain import silence_routine
from collector.domain.silence import LifeSignKind, SilenceFlag, SilenceLimit
from collector.domain.silence_routine import RoutineSettings
from collector.silence_runtime import SilenceRuntime, SilenceRuntimeSettings
from collector.store.db import Database
from collector.store.models import Device, Household
from collector.store.silence import HouseholdSilence, SilenceFlagRow
from tests.collector.helpers import NOW, register_homes


class FakeClock:
    """The test moves time; the runtime never reads the real clock."""

    def __init__(self, at: dt.datetime) -> None:
        self.at = at

    def __call__(self) -> dt.datetime:
        return self.at

    def advance(self, **delta: float) -> None:
        self.at += dt.timedelta(**delta)


def runtime(
    db: Database,
    clock: FakeClock,
    raised: list[tuple[str, SilenceFlag]],
    name: str = "c1",
    learn: bool = False,
) -> SilenceRuntime:
    rt = SilenceRuntime(
        db,
        on_flag=lambda flag, _id: raised.append((name, flag)),
        settings=SilenceRuntimeSettings(instance_id=name, learn=learn),
        routine_settings=RoutineSettings(learning_days=3, utc_offset_h=0),
        clock=clock,
    )
    rt.create_schema()
    return rt


def test_registered_homes_are_scheduled_and_flagged_once_across_a_restart(
    database: Database,
) -> None:
    register_homes(database)  # h-1, h-2 with a 48 h period, registered at NOW
    with database.session() as s:
        s.get(Household, "h-2").silence_period_h = 10  # type: ignore[union-attr]
    clock = FakeClock(NOW)
    raised: list[tuple[str, SilenceFlag]] = []
    first = runtime(database, clock, raised)
    assert first.restore() == 2
    clock.advance(hours=2)
    first.on_life_sign("h-2", LifeSignKind.MOTION, clock())
    clock.advance(hours=9, minutes=59)
    assert first.tick() == []
    clock.advance(minutes=1)  # h-2: 10 h after its last sign
    flags = first.tick()
    assert [f.household_id for f in flags] == ["h-2"]
    assert flags[0].reason.last_life_sign_at == NOW + dt.timedelta(hours=2)
    assert first.flush() >= 1
    # Restart (the process died): nothing raised twice, the other home still due on time.
    second = runtime(database, clock, raised)
    assert second.restore() == 2
    assert second.tick() == []
    clock.advance(hours=37)  # 49 h after registration: h-1's 48 h period ran out while down
    assert [f.household_id for f in second.tick()] == ["h-1"]
    with database.session() as s:
        rows = s.scalars(select(SilenceFlagRow).order_by(SilenceFlagRow.id)).all()
        assert [(r.household_id, r.limit) for r in rows] == [("h-2", "period"), ("h-1", "period")]


def test_two_collectors_raise_each_flag_once(database: Database) -> None:
    register_homes(database)
    clock = FakeClock(NOW)
    raised: list[tuple[str, SilenceFlag]] = []
    a, b = runtime(database, clock, raised, "a"), runtime(database, clock, raised, "b")
    a.restore()
    b.restore()
    clock.advance(hours=49)
    a.tick()
    b.tick()
    assert sorted(f.household_id for _, f in raised) == ["h-1", "h-2"]
    assert b.flags_taken_elsewhere + a.flags_taken_elsewhere == 2


def test_a_life_sign_lost_in_a_crash_is_recovered_from_the_devices_table(
    database: Database,
) -> None:
    register_homes(database, ("dev-1",))
    clock = FakeClock(NOW)
    raised: list[tuple[str, SilenceFlag]] = []
    first = runtime(database, clock, raised)
    first.restore()
    clock.advance(hours=40)
    # The ingest stored the event with the device; the runtime was killed before its flush.
    first.on_life_sign("h-1", LifeSignKind.SPEECH, clock())
    with database.session() as s:
        s.get(Device, "dev-1").last_life_sign_at = clock()  # type: ignore[union-attr]
    second = runtime(database, clock, raised)
    second.restore()
    clock.advance(hours=47)
    assert second.tick() == []  # not due: 47 h since the recovered sign
    clock.advance(hours=1)
    assert [f.household_id for f in second.tick()] == ["h-1"]


def test_learning_persists_and_an_offline_device_falls_back_to_the_period(
    database: Database,
) -> None:
    register_homes(database, ("dev-1",))
    clock = FakeClock(NOW)
    raised: list[tuple[str, SilenceFlag]] = []
    rt = runtime(database, clock, raised, learn=True)
    rt.restore()
    for _ in range(4 * 48):  # four days, a life sign every 30 minutes
        clock.advance(minutes=30)
        rt.on_life_sign("h-1", LifeSignKind.MOTION, clock())
    rt.flush()
    with database.session() as s:
        saved = s.get(HouseholdSilence, "h-1")
        assert saved is not None and saved.routine is not None and saved.observations
    # A restarted collector has the routine: 30-min gaps → flagged after ~2 h, not 48 h.
    again = runtime(database, clock, raised, learn=True)
    again.restore()
    clock.advance(hours=2, minutes=30)
    flags = again.tick()
    assert [f.reason.limit for f in flags] == [SilenceLimit.ROUTINE]
    # The device was in fact offline: no more routine flags, the period still runs.
    again.on_device_state("h-1", online=False)
    clock.advance(hours=40)
    assert again.tick() == []
    clock.advance(hours=6)  # labelled so staff see why nothing was heard
    assert [f.reason.limit for f in again.tick()] == [SilenceLimit.DEVICE_OFFLINE]


def test_health_and_a_bad_stored_routine_is_reported_not_fatal(database: Database) -> None:
    register_homes(database, ("dev-1",))
    with database.session() as s:
        s.add(
            HouseholdSilence(
                household_id="h-1",
                last_life_sign_at=NOW,
                period_h=10,
                routine="{broken",
                updated_at=NOW,
            )
        )
    clock = FakeClock(NOW)
    raised: list[tuple[str, SilenceFlag]] = []
    rt = runtime(database, clock, raised)
    assert rt.restore() == 1
    health = rt.health()
    assert health["homes"] == 1
    assert health["next_deadline_at"] == (NOW + dt.timedelta(hours=10)).isoformat()


CHILD = r"""
import datetime as dt, sys, time
from collector.domain.silence import LifeSignKind
from collector.silence_runtime import SilenceRuntime, SilenceRuntimeSettings
from collector.store.db import Database

db = Database(sys.argv[1])
now = dt.datetime.fromisoformat(sys.argv[2])
raised = []
rt = SilenceRuntime(db, on_flag=lambda f, i: raised.append(i),
                    settings=SilenceRuntimeSettings(learn=False), clock=lambda: now)
rt.create_schema()
rt.restore()
now += dt.timedelta(hours=49)
rt.tick()                                   # h-2 flagged and stored
rt.on_life_sign("h-1", LifeSignKind.MOTION, now)
rt.flush()                                  # h-1's sign committed
print(len(raised), flush=True)
time.sleep(60)                              # killed here
"""


def test_kill_9_loses_nothing_and_raises_nothing_twice(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'anbu.sqlite3'}"
    db = Database(url)
    register_homes(db)
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, url, NOW.isoformat()],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "2"  # both homes were due at 49 h
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    clock = FakeClock(NOW + dt.timedelta(hours=49))
    raised: list[tuple[str, SilenceFlag]] = []
    rt = runtime(db, clock, raised)
    assert rt.restore() == 2
    assert rt.tick() == []  # h-2's flag is not raised again; h-1 moved on
    deadline = rt.tracker.deadline("h-1")
    assert deadline is not None
    assert deadline.due_s == (NOW + dt.timedelta(hours=49 + 48)).timestamp()
    db.dispose()


def test_a_collector_that_missed_a_life_sign_does_not_raise_a_false_flag(
    database: Database,
) -> None:
    """Shared subscriptions split the messages: B hears the resident, A does not."""
    register_homes(database, ("dev-1",))
    clock = FakeClock(NOW)
    raised: list[tuple[str, SilenceFlag]] = []
    a, b = runtime(database, clock, raised, "a"), runtime(database, clock, raised, "b")
    a.restore()
    b.restore()
    clock.advance(hours=30)
    b.on_life_sign("h-1", LifeSignKind.MOTION, clock())
    b.flush()
    clock.advance(hours=19)  # 49 h: A's stale deadline has passed, B's has not
    assert a.tick() == [] and b.tick() == []
    assert a.flags_stale == 1
    deadline = a.tracker.deadline("h-1")  # A re-armed from the stored sign
    assert deadline is not None and deadline.due_s == (NOW + dt.timedelta(hours=78)).timestamp()
    clock.advance(hours=29)
    assert len(a.tick()) + len(b.tick()) == 1 and len(raised) == 1


def test_a_learned_limit_per_kind_flags_a_night_stretch_that_began_with_motion(
    database: Database,
) -> None:
    """Days of motion every 30 minutes, nights that begin with speech (the radio): after a
    restart, a motion sign at 02:00 followed by nothing is flagged hours before the time of
    day alone would (it allows the night), and the loop is woken for it."""
    register_homes(database, ("dev-1",))
    start = NOW.replace(hour=0, minute=0, second=0, microsecond=0)
    clock = FakeClock(start + dt.timedelta(hours=7))
    raised: list[tuple[str, SilenceFlag]] = []
    rt = runtime(database, clock, raised, learn=True)
    rt.restore()
    for _day in range(5):  # 5 nights: speech has the min_context_gaps it needs
        while clock().hour < 23:
            rt.on_life_sign("h-1", LifeSignKind.MOTION, clock())
            clock.advance(minutes=30)
        rt.on_life_sign("h-1", LifeSignKind.SPEECH, clock())
        clock.advance(hours=8)
    rt.on_life_sign("h-1", LifeSignKind.MOTION, clock())
    rt.flush()
    with database.session() as s:
        saved = s.get(HouseholdSilence, "h-1")
        assert saved is not None and saved.routine is not None
        assert '"contexts":{"motion":' in saved.routine and '"speech":' in saved.routine
    again = runtime(database, clock, raised, learn=True)
    again.restore()
    clock.advance(hours=19)  # 02:00: the night's stretch after speech is allowed here
    again.on_life_sign("h-1", LifeSignKind.SPEECH, clock())
    again._wake.clear()
    after_speech = again.tracker.deadline("h-1")
    again.on_life_sign("h-1", LifeSignKind.MOTION, clock())
    after_motion = again.tracker.deadline("h-1")
    assert after_speech is not None and after_motion is not None
    assert again._wake.is_set()  # the deadline came forward: the loop must not oversleep it
    # motion: 30 min seen → 1.25 × 0.5 h + 1.5 h = 2.125 h, stored in whole minutes (128)
    assert after_motion.due_s == to_s(clock()) + 128 * 60
    assert after_speech.due_s >= to_s(clock()) + 5 * 3600
    clock.advance(hours=2, minutes=10)
    assert [f.reason.limit for f in again.tick()] == [SilenceLimit.ROUTINE]


def to_s(at: dt.datetime) -> float:
    return at.timestamp()


def test_learning_tables_are_allocated_at_restore_not_as_homes_report_in(
    database: Database,
) -> None:
    """Memory flat from the start: the first life signs of every home allocate no routine tables
    (they were made for every scheduled home at restore; 10,000 homes grew 10 MiB otherwise)."""
    register_homes(database, tuple(f"dev-{n}" for n in range(1, 201)))
    clock = FakeClock(NOW)
    rt = runtime(database, clock, [], learn=True)
    assert rt.restore() == 200
    homes = [f"h-{n}" for n in range(1, 201)]
    tables = tracemalloc.Filter(True, silence_routine.__file__)
    tracemalloc.start()
    try:
        for _ in range(3):  # the second sign of a home is its first observed stretch
            clock.advance(minutes=30)
            for household_id in homes:
                rt.on_life_sign(household_id, LifeSignKind.MOTION, clock())
        snapshot = tracemalloc.take_snapshot().filter_traces([tables])
    finally:
        tracemalloc.stop()
    allocated = sum(stat.size for stat in snapshot.statistics("filename"))
    # What is left is the first entry of the per-context maps (bounded by max_contexts).
    assert allocated < 200 * 400  # the tables alone would be about 1 KB a home
    rt.flush()  # and they are what the home observed
    with database.session() as s:
        saved = s.get(HouseholdSilence, "h-7")
        assert saved is not None and saved.observations and '"first_s"' in saved.observations
