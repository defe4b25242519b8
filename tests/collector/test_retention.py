"""Retention on both databases: old heartbeats rolled up per device-day and pruned, old seen ids
pruned, recent rows untouched, in batches, exactly once."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from collector.retention import RetentionJob, RetentionPolicy, prune, roll_up
from collector.store.db import Database
from collector.store.models import DeviceDay, HeartbeatRecord, SeenMessage
from tests.collector.helpers import register_homes

NOW = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)
POLICY = RetentionPolicy(heartbeats_days=30, seen_messages_days=7)
_serial = iter(range(1, 1_000_000))


def heartbeat(device: str, received_at: dt.datetime, motion: int = 1) -> HeartbeatRecord:
    n = next(_serial)
    return HeartbeatRecord(
        message_id=f"hb{n:08d}",
        device_id=device,
        device_ts=received_at,
        received_at=received_at,
        seq=n,
        motion_count=motion,
        speech_s=1.5,
        wake_word_count=0,
        interactions=1,
        button_presses=0,
        uptime_s=100.0,
        audio_overruns=0,
        outbox_depth=0,
    )


def count(db: Database, model: type) -> int:
    with db.session() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def test_cutoffs_are_now_minus_the_ages() -> None:
    cut = POLICY.cutoffs(NOW)
    assert cut.heartbeats_before == NOW - dt.timedelta(days=30)
    assert cut.seen_messages_before == NOW - dt.timedelta(days=7)
    with pytest.raises(ValueError, match="timezone-aware"):
        POLICY.cutoffs(NOW.replace(tzinfo=None))
    with pytest.raises(ValueError, match="heartbeats_days=0"):
        RetentionPolicy(heartbeats_days=0)


def test_roll_up_sums_per_device_and_korean_day() -> None:
    kst = dt.timezone(dt.timedelta(hours=9))
    rows = [
        {"device_id": "a", "received_at": dt.datetime(2026, 11, 2, 8, 0, tzinfo=kst),
         "motion_count": 2, "speech_s": 1.0, "wake_word_count": 1, "interactions": 0,
         "button_presses": 0, "audio_overruns": 0},
        {"device_id": "a", "received_at": dt.datetime(2026, 11, 1, 23, 30, tzinfo=dt.UTC),
         "motion_count": 3, "speech_s": 0.5, "wake_word_count": 0, "interactions": 1,
         "button_presses": 1, "audio_overruns": 0},
    ]  # fmt: skip
    # 23:30 UTC on the 1st is 08:30 KST on the 2nd: both land on the 2nd, a Korean day.
    assert roll_up(rows) == {
        ("a", dt.date(2026, 11, 2)): {
            "heartbeats": 2, "motion_count": 5, "speech_s": 1.5, "wake_word_count": 1,
            "interactions": 1, "button_presses": 1, "audio_overruns": 0,
        }
    }  # fmt: skip


def test_prune_rolls_up_then_deletes_only_old_rows(database: Database) -> None:
    register_homes(database)
    old_day = NOW - dt.timedelta(days=40)
    with database.session() as session:
        session.add_all(heartbeat("dev-1", old_day + dt.timedelta(minutes=k), 2) for k in range(7))
        session.add_all(heartbeat("dev-2", old_day, 5) for _ in range(3))
        session.add_all(heartbeat("dev-1", NOW - dt.timedelta(days=1)) for _ in range(4))
        ages = [NOW - dt.timedelta(days=k) for k in range(10)]
        session.add_all(
            SeenMessage(message_id=f"m{k}", device_id="dev-1", received_at=at)
            for k, at in enumerate(ages)
        )
    pruned = prune(database, POLICY.cutoffs(NOW), batch=3)  # several batches
    assert (pruned.heartbeats, pruned.seen_messages) == (10, 2)  # seen: 8 and 9 days old
    assert count(database, HeartbeatRecord) == 4
    assert count(database, SeenMessage) == 8
    with database.session() as session:
        days = {
            (d.device_id, d.day): (d.heartbeats, d.motion_count, d.speech_s)
            for d in session.scalars(select(DeviceDay))
        }
    assert days == {
        ("dev-1", old_day.date()): (7, 14, 10.5),
        ("dev-2", old_day.date()): (3, 15, 4.5),
    }
    # Again: nothing left to prune, and the rollups are not counted twice.
    assert prune(database, POLICY.cutoffs(NOW)).heartbeats == 0
    with database.session() as session:
        row = session.get(DeviceDay, ("dev-1", old_day.date()))
        assert row is not None and row.heartbeats == 7


def test_later_runs_add_to_the_same_day(database: Database) -> None:
    register_homes(database)
    day = NOW - dt.timedelta(days=31)
    with database.session() as session:
        session.add(heartbeat("dev-1", day.replace(hour=1), 1))
        session.add(heartbeat("dev-1", day.replace(hour=14), 4))
    # 01:00 and 14:00 UTC are 10:00 and 23:00 of one Korean day. The first run sees the early
    # heartbeat only; the second the rest of that day.
    prune(database, POLICY.cutoffs(day.replace(hour=2) + dt.timedelta(days=30)))
    prune(database, POLICY.cutoffs(NOW + dt.timedelta(days=1)))
    with database.session() as session:
        row = session.get(DeviceDay, ("dev-1", day.date()))
        assert row is not None and (row.heartbeats, row.motion_count) == (2, 5)


def test_the_job_runs_on_its_own_and_survives_failures(database: Database, tmp_path: Path) -> None:
    register_homes(database)
    with database.session() as session:
        session.add(heartbeat("dev-1", NOW - dt.timedelta(days=60)))
    job = RetentionJob(database, POLICY, interval_s=0.05, clock=lambda: NOW)
    job.start()
    try:
        deadline = time.monotonic() + 10
        while job.runs < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        job.stop()
    assert job.runs >= 2 and job.failures == 0
    assert count(database, HeartbeatRecord) == 0
    assert job.health()["runs"] == job.runs

    # A database that cannot be opened: each run fails, is counted, and the thread goes on.
    broken = Database(f"sqlite:///{tmp_path / 'missing' / 'dir' / 'x.sqlite3'}")
    failing = RetentionJob(broken, POLICY, interval_s=0.05, clock=lambda: NOW)
    failing.start()
    try:
        deadline = time.monotonic() + 10
        while failing.failures < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        failing.stop()
        broken.dispose()
    assert failing.failures >= 2 and failing.runs == 0
